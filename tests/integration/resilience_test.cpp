// hvd and libvirtd restarts, concurrent requests, an unreachable daemon.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

TEST_CASE("hvd restart leaves running VMs running", "[integration][resilience]") {
    Hvd hvd;
    auto name = hvd.vm("hvdrestart");
    REQUIRE(hvd.ctl({"vm", "create", name, "--memory", "64M"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "start", name}).exit_code == 0);
    json before = hvd.show(name);
    REQUIRE(before["state"] == "running");
    // Part of the test, not synchronisation: 3 s pass (2 here, 1 while hvd is down) so the
    // uptime after the restart must have grown by at least 3.
    std::this_thread::sleep_for(2s);

    int st = hvd.stop();
    CHECK(st == 0);  // SIGTERM is a clean stop
    CHECK_FALSE(std::filesystem::exists(hvd.socket));
    CHECK(domstate(name) == "running");  // hvd going away does not touch VMs
    std::this_thread::sleep_for(1s);  // part of the test: time passes while hvd is down

    hvd.start();
    json after = hvd.show(name);
    INFO("before: " << before.dump() << "\nafter: " << after.dump());
    CHECK(after["state"] == "running");
    CHECK(after["uuid"] == before["uuid"]);
    CHECK(after["cpus"] == before["cpus"]);
    CHECK(after["memory"] == before["memory"]);
    CHECK(after["managed"] == true);
    // Uptime continues across the restart instead of starting again at zero.
    CHECK(after["started_at"] == before["started_at"]);
    CHECK(after["uptime"].get<std::int64_t>() >= before["uptime"].get<std::int64_t>() + 3);
    // And the restarted hvd can act on it.
    auto r = hvd.ctl({"vm", "stop", name});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(domstate(name) == "shut off");
    CHECK(hvd.ctl({"vm", "delete", name}).exit_code == 0);
}

TEST_CASE("libvirtd restart: 503 while it is down, works again after, events still arrive",
          "[integration][resilience][libvirtd]") {
    Hvd hvd;
    auto name = hvd.vm("lvrestart");
    auto other = hvd.vm("lvrestart2");
    REQUIRE(hvd.ctl({"vm", "create", name, "--memory", "64M"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "create", other, "--memory", "64M"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "start", name}).exit_code == 0);

    LibvirtdRestartGuard guard;
    guard.stop_libvirtd();

    // hvd notices (keepalive / close callback) and answers 503 -> exit 6 for VM calls.
    Result last;
    bool saw_unavailable = wait_until(
        [&] {
            last = hvd.ctl({"vm", "start", other}, 30s);
            return last.exit_code == 6;
        },
        20s, 250ms);
    INFO("hvctl vm start while libvirtd is down: " << last.describe());
    CHECK(saw_unavailable);
    auto list = hvd.ctl({"vm", "list"}, 30s);
    INFO("hvctl vm list while libvirtd is down: " << list.describe());
    CHECK(list.exit_code == 6);
    auto h = hvd.http("GET", "/v1/vms");
    CHECK(h.status == 503);
    CHECK(h.json()["error"]["code"] == "unavailable");
    auto host = hvd.http("GET", "/v1/host");
    CHECK(host.status == 200);  // the host view itself still answers...
    CHECK(host.json()["libvirt_connected"] == false);  // ...and says why
    CHECK(hvd.running());

    guard.start_libvirtd();
    bool back = wait_until([&] { return hvd.ctl({"vm", "list"}, 30s).exit_code == 0; }, 30s, 250ms);
    REQUIRE(back);
    CHECK(hvd.show(name)["state"] == "running");  // the VM kept running all along
    CHECK(hvd.http("GET", "/v1/host").json()["libvirt_connected"] == true);

    // libvirt events reach hvd's stream again: change state behind hvd's back with virsh.
    Child events(hvd.ctl_argv({"events", "-o", "json"}));
    REQUIRE(hvd.await_event_stream(events));
    REQUIRE(virsh({"suspend", name}).exit_code == 0);
    auto line = events.wait_line(
        [&](const std::string& l) {
            auto j = json::parse(l, nullptr, false);
            return j.is_object() && j.value("type", "") == "vm.lifecycle" && j.value("target", "") == "vm/" + name &&
                   j["data"].value("state", "") == "paused";
        },
        15s);
    INFO("event stream so far:\n" << events.out());
    CHECK(line.has_value());
    // The state cache follows the event.
    CHECK(wait_until([&] { return hvd.show(name)["state"] == "paused"; }, 5s));

    REQUIRE(hvd.ctl({"vm", "stop", name}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "delete", name}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "delete", other}).exit_code == 0);
}

TEST_CASE("two concurrent starts: exactly one wins, the other gets exit 5", "[integration][resilience][concurrency]") {
    Hvd hvd;
    auto name = hvd.vm("race");
    REQUIRE(hvd.ctl({"vm", "create", name, "--memory", "64M"}).exit_code == 0);
    for (int round = 0; round < 2; ++round) {
        INFO("round " << round);
        auto a = std::make_unique<Child>(hvd.ctl_argv({"vm", "start", name}));
        auto b = std::make_unique<Child>(hvd.ctl_argv({"vm", "start", name}));
        Result ra = a->finish(60s);
        Result rb = b->finish(60s);
        INFO("first: " << ra.describe() << "\nsecond: " << rb.describe());
        std::vector<int> codes{ra.exit_code, rb.exit_code};
        std::sort(codes.begin(), codes.end());
        CHECK(codes == std::vector<int>{0, 5});
        CHECK(hvd.show(name)["state"] == "running");
        CHECK(domstate(name) == "running");
        REQUIRE(hvd.ctl({"vm", "stop", name}).exit_code == 0);
    }
    // Concurrent creates of one name: one VM, one set of disks.
    auto dup = hvd.vm("racecreate");
    auto a = std::make_unique<Child>(hvd.ctl_argv({"vm", "create", dup, "--memory", "64M", "--disk", "size=16M"}));
    auto b = std::make_unique<Child>(hvd.ctl_argv({"vm", "create", dup, "--memory", "64M", "--disk", "size=16M"}));
    Result ra = a->finish(60s);
    Result rb = b->finish(60s);
    INFO("first: " << ra.describe() << "\nsecond: " << rb.describe());
    std::vector<int> codes{ra.exit_code, rb.exit_code};
    std::sort(codes.begin(), codes.end());
    CHECK(codes == std::vector<int>{0, 5});
    CHECK(domain_exists(dup));
    int images = 0;
    for (const auto& f : list_dir(hvd.image_dir))
        if (f.find(dup) != std::string::npos) ++images;
    CHECK(images == 1);
    CHECK(hvd.ctl({"vm", "delete", dup, "--purge"}).exit_code == 0);
    CHECK(hvd.ctl({"vm", "delete", name}).exit_code == 0);
}

TEST_CASE("hvctl against a daemon that is not there: exit 10 with a clear message", "[integration][resilience]") {
    skip_unless_runnable();
    std::string hvctl = env("HVCTL_BIN");
    char tmpl[] = "/tmp/hvit-nohvd-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    std::string dir = tmpl;

    SECTION("socket path does not exist") {
        std::string sock = dir + "/missing/hvd.sock";
        auto r = run({hvctl, "--socket", sock, "vm", "list"});
        INFO(r.describe());
        CHECK(r.exit_code == 10);
        CHECK_THAT(r.err, Catch::Contains(sock));
        CHECK(r.out.empty());
    }
    SECTION("stale socket file, nobody listening") {
        std::string sock = dir + "/stale.sock";
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::snprintf(a.sun_path, sizeof a.sun_path, "%s", sock.c_str());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        ::close(fd);  // the file stays, nobody accepts
        auto r = run({hvctl, "--socket", sock, "vm", "show", "x"});
        INFO(r.describe());
        CHECK(r.exit_code == 10);
        CHECK_THAT(r.err, Catch::Contains(sock));
    }
    SECTION("HV_SOCKET names the default socket") {
        std::string sock = dir + "/env.sock";
        auto r = run({"env", "HV_SOCKET=" + sock, hvctl, "vm", "list"});
        INFO(r.describe());
        CHECK(r.exit_code == 10);
        CHECK_THAT(r.err, Catch::Contains(sock));
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}
