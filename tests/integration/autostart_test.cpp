// Autostart with real TCG VMs and compressed delays: order groups, max_parallel, up delays,
// dependencies across orders, a tcp:PORT gate, a failing VM that blocks nothing, cycles refused,
// stop-all in reverse order with force after the down timeout, and the run at host boot.
// Containers (busybox, LXC) next to VMs: order groups across kinds, the tcp:PORT gate inside the
// container's network namespace, stop-all through the container's init, guest-agent refused,
// and VM autostart with the LXC connection down.
// With the test guest (scripts/build-test-guest.sh: qemu-ga, DHCP on eth0, a listener on port
// 22): the guest-agent gate against a real agent, `autostart status` and the `autostart` events
// while a run is in progress, and the tcp:22 gate on the address the VM got from libvirt's
// "default" network (hvd in the private libvirtd's network namespace, where that network is).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
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

// The `autostart` events about vm/NAME (ct/NAME with kind "ct") in an `hvctl events -o json`
// transcript, in order.
std::vector<json> autostart_events(const std::string& transcript, const std::string& name,
                                   const std::string& kind = "vm") {
    std::vector<json> out;
    std::size_t pos = 0;
    for (auto nl = transcript.find('\n'); nl != std::string::npos; pos = nl + 1, nl = transcript.find('\n', pos)) {
        auto j = json::parse(transcript.substr(pos, nl - pos), nullptr, false);
        if (j.is_object() && j.value("type", "") == "autostart" && j.value("target", "") == kind + "/" + name)
            out.push_back(j["data"]);
    }
    return out;
}

// The states in those events, e.g. {"starting", "waiting", "ready"}.
std::vector<std::string> states_of(const std::vector<json>& evs) {
    std::vector<std::string> out;
    for (const auto& e : evs) out.push_back(e.value("state", ""));
    return out;
}

// True when `want` occurs in `have` in this order (other entries may come in between).
bool in_order(const std::vector<std::string>& have, const std::vector<std::string>& want) {
    std::size_t k = 0;
    for (const auto& h : have)
        if (k < want.size() && h == want[k]) ++k;
    return k == want.size();
}

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
}

// Stops and deletes the containers a test made, through hvd (declared after the Hvd: runs first).
struct CtGone {
    const Hvd& hvd;
    std::vector<std::string> names;
    ~CtGone() {
        for (const auto& n : names) {
            hvd.ctl({"ct", "stop", n});
            hvd.ctl({"ct", "delete", n});
        }
    }
};

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

    // The port opens 3 s into the run: web3 is ready only then (the delay is part of the test).
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
    CHECK(res["duration"].get<double>() > 0);  // speed is bench/autostart's job, not a test's
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
    // hvd decides at start (AutostartService::at_daemon_start) and says so in its log.
    bool decided = wait_until(
        [&] { return read_file(hvd.log_file).find("same host boot as the last hvd start; not starting guests") != std::string::npos; },
        20s, 100ms);
    INFO(hvd.log_tail());
    REQUIRE(decided);
    CHECK(domstate(a) == "shut off");

    // Pretend the host rebooted since: the saved boot id differs.
    hvd.stop();
    std::ofstream(boot_file) << "00000000-0000-0000-0000-000000000000\n";
    hvd.start();
    // What hv-guests.service runs at boot: it returns once hvd's boot run is finished.
    auto waited = hvd.ctl({"autostart", "status", "--wait", "-o", "json"}, 60s);
    REQUIRE(waited.exit_code == 0);
    auto st = nlohmann::json::parse(waited.out);
    CHECK(st["running"] == false);
    CHECK(st["busy"] == false);
    CHECK(by_name(st["vms"])[a]["state"] == "ready");
    CHECK(domstate(a) == "running");
    CHECK(read_file(boot_file).find("00000000-") == std::string::npos);
}

TEST_CASE("autostart: guest-agent gate on the booted test guest, status and events during the run",
          "[integration][autostart][guest]") {
    Hvd hvd;
    std::string guest = env("HV_TEST_GUEST_DIR");
    auto ga = hvd.vm("as-agent"), noos = hvd.vm("as-noagent"), later = hvd.vm("as-later");
    // The event stream follows everything from before the run; a task event of a create shows
    // that it is subscribed.
    Child events(hvd.ctl_argv({"events", "-o", "json"}));
    REQUIRE(hvd.ctl({"vm", "create", ga, "--memory", "128M", "--kernel", guest + "/vmlinuz", "--initrd",
                     guest + "/initrd.gz", "--cmdline", "console=ttyS0 quiet panic=-1"})
                .exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "create", noos, "--memory", "64M"}).exit_code == 0);  // no OS: no agent ever
    REQUIRE(hvd.ctl({"vm", "create", later, "--memory", "64M"}).exit_code == 0);
    REQUIRE(events.wait_line(
                [](const std::string& l) {
                    auto j = json::parse(l, nullptr, false);
                    return j.is_object() && j.value("type", "") == "task";
                },
                60s)
                .has_value());

    REQUIRE(hvd.ctl({"autostart", "host", "--boot-delay", "0", "--max-parallel", "2", "--retries", "0"}).exit_code == 0);
    auto set = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"vm", "autostart"});
        auto r = hvd.ctl(args);
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
    };
    set({ga, "--enable", "--order", "1", "--wait-for", "guest-agent", "--wait-timeout", "180", "--down", "30"});
    set({noos, "--enable", "--order", "1", "--wait-for", "guest-agent", "--wait-timeout", "8", "--down", "2"});
    set({later, "--enable", "--order", "2", "--down", "2"});

    Child run(hvd.ctl_argv({"autostart", "run", "-o", "json"}));

    // While the run is in progress: group "order 1", the guest waiting on its agent, order 2 not
    // started yet. The guest needs seconds to boot, so both views catch it waiting.
    json st;
    std::string table;
    auto line_of = [&](const std::string& name) {
        auto p = table.find(name);
        return p == std::string::npos ? std::string() : table.substr(p, table.find('\n', p) - p);
    };
    bool caught = wait_until(
        [&] {
            table = hvd.ctl({"autostart", "status"}).out;
            st = hvd.ctl_json({"autostart", "status"});
            if (st.value("running", false) != true) return false;
            auto v = by_name(st["vms"]);
            bool table_ok = table.find("running; group: order 1") != std::string::npos &&
                            line_of(ga).find("waiting: guest-agent") != std::string::npos;
            return table_ok && v[ga].value("state", "") == "waiting" && v[ga].value("waiting_on", "") == "guest-agent";
        },
        150s, 300ms);
    INFO("status: " << st.dump(2) << "\ntable:\n" << table << "\nhvd log:\n" << hvd.log_tail());
    REQUIRE(caught);
    {
        auto v = by_name(st["vms"]);
        CHECK(st["group"] == "order 1");
        CHECK(st["busy"] == true);
        CHECK(st["groups"] == json::array({"order 1", "order 2"}));
        CHECK(v[ga]["wait_for"] == "guest-agent");
        CHECK(v[ga]["attempts"] == 1);
        CHECK(v[later]["state"] == "pending");
        CHECK(v[later]["started_at"].get<double>() < 0);
        // The table names the guest on the same line as what it waits for.
        CHECK(line_of(ga).find("waiting: guest-agent") != std::string::npos);
    }

    auto r = run.finish(240s);
    INFO(r.describe() << "\n" << hvd.log_tail());
    CHECK(r.exit_code == 11);  // one VM not ready
    auto res = json::parse(r.out, nullptr, false);
    REQUIRE(res.is_object());
    auto v = by_name(res["vms"]);
    CHECK(res["failed"] == 1);
    // The guest became ready through its agent: it waited for guest-agent, after booting.
    CHECK(v[ga]["state"] == "ready");
    CHECK(v[ga]["wait_for"] == "guest-agent");
    CHECK(v[ga]["error"] == "");
    CHECK(v[ga]["ready_at"].get<double>() > v[ga]["started_at"].get<double>() + 1.0);  // a boot takes seconds
    // The VM without OS fails its gate with the reason, after its own timeout...
    CHECK(v[noos]["state"] == "failed");
    CHECK(v[noos]["wait_for"] == "guest-agent");
    CHECK(v[noos]["error"] == "not ready (guest-agent) within 8 s");
    CHECK(domstate(noos) == "running");  // it was started; only its gate failed
    // ... and blocks nobody: the next group still starts (once order 1 is final).
    CHECK(v[later]["state"] == "ready");
    CHECK(v[later]["started_at"].get<double>() >= v[noos]["started_at"].get<double>() + 7.9);
    auto after = hvd.ctl_json({"autostart", "status"});
    CHECK(after["running"] == false);
    CHECK(after["failed"] == 1);

    // The agent really answers, and the guest says it started it.
    auto ping = virsh({"qemu-agent-command", ga, R"({"execute":"guest-ping"})"});
    INFO(ping.describe());
    CHECK(ping.exit_code == 0);
    CHECK(read_file(hvd.log_dir + "/" + ga + ".serial.log").find("HV-GUEST-AGENT started") != std::string::npos);

    // The event stream: per VM, its autostart states in order, with what it waited on.
    auto last = events.wait_line(
        [&](const std::string& l) {
            auto j = json::parse(l, nullptr, false);
            return j.is_object() && j.value("type", "") == "autostart" && j.value("target", "") == "vm/" + later &&
                   j["data"].value("state", "") == "ready";
        },
        60s);
    INFO("event stream:\n" << events.out());
    CHECK(last.has_value());
    auto ge = autostart_events(events.out(), ga), ne = autostart_events(events.out(), noos);
    INFO(ga << ": " << joined(states_of(ge)) << "\n" << noos << ": " << joined(states_of(ne)));
    CHECK(in_order(states_of(ge), {"starting", "waiting", "ready"}));
    CHECK(in_order(states_of(ne), {"starting", "waiting", "failed"}));
    CHECK(in_order(states_of(autostart_events(events.out(), later)), {"pending", "starting", "ready"}));
    bool ga_waited_on_agent = false;
    for (const auto& e : ge)
        if (e.value("state", "") == "waiting" && e.value("waiting_on", "") == "guest-agent") ga_waited_on_agent = true;
    CHECK(ga_waited_on_agent);
    if (!ne.empty()) {
        CHECK(ne.back()["state"] == "failed");
        CHECK(ne.back()["error"] == "not ready (guest-agent) within 8 s");
    }
    events.terminate();
}

TEST_CASE("autostart: tcp:22 gate on the address the VM got by DHCP on libvirt's default network",
          "[integration][autostart][guest][net]") {
    // No HV_AUTOSTART_TCP_ADDRESS: hvd finds the address itself (DHCP lease, else the agent).
    // hvd runs in the private libvirtd's network namespace: "default" (virbr0, 192.168.122.0/24)
    // exists only there. (In the host's namespace those addresses are routed to the host's
    // default gateway, which on some test machines accepts any TCP connection: a false "open".)
    ::unsetenv("HV_AUTOSTART_TCP_ADDRESS");
    Hvd hvd(true, "", /*in_libvirt_netns=*/true);
    std::string guest = env("HV_TEST_GUEST_DIR");
    auto web = hvd.vm("as-ssh"), closed = hvd.vm("as-closed");
    for (const auto& n : {web, closed}) {
        auto c = hvd.ctl({"vm", "create", n, "--memory", "128M", "--kernel", guest + "/vmlinuz", "--initrd",
                          guest + "/initrd.gz", "--cmdline", "console=ttyS0 quiet panic=-1", "--net",
                          "network=default"});
        INFO(c.describe());
        REQUIRE(c.exit_code == 0);
    }
    REQUIRE(hvd.ctl({"autostart", "host", "--boot-delay", "0", "--max-parallel", "2", "--retries", "0"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "autostart", web, "--enable", "--order", "1", "--wait-for", "tcp:22", "--wait-timeout",
                     "180", "--down", "30"})
                .exit_code == 0);
    // The same guest, but nothing listens on port 23: its gate must fail although the VM has an
    // address (checked below), so a "ready" above is a real connection to the guest's port 22.
    REQUIRE(hvd.ctl({"vm", "autostart", closed, "--enable", "--order", "1", "--wait-for", "tcp:23",
                     "--wait-timeout", "45", "--down", "30"})
                .exit_code == 0);

    auto r = hvd.ctl({"autostart", "run", "-o", "json"}, 240s);
    INFO(r.describe() << "\n" << hvd.log_tail());
    CHECK(r.exit_code == 11);
    auto res = json::parse(r.out, nullptr, false);
    REQUIRE(res.is_object());
    auto v = by_name(res["vms"]);
    CHECK(v[web]["state"] == "ready");
    CHECK(v[web]["wait_for"] == "tcp:22");
    CHECK(v[web]["ready_at"].get<double>() > v[web]["started_at"].get<double>() + 1.0);  // boot + DHCP
    CHECK(v[closed]["state"] == "failed");
    CHECK(v[closed]["error"] == "not ready (tcp:23) within 45 s");

    // Where the gate connected: the lease libvirt's dnsmasq gave, the address the guest configured.
    auto lease_of = [&](const std::string& n) {
        auto a = virsh({"domifaddr", n, "--source", "lease"});
        auto p = a.out.find("192.168.122.");
        return p == std::string::npos ? std::string() : a.out.substr(p, a.out.find('/', p) - p);
    };
    std::string ip = lease_of(web), ip_closed;
    INFO("web lease " << ip);
    REQUIRE_FALSE(ip.empty());
    CHECK(read_file(hvd.log_dir + "/" + web + ".serial.log").find("HV-GUEST-IP " + ip) != std::string::npos);
    // The failing VM had an address as well, with port 22 open there and 23 refused.
    CHECK(wait_until([&] { return !(ip_closed = lease_of(closed)).empty(); }, 60s, 500ms));
    std::string ns = "--net=/proc/" + read_file(env("HV_TEST_LIBVIRT_DIR") + "/holder.pid");
    while (!ns.empty() && (ns.back() == '\n' || ns.back() == ' ')) ns.pop_back();
    ns += "/ns/net";
    auto probe = [&](const std::string& addr, const std::string& port) {
        return run({"nsenter", ns, "--", "timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/$0/$1", addr, port}, 30s)
            .exit_code;
    };
    INFO("closed lease " << ip_closed);
    CHECK(probe(ip_closed, "22") == 0);
    CHECK(probe(ip_closed, "23") != 0);
}

TEST_CASE("autostart: a container and a VM in order groups, tcp gate inside the container, stop-all in reverse",
          "[integration][autostart][ct]") {
    Hvd hvd;
    CtGone gone{hvd, {}};
    auto ct = hvd.vm("as-ct"), vm = hvd.vm("as-ctvm");  // one name space: unique names for both
    gone.names.push_back(ct);
    // The test's temp dir is 0700: an unprivileged container could not reach its rootfs there.
    std::filesystem::permissions(hvd.dir, std::filesystem::perms::others_exec, std::filesystem::perm_options::add);
    Child events(hvd.ctl_argv({"events", "-o", "json"}));
    auto r = hvd.ctl({"ct", "template", "build", "busybox"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    r = hvd.ctl({"ct", "create", ct, "--template", "busybox", "--memory", "64M"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "create", vm, "--memory", "64M"}).exit_code == 0);

    // Containers have no QEMU guest agent: refused, through hvctl and over HTTP; nothing changes.
    r = hvd.ctl({"ct", "autostart", ct, "--enable", "--wait-for", "guest-agent"});
    INFO(r.describe());
    CHECK(r.exit_code == 3);  // invalid input (HTTP 400, as below)
    CHECK(r.err.find("no QEMU guest agent") != std::string::npos);
    auto resp = hvd.http("PUT", "/v1/cts/" + ct + "/autostart", json{{"wait_for", "guest-agent"}}.dump());
    CHECK(resp.status == 400);
    CHECK(resp.body.find("guest agent") != std::string::npos);
    CHECK(hvd.ctl_json({"ct", "autostart", ct})["enabled"] == false);
    // Each kind has its own route: a container is not a VM.
    CHECK(hvd.http("GET", "/v1/vms/" + ct + "/autostart").status == 404);
    CHECK(hvd.http("GET", "/v1/cts/" + vm + "/autostart").status == 404);

    // The port is opened inside the container, where nothing listens yet. The same port open on
    // the host (hvd's namespace) must not count: the gate looks inside the container.
    const int host_port = free_port();
    const int host_fd = listen_on(host_port);
    REQUIRE(host_fd >= 0);
    const std::string port = std::to_string(host_port);
    REQUIRE(hvd.ctl({"autostart", "host", "--boot-delay", "0", "--retries", "0"}).exit_code == 0);
    r = hvd.ctl({"ct", "autostart", ct, "--enable", "--order", "1", "--wait-for", "tcp:" + port, "--wait-timeout",
                 "120", "--down", "20"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("container") != std::string::npos);
    // The VM depends on the container: `after` crosses kinds.
    r = hvd.ctl({"vm", "autostart", vm, "--enable", "--order", "2", "--after", ct, "--down", "2"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    // The settings live in the container's LXC domain, in the autostart namespace.
    auto q = libvirt_uri();
    auto xml = run({"virsh", "-q", "-c", "lxc" + q.substr(q.find(':')), "metadata", ct, "http://hv.dev/xmlns/autostart/1"});
    CHECK(xml.out.find("tcp:" + port) != std::string::npos);

    auto plan = hvd.ctl_json({"autostart", "plan"});
    auto pv = by_name(plan["vms"]);
    CHECK(pv[ct]["type"] == "container");
    CHECK(pv[vm]["type"] == "vm");
    CHECK(pv[vm]["group"].get<int>() > pv[ct]["group"].get<int>());
    CHECK(hvd.ctl({"autostart", "plan"}).out.find("container") != std::string::npos);

    Child run_child(hvd.ctl_argv({"autostart", "run", "-o", "json"}));
    // The container runs, but waits on its port; the VM of order 2 has not started.
    json st;
    std::string table;
    bool caught = wait_until(
        [&] {
            st = hvd.ctl_json({"autostart", "status"});
            if (!st.contains("vms")) return false;  // the run has not begun
            auto v = by_name(st["vms"]);
            if (!v.count(ct) || v[ct].value("state", "") != "waiting") return false;
            table = hvd.ctl({"autostart", "status"}).out;
            return hvd.ctl_json({"ct", "show", ct})["state"] == "running";
        },
        120s, 300ms);
    INFO("status: " << st.dump(2) << "\n" << hvd.log_tail());
    REQUIRE(caught);
    {
        auto v = by_name(st["vms"]);
        CHECK(v[ct]["type"] == "container");
        CHECK(v[ct]["waiting_on"] == "tcp:" + port);
        CHECK(v[vm]["type"] == "vm");
        CHECK(v[vm]["state"] == "pending");
        CHECK(v[vm]["started_at"].get<double>() < 0);
        CHECK(domstate(vm) == "shut off");
        auto p = table.find(ct);
        REQUIRE(p != std::string::npos);
        auto line = table.substr(p, table.find('\n', p) - p);
        CHECK(line.find("container") != std::string::npos);
        CHECK(line.find("waiting: tcp:" + port) != std::string::npos);
    }
    // Polled every 0.2 s meanwhile, the gate still does not see the host's listener (the wait
    // is part of the test: ten polls that must all miss it).
    std::this_thread::sleep_for(2s);
    CHECK(by_name(hvd.ctl_json({"autostart", "status"})["vms"])[ct]["state"] == "waiting");
    // A listener inside the container (busybox httpd daemonizes; its output must not keep exec's pipes).
    r = hvd.ctl({"ct", "exec", ct, "--", "sh", "-c", "httpd -p " + port + " -h /tmp </dev/null >/dev/null 2>&1"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);

    ::close(host_fd);
    auto done = run_child.finish(180s);
    INFO(done.describe() << "\n" << hvd.log_tail());
    REQUIRE(done.exit_code == 0);
    auto res = json::parse(done.out);
    auto v = by_name(res["vms"]);
    CHECK(res["failed"] == 0);
    CHECK(res["warnings"].empty());
    CHECK(v[ct]["state"] == "ready");
    CHECK(v[ct]["type"] == "container");
    CHECK(v[ct]["wait_for"] == "tcp:" + port);
    CHECK(v[vm]["state"] == "ready");
    CHECK(v[vm]["type"] == "vm");
    // The VM started only once the container was ready.
    CHECK(v[vm]["started_at"].get<double>() >= v[ct]["ready_at"].get<double>());
    CHECK(domstate(vm) == "running");

    // Events: the container under ct/NAME, the VM under vm/NAME.
    auto seen = events.wait_line(
        [&](const std::string& l) {
            auto j = json::parse(l, nullptr, false);
            return j.is_object() && j.value("type", "") == "autostart" && j.value("target", "") == "vm/" + vm &&
                   j["data"].value("state", "") == "ready";
        },
        60s);
    INFO("events:\n" << events.out());
    CHECK(seen.has_value());
    CHECK(in_order(states_of(autostart_events(events.out(), ct, "ct")), {"starting", "waiting", "ready"}));
    CHECK(autostart_events(events.out(), ct).empty());  // never as vm/NAME
    events.terminate();

    // stop-all: the VM (order 2) first, then the container through its init (no force needed).
    auto s = hvd.ctl({"autostart", "stop-all", "-o", "json"}, 120s);
    INFO(s.describe() << "\n" << hvd.log_tail());
    REQUIRE(s.exit_code == 0);
    auto sres = json::parse(s.out);
    auto sv = by_name(sres["vms"]);
    REQUIRE(sv.count(ct));
    REQUIRE(sv.count(vm));
    CHECK(sv[ct]["type"] == "container");
    CHECK(sv[vm]["type"] == "vm");
    CHECK(sv[ct]["error"] == "");
    CHECK(sv[ct]["forced"] == false);
    CHECK(sv[vm]["forced"] == true);  // no OS: ignores ACPI
    CHECK(sv[ct]["began_at"].get<double>() >= sv[vm]["stopped_at"].get<double>());
    CHECK(hvd.ctl_json({"ct", "show", ct})["state"] == "stopped");
    CHECK(domstate(vm) == "shut off");
}

TEST_CASE("autostart: VMs start while the LXC connection is down, containers reported as skipped",
          "[integration][autostart][ct]") {
    // An LXC URI nobody answers: containers are unreachable for this hvd, VMs are not.
    Hvd hvd(true, "[libvirt]\nlxc_uri = \"lxc:///system?socket=/nonexistent/hv-test-no-lxc.sock\"\n");
    auto a = hvd.vm("as-nolxc"), b = hvd.vm("as-nolxc-dep");
    for (const auto& n : {a, b}) REQUIRE(hvd.ctl({"vm", "create", n, "--memory", "64M"}).exit_code == 0);
    REQUIRE(hvd.ctl({"autostart", "host", "--boot-delay", "0"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "autostart", a, "--enable", "--down", "2"}).exit_code == 0);
    // A dependency that might be a container cannot be checked now: 503, not a wrong "does not exist".
    auto dep = hvd.ctl({"vm", "autostart", b, "--enable", "--after", "some-container"});
    INFO(dep.describe());
    CHECK(dep.exit_code == 6);  // unavailable (HTTP 503, as below)
    CHECK(dep.err.find("cannot check") != std::string::npos);
    CHECK(hvd.http("GET", "/v1/cts/whatever/autostart").status == 503);

    auto r = hvd.ctl({"autostart", "run", "-o", "json"});
    INFO(r.describe() << "\n" << hvd.log_tail());
    REQUIRE(r.exit_code == 0);
    auto res = json::parse(r.out);
    CHECK(by_name(res["vms"])[a]["state"] == "ready");
    CHECK(by_name(res["vms"])[a]["type"] == "vm");
    REQUIRE(res["warnings"].size() == 1);
    CHECK(res["warnings"][0].get<std::string>().find("containers skipped") != std::string::npos);
    CHECK(domstate(a) == "running");
    auto table = hvd.ctl({"autostart", "status"}).out;
    CHECK(table.find("warning: containers skipped") != std::string::npos);

    auto s = hvd.ctl({"autostart", "stop-all", "-o", "json"}, 60s);
    INFO(s.describe());
    CHECK(s.exit_code == 0);
    CHECK(domstate(a) == "shut off");
}
