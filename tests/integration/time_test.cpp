// Time service: a real chronyd NTP server on 127.0.0.1 (local stratum 8) and a second chronyd
// client whose sources hvd writes (hv's sources file in the client's `sourcedir`). Neither
// touches the clock (-x). See TESTBED "Time". Both are stopped by PID at the end.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

void skip(const std::string& why) {
    std::cout << "SKIPPED: " << why << std::endl;
    std::cerr << "SKIPPED: " << why << std::endl;
    std::_Exit(77);
}

bool have(const char* path) { return ::access(path, X_OK) == 0; }

// The two chronyd of one test, in a 0700 temp dir (chronyd requires that for its socket dir).
struct Chronyds {
    std::string dir;
    std::string sources_dir, sources_file, client_sock;
    std::optional<Child> server, client;

    Chronyds() {
        if (::geteuid() != 0) skip("the chrony test needs root (chronyd -u root)");
        if (!have("/usr/sbin/chronyd") || !have("/usr/bin/chronyc"))
            skip("chronyd/chronyc are not installed (scripts/install-deps.sh installs chrony)");
        char tmpl[] = "/tmp/hvtime-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        ::chmod(dir.c_str(), 0700);
        sources_dir = dir + "/sources";
        sources_file = sources_dir + "/hv.sources";
        client_sock = dir + "/client.sock";
        fs::create_directory(sources_dir);
        std::ofstream(dir + "/server.conf") << "port 11123\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\n"
                                               "cmdport 0\nbindcmdaddress "
                                            << dir << "/server.sock\npidfile " << dir << "/server.pid\ndriftfile "
                                            << dir << "/server.drift\n";
        std::ofstream(dir + "/client.conf") << "port 0\ncmdport 0\nbindcmdaddress " << client_sock << "\npidfile "
                                            << dir << "/client.pid\ndriftfile " << dir << "/client.drift\nsourcedir "
                                            << sources_dir << "\n";
        // -d: stay in the foreground, so the PID we hold is chronyd's own.
        server.emplace(std::vector<std::string>{"chronyd", "-d", "-x", "-u", "root", "-L", "0", "-f",
                                                dir + "/server.conf"},
                       dir + "/server.log");
        client.emplace(std::vector<std::string>{"chronyd", "-d", "-x", "-u", "root", "-L", "0", "-f",
                                                dir + "/client.conf"},
                       dir + "/client.log");
        bool up = wait_until(
            [&] {
                return run({"chronyc", "-h", client_sock, "-c", "tracking"}, 5s).exit_code == 0 &&
                       run({"chronyc", "-h", dir + "/server.sock", "-c", "tracking"}, 5s).exit_code == 0;
            },
            10s, 100ms);
        if (!up) {
            std::string logs = read_file(dir + "/server.log") + read_file(dir + "/client.log");
            stop();
            skip("chronyd cannot run on this machine: " + logs);
        }
    }
    void stop() {
        if (client) client->terminate(5s);
        if (server) server->terminate(5s);
        client.reset();
        server.reset();
    }
    ~Chronyds() {
        stop();
        std::error_code ec;
        if (!std::getenv("HV_TEST_KEEP")) fs::remove_all(dir, ec);
    }
};

std::string time_config(const Chronyds& c) {
    // minpoll/maxpoll: poll the loopback server every 1/16-1/4 s so the test syncs in < 1 s.
    return "[time]\nchronyc = \"chronyc\"\ncommand_address = \"" + c.client_sock + "\"\nsources_file = \"" +
           c.sources_file + "\"\nsource_options = \"minpoll -4 maxpoll -2\"\n";
}

}  // namespace

TEST_CASE("time: hvctl time set points chronyd at a server and time show reports it synchronised",
          "[integration][time]") {
    Chronyds chrony;
    const std::string old = "# before the test\nserver 127.0.0.2 port 11999\n";
    std::ofstream(chrony.sources_file) << old;
    Hvd hvd(/*wait_for_libvirt=*/false, time_config(chrony));  // time needs no libvirt

    auto r = hvd.ctl({"time", "set", "--server", "127.0.0.1:11123", "--iburst"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto text = read_file(chrony.sources_file);
    CHECK(text.find("\nserver 127.0.0.1 port 11123 iburst minpoll -4 maxpoll -2\n") != std::string::npos);
    CHECK(text.find("127.0.0.2") == std::string::npos);

    json st;
    bool synced = wait_until(
        [&] {
            st = hvd.ctl_json({"time", "show"});
            return st.value("synchronised", false) && st.value("source", "") == "127.0.0.1";
        },
        10s, 200ms);
    INFO(st.dump(2));
    REQUIRE(synced);
    CHECK(st["chronyd_running"] == true);
    CHECK(st["stratum"] == 9);
    CHECK(st["leap_status"] == "normal");
    CHECK(st["last_update_ago"].get<int>() >= 0);
    CHECK_FALSE(st["enabled_at_boot"].get<std::string>().empty());
    CHECK(st["sources_file"] == chrony.sources_file);
    REQUIRE(st["servers"].size() == 1);
    CHECK(st["servers"][0]["name"] == "127.0.0.1");
    CHECK(st["servers"][0]["mode"] == "server");
    CHECK(st["servers"][0]["selected"] == true);
    CHECK(st["servers"][0]["reach"].get<int>() > 0);

    // The table view works too.
    r = hvd.ctl({"time", "show"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("yes, to 127.0.0.1") != std::string::npos);
}

TEST_CASE("time: invalid input is rejected (exit 3) and leaves hv's sources file unchanged",
          "[integration][time][input]") {
    Chronyds chrony;
    const std::string old = "# before the test\nserver 127.0.0.1 port 11123 iburst\n";
    std::ofstream(chrony.sources_file) << old;
    Hvd hvd(/*wait_for_libvirt=*/false, time_config(chrony));  // time needs no libvirt

    for (auto args : std::vector<std::vector<std::string>>{
             {"time", "set", "--server", "bad..name"},
             {"time", "set", "--server", "ntp_1.example"},
             {"time", "set", "--server", "300.1.1.1"},
             {"time", "set", "--server", "127.0.0.1:99999"},
             {"time", "set", "--server", "a.example", "--server", "A.example"},
             {"time", "set", "--server", "a.example", "--pool", "a.example"},
             {"time", "set"},
         }) {
        auto r = hvd.ctl(args);
        INFO(r.describe());
        CHECK(r.exit_code == 3);
        CHECK_FALSE(r.err.empty());
        CHECK(read_file(chrony.sources_file) == old);
    }
    auto h = hvd.http("PUT", "/v1/time", R"({"servers": []})");
    CHECK(h.status == 400);
    h = hvd.http("PUT", "/v1/time", R"({"servers": ["a.example"], "bogus": 1})");
    CHECK(h.status == 400);
    CHECK(read_file(chrony.sources_file) == old);

    // Without systemd, --enable says so (501, exit 8) and changes nothing.
    if (!fs::is_directory("/run/systemd/system")) {
        auto r = hvd.ctl({"time", "set", "--server", "a.example", "--enable"});
        INFO(r.describe());
        CHECK(r.exit_code == 8);
        CHECK(r.err.find("no systemd") != std::string::npos);
        CHECK(read_file(chrony.sources_file) == old);
    }

    // chronyd gone: the reload fails (503, exit 6) and the previous file is put back.
    chrony.client->terminate(5s);
    auto r = hvd.ctl({"time", "set", "--server", "a.example"});
    INFO(r.describe());
    CHECK(r.exit_code == 6);
    CHECK(read_file(chrony.sources_file) == old);
    auto st = hvd.ctl_json({"time", "show"});
    CHECK(st["chronyd_running"] == false);
    CHECK(st["synchronised"] == false);
}
