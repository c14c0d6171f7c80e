// The guest layer on fake drivers: one name space across kinds (claims), the lifecycle
// engine's shutdown, the guest.lifecycle events; and route resources.
#include <set>
#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "guest.hpp"
#include "hv/error.hpp"
#include "router.hpp"

using namespace hv;
using guest::GuestDriver;
using guest::GuestKind;
using guest::GuestState;
using guest::GuestStatus;
using nlohmann::json;

namespace {

// A driver whose guests are a map; `down` makes every call answer unavailable.
class FakeDriver final : public GuestDriver {
public:
    explicit FakeDriver(GuestKind k) : kind_(k) {}
    GuestKind kind() const override { return kind_; }
    bool wait_connected(std::chrono::milliseconds) override { return !down; }
    std::vector<GuestStatus> list() override {
        check();
        std::vector<GuestStatus> out;
        for (const auto& [n, st] : guests) out.push_back(GuestStatus{{kind_, "", n}, st, "", true});
        return out;
    }
    std::optional<GuestStatus> find(const std::string& name) override {
        check();
        auto it = guests.find(name);
        if (it == guests.end()) return std::nullopt;
        return GuestStatus{{kind_, "", name}, it->second, "", true};
    }
    json list_json() override { return json::array(); }
    json info(const std::string& name) override { return json{{"name", name}, {"state", guests.at(name)}}; }
    const std::vector<std::string>& actions() const override {
        static const std::vector<std::string> a{"start", "stop"};
        return a;
    }
    json action(const std::string& name, const std::string&) override { return info(name); }
    json update(const std::string& name, const api::VmPatch&) override { return info(name); }
    json remove(const std::string& name, bool, util::Progress&) override {
        guests.erase(name);
        return json{{"name", name}};
    }
    void request_shutdown(const std::string& name, util::Progress&) override {
        ++requests;
        guests[name] = GuestState::shutting_down;
    }
    bool active(const std::string& name) override { return polls_until_off < 0 || polls++ < polls_until_off; }
    bool power_off(const std::string& name) override {
        ++power_offs;
        guests[name] = GuestState::stopped;
        polls_until_off = 0;
        return true;
    }
    json settled_info(const std::string& name) override { return info(name); }
    guest::ShutdownWords shutdown_words() const override {
        return {"requested", "waiting", "power it off", "powering off", "forced", "done"};
    }
    std::optional<std::string> metadata(const std::string&, const std::string&) override { return std::nullopt; }
    void set_metadata(const std::string&, const std::string&, const std::string&, const std::string&) override {}
    bool ready(const std::string&, const std::string&) override { return true; }
    bool required_for_claims() const override { return kind_ == GuestKind::vm; }
    std::map<std::string, std::vector<std::string>> image_users(bool) override { return {}; }
    std::optional<std::string> user_name(const std::string&) const override { return std::nullopt; }
    void release_image(const std::string&, const std::string&) override {}

    std::map<std::string, GuestState> guests;
    bool down = false;
    int polls_until_off = -1;  // -1: never stops by itself
    int polls = 0, requests = 0, power_offs = 0;

private:
    void check() const {
        if (down) fail(Errc::unavailable, "libvirt is down");
    }
    GuestKind kind_;
};

class CancelAfter final : public util::Progress {
public:
    explicit CancelAfter(int n) : n_(n) {}
    void update(int, const std::string&) override {}
    bool cancelled() const override { return n_ >= 0 && ++seen_ > n_; }

private:
    int n_;
    mutable int seen_ = 0;
};

}  // namespace

TEST_CASE("guests: a create claims its name across kinds until it ends", "[guest]") {
    std::vector<std::pair<std::string, json>> events;
    guest::Guests g([&](const std::string& type, const std::string&, const json& d) { events.emplace_back(type, d); });
    FakeDriver vms(GuestKind::vm), cts(GuestKind::ct);
    g.add(vms);
    g.add(cts);

    auto claim = g.claim(GuestKind::vm, "web01");
    // Held: the other kind and the same kind are refused at once.
    CHECK_THROWS_WITH(g.claim(GuestKind::ct, "web01"), Catch::Contains("is being created"));
    CHECK_THROWS_WITH(g.claim(GuestKind::vm, "web01"), Catch::Contains("is being created"));
    try {
        g.claim(GuestKind::ct, "web01");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::conflict);
    }
    // Made and released: the name is now taken by a guest.
    vms.guests["web01"] = GuestState::stopped;
    claim.reset();
    CHECK_THROWS_WITH(g.claim(GuestKind::ct, "web01"),
                      Catch::Contains("a vm named 'web01' exists: containers and VMs share one name space"));
    CHECK_THROWS_WITH(g.claim(GuestKind::vm, "web01"), Catch::Contains("vm 'web01' already exists"));
    // A failed create (never made) frees the name for either kind.
    vms.guests.clear();
    { auto c = g.claim(GuestKind::ct, "web01"); }
    CHECK_NOTHROW(g.claim(GuestKind::vm, "web01"));

    // The other kind's libvirt down does not block a create; the kind's own does (503).
    cts.down = true;
    CHECK_NOTHROW(g.claim(GuestKind::vm, "db01"));
    try {
        g.claim(GuestKind::ct, "db01");
        FAIL("claimed while its own driver is down");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::unavailable);
    }
    // A refused claim leaves nothing held.
    cts.down = false;
    CHECK_NOTHROW(g.claim(GuestKind::ct, "db01"));
    // VMs cannot be asked: a container create cannot know whether a VM has the name (503).
    vms.down = true;
    try {
        g.claim(GuestKind::ct, "db02");
        FAIL("claimed while the VMs cannot be asked");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::unavailable);
    }
    vms.down = false;
    // The 409 of a name being created names the kind being created.
    auto vm_claim = g.claim(GuestKind::vm, "app");
    CHECK_THROWS_WITH(g.claim(GuestKind::ct, "app"), Catch::Contains("vm 'app' is being created"));
}

TEST_CASE("guests: concurrent claims of one name: exactly one wins", "[guest]") {
    guest::Guests g([](const std::string&, const std::string&, const json&) {});
    FakeDriver vms(GuestKind::vm), cts(GuestKind::ct);
    g.add(vms);
    g.add(cts);
    for (int round = 0; round < 50; ++round) {
        std::atomic<int> won{0}, refused{0};
        std::vector<std::shared_ptr<guest::Guests::Claim>> held(8);
        std::vector<std::thread> th;
        for (int i = 0; i < 8; ++i)
            th.emplace_back([&, i] {
                try {
                    held[i] = g.claim(i % 2 ? GuestKind::ct : GuestKind::vm, "race");
                    ++won;
                } catch (const Error& e) {
                    if (e.code() == Errc::conflict) ++refused;
                }
            });
        for (auto& t : th) t.join();
        CHECK(won == 1);
        CHECK(refused == 7);
    }
}

TEST_CASE("guests: the lifecycle engine's shutdown: clean, forced, timeout, cancel", "[guest]") {
    FakeDriver d(GuestKind::ct);
    d.guests["c1"] = GuestState::running;
    bool forced = true;
    util::NullProgress p;

    d.polls_until_off = 3;  // stops by itself
    auto info = guest::shutdown(d, "c1", 60, true, p, &forced);
    CHECK_FALSE(forced);
    CHECK(d.requests == 1);
    CHECK(d.power_offs == 0);
    CHECK(info["name"] == "c1");

    d.polls_until_off = -1, d.polls = 0;  // never stops: forced at the timeout
    guest::shutdown(d, "c1", 0, true, p, &forced);
    CHECK(forced);
    CHECK(d.power_offs == 1);

    d.polls_until_off = -1, d.polls = 0;  // never stops, no force: timeout, still running
    try {
        guest::shutdown(d, "c1", 0, false, p, &forced);
        FAIL("no timeout");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::timeout);
        CHECK_THAT(e.what(), Catch::Contains("container 'c1' did not shut down within 0 s (use --force to power it off)"));
    }
    CHECK(d.power_offs == 1);
    CHECK_FALSE(forced);

    CancelAfter c(1);
    try {
        guest::shutdown(d, "c1", 60, true, c, &forced);
        FAIL("not cancelled");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::cancelled);
        CHECK_THAT(e.what(), Catch::Contains("it keeps running"));
    }
    CHECK(d.power_offs == 1);
}

TEST_CASE("guests: each kind's lifecycle events are also guest.lifecycle events with kind and name", "[guest]") {
    std::vector<std::tuple<std::string, std::string, json>> events;
    guest::Guests g([&](const std::string& t, const std::string& target, const json& d) { events.emplace_back(t, target, d); });
    auto ct = g.publisher(GuestKind::ct);
    ct("ct.lifecycle", "ct/c1", json{{"event", "started"}, {"state", "running"}, {"reason", "booted"}});
    ct("daemon", "libvirt-lxc", json{{"libvirt_lxc_connected", true}});
    REQUIRE(events.size() == 3);
    CHECK(std::get<0>(events[0]) == "ct.lifecycle");
    CHECK(std::get<0>(events[1]) == "guest.lifecycle");
    CHECK(std::get<1>(events[1]) == "ct/c1");
    CHECK(std::get<2>(events[1]) ==
          json{{"event", "started"}, {"state", "running"}, {"reason", "booted"}, {"kind", "ct"}, {"name", "c1"}});
    CHECK(std::get<0>(events[2]) == "daemon");
}

TEST_CASE("router: every route declares its resource, a match resolves it", "[router]") {
    daemon::Router r;
    auto h = [](const daemon::Request&) { return daemon::Response{}; };
    r.add("GET", "/v1/vms/{name}", "guest:{name}", h);
    r.add("GET", "/v1/storage/pools/{pool}/volumes/{name}", "pool:{pool}", h);
    r.add("GET", "/v1/host", "host", h);
    CHECK_THROWS_WITH(r.add("GET", "/v1/x/{id}", "guest:{name}", h), Catch::Contains("names no parameter"));
    CHECK_THROWS_WITH(r.add("GET", "/v1/x", "guests", h), Catch::Contains("is not host or KIND:{PARAM}"));
    daemon::Request q;
    q.method = "GET";
    q.path = "/v1/vms/web01";
    r.match(q);
    CHECK(q.resource == "guest:web01");
    q.path = "/v1/storage/pools/fast/volumes/d1";
    r.match(q);
    CHECK(q.resource == "pool:fast");
    q.path = "/v1/host";
    r.match(q);
    CHECK(q.resource == "host");
}

namespace {
// A directory where some names are being moved (or made) on this host.
class FakeDirectory final : public guest::Guests::Directory {
public:
    void claim(GuestKind, const std::string&) override {}
    void end_claim(const std::string&) override {}
    std::string self() const override { return "h1"; }
    json others(GuestKind) const override { return json::array(); }
    bool held(const std::string& name) const override { return moving.count(name) > 0; }
    std::set<std::string> moving;
};
}  // namespace

TEST_CASE("guests: requests of a guest that is being moved are refused (409) before the hook hears them", "[guest]") {
    guest::Guests g([](const std::string&, const std::string&, const json&) {});
    FakeDriver cts(GuestKind::ct);
    g.add(cts);
    FakeDirectory dir;
    g.set_directory(&dir);
    std::vector<std::string> heard;
    g.set_request_hook([&](GuestKind, const std::string& name, const std::string& action) { heard.push_back(name + " " + action); });
    cts.guests["app01"] = GuestState::stopped;
    cts.guests["app02"] = GuestState::stopped;
    dir.moving.insert("app01");
    try {
        g.requested(GuestKind::ct, "app01", "start");
        FAIL("a start during a move was let through");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::conflict);
        CHECK_THAT(std::string(e.what()), Catch::Contains("container 'app01' is being moved"));
    }
    CHECK_THROWS_AS(g.expect_not_moving(GuestKind::ct, "app01"), Error);
    CHECK(heard.empty());
    g.requested(GuestKind::ct, "app02", "start");  // another guest: as before
    g.requested(GuestKind::ct, "app01", "deleted");  // told after the fact: never refused
    CHECK(heard == std::vector<std::string>{"app02 start", "app01 deleted"});
    dir.moving.clear();
    g.requested(GuestKind::ct, "app01", "start");
    CHECK(heard.size() == 3);
}
