// The text boundary (hv/util/utf8.hpp), the guarded entry (hv/util/guard.hpp), the router's
// checks of what enters, the event bus's one serialization and the connection limiter.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../../src/daemon/event_bus.hpp"
#include "../../src/daemon/http_server.hpp"
#include "../../src/daemon/router.hpp"
#include "hv/api/vm.hpp"
#include "hv/error.hpp"
#include "hv/util/command.hpp"
#include "hv/util/guard.hpp"
#include "hv/util/serial_queue.hpp"
#include "hv/util/utf8.hpp"

using hv::util::valid_utf8;

namespace {
hv::Errc code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const hv::Error& e) {
        return e.code();
    }
    return hv::Errc::internal;  // "did not throw" is never what these tests expect
}
}  // namespace

TEST_CASE("utf8: strict validation (RFC 3629)", "[utf8]") {
    CHECK(valid_utf8(""));
    CHECK(valid_utf8("plain ascii"));
    CHECK(valid_utf8("caf\xc3\xa9"));              // é
    CHECK(valid_utf8("\xe2\x82\xac"));             // €
    CHECK(valid_utf8("\xf0\x9f\x98\x80"));         // U+1F600
    CHECK(valid_utf8("\xf4\x8f\xbf\xbf"));         // U+10FFFF
    CHECK_FALSE(valid_utf8("\xff"));
    CHECK_FALSE(valid_utf8("\xfe\xff"));
    CHECK_FALSE(valid_utf8("a\x80"));              // stray continuation byte
    CHECK_FALSE(valid_utf8("\xc3"));               // cut short
    CHECK_FALSE(valid_utf8("\xe2\x82"));           // cut short
    CHECK_FALSE(valid_utf8("\xc0\xaf"));           // overlong '/'
    CHECK_FALSE(valid_utf8("\xc1\xbf"));           // overlong
    CHECK_FALSE(valid_utf8("\xe0\x80\xaf"));       // overlong 3-byte
    CHECK_FALSE(valid_utf8("\xf0\x80\x80\xaf"));   // overlong 4-byte
    CHECK_FALSE(valid_utf8("\xed\xa0\x80"));       // surrogate U+D800
    CHECK_FALSE(valid_utf8("\xed\xbf\xbf"));       // surrogate U+DFFF
    CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));   // above U+10FFFF
    CHECK_FALSE(valid_utf8("\xf5\x80\x80\x80"));
    CHECK(hv::util::invalid_utf8_offset("ab\xffxy") == 2);
    CHECK(hv::util::invalid_utf8_offset("caf\xc3\xa9") == std::string::npos);
}

TEST_CASE("utf8: sanitize replaces each bad byte, dump_json never throws", "[utf8]") {
    CHECK(hv::util::sanitize_utf8("a\xff" "b") == "a\xef\xbf\xbd" "b");
    CHECK(hv::util::sanitize_utf8("caf\xc3\xa9") == "caf\xc3\xa9");
    nlohmann::json j{{"name", "a\xff\xfe"}, {"ok", "caf\xc3\xa9"}};
    CHECK_THROWS(j.dump());  // what used to end hvd
    std::string text;
    REQUIRE_NOTHROW(text = hv::util::dump_json(j));
    CHECK(valid_utf8(text));
    CHECK(nlohmann::json::parse(text)["ok"] == "caf\xc3\xa9");
}

TEST_CASE("utf8: check_text refuses bad text and control characters, never echoing the bytes", "[utf8]") {
    CHECK_NOTHROW(hv::util::check_text("caf\xc3\xa9", "x"));
    CHECK(code_of([] { hv::util::check_text("a\xff", "the path"); }) == hv::Errc::invalid_input);
    CHECK(code_of([] { hv::util::check_text(std::string("a\0b", 3), "x"); }) == hv::Errc::invalid_input);
    CHECK(code_of([] { hv::util::check_text("a\nb", "x"); }) == hv::Errc::invalid_input);
    CHECK_NOTHROW(hv::util::check_text("a\nb\tc", "x", true));
    try {
        hv::util::check_text("ab\xff", "the path");
        FAIL("no error");
    } catch (const hv::Error& e) {
        std::string m = e.what();
        CHECK(valid_utf8(m));
        CHECK(m.find("the path is not valid UTF-8 (byte 3 of 3: 0xFF)") != std::string::npos);
    }
}

TEST_CASE("names: ASCII only, errors quote the whole name and character", "[utf8][names]") {
    try {
        hv::api::validate_name("caf\xc3\xa9", "vm name");
        FAIL("café accepted");
    } catch (const hv::Error& e) {
        std::string m = e.what();
        CHECK(e.code() == hv::Errc::invalid_input);
        CHECK(valid_utf8(m));
        CHECK(m == "vm name 'caf\xc3\xa9' contains '\xc3\xa9': only ASCII letters, digits, '-', '_' and '.' are allowed");
    }
    try {
        hv::api::validate_name("a\xff", "vm name");
        FAIL("accepted");
    } catch (const hv::Error& e) {
        CHECK(valid_utf8(e.what()));
    }
    CHECK_NOTHROW(hv::api::validate_name("web-01_a.b", "vm name"));
}

TEST_CASE("router: path parameters, query and body are checked where they enter", "[router][utf8]") {
    using hv::daemon::Request;
    hv::daemon::Router r;
    r.add("GET", "/v1/vms/{name}", "host", [](const Request&) { return hv::daemon::Response{}; });
    auto match = [&](const std::string& target) {
        Request req;
        req.method = "GET";
        hv::daemon::split_target(target, req.path, req.query);
        r.match(req);
        return req;
    };
    CHECK(match("/v1/vms/web01").param("name") == "web01");
    CHECK(match("/v1/vms/caf%C3%A9").param("name") == "caf\xc3\xa9");  // UTF-8 is fine here; names are checked later
    for (const char* bad : {"/v1/vms/%FF%FE", "/v1/vms/a%00b", "/v1/vms/%2e%2e", "/v1/vms/.", "/v1/vms/a%2Fb",
                            "/v1/vms/x?purge=%FF", "/v1/vms/x?%FF=1", "/v1/vms/x?a=%0A", "/v1/vms/\xff"}) {
        INFO(bad);
        CHECK(code_of([&] { match(bad); }) == hv::Errc::invalid_input);
    }
    Request body;
    body.body = "{\"name\":\"a\xff\"}";
    try {
        body.json();
        FAIL("accepted");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::invalid_input);
        CHECK(valid_utf8(e.what()));
    }
    body.body = "{\"name\":\"caf\xc3\xa9\"}";
    CHECK(body.json()["name"] == "caf\xc3\xa9");
}

TEST_CASE("guarded: exceptions are caught, counted and never rethrown", "[guard]") {
    auto before = hv::util::escaped_exceptions();
    CHECK(hv::util::guarded("test", [] {}));
    CHECK_FALSE(hv::util::guarded("test", [] { throw std::runtime_error("boom \xff"); }));
    CHECK_FALSE(hv::util::guarded("test", [] { throw 42; }));
    CHECK(hv::util::escaped_exceptions() == before + 2);
}

TEST_CASE("event bus: one line per event, in seq order, a throwing subscriber hurts nobody", "[events]") {
    hv::daemon::EventBus bus;
    std::vector<std::string> got;
    std::mutex mu;
    bus.subscribe([](const hv::daemon::EventBus::Line&) { throw std::runtime_error("subscriber bug"); });
    bus.subscribe([&](const hv::daemon::EventBus::Line& l) {
        std::lock_guard lk(mu);
        got.push_back(*l);
    });
    std::vector<std::thread> th;
    for (int t = 0; t < 4; ++t)
        th.emplace_back([&, t] {
            for (int i = 0; i < 50; ++i) bus.publish("vm.lifecycle", "vm/x" + std::to_string(t), {{"i", i}});
        });
    for (auto& t : th) t.join();
    REQUIRE_NOTHROW(bus.publish("task", "task/\xff", {{"message", "bad \xfe"}}));  // rendered, not thrown
    REQUIRE(got.size() == 201);
    std::uint64_t seq = 0;
    for (const auto& line : got) {
        REQUIRE(line.back() == '\n');
        auto e = hv::api::event_from_json(nlohmann::json::parse(line));
        CHECK(e.seq == seq + 1);
        seq = e.seq;
    }
    CHECK(valid_utf8(got.back()));
    CHECK(hv::api::event_from_json(nlohmann::json::parse(got.front())).id == "e-1");
    CHECK(hv::api::event_from_json(nlohmann::json::parse(got.front())).host.empty());
}

TEST_CASE("event bus: in a cluster every event names its host and its id is unique in the cluster", "[events]") {
    hv::daemon::EventBus bus;
    std::vector<std::string> got;
    bus.subscribe([&](const hv::daemon::EventBus::Line& l) { got.push_back(*l); });
    bus.publish("vm.lifecycle", "vm/a", {{"state", "running"}});
    bus.set_host("h2");
    bus.publish("vm.lifecycle", "vm/a", {{"state", "shutoff"}});
    bus.set_host("");  // left the cluster
    bus.publish("vm.lifecycle", "vm/a", {{"state", "running"}});
    REQUIRE(got.size() == 3);
    std::vector<hv::api::Event> ev;
    for (const auto& l : got) {
        auto j = nlohmann::json::parse(l);
        // The line is what nlohmann writes for api::Event (keys sorted), so clients parse it alike.
        CHECK(l == j.dump() + "\n");
        ev.push_back(hv::api::event_from_json(j));
    }
    CHECK(ev[0].id == "e-1");
    CHECK(ev[0].host.empty());
    CHECK(ev[1].id == "e-2@h2");
    CHECK(ev[1].host == "h2");
    CHECK(ev[1].data.at("state") == "shutoff");
    CHECK(ev[2].id == "e-3");
    CHECK(ev[2].host.empty());
}

TEST_CASE("run_command_lines: a line handler that throws kills and reaps the program", "[guard][command]") {
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(hv::util::run_command_lines({"sh", "-c", "echo one; sleep 30"}, std::chrono::seconds(60),
                                                  [](const std::string& l) -> bool {
                                                      if (l == "one") throw std::runtime_error("handler bug");
                                                      return true;
                                                  }),
                      "handler bug");
    // The 30 s sleep did not have to end: the child was killed, not waited for.
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20));
}

TEST_CASE("run_command_piped: the caller feeds stdin or drains stdout, stderr and status come back", "[command]") {
    using namespace std::chrono_literals;
    // Feeding: the program reads what the pump wrote, then sees the end of its input.
    auto fed = hv::util::run_command_piped({"sh", "-c", "read a; read b; test \"$a $b\" = 'hello pipe' && ! read c; echo done >&2"},
                                           true, [](int fd) { CHECK(::write(fd, "hello\npipe\n", 11) == 11); }, 10s);
    CHECK(fed.exit_status == 0);
    CHECK(fed.err == "done\n");
    // Draining: everything the program printed, and its exit status.
    std::string got;
    auto drained = hv::util::run_command_piped({"sh", "-c", "printf abc; printf def; exit 3"}, false, [&](int fd) {
        char buf[16];
        for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
    }, 10s);
    CHECK(got == "abcdef");
    CHECK(drained.exit_status == 3);
    // A pump that throws: the program is killed and reaped, not waited for.
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(hv::util::run_command_piped({"sleep", "30"}, true, [](int) { throw std::runtime_error("pump bug"); }, 60s),
                      "pump bug");
    CHECK(std::chrono::steady_clock::now() - t0 < 20s);
    // Past the timeout: killed, timed_out.
    auto slow = hv::util::run_command_piped({"sleep", "30"}, true, [](int) {}, 300ms);
    CHECK(slow.timed_out);
    CHECK(slow.exit_status == 128 + SIGKILL);
    CHECK_THROWS_AS(hv::util::run_command_piped({"/nonexistent/program"}, true, [](int) {}, 1s), hv::Error);
}

TEST_CASE("connection limiter: per uid, in total, root never kept out", "[http][limits]") {
    hv::daemon::ServerLimits l;
    l.max_connections = 5;
    l.max_connections_per_uid = 3;
    l.max_root_connections = 2;
    hv::daemon::ConnectionLimiter c(l);
    for (int i = 0; i < 3; ++i) CHECK_FALSE(c.acquire(1000));
    auto why = c.acquire(1000);
    REQUIRE(why);
    CHECK(why->find("uid 1000") != std::string::npos);
    CHECK_FALSE(c.acquire(1001));
    CHECK_FALSE(c.acquire(1001));
    why = c.acquire(1002);  // 5 of 5 for all non-root uids
    REQUIRE(why);
    CHECK(why->find("max_connections") != std::string::npos);
    CHECK_FALSE(c.acquire(0));  // root gets through a full house
    CHECK_FALSE(c.acquire(0));
    CHECK(c.acquire(0));  // but has its own cap
    CHECK(c.open() == 7);
    c.release(1000);
    CHECK_FALSE(c.acquire(1002));
    c.release(0);
    CHECK_FALSE(c.acquire(0));
}
