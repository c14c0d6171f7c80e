// Time service (chrony): wire model validation, `chronyc -c` parsing against captured output
// (tests/data/chrony/), hv's sources file, and ChronyManager with a fake chronyc.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "chrony_csv.hpp"
#include "chrony_manager.hpp"
#include "hv/api/time.hpp"
#include "hv/error.hpp"

using namespace hv;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {
std::string fixture(const std::string& name) {
    std::ifstream in(std::string(HV_TEST_DATA_DIR) + "/chrony/" + name);
    REQUIRE(in);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}
std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}
Errc code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.code();
    }
    FAIL("no hv::Error thrown");
    return Errc::internal;
}
api::TimeSettings servers(std::vector<std::string> s) {
    api::TimeSettings t;
    t.servers = std::move(s);
    return t;
}

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/hv-time-unit-XXXXXX";
        REQUIRE(::mkdtemp(tmpl));
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// A fake chronyc/systemctl: records argv, answers from a table by the last argument.
struct FakeRunner {
    std::vector<std::vector<std::string>> calls;
    std::map<std::string, util::CommandResult> answers;  // key: last argv element
    time::Runner runner() {
        return [this](const std::vector<std::string>& argv, std::chrono::milliseconds) {
            calls.push_back(argv);
            auto it = answers.find(argv.back());
            if (it != answers.end()) return it->second;
            util::CommandResult r;
            r.exit_status = 0;
            return r;
        };
    }
};
}  // namespace

TEST_CASE("time: host names and addresses are checked strictly", "[time]") {
    for (auto ok : {"ntp1.example.org", "a", "0.debian.pool.ntp.org", "x-1.y2", "127.0.0.1", "10.0.0.255"})
        CHECK(api::valid_hostname(ok));
    // The long name outlives the loop (a temporary's c_str() in the list dangled: ASan).
    const std::string label64(64, 'a');
    for (auto bad : {"", "-a.example", "a-.example", "a..b", "a.b.", "a_b.example", "ex ample", "300.1.1.1",
                     "1.2.3", "ntp.example.org;reboot", "a/b", label64.c_str()})
        CHECK_FALSE(api::valid_hostname(bad));

    auto e = api::parse_ntp_endpoint("127.0.0.1:11123", "servers[0]");
    CHECK(e.host == "127.0.0.1");
    CHECK(e.port == 11123);
    e = api::parse_ntp_endpoint("[::1]:123", "servers[0]");
    CHECK(e.host == "::1");
    CHECK(e.port == 123);
    e = api::parse_ntp_endpoint("2001:db8::1", "servers[0]");
    CHECK(e.host == "2001:db8::1");
    CHECK(e.port == 0);
    for (auto bad : {"host:0", "host:65536", "host:", "host:12a", "[::1", "[nothost]:1", "2001:db8::zz", "bad_name",
                     "[::1]x"})
        CHECK(code_of([&] { api::parse_ntp_endpoint(bad, "servers[0]"); }) == Errc::invalid_input);
}

TEST_CASE("time: settings validation names the entry", "[time]") {
    api::validate(servers({"ntp1.example.org", "ntp2.example.org:1123"}));
    CHECK(code_of([] { api::validate(servers({})); }) == Errc::invalid_input);
    CHECK(code_of([] { api::validate(api::TimeSettings{}); }) == Errc::invalid_input);
    // Duplicates, across servers and pools, case-insensitive, with the default port spelled out.
    CHECK(code_of([] { api::validate(servers({"a.example", "A.example"})); }) == Errc::invalid_input);
    CHECK(code_of([] { api::validate(servers({"a.example", "a.example:123"})); }) == Errc::invalid_input);
    api::validate(servers({"a.example", "a.example:1123"}));
    auto t = servers({"a.example"});
    t.pools = std::vector<std::string>{"a.example"};
    CHECK(code_of([&] { api::validate(t); }) == Errc::invalid_input);
    std::vector<std::string> many;
    for (int i = 0; i < 33; ++i) many.push_back("n" + std::to_string(i) + ".example");
    CHECK(code_of([&] { api::validate(servers(many)); }) == Errc::invalid_input);
    try {
        api::validate(servers({"ok.example", "bad..example"}));
        FAIL("accepted");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("servers[1]") != std::string::npos);
    }
    // Only --enable: valid, sources unchanged.
    api::TimeSettings en;
    en.enable = true;
    api::validate(en);
}

TEST_CASE("time: JSON mapping is strict and round-trips", "[time]") {
    auto s = api::time_settings_from_json(json{{"servers", {"a.example"}}, {"iburst", true}});
    REQUIRE(s.servers);
    CHECK(s.servers->at(0) == "a.example");
    CHECK_FALSE(s.pools);
    CHECK(s.iburst);
    CHECK(code_of([] { api::time_settings_from_json(json{{"server", {"a"}}}); }) == Errc::invalid_input);
    CHECK(code_of([] { api::time_settings_from_json(json{{"servers", "a"}}); }) == Errc::invalid_input);
    CHECK(code_of([] { api::time_settings_from_json(json{{"iburst", "yes"}}); }) == Errc::invalid_input);

    api::TimeStatus st;
    st.chronyd_running = st.synchronised = true;
    st.source = "127.0.0.1";
    st.stratum = 9;
    st.offset_seconds = 1.5e-6;
    st.last_update = 1795783262;
    st.last_update_ago = 3;
    st.leap_status = "normal";
    st.servers.push_back({"127.0.0.1", "server", 255, "selected", true, 8, -6.39e-7});
    st.timezone = "Etc/UTC";
    st.enabled_at_boot = "unknown: no systemd";
    st.sources_file = "/x/hv.sources";
    auto back = api::time_status_from_json(json(st));
    CHECK(json(back) == json(st));
    CHECK(code_of([] { api::time_status_from_json(json{{"bogus", 1}}); }) == Errc::invalid_input);
}

TEST_CASE("time: chronyc -c tracking (captured)", "[time]") {
    auto t = time::parse_tracking(fixture("tracking-synced.csv"));
    CHECK(t.ref_id == "7F000001");
    CHECK(t.name == "127.0.0.1");
    CHECK(t.stratum == 9);
    CHECK(t.ref_time == Approx(1795783262.675));
    CHECK(t.system_time == Approx(-0.000000932));
    CHECK(t.leap == "Normal");
    auto u = time::parse_tracking(fixture("tracking-unsynced.csv"));
    CHECK(u.ref_id == "00000000");
    CHECK(u.name.empty());
    CHECK(u.leap == "Not synchronised");
    CHECK(code_of([] { time::parse_tracking("506 Cannot talk to daemon\n"); }) == Errc::internal);
    CHECK(code_of([] { time::parse_tracking(""); }) == Errc::internal);
}

TEST_CASE("time: chronyc -c sources (captured)", "[time]") {
    auto s = time::parse_sources(fixture("sources.csv"));
    REQUIRE(s.size() == 3);
    CHECK(s[0].mode == '^');
    CHECK(s[0].state == '*');
    CHECK(s[0].name == "127.0.0.1");
    CHECK(s[0].stratum == 8);
    CHECK(s[0].reach == 255);  // "377" is octal
    CHECK(s[0].offset == Approx(0.000000639));
    CHECK(s[1].state == '?');
    CHECK(s[1].reach == 0);
    CHECK(s[2].name == "ntp.example.org");
    CHECK(code_of([] { time::parse_sources("^,*,x,8\n"); }) == Errc::internal);
    CHECK(code_of([] { time::parse_sources("^,*,x,8,-2,3z7,0,0,0,0\n"); }) == Errc::internal);
}

TEST_CASE("time: status merges tracking, live sources and hv's file", "[time]") {
    auto configured = time::parse_sources_file(
        "# header\nserver 127.0.0.1 port 11123 iburst\npool ntp.example.org\nserver never.example iburst\n");
    REQUIRE(configured.size() == 3);
    CHECK(configured[0].port == 11123);
    CHECK(configured[0].iburst);
    auto st = time::merge_status(true, time::parse_tracking(fixture("tracking-synced.csv")),
                                 time::parse_sources(fixture("sources.csv")), configured, 1795783272);
    CHECK(st.synchronised);
    CHECK(st.source == "127.0.0.1");
    CHECK(st.stratum == 9);
    CHECK(st.offset_seconds == Approx(0.000000932));  // chrony's correction is negative: clock ahead
    CHECK(st.last_update == 1795783262);
    CHECK(st.last_update_ago == 10);
    CHECK(st.leap_status == "normal");
    REQUIRE(st.servers.size() == 4);
    CHECK(st.servers[0].selected);
    CHECK(st.servers[0].state == "selected");
    CHECK(st.servers[0].reach == 255);
    CHECK(st.servers[1].state == "unreachable");
    CHECK(st.servers[2].mode == "pool");
    CHECK(st.servers[3].name == "never.example");
    CHECK(st.servers[3].state == "configured");

    auto un = time::merge_status(true, time::parse_tracking(fixture("tracking-unsynced.csv")), {}, {}, 100);
    CHECK_FALSE(un.synchronised);
    CHECK(un.source.empty());
    CHECK(un.leap_status == "not_synchronised");
    CHECK(un.last_update_ago == -1);
}

TEST_CASE("time: hv's sources file", "[time]") {
    api::TimeSettings s;
    s.servers = std::vector<std::string>{"127.0.0.1:11123", "ntp1.example.org", "[::1]:124"};
    s.pools = std::vector<std::string>{"2.debian.pool.ntp.org"};
    s.iburst = true;
    auto text = time::render_sources_file(time::entries_of(s), "");
    CHECK(text.find("\nserver 127.0.0.1 port 11123 iburst\n") != std::string::npos);
    CHECK(text.find("\nserver ntp1.example.org iburst\n") != std::string::npos);
    CHECK(text.find("\nserver ::1 port 124 iburst\n") != std::string::npos);
    CHECK(text.find("\npool 2.debian.pool.ntp.org iburst\n") != std::string::npos);
    s.iburst = false;
    CHECK(time::render_sources_file(time::entries_of(s), "minpoll -4 maxpoll -2")
              .find("\nserver 127.0.0.1 port 11123 minpoll -4 maxpoll -2\n") != std::string::npos);
    auto back = time::parse_sources_file(text);
    REQUIRE(back.size() == 4);
    CHECK(back[3].mode == "pool");
}

TEST_CASE("time: chronyc argv and option checks", "[time]") {
    time::ChronyOptions o;
    CHECK(time::ChronyManager(o).chronyc_argv({"tracking"}) == std::vector<std::string>{"chronyc", "-c", "-N", "tracking"});
    o.command_address = "/run/x/c.sock";
    CHECK(time::ChronyManager(o).chronyc_argv({"tracking"}) ==
          std::vector<std::string>{"chronyc", "-h", "/run/x/c.sock", "-c", "-N", "tracking"});
    o.command_address = "127.0.0.1:11224";
    CHECK(time::ChronyManager(o).chronyc_argv({"sources"}) ==
          std::vector<std::string>{"chronyc", "-h", "127.0.0.1", "-p", "11224", "-c", "-N", "sources"});
    time::validate_options(o);
    o.command_address = "localhost";
    CHECK(code_of([&] { time::validate_options(o); }) == Errc::invalid_input);
    o.command_address = "";
    o.source_options = "minpoll 4; rm";
    CHECK(code_of([&] { time::validate_options(o); }) == Errc::invalid_input);
    o.source_options = "";
    o.sources_file = "relative.sources";
    CHECK(code_of([&] { time::validate_options(o); }) == Errc::invalid_input);
}

TEST_CASE("time: apply writes, reloads, and restores the old file when the reload fails", "[time]") {
    TempDir d;
    time::ChronyOptions o;
    o.sources_file = d.path + "/hv.sources";
    o.systemd_run_dir = d.path + "/no-systemd";
    o.etc_dir = d.path;
    fs::create_symlink("/usr/share/zoneinfo/Europe/Berlin", d.path + "/localtime");
    const std::string old = "server old.example iburst\n";
    std::ofstream(o.sources_file) << old;

    FakeRunner fake;
    fake.answers["tracking"] = {0, fixture("tracking-synced.csv"), "", false};
    fake.answers["sources"] = {0, fixture("sources.csv"), "", false};
    time::ChronyManager m(o, fake.runner());

    auto st = m.apply(servers({"127.0.0.1:11123"}));
    CHECK(slurp(o.sources_file).find("\nserver 127.0.0.1 port 11123\n") != std::string::npos);
    CHECK_FALSE(fs::exists(d.path + "/.hv.sources.tmp"));
    REQUIRE(fake.calls.size() >= 1);
    CHECK(fake.calls[0] == std::vector<std::string>{"chronyc", "-c", "-N", "reload", "sources"});
    CHECK(st.synchronised);
    CHECK(st.timezone == "Europe/Berlin");
    CHECK(st.enabled_at_boot == "unknown: no systemd");

    // Invalid input: nothing runs, the file stays byte for byte.
    auto before = slurp(o.sources_file);
    fake.calls.clear();
    CHECK(code_of([&] { m.apply(servers({"bad..name"})); }) == Errc::invalid_input);
    CHECK(code_of([&] { m.apply(servers({})); }) == Errc::invalid_input);
    CHECK(fake.calls.empty());
    CHECK(slurp(o.sources_file) == before);

    // --enable without systemd: 501 before anything is written.
    auto en = servers({"new.example"});
    en.enable = true;
    CHECK(code_of([&] { m.apply(en); }) == Errc::unsupported);
    CHECK(slurp(o.sources_file) == before);

    // chronyd refuses the reload: the previous file is back, reloaded again, and the call fails.
    fake.answers["sources"] = {1, "", "506 Cannot talk to daemon\n", false};
    fake.calls.clear();
    CHECK(code_of([&] { m.apply(servers({"new.example"})); }) == Errc::unavailable);
    CHECK(slurp(o.sources_file) == before);
    CHECK(fake.calls.size() == 2);

    // No file before: a failed reload removes the new one.
    fs::remove(o.sources_file);
    CHECK(code_of([&] { m.apply(servers({"new.example"})); }) == Errc::unavailable);
    CHECK_FALSE(fs::exists(o.sources_file));

    // A reload that fails without a word (exit status only) is a failure too (found by the
    // request fuzzer: the file stayed and PUT answered 200).
    fake.answers["sources"] = {1, "", "", false};
    CHECK(code_of([&] { m.apply(servers({"new.example"})); }) == Errc::unavailable);
    CHECK_FALSE(fs::exists(o.sources_file));
}

TEST_CASE("time: status when chronyd is down lists hv's configured sources", "[time]") {
    TempDir d;
    time::ChronyOptions o;
    o.sources_file = d.path + "/hv.sources";
    o.systemd_run_dir = d.path;  // exists: systemd present
    o.etc_dir = d.path;
    std::ofstream(d.path + "/timezone") << "Etc/UTC\n";
    std::ofstream(o.sources_file) << "server a.example iburst\npool p.example\n";
    FakeRunner fake;
    fake.answers["tracking"] = {1, "", "506 Cannot talk to daemon\n", false};
    fake.answers["chrony"] = {1, "disabled\n", "", false};  // systemctl is-enabled chrony
    time::ChronyManager m(o, fake.runner());
    auto st = m.status();
    CHECK_FALSE(st.chronyd_running);
    CHECK_FALSE(st.synchronised);
    CHECK(st.timezone == "Etc/UTC");
    CHECK(st.enabled_at_boot == "disabled");
    REQUIRE(st.servers.size() == 2);
    CHECK(st.servers[1].mode == "pool");
    CHECK(st.servers[1].state == "configured");
}
