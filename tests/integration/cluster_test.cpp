// The cluster end to end on scripts/cluster-rig.sh: four hosts (three voters and a client), each in its own network
// namespace with its own libvirtd, etcd member and hvd, driven only through hvctl (and curl
// for the TLS port). One rig for the whole flow (it takes a while to stand up): create and
// join, a reused token, placement and forwarding, the same name on two hosts at once, a client
// of another CA, a killed host, lost quorum, recovery, leave and remove.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "harness.hpp"
#include "rig.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {

json member(const json& status, const std::string& name) {
    for (const auto& m : status.at("members"))
        if (m.at("name") == name) return m;
    return json();
}

// The VM's object in a list, or {} (not null: value() on the answer never throws while the
// directory has not caught up yet).
json find_vm(const json& list, const std::string& name) {
    for (const auto& v : list)
        if (v.value("name", "") == name) return v;
    return json::object();
}


// Upgrades GET /v1/cts/{name}/console on `socket` (through whichever host it is) and types a
// command on the console; true when its output comes back through the relay.
bool console_roundtrip(const std::string& socket, const std::string& name, std::string* first_line) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", socket.c_str());
    timeval tv{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    bool ok = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
        std::string req = "GET /v1/cts/" + name +
                          "/console HTTP/1.1\r\nHost: hvd\r\nConnection: Upgrade\r\nUpgrade: hv-console\r\n\r\n";
        (void)!::write(fd, req.data(), req.size());
        std::string in;
        char buf[4096];
        auto deadline = Clock::now() + 15s;
        bool typed = false;
        while (Clock::now() < deadline) {
            auto n = ::read(fd, buf, sizeof buf);
            if (n > 0) in.append(buf, static_cast<std::size_t>(n));
            if (n == 0) break;
            auto eol = in.find("\r\n");
            if (first_line && first_line->empty() && eol != std::string::npos) *first_line = in.substr(0, eol);
            if (!typed && in.find("\r\n\r\n") != std::string::npos) {
                if (in.rfind("HTTP/1.1 101", 0) != 0) break;
                std::string cmd = "\necho HV-CONSOLE-$((40+2))\n";
                (void)!::write(fd, cmd.data(), cmd.size());
                typed = true;
            }
            if (in.find("HV-CONSOLE-42") != std::string::npos) {
                ok = true;
                break;
            }
        }
    }
    ::close(fd);
    return ok;
}
}  // namespace

TEST_CASE("cluster: four hosts on the rig (three voters and a client), end to end from hvctl", "[cluster][rig]") {
    skip_unless_runnable();
    Rig rig(4);

    // --- create and join -------------------------------------------------------------------
    auto created = rig.ctl_json("h1", {"cluster", "create", "rig", "--address", rig["h1"].address});
    CHECK(created.at("name") == "rig");
    CHECK(created.at("quorum") == true);

    std::string token = rig.ctl_json("h1", {"cluster", "token"}).at("token");
    REQUIRE(token.rfind("hvjoin1.", 0) == 0);
    auto j2 = rig.ctl("h2", {"cluster", "join", rig["h1"].address, "--token", token, "-o", "json"}, 180s);
    INFO(j2.describe() << rig.log("h2"));
    REQUIRE(j2.exit_code == 0);

    // The same token again: refused with a clear reason, nothing changed on h3.
    auto again = rig.ctl("h3", {"cluster", "join", rig["h1"].address, "--token", token});
    CHECK(again.exit_code == 5);
    CHECK_THAT(again.err, Catch::Contains("already used"));
    CHECK(rig.ctl_json("h3", {"cluster", "status"}).at("name") == "");

    std::string token3 = rig.ctl_json("h2", {"cluster", "token"}).at("token");  // any member issues tokens
    auto j3 = rig.ctl("h3", {"cluster", "join", rig["h2"].address, "--token", token3}, 180s);
    INFO(j3.describe() << rig.log("h3"));
    REQUIRE(j3.exit_code == 0);

    // A fourth host: the three voters are there, so it joins as a store client (no etcd member).
    std::string token4 = rig.ctl_json("h3", {"cluster", "token"}).at("token");
    auto j4 = rig.ctl("h4", {"cluster", "join", rig["h3"].address, "--token", token4}, 180s);
    INFO(j4.describe() << rig.log("h4"));
    REQUIRE(j4.exit_code == 0);
    CHECK_FALSE(file_exists(rig.dir() + "/h4/state/cluster/etcd"));

    REQUIRE(wait_until([&] {
        auto st = rig.ctl_json("h4", {"cluster", "status"});
        int online = 0, voters = 0;
        for (const auto& m : st.at("members")) {
            online += m.at("online").get<bool>() ? 1 : 0;
            voters += m.at("role") == "leader" || m.at("role") == "voter" ? 1 : 0;
        }
        return online == 4 && voters == 3 && member(st, "h4").at("role") == "client";
    }, 60s));
    // The first host knew only its own member when it created the cluster: it follows the
    // voters that joined later (its store fails over to them), and keeps them for its restart.
    CHECK(wait_until([&] {
        auto j = json::parse(read_file(rig.dir() + "/h1/state/cluster/cluster.json"), nullptr, false);
        return j.is_object() && j.value("endpoints", json::array()).size() == 3;
    }, 20s));
    auto hosts = rig.ctl_json("h1", {"host", "list"});
    REQUIRE(hosts.size() == 4);
    for (const auto& h : hosts) {
        CHECK(h.at("online") == true);
        CHECK(h.at("cpus").get<int>() > 0);
        CHECK(h.at("memory_total").get<std::uint64_t>() > 0);
    }

    // --- placement and forwarding ---------------------------------------------------------
    auto made = rig.ctl("h1", {"vm", "create", "web01", "--host", "h2", "--memory", "64M", "-o", "json"});
    INFO(made.describe());
    REQUIRE(made.exit_code == 0);
    REQUIRE(wait_until([&] { return find_vm(rig.ctl_json("h3", {"vm", "list"}), "web01").value("host", "") == "h2"; },
                       15s));
    // Made in a cluster: its CPU is the baseline of the members' (identical hosts here: their
    // own model), which every member can run (docs/migration.md "CPU model").
    {
        auto web = rig.ctl_json("h2", {"vm", "show", "web01"});
        INFO(web.dump());
        CHECK(web["cpu"].value("mode", "") == "custom");
        CHECK(!web["cpu"].value("model", "").empty());
        for (const auto& h : hosts) CHECK(h.value("cpu_model", "") == web["cpu"].value("model", ""));
    }
    auto started = rig.ctl("h3", {"vm", "start", "web01", "-o", "json"});
    INFO(started.describe());
    REQUIRE(started.exit_code == 0);
    // It runs on h2, in h2's libvirt: h2's own view says so without any forwarding.
    CHECK(rig.ctl_json("h2", {"vm", "show", "web01"}).at("state") == "running");
    REQUIRE(wait_until([&] { return find_vm(rig.ctl_json("h1", {"vm", "list"}), "web01").value("state", "") == "running"; },
                       15s));
    // A task made on h2 is waited for from h1: its id names h2.
    auto task = rig.ctl_json("h1", {"vm", "shutdown", "web01", "--timeout", "1", "--force", "--async"});
    std::string tid = task.at("id");
    CHECK(tid.find("@h2") != std::string::npos);
    auto waited = rig.ctl("h1", {"task", "wait", tid, "-o", "json"}, 60s);
    INFO(waited.describe());
    CHECK(waited.exit_code == 0);

    // h2's events, streamed through h1 (?host=): ids unique in the cluster, the host named.
    {
        Result ev;
        std::thread t([&] {
            ev = run({"curl", "-sSN", "--max-time", "8", "--unix-socket", rig["h1"].socket, "http://hvd/v1/events?host=h2"},
                     20s);
        });
        std::this_thread::sleep_for(2s);
        CHECK(rig.ctl("h3", {"vm", "start", "web01"}).exit_code == 0);
        CHECK(rig.ctl("h3", {"vm", "stop", "web01"}).exit_code == 0);
        t.join();
        INFO(ev.describe());
        CHECK_THAT(ev.out, Catch::Contains("\"host\":\"h2\"") && Catch::Contains("@h2\"") &&
                               Catch::Contains("\"target\":\"vm/web01\""));
        CHECK(ev.out.find("\"host\":\"h1\"") == std::string::npos);
        // A member that is not there: 404, no stream.
        auto none = run({"curl", "-sS", "--max-time", "5", "-w", "%{http_code}", "-o", "/dev/null", "--unix-socket",
                         rig["h1"].socket, "http://hvd/v1/events?host=nosuch"});
        CHECK(none.out == "404");
    }

    // An upload to another host's pool streams through the member asked, byte for byte.
    {
        std::string iso = rig.dir() + "/fwd.iso";
        {
            std::ofstream f(iso, std::ios::binary);
            for (int i = 0; i < 3 * 1024 * 1024; ++i) f.put(static_cast<char>((i * 7) & 0xff));
        }
        auto up = run({"curl", "-sS", "--unix-socket", rig["h1"].socket, "-X", "PUT", "-T", iso, "-w", "%{http_code}",
                       "-o", "/dev/null", "http://hvd/v1/storage/pools/local/isos/fwd.iso?host=h2"});
        INFO(up.describe());
        CHECK(up.out == "201");
        auto sum = run({"sha256sum", iso});
        auto listed = rig.ctl_json("h2", {"storage", "iso", "list"});
        bool found = false;
        for (const auto& i : listed)
            if (i.value("name", "") == "fwd.iso") {
                found = true;
                CHECK(sum.out.substr(0, 64) == i.value("sha256", ""));
            }
        CHECK(found);
        CHECK(rig.ctl_json("h1", {"storage", "iso", "list"}).dump().find("fwd.iso") == std::string::npos);
    }

    // A container's console on h2, opened through h1: the upgrade is forwarded and the bytes
    // are relayed both ways.
    {
        auto tmpl = rig.ctl("h2", {"ct", "template", "build", "busybox"}, 180s);
        INFO(tmpl.describe());
        REQUIRE(tmpl.exit_code == 0);
        auto made_ct = rig.ctl("h2", {"ct", "create", "con1", "--template", "busybox", "--memory", "128M", "--rootfs",
                                      "pool=local"});
        INFO(made_ct.describe());
        REQUIRE(made_ct.exit_code == 0);
        REQUIRE(rig.ctl("h2", {"ct", "start", "con1"}).exit_code == 0);
        std::string first;
        CHECK(wait_until([&] { return console_roundtrip(rig["h1"].socket, "con1", &first); }, 30s));
        CHECK(first == "HTTP/1.1 101 Switching Protocols");
        rig.ctl("h2", {"ct", "stop", "con1"});

        // Placed from the client host h4 onto h2 (--host), listed with its HOST everywhere.
        auto placed = rig.ctl("h4", {"ct", "create", "con2", "--host", "h2", "--template", "busybox", "--memory", "64M"});
        INFO(placed.describe());
        REQUIRE(placed.exit_code == 0);
        CHECK(rig.ctl_json("h2", {"ct", "show", "con2"}).at("name") == "con2");
        REQUIRE(wait_until([&] { return find_vm(rig.ctl_json("h1", {"ct", "list"}), "con2").value("host", "") == "h2"; },
                           15s));
        auto table = rig.ctl("h1", {"ct", "list"});
        CHECK_THAT(table.out, Catch::Contains("HOST"));
        CHECK(table.out.find("con2") != std::string::npos);
    }

    // --- the same name on two hosts at once: exactly one wins ------------------------------
    for (int round = 0; round < 3; ++round) {
        std::string name = "race" + std::to_string(round);
        Result ra, rb;
        std::thread ta([&] { ra = rig.ctl("h1", {"vm", "create", name, "--memory", "64M"}); });
        std::thread tb([&] { rb = rig.ctl("h3", {"vm", "create", name, "--memory", "64M"}); });
        ta.join();
        tb.join();
        INFO(ra.describe() << " / " << rb.describe());
        CHECK(((ra.exit_code == 0) != (rb.exit_code == 0)));
        CHECK((ra.exit_code == 5 || rb.exit_code == 5));
    }

    // --- TLS: a client with a certificate of another CA fails the handshake ----------------
    {
        std::string d = rig.dir() + "/other-ca";
        std::filesystem::create_directories(d);
        REQUIRE(run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-subj", "/CN=host:h1", "-days", "1", "-keyout", d + "/k.pem", "-out", d + "/c.pem"})
                    .exit_code == 0);
        std::string url = "https://" + rig["h1"].address + ":7443/v1/host";
        auto other = rig.exec("h2", {"curl", "-sS", "-k", "--max-time", "5", "--cert", d + "/c.pem", "--key",
                                     d + "/k.pem", url});
        CHECK(other.exit_code != 0);
        auto none = rig.exec("h2", {"curl", "-sS", "-k", "--max-time", "5", url});
        CHECK(none.exit_code != 0);
        // With h2's own host certificate it answers.
        std::string c2 = rig.dir() + "/h2/state/cluster";
        auto mine = rig.exec("h2", {"curl", "-sS", "--max-time", "5", "--cacert", c2 + "/ca.crt", "--cert",
                                    c2 + "/host.crt", "--key", c2 + "/host.key", url});
        INFO(mine.describe());
        CHECK(mine.exit_code == 0);
        CHECK_THAT(mine.out, Catch::Contains("\"hostname\""));
    }

    // --- a killed host: offline within seconds, the others go on ---------------------------
    auto t0 = Clock::now();
    REQUIRE(rig.rig({"kill", "h3"}).exit_code == 0);
    REQUIRE(wait_until([&] { return !member(rig.ctl_json("h1", {"cluster", "status"}), "h3").at("online").get<bool>(); },
                       20s));
    auto seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    WARN("h3 showed offline " << seconds << " s after it was killed");
    CHECK(seconds < 15);
    auto tok = rig.ctl("h1", {"cluster", "token"});  // writes still work with 2 of 3
    CHECK(tok.exit_code == 0);

    // --- two of three down: writes 503 with the reason, local guests still answer ---------
    REQUIRE(rig.rig({"cut", "h1"}).exit_code == 0);
    auto refused = rig.ctl("h2", {"vm", "create", "noquorum", "--memory", "64M"}, 60s);
    CHECK(refused.exit_code == 6);
    CHECK_THAT(refused.err, Catch::Contains("no quorum"));
    auto local = rig.ctl("h2", {"vm", "show", "web01", "-o", "json"});
    CHECK(local.exit_code == 0);
    auto st_local = rig.ctl("h2", {"vm", "start", "web01"}, 60s);  // a local guest still works
    CHECK(st_local.exit_code == 0);

    // --- back: reconciled ----------------------------------------------------------------
    REQUIRE(rig.rig({"heal", "h1"}).exit_code == 0);
    REQUIRE(rig.rig({"start", "h3"}).exit_code == 0);
    REQUIRE(wait_until([&] {
        auto st = rig.ctl("h1", {"cluster", "status", "-o", "json"});
        if (st.exit_code != 0) return false;
        auto j = json::parse(st.out);
        if (!j.at("quorum").get<bool>()) return false;
        for (const auto& m : j.at("members"))
            if (!m.at("online").get<bool>()) return false;
        return true;
    }, 90s));
    // What changed on h2 while the store was away is in the directory now.
    REQUIRE(wait_until([&] { return find_vm(rig.ctl_json("h1", {"vm", "list"}), "web01").value("state", "") == "running"; },
                       30s));
    rig.ctl("h2", {"vm", "stop", "web01"});

    // --- leave and remove ------------------------------------------------------------------
    auto left = rig.ctl("h3", {"cluster", "leave"}, 60s);
    INFO(left.describe());
    CHECK(left.exit_code == 0);
    REQUIRE(wait_until([&] { return member(rig.ctl_json("h1", {"cluster", "status"}), "h3").is_null(); }, 20s));
    CHECK(rig.ctl_json("h3", {"cluster", "status"}).at("name") == "");
    auto online_remove = rig.ctl("h1", {"cluster", "remove", "h2"});
    CHECK(online_remove.exit_code == 5);
    CHECK_THAT(online_remove.err, Catch::Contains("online"));
}
