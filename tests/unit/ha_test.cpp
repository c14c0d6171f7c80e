// HA's wire model, the fencing rule between the watchdog and the lease, and the watchdog
// through a FIFO as the rig's emulator reads it (the manager and agent run on the rig:
// tests/integration/ceph_test.cpp).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "config.hpp"
#include "ha_service.hpp"
#include "hv/api/ha.hpp"
#include "hv/error.hpp"
#include "temp_dir.hpp"
#include "watchdog.hpp"

using namespace hv;
using nlohmann::json;

namespace {
Errc code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.code();
    }
    return Errc::internal;
}
}  // namespace

TEST_CASE("ha enable: defaults, round trip and refusals", "[ha][api]") {
    auto e = api::ha_enable_from_json(json::object());
    CHECK(e.state == "started");
    CHECK(e.group.empty());
    CHECK(e.max_restart == 1);
    CHECK(e.max_relocate == 1);
    auto f = api::ha_enable_from_json(json{{"state", "stopped"}, {"group", "prefer-ab"}, {"max_restart", 2}, {"max_relocate", 0}});
    auto back = api::ha_enable_from_json(api::to_json(f));
    CHECK(back.state == "stopped");
    CHECK(back.group == "prefer-ab");
    CHECK(back.max_restart == 2);
    CHECK(back.max_relocate == 0);
    for (const json& bad : {json{{"state", "frozen"}}, json{{"max_restart", 11}}, json{{"max_relocate", -1}},
                            json{{"group", "Bad Name"}}, json{{"host", "h1"}}, json{{"max_restart", "2"}}, json::array()}) {
        INFO(bad.dump());
        CHECK(code_of([&] { api::ha_enable_from_json(bad); }) == Errc::invalid_input);
    }
}

TEST_CASE("ha group: hosts with priorities, HOST[:PRIORITY], refusals", "[ha][api]") {
    auto g = api::ha_group_from_json(json{{"name", "prefer-ab"}, {"hosts", {{"a", 2}, {"b", 1}}}, {"restricted", true}});
    CHECK(g.hosts.at("a") == 2);
    CHECK(g.restricted);
    CHECK_FALSE(g.nofailback);
    CHECK(api::ha_group_from_json(api::to_json(g)).hosts == g.hosts);
    CHECK(api::parse_ha_host("h1") == std::pair<std::string, int>{"h1", 1});
    CHECK(api::parse_ha_host("h2:7") == std::pair<std::string, int>{"h2", 7});
    for (const char* bad : {"h1:", "h1:x", "h1:-1", "h1:1001", ":2", "H1:2", "h1:2:3"}) {
        INFO(bad);
        CHECK(code_of([&] { api::parse_ha_host(bad); }) == Errc::invalid_input);
    }
    for (const json& bad : {json{{"name", "g"}}, json{{"name", "g"}, {"hosts", json::object()}},
                            json{{"name", "g"}, {"hosts", {{"a", 1001}}}}, json{{"name", "g"}, {"hosts", {{"a", 1.5}}}},
                            json{{"name", "g"}, {"hosts", {{"A!", 1}}}}, json{{"name", "-g"}, {"hosts", {{"a", 1}}}},
                            json{{"name", "g"}, {"hosts", {{"a", 1}}}, {"extra", 1}}}) {
        INFO(bad.dump());
        CHECK(code_of([&] { api::ha_group_from_json(bad); }) == Errc::invalid_input);
    }
}

TEST_CASE("ha settings: shutdown policy freeze (default) or migrate, a PUT merges", "[ha][api]") {
    CHECK(api::ha_settings_from_json(json::object()).shutdown_policy == "freeze");
    auto m = api::ha_settings_from_json(json{{"shutdown_policy", "migrate"}});
    CHECK(m.shutdown_policy == "migrate");
    CHECK(api::ha_settings_from_json(json::object(), m).shutdown_policy == "migrate");  // left out: kept
    CHECK(api::to_json(m) == json{{"shutdown_policy", "migrate"}});
    for (const json& bad : {json{{"shutdown_policy", "failover"}}, json{{"shutdown_policy", 1}}, json{{"policy", "migrate"}},
                            json::array()}) {
        INFO(bad.dump());
        CHECK(code_of([&] { api::ha_settings_from_json(bad); }) == Errc::invalid_input);
    }
}

TEST_CASE("ha timing: pet window + watchdog + margin must fit in the lease", "[ha][config]") {
    CHECK_NOTHROW(ha::check_timing({"/dev/watchdog", 3, 5}));
    CHECK(code_of([] { ha::check_timing({"/dev/watchdog", 4, 5}); }) == Errc::invalid_input);
    CHECK_NOTHROW(ha::check_timing({"/dev/watchdog", 8, 10}));
    // The same rule when the config is read: hvd refuses to start with it broken.
    CHECK_NOTHROW(daemon::parse_config("[ha]\nwatchdog_timeout = 3\n", "t.toml"));
    try {
        daemon::parse_config("[cluster]\nlease_ttl = 4\n", "t.toml");
        FAIL("accepted a lease shorter than the watchdog needs");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("ha.watchdog_timeout") && Catch::Contains("lease_ttl"));
    }
    CHECK_NOTHROW(daemon::parse_config("[cluster]\nlease_ttl = 4\n[ha]\nwatchdog_timeout = 2\n", "t.toml"));
}

TEST_CASE("ha watchdog: a FIFO is armed, petted and disarmed with the magic close", "[ha]") {
    hv::test::TempDir dir("hv-wd");
    std::string fifo = dir.path + "/watchdog";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    {
        ha::Watchdog none(fifo, 3);
        CHECK(code_of([&] { none.arm(); }) == Errc::unavailable);  // no reader: nothing would ever fire
        CHECK_FALSE(none.armed());
    }
    int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
    REQUIRE(reader >= 0);
    {
        ha::Watchdog wd(fifo, 3);
        wd.arm();
        CHECK(wd.armed());
        CHECK_THAT(wd.what(), Catch::Contains("emulated") && Catch::Contains("3 s"));
        CHECK(wd.pet());
        wd.disarm();
        CHECK_FALSE(wd.armed());
        CHECK_FALSE(wd.pet());
    }
    char buf[16] = {};
    auto n = ::read(reader, buf, sizeof buf);
    ::close(reader);
    CHECK(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0) == "11V");  // arm's pet, the pet, the magic close
    std::ofstream(dir.path + "/plain") << "x";
    ha::Watchdog plain(dir.path + "/plain", 3);
    CHECK(code_of([&] { plain.arm(); }) == Errc::unavailable);
    ha::Watchdog missing(dir.path + "/nothing", 3);
    CHECK(code_of([&] { missing.arm(); }) == Errc::unavailable);
}
