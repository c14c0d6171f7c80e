// Autostart: settings validation, cycle detection, and the scheduler on a fake clock.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "autostart.hpp"
#include "hv/error.hpp"

using namespace hv::guest::autostart;
using nlohmann::json;

namespace {
Settings on(int order, std::vector<std::string> after = {}, int up = 0, std::string wait = "running") {
    Settings s;
    s.enabled = true;
    s.order = order;
    s.after = std::move(after);
    s.up = up;
    s.wait_for = std::move(wait);
    return s;
}

// A VM boots `boot` seconds after its start call; names in fail_times fail that many starts.
class FakeDriver : public AutostartDriver {
public:
    double t = 100;
    std::map<std::string, double> boot;
    std::map<std::string, int> fail_times;
    std::set<std::string> already;
    std::vector<std::pair<std::string, double>> starts;  // every start call, in order
    std::map<std::string, double> started;

    double now() override { return t; }
    void sleep_until(double x) override { t = std::max(t, x); }
    bool running(const std::string& vm) override { return already.count(vm) > 0; }
    void start(const std::string& vm) override {
        starts.emplace_back(vm, t);
        if (fail_times[vm] > 0) {
            --fail_times[vm];
            throw hv::Error(hv::Errc::internal, "disk image missing");
        }
        started[vm] = t;
    }
    bool ready(const std::string& vm, const Settings&) override {
        return started.count(vm) && t >= started[vm] + boot[vm];
    }
};

// Start calls take `call` seconds of fake time and overlap: begin_start() only records when the
// call returns; sleep_until() stops at the next return.
class AsyncFakeDriver : public FakeDriver {
public:
    double call = 1;
    std::map<std::string, double> returns_at;  // start calls in flight
    int in_flight_max = 0;

    void sleep_until(double x) override {
        for (auto& [_, r] : returns_at) x = std::min(x, r);
        t = std::max(t, x);
    }
    void begin_start(const std::string& vm) override {
        returns_at[vm] = t + call;
        in_flight_max = std::max(in_flight_max, static_cast<int>(returns_at.size()));
    }
    std::vector<StartResult> finished_starts() override {
        std::vector<StartResult> out;
        for (auto it = returns_at.begin(); it != returns_at.end();) {
            if (it->second > t) {
                ++it;
                continue;
            }
            StartResult r{it->first, "", call};
            double now = t;
            t = it->second - call;  // the call was issued then
            try {
                start(it->first);
            } catch (const std::exception& e) {
                r.error = e.what();
            }
            t = now;
            if (started.count(it->first)) started[it->first] = it->second;  // running once the call returned
            out.push_back(r);
            it = returns_at.erase(it);
        }
        return out;
    }
};

const VmRun& find(const RunReport& r, const std::string& n) {
    for (const auto& v : r.vms)
        if (v.name == n) return v;
    FAIL("no vm " << n);
    throw;
}
}  // namespace

TEST_CASE("autostart settings: strict JSON, PATCH-like merge, validation") {
    Settings base = on(2, {"db01"});
    auto s = settings_from_json(json{{"up", 30}, {"wait_for", "tcp:22"}}, base);
    CHECK(s.order == 2);
    CHECK(s.up == 30);
    CHECK(s.after == std::vector<std::string>{"db01"});
    CHECK(tcp_port(s.wait_for) == 22);
    CHECK_THROWS_WITH(settings_from_json(json{{"bogus", 1}}), Catch::Contains("bogus"));
    CHECK_THROWS_WITH(validate(on(1, {}, 0, "tcp:0"), "a"), Catch::Contains("wait_for"));
    CHECK_THROWS_WITH(validate(on(1, {}, 0, "ping"), "a"), Catch::Contains("wait_for"));
    CHECK_THROWS_WITH(validate(on(1, {"a"}), "a"), Catch::Contains("itself"));
    CHECK_NOTHROW(validate(on(1, {}, 0, "guest-agent"), "a"));
    HostSettings h;
    h.max_parallel = 0;
    CHECK_THROWS_WITH(validate(h), Catch::Contains("max_parallel"));
    CHECK(host_settings_from_json(json{{"boot_delay", 120}}).boot_delay == 120);
}

TEST_CASE("autostart dependencies: cycles refused and named") {
    std::map<std::string, Settings> vms{{"a", on(1, {"b"})}, {"b", on(2, {"c"})}, {"c", on(1, {"a"})}, {"d", on(0)}};
    try {
        check_dependencies(vms);
        FAIL("no cycle found");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::conflict);
        CHECK(std::string(e.what()).find("a -> b -> c -> a") != std::string::npos);
    }
    vms["c"].after.clear();
    CHECK_NOTHROW(check_dependencies(vms));
    vms["d"].after = {"zz"};
    CHECK_THROWS_WITH(check_dependencies(vms), Catch::Contains("'zz'"));
    vms["d"].after = {"e"};
    vms["e"] = Settings{};  // exists, autostart disabled
    CHECK_THROWS_WITH(check_dependencies(vms), Catch::Contains("not have autostart enabled"));
}

TEST_CASE("autostart scheduler: ascending groups, parallel within a group, unordered last, up delay") {
    std::map<std::string, Settings> vms{{"db1", on(1, {}, 30)},  {"db2", on(1, {}, 5)}, {"web1", on(2)},
                                        {"web2", on(2)},         {"web3", on(2)},       {"misc", on(0)},
                                        {"off", Settings{}}};
    FakeDriver d;
    d.boot = {{"db1", 4}, {"db2", 2}, {"web1", 1}, {"web2", 1}, {"web3", 1}, {"misc", 1}};
    RunOptions o;
    o.host.boot_delay = 10;
    o.host.max_parallel = 2;
    auto r = run_start(vms, o, d);
    CHECK(r.groups == std::vector<std::string>{"order 1", "order 2", "unordered"});
    CHECK(find(r, "db1").started_at == Approx(110));
    CHECK(find(r, "db2").started_at == Approx(110));
    CHECK(find(r, "db1").ready_at == Approx(114).margin(0.3));
    // db1 ready at ~114 + up 30 -> order 2 opens at ~144; max_parallel 2 holds web3 back.
    CHECK(find(r, "web1").started_at == Approx(144).margin(0.3));
    CHECK(find(r, "web2").started_at == Approx(144).margin(0.3));
    CHECK(find(r, "web3").started_at == Approx(145).margin(0.3));
    CHECK(find(r, "misc").started_at >= find(r, "web3").ready_at);
    CHECK(d.starts.size() == 6);  // the disabled VM never starts
    for (const auto& v : r.vms) CHECK(v.state == "ready");
}

TEST_CASE("autostart scheduler: after across orders, retries, a failing VM does not block others") {
    std::map<std::string, Settings> vms{{"app", on(1, {"db"})}, {"db", on(3)},       {"other", on(2)},
                                        {"bad", on(1)},         {"needbad", on(2, {"bad"})}};
    FakeDriver d;
    d.boot = {{"app", 1}, {"db", 3}, {"other", 1}};
    d.fail_times = {{"bad", 10}};
    RunOptions o;
    o.host.boot_delay = 0;
    o.host.retries = 2;
    o.host.retry_delay = 5;
    auto r = run_start(vms, o, d);
    const auto& bad = find(r, "bad");
    CHECK(bad.state == "failed");
    CHECK(bad.attempts == 3);
    CHECK(bad.error.find("disk image missing") != std::string::npos);
    std::vector<double> bad_tries;
    for (auto& [n, t] : d.starts)
        if (n == "bad") bad_tries.push_back(t);
    REQUIRE(bad_tries.size() == 3);
    CHECK(bad_tries[1] - bad_tries[0] == Approx(5));
    CHECK(bad_tries[2] - bad_tries[1] == Approx(5));
    CHECK(find(r, "needbad").state == "failed");
    CHECK(find(r, "needbad").attempts == 0);
    CHECK(find(r, "other").state == "ready");
    CHECK(find(r, "db").state == "ready");
    CHECK(find(r, "app").state == "ready");
    CHECK(find(r, "app").started_at >= find(r, "db").ready_at);
}

TEST_CASE("autostart scheduler: readiness timeout, already running VMs, gate none") {
    auto slow = on(1);
    slow.wait_timeout = 20;
    std::map<std::string, Settings> vms{{"slow", slow}, {"up", on(1)}, {"fire", on(2, {}, 0, "none")}};
    FakeDriver d;
    d.boot = {{"slow", 1000}};
    d.already = {"up"};
    RunOptions o;
    o.host.boot_delay = 0;
    auto r = run_start(vms, o, d);
    CHECK(find(r, "slow").state == "failed");
    CHECK(find(r, "slow").error.find("within 20 s") != std::string::npos);
    CHECK(find(r, "up").state == "already-running");
    CHECK(find(r, "fire").started_at == Approx(120).margin(0.3));
    CHECK(find(r, "fire").ready_at == find(r, "fire").started_at);
}

TEST_CASE("autostart plan and stop waves") {
    std::map<std::string, Settings> vms{{"db", on(1, {}, 30)}, {"web", on(2, {"db"}, 10)}, {"misc", on(0)},
                                        {"cache", on(2)}, {"api", on(2, {"cache"})}};
    RunOptions o;
    o.host.boot_delay = 120;
    auto p = plan(vms, o);
    CHECK(find(p, "db").started_at == Approx(120));
    CHECK(find(p, "web").started_at == Approx(150));
    CHECK(find(p, "api").started_at == Approx(150));
    CHECK(find(p, "misc").started_at == Approx(160));
    auto w = stop_waves(vms);
    REQUIRE(w.size() == 4);
    CHECK(w[0] == std::vector<std::string>{"misc"});
    CHECK(w[1] == std::vector<std::string>{"api"});
    CHECK(w[2] == std::vector<std::string>{"cache", "web"});
    CHECK(w[3] == std::vector<std::string>{"db"});
}

TEST_CASE("autostart scheduler: the start calls of a group overlap, bounded by max_parallel") {
    std::map<std::string, Settings> vms;
    for (auto n : {"a1", "a2", "a3", "a4"}) vms[n] = on(1);
    for (auto n : {"b1", "b2", "b3", "b4", "b5", "b6"}) vms[n] = on(2);
    AsyncFakeDriver d;
    RunOptions o;
    o.host.boot_delay = 0;
    o.host.max_parallel = 4;
    auto r = run_start(vms, o, d);
    for (const auto& v : r.vms) {
        INFO(v.name);
        CHECK(v.state == "ready");
        CHECK(v.start_duration == Approx(1));
    }
    // Group 1: 4 calls of 1 s each issued at once, all ready after ~1 s (not 4 s).
    for (auto n : {"a1", "a2", "a3", "a4"}) {
        CHECK(find(r, n).started_at == Approx(100));
        CHECK(find(r, n).ready_at == Approx(101).margin(0.01));
    }
    // Group 2: 6 VMs, 4 at a time: 4 at 101, the other 2 when those return at 102.
    int first = 0, second = 0;
    for (auto n : {"b1", "b2", "b3", "b4", "b5", "b6"}) {
        double s = find(r, n).started_at;
        if (s == Approx(101).margin(0.01)) ++first;
        if (s == Approx(102).margin(0.01)) ++second;
    }
    CHECK(first == 4);
    CHECK(second == 2);
    CHECK(d.in_flight_max == 4);
    CHECK(r.finished - r.began == Approx(3).margin(0.01));
}

TEST_CASE("autostart scheduler: a failed start call that overlapped others is retried") {
    std::map<std::string, Settings> vms{{"ok1", on(1)}, {"ok2", on(1)}, {"bad", on(1)}, {"fire", on(1, {}, 0, "none")}};
    AsyncFakeDriver d;
    d.fail_times = {{"bad", 1}};
    RunOptions o;
    o.host.boot_delay = 0;
    o.host.retries = 1;
    o.host.retry_delay = 5;
    auto r = run_start(vms, o, d);
    for (const auto& v : r.vms) CHECK(v.state == "ready");
    CHECK(find(r, "bad").attempts == 2);
    CHECK(find(r, "bad").started_at == Approx(106).margin(0.01));  // returned at 101, retried 5 s later
    CHECK(find(r, "fire").ready_at == Approx(101).margin(0.01));
    CHECK(d.in_flight_max == 4);
}

TEST_CASE("autostart of containers: no guest-agent gate, event targets and log labels by kind") {
    CHECK_NOTHROW(validate(on(1, {}, 0, "tcp:8080"), "web", Kind::ct));
    CHECK_NOTHROW(validate(on(1, {}, 0, "running"), "web", Kind::ct));
    try {
        validate(on(1, {}, 0, "guest-agent"), "web", Kind::ct);
        FAIL("guest-agent accepted for a container");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::invalid_input);
        CHECK(std::string(e.what()).find("no QEMU guest agent") != std::string::npos);
        CHECK(std::string(e.what()).find("'web'") != std::string::npos);
    }
    CHECK_THROWS_WITH(validate(on(1, {"web"}), "web", Kind::ct), Catch::Contains("container 'web'"));
    CHECK(std::string(hv::api::kind_noun(Kind::vm)) == "vm");
    CHECK(std::string(hv::api::kind_noun(Kind::ct)) == "container");
    CHECK(hv::api::guest_target(Kind::vm, "db") == "vm/db");
    CHECK(hv::api::guest_target(Kind::ct, "db") == "ct/db");
    CHECK(label(Kind::ct, "db") == "ct db");
    CHECK(label(Kind::vm, "db") == "vm db");
}

TEST_CASE("autostart without the containers: missing dependencies let through, their dependents fail alone") {
    // "ct1" is a container the run cannot see (LXC connection down): not in the map at all.
    std::map<std::string, Settings> vms{{"db", on(1)}, {"app", on(2, {"ct1"})}, {"web", on(2, {"db"})}};
    CHECK_THROWS_WITH(check_dependencies(vms), Catch::Contains("'ct1', which does not exist"));
    CHECK_NOTHROW(check_dependencies(vms, true));
    // A disabled or cyclic dependency among the known guests is still refused.
    vms["x"] = Settings{};
    vms["web"].after = {"x"};
    CHECK_THROWS_WITH(check_dependencies(vms, true), Catch::Contains("not have autostart enabled"));
    vms.erase("x");
    vms["web"].after = {"app"};
    vms["app"].after = {"ct1", "web"};
    CHECK_THROWS_AS(check_dependencies(vms, true), hv::Error);
    vms["web"].after = {"db"};
    vms["app"].after = {"ct1"};

    FakeDriver d;
    RunOptions o;
    o.host.boot_delay = 0;
    auto r = run_start(vms, o, d);
    CHECK(find(r, "db").state == "ready");
    CHECK(find(r, "web").state == "ready");
    CHECK(find(r, "app").state == "failed");
    CHECK(find(r, "app").attempts == 0);
    CHECK(find(r, "app").error == "not started: 'ct1' (after) is not available");
    for (const auto& [n, _] : d.starts) CHECK(n != "app");
}
