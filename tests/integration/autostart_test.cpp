// Autostart with real TCG VMs and compressed delays: order groups, max_parallel, up delays,
// dependencies across orders, a tcp:PORT gate, a failing VM that blocks nothing, cycles refused,
// stop-all in reverse order with force after the down timeout, and the run at host boot.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {
std::map<std::string, json> by_name(const json& arr) {
    std::map<std::string, json> m;
    for (const auto& v : arr) m[v["name"].get<std::string>()] = v;
    return m;
}

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    ::close(fd);
    return ntohs(sa.sin_port);
}

int listen_on(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 8) != 0) return -1;
    return fd;
}
}  // namespace

TEST_CASE("autostart: ordered start with gates and a failing VM, stop-all in reverse with force",
          "[integration][autostart]") {
    // The tcp:PORT gate connects to this address instead of the VM's (a real socket the test owns).
    ::setenv("HV_AUTOSTART_TCP_ADDRESS", "127.0.0.1", 1);
    Hvd hvd;
    ::unsetenv("HV_AUTOSTART_TCP_ADDRESS");
    std::string guest = env("HV_TEST_GUEST_DIR");
    auto db = hvd.vm("as-db"), bad = hvd.vm("as-bad"), web1 = hvd.vm("as-web1"), web2 = hvd.vm("as-web2"),
         web3 = hvd.vm("as-web3"), app = hvd.vm("as-app"), misc = hvd.vm("as-misc"), g = hvd.vm("as-guest");
    for (const auto& n : {db, web1, web2, web3, app, misc})
        REQUIRE(hvd.ctl({"vm", "create", n, "--memory", "64M"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "create", bad, "--memory", "64M", "--disk", "size=16M"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "create", g, "--memory", "128M", "--kernel", guest + "/vmlinuz", "--initrd",
                     guest + "/initrd.gz", "--cmdline", "console=ttyS0 quiet panic=-1"})
                .exit_code == 0);
    // The failing VM: its disk image disappears behind hv's back.
    std::string img = hvd.show(bad)["disks"][0]["path"];
    REQUIRE(::unlink(img.c_str()) == 0);

    int port = free_port();
    REQUIRE(hvd.ctl({"autostart", "host", "--boot-delay", "0", "--max-parallel", "2", "--retries", "1",
                     "--retry-delay", "1"})
                .exit_code == 0);
    auto set = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"vm", "autostart"});
        auto r = hvd.ctl(args);
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
    };
    set({db, "--enable", "--order", "1", "--up", "2", "--down", "2"});
    set({bad, "--enable", "--order", "1", "--down", "2"});
    set({web1, "--enable", "--order", "2", "--down", "2"});
    set({web2, "--enable", "--order", "2", "--down", "2"});
    set({web3, "--enable", "--order", "2", "--down", "2", "--wait-for", "tcp:" + std::to_string(port),
         "--wait-timeout", "30"});
    set({app, "--enable", "--order", "1", "--after", web1, "--down", "2"});  // order 1, but waits for web1
    set({misc, "--enable", "--down", "2"});                                   // unordered: last
    set({g, "--enable", "--down", "30"});                                     // powers off on ACPI

    // A cycle is refused at configuration time, naming it; nothing changes.
    auto cyc = hvd.ctl({"vm", "autostart", web1, "--after", app});
    INFO(cyc.describe());
    CHECK(cyc.exit_code == 5);
    CHECK(cyc.err.find("cycle") != std::string::npos);
    CHECK((cyc.err.find(web1 + " -> " + app + " -> " + web1) != std::string::npos ||
           cyc.err.find(app + " -> " + web1 + " -> " + app) != std::string::npos));
    CHECK(hvd.ctl_json({"vm", "autostart", web1})["after"].empty());

    auto plan = hvd.ctl_json({"autostart", "plan"});
    CHECK(plan["groups"] == json::array({"order 1", "order 2", "unordered"}));
    auto pv = by_name(plan["vms"]);
    CHECK(pv[web1]["started_at"].get<double>() == Approx(2.0));
    CHECK(pv[app]["group"] == 1);

    // The port opens 3 s into the run: web3 is ready only then.
    int lfd = -1;
    std::thread opener([&] {
        std::this_thread::sleep_for(std::chrono::seconds(3));
        lfd = listen_on(port);
    });
    auto r = hvd.ctl({"autostart", "run", "-o", "json"});
    opener.join();
    INFO(r.describe() << "\n" << hvd.log_tail());
    CHECK(r.exit_code == 11);  // one VM did not start
    auto res = json::parse(r.out);
    auto v = by_name(res["vms"]);
    CHECK(res["failed"] == 1);
    CHECK(v[bad]["state"] == "failed");
    CHECK(v[bad]["attempts"] == 2);
    for (const auto& n : {db, web1, web2, web3, app, misc, g}) {
        INFO(n << ": " << v[n].dump());
        CHECK(v[n]["state"] == "ready");
        CHECK(domstate(n) == "running");
    }
    auto t = [&](const std::string& n, const char* k) { return v[n][k].get<double>(); };
    // Order 2 waits for db's readiness + up 2 s.
    for (const auto& n : {web1, web2, web3}) CHECK(t(n, "started_at") >= t(db, "ready_at") + 1.9);
    // max_parallel 2: web3 (the third of order 2) starts only when one of web1/web2 is ready.
    CHECK(t(web3, "started_at") >= std::min(t(web1, "ready_at"), t(web2, "ready_at")));
    CHECK(t(web3, "ready_at") >= 2.9);  // the port opened at 3 s
    CHECK(t(app, "started_at") >= t(web1, "ready_at"));
    // Unordered VMs start after every ordered group is ready.
    for (const auto& n : {misc, g}) CHECK(t(n, "started_at") >= t(web3, "ready_at"));
    CHECK(res["duration"].get<double>() < 20);
    auto st = hvd.ctl_json({"autostart", "status"});
    CHECK(st["running"] == false);
    CHECK(st["failed"] == 1);
    if (lfd >= 0) ::close(lfd);

    // The guest must have booted (acpid running) before it can answer ACPI.
    std::string serial = hvd.log_dir + "/" + g + ".serial.log";
    REQUIRE(wait_until([&] { return read_file(serial).find("HV-GUEST-BOOTED") != std::string::npos; }, 60s, 250ms));

    auto s = hvd.ctl({"autostart", "stop-all", "-o", "json"}, 90s);
    INFO(s.describe());
    REQUIRE(s.exit_code == 0);
    auto sres = json::parse(s.out);
    auto sv = by_name(sres["vms"]);
    std::set<std::string> forced;
    for (const auto& n : sres["forced"]) forced.insert(n.get<std::string>());
    CHECK(forced == std::set<std::string>{db, web1, web2, web3, app, misc});  // no OS: ignore ACPI
    CHECK(sv[g]["forced"] == false);
    auto at = [&](const std::string& n, const char* k) { return sv[n][k].get<double>(); };
    // Reverse order: unordered first, then app (it depends on web1), order 2, then db last.
    CHECK(at(app, "began_at") >= at(misc, "stopped_at"));
    CHECK(at(web1, "began_at") >= at(app, "stopped_at"));
    for (const auto& n : {web1, web2, web3}) CHECK(at(db, "began_at") >= at(n, "stopped_at"));
    CHECK(at(misc, "stopped_at") - at(misc, "began_at") >= 1.9);  // waited its down timeout
    for (const auto& n : {db, web1, web2, web3, app, misc, g}) CHECK(domstate(n) == "shut off");
}

TEST_CASE("autostart runs when hvd starts after a host boot, not on a mere hvd restart",
          "[integration][autostart]") {
    Hvd hvd;
    auto a = hvd.vm("as-boot");
    REQUIRE(hvd.ctl({"vm", "create", a, "--memory", "64M"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "autostart", a, "--enable"}).exit_code == 0);
    REQUIRE(hvd.ctl({"autostart", "host", "--boot-delay", "1"}).exit_code == 0);
    // hvd recorded this boot at its first start.
    std::string boot_file = hvd.state_dir + "/boot_id";
    REQUIRE(file_exists(boot_file));

    // A restart within the same boot starts nothing.
    hvd.stop();
    hvd.start();
    std::this_thread::sleep_for(2s);
    CHECK(domstate(a) == "shut off");

    // Pretend the host rebooted since: the saved boot id differs.
    hvd.stop();
    std::ofstream(boot_file) << "00000000-0000-0000-0000-000000000000\n";
    hvd.start();
    CHECK(wait_until([&] { return domstate(a) == "running"; }, 20s));
    CHECK(wait_until([&] { return hvd.ctl_json({"autostart", "status"})["running"] == false; }, 10s));
    auto st = hvd.ctl_json({"autostart", "status"});
    CHECK(by_name(st["vms"])[a]["state"] == "ready");
    CHECK(read_file(boot_file).find("00000000-") == std::string::npos);
}
