// hv's hyperconverged Ceph end to end on scripts/cluster-rig.sh, only through hvctl: three
// hosts in a cluster; ceph init, a monitor + manager on each, one BlueStore OSD per host on a
// sparse file (h1's with its DB on a second file), a size-3 pool that is also an hv storage
// pool on every host, HEALTH_OK; refused input that changes nothing (size 3 on one host, a
// device with a filesystem, a device twice, a second monitor on a host, a second init); a VM
// with its disk on the pool; a host killed -> degraded but writable -> back -> healed; hvd
// killed (with its whole host) in the middle of an OSD create -> nothing half-made after.
// Migration on the shared pool: live (through hvd's TLS), cancelled, offline, refused; host
// maintenance enter (the running VM moves away, no new guests) and exit --return; local disks
// copied (--with-local-disks) next to a --shared dir pool, the guest running on (tick counter,
// agent), cancelled with nothing left; the source's hvd killed mid-migration, the destination
// host killed mid-migration: the VM runs on the source, once. HA: refusals, the hvd of a guest's
// host killed -> its watchdog resets the host -> fenced (Ceph blocklist) -> the guest ready on
// the group's first host, the stale copy gone when the host returns, the fence lifted; a planned
// hvd stop freezes instead.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "rig.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {

bool tool(const char* name) { return run({"sh", "-c", std::string("command -v ") + name}).exit_code == 0; }

void sparse(const std::string& path, std::uint64_t size) {
    std::ofstream(path).close();
    REQUIRE(::truncate(path.c_str(), static_cast<off_t>(size)) == 0);
}

bool healthy(const json& st) {
    return st.value("health", "") == "HEALTH_OK" && st.value("pgs", 0) > 0 &&
           st.value("pgs_active_clean", -1) == st.value("pgs", 0) && st.value("osds_up", 0) == st.value("osds", -1);
}

bool mentions(const json& lines, const std::string& what) {
    for (const auto& l : lines)
        if (l.is_string() && l.get<std::string>().find(what) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("ceph: three hosts on the rig, monitors, OSDs, a size-3 pool, migration and maintenance on it from hvctl", "[ceph][rig]") {
    for (const char* t : {"ceph-mon", "ceph-mgr", "ceph-osd", "monmaptool", "blkid", "wipefs", "mkfs.ext4"})
        if (!tool(t)) {
            std::cout << "SKIPPED: " << t << " is not installed (scripts/install-deps.sh installs Ceph)" << std::endl;
            std::exit(77);
        }
    skip_unless_runnable();
    Rig rig(3);
    auto created = rig.ctl_json("h1", {"cluster", "create", "rig", "--address", rig["h1"].address});
    REQUIRE(created.at("name") == "rig");
    for (const char* h : {"h2", "h3"}) {
        std::string token = rig.ctl_json("h1", {"cluster", "token"}).at("token");
        auto j = rig.ctl(h, {"cluster", "join", rig["h1"].address, "--token", token}, 180s);
        INFO(j.describe() << rig.log(h));
        REQUIRE(j.exit_code == 0);
    }

    // Before init: every command says what to do first.
    auto early = rig.ctl("h1", {"ceph", "mon", "create"});
    CHECK(early.exit_code == 5);
    CHECK(early.err.find("ceph init") != std::string::npos);
    CHECK(rig.ctl_json("h2", {"ceph", "status"}).at("initialized") == false);
    auto badnet = rig.ctl("h1", {"ceph", "init", "--network", "10.77.0.1/24"});
    CHECK(badnet.exit_code == 3);

    auto t0 = Clock::now();
    auto init = rig.ctl_json("h1", {"ceph", "init", "--network", "10.77.0.0/24"});
    CHECK(init.at("initialized") == true);
    CHECK(init.at("network") == "10.77.0.0/24");
    auto again = rig.ctl("h3", {"ceph", "init", "--network", "10.77.0.0/24"});
    CHECK(again.exit_code == 5);
    CHECK(rig.ctl_json("h3", {"ceph", "status"}).at("fsid") == init.at("fsid"));

    // A monitor (and a manager) per host, two of them created from another host.
    for (auto [from, target] : {std::pair{"h1", ""}, std::pair{"h1", "h2"}, std::pair{"h3", ""}}) {
        std::vector<std::string> args{"ceph", "mon", "create", "-o", "json"};
        if (*target) args.insert(args.end(), {"--host", target});
        auto m = rig.ctl(from, args, 180s);
        INFO(from << " -> " << target << ": " << m.describe() << rig.log(*target ? target : from));
        REQUIRE(m.exit_code == 0);
    }
    auto twice = rig.ctl("h1", {"ceph", "mon", "create", "--host", "h2"});
    CHECK(twice.exit_code == 5);
    CHECK(twice.err.find("has a monitor already") != std::string::npos);
    auto st = rig.ctl_json("h2", {"ceph", "status"});
    CHECK(st.at("mons").size() == 3);
    CHECK(st.at("mons_in_quorum") == 3);

    // OSDs: h1 first, with its DB on a second file.
    for (const char* h : {"h1", "h2", "h3"}) sparse(rig.dir() + "/" + h + "-osd.img", 10ull << 30);
    sparse(rig.dir() + "/h1-db.img", 2ull << 30);
    auto o1 = rig.ctl("h1", {"ceph", "osd", "create", rig.dir() + "/h1-osd.img", "--db-dev", rig.dir() + "/h1-db.img",
                             "-o", "json"},
                      300s);
    INFO(o1.describe() << rig.log("h1"));
    REQUIRE(o1.exit_code == 0);
    CHECK(json::parse(o1.out).at("host") == "h1");

    // Refused, and nothing changes: size 3 with OSDs on one host; the same device again; a
    // device with a filesystem (without --zap); a device that is not there.
    auto one_host = rig.ctl("h2", {"ceph", "pool", "create", "vmpool", "--size", "3", "--min-size", "2"});
    CHECK(one_host.exit_code == 5);
    CHECK(one_host.err.find("needs OSDs on 3 hosts") != std::string::npos);
    auto dup = rig.ctl("h1", {"ceph", "osd", "create", rig.dir() + "/h1-osd.img"});
    CHECK(dup.exit_code == 5);
    CHECK(dup.err.find("used by osd.0") != std::string::npos);
    REQUIRE(run({"mkfs.ext4", "-q", "-F", rig.dir() + "/h2-osd.img"}).exit_code == 0);
    auto fsdev = rig.ctl("h1", {"ceph", "osd", "create", rig.dir() + "/h2-osd.img", "--host", "h2"});
    CHECK(fsdev.exit_code == 5);
    CHECK(fsdev.err.find("ext4") != std::string::npos);
    CHECK(rig.ctl("h2", {"ceph", "osd", "create", rig.dir() + "/nothing.img"}).exit_code == 4);
    st = rig.ctl_json("h3", {"ceph", "status"});
    CHECK(st.at("osds") == 1);
    CHECK(st.at("pools").empty());
    CHECK(rig.ctl_json("h2", {"storage", "pool", "list"}).dump().find("vmpool") == std::string::npos);

    auto o2 = rig.ctl("h1", {"ceph", "osd", "create", rig.dir() + "/h2-osd.img", "--host", "h2", "--zap"}, 300s);
    INFO(o2.describe() << rig.log("h2"));
    REQUIRE(o2.exit_code == 0);
    auto o3 = rig.ctl("h3", {"ceph", "osd", "create", rig.dir() + "/h3-osd.img"}, 300s);
    INFO(o3.describe() << rig.log("h3"));
    REQUIRE(o3.exit_code == 0);

    auto pool = rig.ctl("h2", {"ceph", "pool", "create", "vmpool", "--size", "3", "--min-size", "2", "-o", "json"}, 180s);
    INFO(pool.describe() << rig.log("h2"));
    REQUIRE(pool.exit_code == 0);
    auto pj = json::parse(pool.out);
    CHECK(pj.at("failure_domain") == "host");
    CHECK(pj.at("storage_pool") == "vmpool");

    REQUIRE(wait_until([&] { return healthy(rig.ctl_json("h1", {"ceph", "status"})); }, 180s, 1s));
    auto to_ok = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    WARN("ceph init to HEALTH_OK on 3 hosts (3 monitors, 3 OSDs, 1 pool): " << to_ok << " ms");
    st = rig.ctl_json("h3", {"ceph", "status"});
    CHECK(st.at("osds") == 3);
    CHECK(st.at("osd_hosts") == 3);
    CHECK(mentions(st.at("warnings"), "exactly 3 hosts"));
    CHECK(st.at("raw_total").get<std::uint64_t>() > (25ull << 30));

    // The pool is an hv storage pool on every host, the same images everywhere.
    for (const char* h : {"h1", "h2", "h3"}) {
        INFO(h);
        REQUIRE(wait_until([&] { return rig.ctl("h1", {"storage", "pool", "show", "vmpool"}).exit_code == 0 &&
                                        rig.ctl(h, {"storage", "pool", "show", "vmpool"}).exit_code == 0; },
                           30s));
        auto ps = rig.ctl_json(h, {"storage", "pool", "show", "vmpool"});
        CHECK(ps.at("type") == "rbd");
        CHECK(mentions(ps.at("warnings"), "exactly 3 hosts"));
    }
    auto vm = rig.ctl("h2", {"vm", "create", "db01", "--memory", "64M", "--disk", "size=256M,pool=vmpool,provision=eager-zeroed",
                             "-o", "json"},
                      180s);
    INFO(vm.describe());
    REQUIRE(vm.exit_code == 0);
    auto vols = rig.ctl_json("h3", {"storage", "volume", "list", "vmpool"});
    REQUIRE(vols.size() == 1);
    CHECK(vols[0].at("format") == "raw");
    CHECK(vols[0].at("provision") == "eager-zeroed");
    auto started = rig.ctl("h2", {"vm", "start", "db01"});
    INFO(started.describe() << rig.log("h2"));
    CHECK(started.exit_code == 0);  // QEMU opened the rbd disk with the secret hv defined
    CHECK(rig.ctl("h2", {"vm", "stop", "db01"}).exit_code == 0);

    // Migration on the shared pool (docs/migration.md): a running TCG guest moves live from h1
    // to h2 through hvd's TLS tunnel; a cancelled one runs on where it was; a stopped one moves
    // offline; a VM with a disk on a local pool is refused with the reason.
    const std::string guest = env("HV_TEST_GUEST_DIR");
    // hv.epoch: the guest writes epoch records on its disk (the HA steps check "never two copies").
    REQUIRE(rig.ctl("h1", {"vm", "create", "mig01", "--memory", "128M", "--disk", "size=64M,pool=vmpool", "--kernel",
                           guest + "/vmlinuz", "--initrd", guest + "/initrd.gz", "--cmdline",
                           "console=ttyS0 quiet panic=-1 hv.epoch"},
                    180s)
                .exit_code == 0);
    REQUIRE(rig.ctl("h1", {"vm", "start", "mig01"}).exit_code == 0);
    // Its CPU is the members' baseline, a named model: the pre-flight asks h2's libvirt (cpu-check).
    CHECK(rig.ctl_json("h1", {"vm", "show", "mig01"})["cpu"].value("mode", "") == "custom");
    auto dry = rig.ctl_json("h3", {"vm", "migrate", "mig01", "--to", "h2", "--dry-run"});
    CHECK(dry.at("ok") == true);
    CHECK(dry.at("blockers").empty());
    auto mig = rig.ctl("h3", {"vm", "migrate", "mig01", "--to", "h2", "-o", "json"}, 300s);  // asked on h3, runs on h1
    INFO(mig.describe() << rig.log("h1"));
    REQUIRE(mig.exit_code == 0);
    auto mj = json::parse(mig.out);
    CHECK(mj.at("to") == "h2");
    CHECK(mj.at("transferred").get<std::uint64_t>() > 0);
    WARN("live migration of a 128M TCG guest on rbd: " << mj.at("total_ms") << " ms, downtime " << mj.at("downtime_ms") << " ms");
    CHECK(rig.ctl_json("h2", {"vm", "show", "mig01"}).at("state") == "running");
    CHECK(rig.exec("h1", {"virsh", "-c", "qemu:///system?socket=" + rig.dir() + "/h1/libvirt/run/libvirt-sock", "list",
                          "--all", "--name"})
              .out.find("mig01") == std::string::npos);  // undefined on the source
    CHECK(wait_until([&] {
        for (const auto& v : rig.ctl_json("h3", {"vm", "list"}))
            if (v.value("name", "") == "mig01") return v.value("host", "") == "h2";
        return false;
    },
                     20s));
    // Cancelled mid-way (1 MiB/s: it cannot finish): it runs on h2, nothing is left on h1.
    auto slow = rig.ctl_json("h2", {"vm", "migrate", "mig01", "--to", "h1", "--bandwidth", "1", "--async"});
    std::string sid = slow.at("id");
    CHECK(wait_until([&] {
        auto t = rig.ctl("h2", {"task", "show", sid, "-o", "json"});
        return t.exit_code == 0 && json::parse(t.out).value("message", "").find("memory:") != std::string::npos;
    },
                     60s, 200ms));
    CHECK(rig.ctl("h2", {"task", "cancel", sid}).exit_code == 0);
    auto ended = rig.ctl("h2", {"task", "wait", sid, "-o", "json"}, 60s);
    CHECK(ended.exit_code == 9);
    CHECK(rig.ctl_json("h2", {"vm", "show", "mig01"}).at("state") == "running");
    CHECK(wait_until([&] {
        return rig.exec("h1", {"virsh", "-c", "qemu:///system?socket=" + rig.dir() + "/h1/libvirt/run/libvirt-sock", "list",
                               "--all", "--name"})
                   .out.find("mig01") == std::string::npos;
    },
                     20s));
    // Offline: the stopped db01 moves from h2 to h3.
    auto off = rig.ctl("h1", {"vm", "migrate", "db01", "--to", "h3", "--offline", "-o", "json"}, 120s);
    INFO(off.describe());
    CHECK(off.exit_code == 0);
    CHECK(rig.ctl_json("h3", {"vm", "show", "db01"}).at("state") == "stopped");
    // A disk on a pool only its host sees: refused, the reason named, nothing moved.
    REQUIRE(rig.ctl("h2", {"vm", "create", "local01", "--memory", "64M", "--disk", "size=16M"}).exit_code == 0);
    auto loc = rig.ctl("h2", {"vm", "migrate", "local01", "--to", "h3", "--offline"});
    CHECK(loc.exit_code == 5);
    CHECK(loc.err.find("only this host sees") != std::string::npos);
    CHECK(rig.ctl_json("h2", {"vm", "show", "local01"}).at("state") == "stopped");

    // Maintenance of h2 (asked on h1): its running VM moves away, stopped ones stay, no new
    // guests there; exit --return brings the VM back.
    auto enter = rig.ctl("h1", {"host", "maintenance", "enter", "h2", "--wait", "-o", "json"}, 300s);
    INFO(enter.describe() << rig.log("h2"));
    REQUIRE(enter.exit_code == 0);
    auto ej = json::parse(enter.out);
    CHECK(ej.at("maintenance").at("state") == "in");
    REQUIRE(ej.at("maintenance").at("moved").size() == 1);
    std::string went = ej.at("maintenance").at("moved")[0].at("to");
    CHECK((went == "h1" || went == "h3"));
    CHECK(rig.ctl_json(went, {"vm", "show", "mig01"}).at("state") == "running");
    CHECK(rig.ctl_json("h2", {"vm", "show", "local01"}).at("state") == "stopped");  // stopped: stays
    auto no_new = rig.ctl("h1", {"vm", "create", "new01", "--host", "h2", "--memory", "64M"});
    CHECK(no_new.exit_code == 5);
    CHECK(no_new.err.find("in maintenance") != std::string::npos);
    auto dry2 = rig.ctl_json("h3", {"vm", "migrate", "mig01", "--to", "h2", "--dry-run"});
    CHECK(mentions(dry2.at("blockers"), "in maintenance"));
    CHECK(rig.ctl_json("h3", {"host", "maintenance", "status", "h2"}).at("maintenance").at("state") == "in");
    auto leave = rig.ctl("h3", {"host", "maintenance", "exit", "h2", "--return", "-o", "json"}, 300s);
    INFO(leave.describe());
    REQUIRE(leave.exit_code == 0);
    CHECK(json::parse(leave.out).at("returning").size() == 1);
    CHECK(rig.ctl_json("h2", {"vm", "show", "mig01"}).at("state") == "running");
    CHECK(rig.ctl_json("h2", {"host", "maintenance", "status"}).at("maintenance").is_null());

    // Disks only the source sees are copied (--with-local-disks): lmig01 on h2 has disk0 on
    // h2's own pool "local" (raw, a mark in its first line) and disk1 on a dir pool that every
    // host has at one path (--shared: not copied). It moves live to h3, post-copy allowed; the
    // guest keeps running (its tick counter goes on, its agent answers on h3); h3's pool has
    // the copy with the mark, h2's volume is gone.
    const std::string shared_dir = rig.dir() + "/shared-pool";
    std::filesystem::create_directories(shared_dir);
    for (const char* h : {"h1", "h2", "h3"}) {
        auto add = rig.ctl(h, {"storage", "pool", "add", "shared", "--path", shared_dir, "--shared"});
        INFO(h << ": " << add.describe());
        REQUIRE(add.exit_code == 0);
    }
    CHECK(rig.ctl_json("h1", {"storage", "pool", "show", "shared"}).at("caps").at("shared") == true);
    CHECK(rig.ctl("h1", {"storage", "pool", "add", "vmpool2", "--type", "btrfs", "--path", shared_dir, "--shared"}).exit_code == 3);
    REQUIRE(rig.ctl("h2", {"storage", "volume", "create", "local", "lmig01-disk0", "--size", "32M", "--format", "raw"}).exit_code == 0);
    const std::string src_path = rig.ctl_json("h2", {"storage", "volume", "show", "local", "lmig01-disk0"}).at("path");
    {
        std::fstream f(src_path, std::ios::in | std::ios::out | std::ios::binary);
        REQUIRE(f.good());
        f << "HV-DISK-MARK copied by NBD\n";
    }
    auto lvm = rig.ctl("h2", {"vm", "create", "lmig01", "--memory", "128M", "--disk", "pool=local,volume=lmig01-disk0", "--disk",
                              "size=16M,pool=shared", "--kernel", guest + "/vmlinuz", "--initrd", guest + "/initrd.gz",
                              "--cmdline", "console=ttyS0 quiet panic=-1 hv.tick"},
                       180s);
    INFO(lvm.describe());
    REQUIRE(lvm.exit_code == 0);
    REQUIRE(rig.ctl("h2", {"vm", "start", "lmig01"}).exit_code == 0);
    const std::string serial = rig.dir() + "/h2/state/logs/lmig01.serial.log";
    // The highest "HV-GUEST-TICK n" in the console log, and how often the guest booted.
    auto ticks = [&serial] {
        std::ifstream in(serial);
        std::string line;
        int last = 0, boots = 0;
        while (std::getline(in, line)) {
            if (line.find("HV-GUEST-BOOTED") != std::string::npos) ++boots;
            auto at = line.find("HV-GUEST-TICK ");
            if (at != std::string::npos) last = std::max(last, std::atoi(line.c_str() + at + 14));
        }
        return std::make_pair(last, boots);
    };
    REQUIRE(wait_until([&] { return ticks().first >= 2; }, 60s, 250ms));
    CHECK(read_file(serial).find("HV-GUEST-DISK HV-DISK-MARK copied by NBD") != std::string::npos);
    auto ldry = rig.ctl_json("h1", {"vm", "migrate", "lmig01", "--to", "h3", "--dry-run"});
    CHECK(ldry.at("ok") == false);
    CHECK(mentions(ldry.at("blockers"), "--with-local-disks copies it"));
    CHECK(ldry.at("blockers").size() == 1);  // disk1 is on the shared pool
    CHECK(rig.ctl_json("h1", {"vm", "migrate", "lmig01", "--to", "h3", "--dry-run", "--with-local-disks"}).at("ok") == true);
    const int before = ticks().first;
    auto lmig = rig.ctl("h1", {"vm", "migrate", "lmig01", "--to", "h3", "--with-local-disks", "--postcopy", "-o", "json"}, 300s);
    INFO(lmig.describe() << rig.log("h2") << rig.log("h3"));
    REQUIRE(lmig.exit_code == 0);
    auto lj = json::parse(lmig.out);
    CHECK(lj.at("copied_disks").size() == 1);
    CHECK(lj.at("warnings").empty());
    WARN("live migration of a 128M TCG guest with a 32M local disk copied: " << lj.at("total_ms") << " ms, downtime "
                                                                                << lj.at("downtime_ms") << " ms");
    CHECK(rig.ctl_json("h3", {"vm", "show", "lmig01"}).at("state") == "running");
    auto copied = rig.ctl_json("h3", {"storage", "volume", "show", "local", "lmig01-disk0"});
    CHECK(copied.at("used_by") == json::array({"lmig01"}));  // hv's spec names the new path
    CHECK(copied.at("capacity") == 32ull << 20);
    CHECK(read_file(copied.at("path").get<std::string>()).rfind("HV-DISK-MARK copied by NBD", 0) == 0);
    CHECK(rig.ctl("h2", {"storage", "volume", "show", "local", "lmig01-disk0"}).exit_code == 4);  // removed after success
    CHECK(!std::filesystem::exists(src_path));
    CHECK(wait_until([&] { return ticks().first > before + 2; }, 30s, 250ms));  // it runs on, there
    CHECK(ticks().second <= 1);                                                  // and did not boot again
    const std::string h3virsh = "qemu:///system?socket=" + rig.dir() + "/h3/libvirt/run/libvirt-sock";
    CHECK(wait_until([&] {
        return rig.exec("h3", {"virsh", "-c", h3virsh, "qemu-agent-command", "lmig01", R"({"execute":"guest-ping"})"}).exit_code == 0;
    },
                     30s, 500ms));
    // Cancelled while copying back (1 MiB/s): it runs on h3, h2 has no volume left of it.
    auto lslow = rig.ctl_json("h3", {"vm", "migrate", "lmig01", "--to", "h2", "--with-local-disks", "--bandwidth", "1", "--async"});
    std::string lsid = lslow.at("id");
    CHECK(wait_until([&] {
        auto t = rig.ctl("h3", {"task", "show", lsid, "-o", "json"});
        return t.exit_code == 0 && json::parse(t.out).value("message", "").find("disks:") != std::string::npos;
    },
                     60s, 200ms));
    CHECK(rig.ctl("h3", {"task", "cancel", lsid}).exit_code == 0);
    CHECK(rig.ctl("h3", {"task", "wait", lsid, "-o", "json"}, 60s).exit_code == 9);
    CHECK(rig.ctl_json("h3", {"vm", "show", "lmig01"}).at("state") == "running");
    CHECK(rig.ctl("h2", {"storage", "volume", "show", "local", "lmig01-disk0"}).exit_code == 4);
    CHECK(rig.ctl("h3", {"storage", "volume", "show", "local", "lmig01-disk0"}).exit_code == 0);

    // Containers move by restart (ct migrate): app01 on h2's own pool, running, with a file
    // written inside: its root filesystem is copied, it runs on h3 with that file, h2 has
    // neither the container nor its root filesystem. app02 (stopped) on the shared pool is only
    // defined anew there: the same root filesystem.
    REQUIRE(rig.ctl("h2", {"ct", "template", "build", "busybox"}, 180s).exit_code == 0);
    REQUIRE(rig.ctl("h2", {"ct", "create", "app01", "--template", "busybox", "--memory", "64M"}, 180s).exit_code == 0);
    REQUIRE(rig.ctl("h2", {"ct", "start", "app01"}).exit_code == 0);
    REQUIRE(rig.ctl("h2", {"ct", "exec", "app01", "--", "sh", "-c", "echo moved-with-it > /root/mark"}).exit_code == 0);
    const std::string app01_root = rig.ctl_json("h2", {"ct", "show", "app01"}).at("rootfs").at("path");
    auto cdry = rig.ctl_json("h1", {"ct", "migrate", "app01", "--to", "h3", "--dry-run"});
    CHECK(cdry.at("ok") == true);
    CHECK(rig.ctl("h1", {"ct", "migrate", "app01", "--to", "h2", "--dry-run"}).exit_code == 3);  // its own host
    auto cm = rig.ctl("h1", {"ct", "migrate", "app01", "--to", "h3", "-o", "json"}, 300s);
    INFO(cm.describe() << rig.log("h2") << rig.log("h3"));
    REQUIRE(cm.exit_code == 0);
    CHECK(json::parse(cm.out).at("copied_disks").size() == 1);
    auto on3 = rig.ctl_json("h3", {"ct", "show", "app01"});
    CHECK(on3.at("state") == "running");
    CHECK(on3.at("rootfs").at("path") != app01_root);
    auto mark = rig.ctl("h3", {"ct", "exec", "app01", "--", "cat", "/root/mark"});
    CHECK(mark.out.find("moved-with-it") != std::string::npos);
    const std::string h2lxc = "lxc:///system?socket=" + rig.dir() + "/h2/libvirt/run/libvirt-sock";
    auto lxc_names = [&](const std::string& uri) { return rig.exec("h2", {"virsh", "-c", uri, "list", "--all", "--name"}).out; };
    CHECK(lxc_names(h2lxc).find("app01") == std::string::npos);  // undefined here
    CHECK(!std::filesystem::exists(app01_root));
    CHECK(wait_until([&] {
        for (const auto& v : rig.ctl_json("h1", {"ct", "list"}))
            if (v.value("name", "") == "app01") return v.value("host", "") == "h3";
        return false;
    },
                     30s));
    // A name taken there: refused before anything stops.
    REQUIRE(rig.ctl("h3", {"ct", "stop", "app01"}).exit_code == 0);
    REQUIRE(rig.ctl("h2", {"ct", "create", "app02", "--template", "busybox", "--memory", "64M", "--rootfs", "pool=shared"}, 180s)
                .exit_code == 0);
    const std::string app02_root = rig.ctl_json("h2", {"ct", "show", "app02"}).at("rootfs").at("path");
    auto c2 = rig.ctl("h2", {"ct", "migrate", "app02", "--to", "h1", "-o", "json"}, 120s);
    INFO(c2.describe());
    CHECK(c2.exit_code == 0);
    CHECK(json::parse(c2.out).at("copied_disks").empty());
    CHECK(rig.ctl_json("h1", {"ct", "show", "app02"}).at("rootfs").at("path") == app02_root);
    CHECK(std::filesystem::exists(app02_root));
    CHECK(lxc_names(h2lxc).find("app02") == std::string::npos);

    // Maintenance moves the running containers too (after the VMs; app02 is on the shared pool:
    // defined and started there), and exit --return brings them back.
    REQUIRE(rig.ctl("h1", {"ct", "start", "app02"}).exit_code == 0);
    auto cme = rig.ctl("h2", {"host", "maintenance", "enter", "h1", "--wait", "-o", "json"}, 300s);
    INFO(cme.describe() << rig.log("h1"));
    REQUIRE(cme.exit_code == 0);
    auto cmj = json::parse(cme.out);
    CHECK(cmj.at("maintenance").at("state") == "in");
    std::string ct_went;
    for (const auto& m : cmj.at("maintenance").at("moved"))
        if (m.value("guest", "") == "app02") {
            CHECK(m.value("kind", "") == "ct");
            ct_went = m.value("to", "");
        }
    REQUIRE(!ct_went.empty());
    auto app02_there = rig.ctl_json(ct_went, {"ct", "show", "app02"});
    CHECK(app02_there.at("state") == "running");
    CHECK(app02_there.at("rootfs").at("path") == app02_root);
    CHECK(rig.ctl("h1", {"ct", "start", "app02"}).exit_code != 0);  // not here any more
    auto cmx = rig.ctl("h2", {"host", "maintenance", "exit", "h1", "--return", "-o", "json"}, 300s);
    INFO(cmx.describe());
    REQUIRE(cmx.exit_code == 0);
    CHECK(json::parse(cmx.out).at("failed").empty());
    CHECK(wait_until([&] {
        auto r = rig.ctl("h1", {"ct", "show", "app02", "-o", "json"});
        return r.exit_code == 0 && json::parse(r.out).value("state", "") == "running";
    },
                     120s, 500ms));
    REQUIRE(rig.ctl("h1", {"ct", "stop", "app02"}).exit_code == 0);

    // hvd of the source killed (-9) in the middle of a migration that copies a disk: the
    // tunnel goes with it, so libvirt aborts; after the restart the task says it was
    // interrupted, the VM runs on the source and only there, and the volume made on the
    // destination is removed (the migration's record).
    const std::string h2virsh = "qemu:///system?socket=" + rig.dir() + "/h2/libvirt/run/libvirt-sock";
    auto kslow = rig.ctl_json("h3", {"vm", "migrate", "lmig01", "--to", "h2", "--with-local-disks", "--bandwidth", "1", "--async"});
    std::string ksid = kslow.at("id");
    REQUIRE(wait_until([&] {
        auto t = rig.ctl("h3", {"task", "show", ksid, "-o", "json"});
        return t.exit_code == 0 && json::parse(t.out).value("message", "").find("disks:") != std::string::npos;
    },
                       60s, 200ms));
    CHECK(rig.ctl("h2", {"storage", "volume", "show", "local", "lmig01-disk0"}).exit_code == 0);  // being copied into
    REQUIRE(rig.kill_hvd("h3"));
    auto restart = rig.rig({"start", "h3"});
    INFO(restart.describe() << rig.log("h3"));
    REQUIRE(restart.exit_code == 0);
    auto kt = rig.ctl_json("h3", {"task", "show", ksid});
    CHECK(kt.at("state") == "failed");
    CHECK(wait_until([&] {
        return rig.exec("h2", {"virsh", "-c", h2virsh, "list", "--all", "--name"}).out.find("lmig01") == std::string::npos;
    },
                     30s, 500ms));
    CHECK(rig.exec("h3", {"virsh", "-c", h3virsh, "domstate", "lmig01"}).out.find("running") != std::string::npos);
    CHECK(wait_until([&] { return rig.ctl_json("h3", {"vm", "show", "lmig01"}).value("state", "") == "running"; }, 30s));
    CHECK(wait_until([&] { return rig.ctl("h2", {"storage", "volume", "show", "local", "lmig01-disk0"}).exit_code == 4; }, 60s));
    CHECK(wait_until([&] {
        for (const auto& v : rig.ctl_json("h1", {"vm", "list"}))
            if (v.value("name", "") == "lmig01") return v.value("host", "") == "h3";
        return false;
    },
                     30s));
    // Maintenance of h3, where lmig01 runs with a disk only h3 sees: a blocker (h3 stays
    // "entering"), until enter --with-local-disks moves it with the disk copied; exit --return
    // copies it back.
    {
        auto blocked = rig.ctl("h1", {"host", "maintenance", "enter", "h3", "--wait", "-o", "json"}, 300s);
        INFO(blocked.describe());
        CHECK(blocked.exit_code == 5);
        auto bj = json::parse(blocked.out, nullptr, false);
        REQUIRE(bj.is_object());
        CHECK(bj["maintenance"].value("state", "") == "entering");
        CHECK(mentions(bj["maintenance"]["blockers"], "--with-local-disks"));
        CHECK(rig.ctl_json("h3", {"vm", "show", "lmig01"}).value("state", "") == "running");
        auto moved = rig.ctl("h1", {"host", "maintenance", "enter", "h3", "--wait", "--with-local-disks", "-o", "json"}, 300s);
        INFO(moved.describe() << rig.log("h3"));
        REQUIRE(moved.exit_code == 0);
        auto mj2 = json::parse(moved.out);
        CHECK(mj2["maintenance"].value("state", "") == "in");
        std::string lto;
        for (const auto& m : mj2["maintenance"]["moved"])
            if (m.value("guest", "") == "lmig01") {
                CHECK(m.value("local_disks", false));
                lto = m.value("to", "");
            }
        REQUIRE(!lto.empty());
        CHECK(rig.ctl_json(lto, {"vm", "show", "lmig01"}).value("state", "") == "running");
        CHECK(rig.ctl(lto, {"storage", "volume", "show", "local", "lmig01-disk0"}).exit_code == 0);
        CHECK(rig.ctl("h3", {"storage", "volume", "show", "local", "lmig01-disk0"}).exit_code == 4);
        auto back = rig.ctl("h1", {"host", "maintenance", "exit", "h3", "--return", "-o", "json"}, 300s);
        INFO(back.describe() << rig.log(lto));
        REQUIRE(back.exit_code == 0);
        CHECK(json::parse(back.out).at("failed").empty());
        CHECK(wait_until([&] {
            auto r = rig.ctl("h3", {"vm", "show", "lmig01", "-o", "json"});
            return r.exit_code == 0 && json::parse(r.out).value("state", "") == "running";
        },
                         120s, 500ms));
        CHECK(rig.ctl("h3", {"storage", "volume", "show", "local", "lmig01-disk0"}).exit_code == 0);
        CHECK(read_file(rig.ctl_json("h3", {"storage", "volume", "show", "local", "lmig01-disk0"}).at("path").get<std::string>())
                  .rfind("HV-DISK-MARK copied by NBD", 0) == 0);
    }
    REQUIRE(rig.ctl("h3", {"vm", "stop", "lmig01"}).exit_code == 0);
    // Stopped, it moves offline with its local disk copied (file to file, thin), to h2 and
    // back: the disk's content (the mark) goes with it, the source's volume goes after it.
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"h3", "h2"}, {"h2", "h3"}}) {
        auto odry = rig.ctl_json("h1", {"vm", "migrate", "lmig01", "--to", to, "--offline", "--dry-run"});
        CHECK(mentions(odry.at("blockers"), "--with-local-disks copies it"));
        auto om = rig.ctl("h1", {"vm", "migrate", "lmig01", "--to", to, "--offline", "--with-local-disks", "-o", "json"}, 300s);
        INFO(om.describe() << rig.log(from) << rig.log(to));
        REQUIRE(om.exit_code == 0);
        CHECK(json::parse(om.out).at("copied_disks").size() == 1);
        CHECK(rig.ctl_json(to, {"vm", "show", "lmig01"}).value("state", "") == "stopped");
        auto there = rig.ctl_json(to, {"storage", "volume", "show", "local", "lmig01-disk0"});
        CHECK(there.at("used_by") == json::array({"lmig01"}));
        CHECK(read_file(there.at("path").get<std::string>()).rfind("HV-DISK-MARK copied by NBD", 0) == 0);
        CHECK(rig.ctl(from, {"storage", "volume", "show", "local", "lmig01-disk0"}).exit_code == 4);
    }
    {
        // It boots on h3 from the copied disk and reads the mark.
        REQUIRE(rig.ctl("h3", {"vm", "start", "lmig01"}).exit_code == 0);
        // Its console log (truncated at each start: append='off'), at the path its definition
        // names (the host it was made on: the rig's hosts share one filesystem).
        auto dx = rig.exec("h3", {"virsh", "-c", h3virsh, "dumpxml", "lmig01"}).out;
        auto lp = dx.find("<log file='");
        REQUIRE(lp != std::string::npos);
        const std::string s3 = dx.substr(lp + 11, dx.find('\'', lp + 11) - lp - 11);
        CHECK(wait_until([&] { return read_file(s3).find("HV-GUEST-DISK HV-DISK-MARK copied by NBD") != std::string::npos; }, 60s,
                         250ms));
        REQUIRE(rig.ctl("h3", {"vm", "stop", "lmig01"}).exit_code == 0);
    }

    // The destination host dies (all its processes) in the middle of a migration: the VM
    // runs on where it was. h3 stays down for the degraded-pool checks below.
    auto dslow = rig.ctl_json("h2", {"vm", "migrate", "mig01", "--to", "h3", "--bandwidth", "1", "--async"});
    std::string dsid = dslow.at("id");
    REQUIRE(wait_until([&] {
        auto t = rig.ctl("h2", {"task", "show", dsid, "-o", "json"});
        return t.exit_code == 0 && json::parse(t.out).value("message", "").find("memory:") != std::string::npos;
    },
                       60s, 200ms));

    // A host dies (its monitor and OSD with it): degraded, still readable and writable
    // (min_size 2); back: its daemons start again and the data heals.
    REQUIRE(rig.rig({"kill", "h3"}).exit_code == 0);
    auto dt = rig.ctl("h2", {"task", "wait", dsid, "-o", "json"}, 120s);
    INFO(dt.describe());
    CHECK(dt.exit_code != 0);
    CHECK(rig.ctl_json("h2", {"vm", "show", "mig01"}).at("state") == "running");
    CHECK(rig.exec("h2", {"virsh", "-c", h2virsh, "domstate", "mig01"}).out.find("running") != std::string::npos);
    REQUIRE(rig.ctl("h2", {"vm", "stop", "mig01"}).exit_code == 0);
    REQUIRE(wait_until([&] {
                auto s = rig.ctl_json("h1", {"ceph", "status"});
                return s.value("osds_up", 0) == 2 && mentions(s.at("summary"), "down");
            },
                       120s, 1s));
    auto w = rig.ctl("h1", {"storage", "volume", "create", "vmpool", "while-degraded", "--size", "64M", "--provision",
                            "eager-zeroed"},
                     120s);
    INFO(w.describe());
    CHECK(w.exit_code == 0);
    CHECK(rig.ctl("h2", {"storage", "volume", "show", "vmpool", "while-degraded"}).exit_code == 0);
    REQUIRE(rig.rig({"start", "h3"}).exit_code == 0);
    REQUIRE(wait_until([&] { return healthy(rig.ctl_json("h1", {"ceph", "status"})); }, 240s, 1s));
    CHECK(rig.ctl_json("h3", {"ceph", "status"}).at("mons_in_quorum") == 3);

    // kill -9 in the middle of an OSD create (the whole host): after the restart nothing of
    // it is left (no record, no OSD in Ceph's map), and the host's other daemons run again.
    sparse(rig.dir() + "/h2-osd2.img", 10ull << 30);
    auto task = rig.ctl_json("h2", {"ceph", "osd", "create", rig.dir() + "/h2-osd2.img", "--async"});
    std::string tid = task.at("id");
    bool in_mkfs = wait_until([&] {
        auto t = rig.ctl("h2", {"task", "show", tid, "-o", "json"});
        if (t.exit_code != 0) return false;
        auto j = json::parse(t.out, nullptr, false);
        return j.is_object() && j.value("message", "").find("BlueStore") != std::string::npos;
    },
                              60s, 100ms);
    CHECK(in_mkfs);
    REQUIRE(rig.rig({"kill", "h2"}).exit_code == 0);
    REQUIRE(rig.rig({"start", "h2"}).exit_code == 0);
    REQUIRE(wait_until([&] {
                auto s = rig.ctl_json("h1", {"ceph", "status"});
                return s.value("osds", 0) == 3 && healthy(s);
            },
                       240s, 1s));
    st = rig.ctl_json("h2", {"ceph", "status"});
    CHECK(st.at("osd_list").size() == 3);
    CHECK(st.at("osd_list").dump().find("h2-osd2.img") == std::string::npos);
    // The device is free again: it can be used now.
    auto reuse = rig.ctl("h2", {"ceph", "osd", "create", rig.dir() + "/h2-osd2.img", "--zap", "-o", "json"}, 300s);
    INFO(reuse.describe());
    CHECK(reuse.exit_code == 0);

    // ---- HA (docs/ha.md) on the same rig: each host's watchdog is the rig's emulator.
    const std::string h1virsh = "qemu:///system?socket=" + rig.dir() + "/h1/libvirt/run/libvirt-sock";
    std::string last_ha;  // the last answer, for the messages of a failed wait
    auto ha_of = [&](const std::string& from, const std::string& guest) {
        auto r = rig.ctl(from, {"ha", "status", "-o", "json"}, 20s);
        last_ha = r.describe();
        if (r.exit_code != 0) return json::object();
        auto all = json::parse(r.out);  // kept: a range over .at() of a temporary would dangle
        for (const auto& g : all.at("guests"))
            if (g.value("guest", "") == guest) return g;
        return json::object();
    };
    // Whether `virsh list --name` output names the domain (whole lines: lmig01 is not mig01).
    auto names = [](const std::string& out, const std::string& vm) {
        return ("\n" + out).find("\n" + vm + "\n") != std::string::npos;
    };
    auto runs_on = [&](const std::string& uri_host, const std::string& vm) {
        auto uri = "qemu:///system?socket=" + rig.dir() + "/" + uri_host + "/libvirt/run/libvirt-sock";
        auto r = rig.exec(uri_host, {"virsh", "-c", uri, "list", "--name"});
        return r.exit_code == 0 && names(r.out, vm);
    };
    // Refused, nothing changes: a disk on a pool only its host reaches (named), a bad limit,
    // an unknown group, a group of an unknown host.
    auto local_ha = rig.ctl("h1", {"ha", "enable", "lmig01"});  // forwarded to h3
    INFO(local_ha.describe());
    CHECK(local_ha.exit_code == 5);
    CHECK(local_ha.err.find("disk disk0 of vm 'lmig01' is on pool 'local'") != std::string::npos);
    CHECK(rig.ctl("h2", {"ha", "enable", "mig01", "--max-restart", "11"}).exit_code == 3);
    CHECK(rig.ctl("h2", {"ha", "enable", "mig01", "--group", "nope"}).exit_code == 4);
    CHECK(rig.ctl("h2", {"ha", "group", "create", "bad", "--host", "h9:1"}).exit_code == 4);
    CHECK(rig.ctl_json("h3", {"ha", "status"}).at("guests").empty());
    REQUIRE(rig.ctl("h2", {"ha", "group", "create", "prefer-h1", "--host", "h1:2", "--host", "h3:1"}).exit_code == 0);
    CHECK(rig.ctl("h3", {"ha", "group", "create", "prefer-h1", "--host", "h1:2"}).exit_code == 5);

    // mig01 (rbd disk, on h2) under HA with group prefer-h1 (h1:2, h3:1, failback on): h2 is
    // not in the group, so the manager moves it to h1 at once (state "migrate", a live
    // migration by h2's agent), where it is started and ready; h1's watchdog armed.
    REQUIRE(rig.ctl("h2", {"vm", "start", "mig01"}).exit_code == 0);
    auto ready_on = [&](const std::string& from, const std::string& host) {
        auto g = ha_of(from, "mig01");
        return g.value("state", "") == "started" && g.value("host", "") == host &&
               g.value("why", "").find("ready") != std::string::npos;
    };
    // The epoch the copy of mig01 started last announced on its console ("HV-GUEST-EPOCH <e> from
    // <seq>", hv.epoch), or -1 before it booted that far. The log is at the path of the host it
    // was made on (h1; the rig's hosts share one filesystem), truncated at each start.
    const std::string mig01_console = rig.dir() + "/h1/state/logs/mig01.serial.log";
    auto boot_epoch = [&] {
        auto log = read_file(mig01_console);
        auto at = log.rfind("HV-GUEST-EPOCH ");
        long long e = -1;
        if (at == std::string::npos || std::sscanf(log.c_str() + at, "HV-GUEST-EPOCH %lld", &e) != 1) return -1LL;
        return e;
    };
    // Each HA restart boots a new copy: it must come up far enough to take its epoch (the next
    // step would otherwise kill a copy that never ran, and the epoch check below could not tell).
    std::vector<long long> restart_epochs;
    auto await_boot = [&](const char* step) {
        long long e = -1;
        bool booted = wait_until([&] { return (e = boot_epoch()) > (restart_epochs.empty() ? 0 : restart_epochs.back()); }, 120s, 250ms);
        INFO(step << ": console of the restarted mig01: " << read_file(mig01_console));
        CHECK(booted);
        if (booted) restart_epochs.push_back(e);
    };
    // How often the rig's emulated watchdog reset h1 so far (one log line each).
    auto resets = [&] {
        auto log = read_file(rig.dir() + "/h1/watchdog.log");
        std::size_t n = 0;
        for (auto p = log.find("is reset"); p != std::string::npos; p = log.find("is reset", p + 1)) ++n;
        return n;
    };
    auto fb0 = Clock::now();
    auto en = rig.ctl("h1", {"ha", "enable", "mig01", "--group", "prefer-h1"});
    INFO(en.describe() << rig.log("h2"));
    REQUIRE(en.exit_code == 0);
    bool ha_ready = wait_until([&] { return ready_on("h3", "h1"); }, 120s, 300ms);
    auto fb_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - fb0).count();
    INFO(last_ha << rig.log("h1") << rig.log("h2"));
    REQUIRE(ha_ready);
    WARN("HA placement by group priority (h2 -> h1, live migration, until ready): " << fb_ms << " ms");
    CHECK(runs_on("h1", "mig01"));
    CHECK(!runs_on("h2", "mig01"));
    CHECK(ha_of("h3", "mig01").value("restarts", -1) == 0);  // moved, not restarted
    CHECK(rig.log("h2").find("failback to h1") != std::string::npos);
    auto hs = rig.ctl_json("h1", {"ha", "status"});
    CHECK(hs.at("manager").is_string());
    for (const auto& h : hs.at("hosts"))
        if (h.at("host") == "h1") CHECK(h.at("watchdog").value("armed", false));
    CHECK(mentions(json::array({hs.at("guests")[0].at("fencing")[0]}), "Ceph blocklist"));

    // The etcd leader lost with the host: h1 is made etcd's leader first (etcdctl move-leader
    // with h1's host certificate), so the kill below takes the store's leader too and the
    // others elect a new one while they detect, fence and recover.
    auto etcd_role = [&](const std::string& host) {
        const json st = rig.ctl_json("h2", {"cluster", "status"});  // (a range-for over a temporary's member dangles)
        for (const auto& m : st.at("members"))
            if (m.value("name", "") == host) return m.value("role", "");
        return std::string();
    };
    {
        const std::string tls = rig.dir() + "/h1/state/cluster/etcd-tls/";
        std::string eps;
        for (const auto* h : {"h1", "h2", "h3"}) eps += (eps.empty() ? "" : ",") + ("https://" + rig[h].address + ":2379");
        std::vector<std::string> ctl{"env", "ETCDCTL_API=3", "etcdctl", "--cacert=" + tls + "ca.crt", "--cert=" + tls + "host.crt",
                                     "--key=" + tls + "host.key", "--endpoints=" + eps, "--dial-timeout=5s"};
        auto with = [&](std::vector<std::string> args) {
            auto argv = ctl;
            argv.insert(argv.end(), args.begin(), args.end());
            return rig.exec("h2", argv);
        };
        auto list = with({"member", "list", "-w", "json"});
        std::string shown;
        for (const auto& a : ctl) shown += a + " ";
        INFO(shown << ": " << list.describe());
        REQUIRE(list.exit_code == 0);
        std::string h1_id;
        const json members = json::parse(list.out);
        for (const auto& m : members.at("members"))
            if (m.value("name", "") == "h1") {
                std::ostringstream hex;
                hex << std::hex << m.at("ID").get<std::uint64_t>();
                h1_id = hex.str();
            }
        REQUIRE(!h1_id.empty());
        if (etcd_role("h1") != "leader") {
            auto mv = with({"move-leader", h1_id});
            INFO(mv.describe());
            REQUIRE(mv.exit_code == 0);
        }
        CHECK(wait_until([&] { return etcd_role("h1") == "leader"; }, 20s, 500ms));
    }

    // h1's hvd killed: nobody pets its watchdog, which resets the host (every process of it);
    // its lease runs out; the manager fences it (Ceph blocklist) and restarts mig01 on h3 (the
    // group's next), ready. Never two copies: h1's QEMU is gone before h3's starts.
    auto f0 = Clock::now();
    const auto resets0 = resets();
    REQUIRE(rig.kill_hvd("h1"));
    bool recovered = wait_until([&] {
        auto g = ha_of("h2", "mig01");
        return g.value("state", "") == "started" && g.value("host", "") == "h3";
    },
                                120s, 200ms);
    auto failover = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - f0).count();
    INFO(last_ha << rig.log("h2") << rig.log("h3"));
    REQUIRE(recovered);
    WARN("HA failover of a TCG guest on rbd (hvd of its host killed -> watchdog -> fenced -> ready on h3): " << failover
                                                                                                             << " ms");
    CHECK(resets() == resets0 + 1);
    CHECK(runs_on("h3", "mig01"));
    {
        const auto r2 = etcd_role("h2"), r3 = etcd_role("h3");
        INFO("etcd roles after the leader's host was lost: h2 " << r2 << ", h3 " << r3);
        CHECK((r2 == "leader" || r3 == "leader"));
    }
    await_boot("after the killed hvd");
    CHECK(!runs_on("h2", "mig01"));
    CHECK(rig.exec("h1", {"virsh", "-c", h1virsh, "list", "--name"}).exit_code != 0);  // h1's libvirtd died with it
    hs = rig.ctl_json("h2", {"ha", "status"});
    for (const auto& h : hs.at("hosts"))
        if (h.at("host") == "h1") {
            REQUIRE(h.at("fenced").is_object());
            CHECK(h.at("fenced").at("storage").dump().find("blocklisted") != std::string::npos);
        }
    CHECK(ha_of("h2", "mig01").value("restarts", 0) == 1);

    // h1 back: its stale definition of mig01 goes (the disk stays), the fence is lifted, and
    // then mig01 fails back to h1 (higher priority) by live migration: once, never two copies.
    auto back0 = Clock::now();
    REQUIRE(rig.rig({"start", "h1"}).exit_code == 0);
    CHECK(wait_until([&] {
        auto all = rig.ctl_json("h2", {"ha", "status"});
        for (const auto& h : all.at("hosts"))
            if (h.at("host") == "h1") return h.at("fenced").is_null();
        return false;
    },
                     90s, 500ms));
    bool failed_back = wait_until([&] { return ready_on("h2", "h1"); }, 120s, 300ms);
    auto back_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - back0).count();
    INFO(last_ha << rig.log("h1") << rig.log("h3"));
    REQUIRE(failed_back);
    WARN("HA failback after the host came back (h1 started -> fence lifted -> mig01 migrated h3 -> h1, ready): "
         << back_ms << " ms");
    CHECK(runs_on("h1", "mig01"));
    CHECK(!runs_on("h3", "mig01"));
    CHECK(ha_of("h2", "mig01").value("restarts", 0) == 1);  // a migration is no restart
    CHECK(rig.ctl("h1", {"storage", "volume", "show", "vmpool", "mig01-disk0"}).exit_code == 0);

    // A planned stop of h1's hvd (SIGTERM): mig01 is frozen, not recovered, and runs on; hvd
    // back: started again on h1.
    REQUIRE(wait_until([&] { return healthy(rig.ctl_json("h2", {"ceph", "status"})); }, 240s, 1s));
    const auto resets1 = resets();
    REQUIRE(rig.kill_hvd("h1", SIGTERM));
    CHECK(wait_until([&] { return ha_of("h3", "mig01").value("state", "") == "freeze"; }, 30s, 500ms));
    std::this_thread::sleep_for(8s);  // past the lease and the watchdog: nothing moves
    CHECK(ha_of("h3", "mig01").value("state", "") == "freeze");
    CHECK(resets() == resets1);  // disarmed with the magic close: no reset
    CHECK(runs_on("h1", "mig01"));
    CHECK(!runs_on("h3", "mig01"));
    REQUIRE(rig.rig({"start", "h1"}).exit_code == 0);
    CHECK(wait_until([&] {
        auto g = ha_of("h3", "mig01");
        return g.value("state", "") == "started" && g.value("host", "") == "h1";
    },
                     60s, 500ms));

    // A fault of h1 that its watchdog answers with a reset: first h1's agent is active with its
    // watchdog armed (a fault before that is fenced through Ceph alone, with no reset: the clean
    // run caught the test cutting that early) and Ceph is healthy; then the fault; then mig01 is
    // restarted on h3 (the group's next), h1 was reset once, and the new copy booted.
    auto fail_over_to_h3 = [&](const std::string& what, const std::function<void()>& fault) {
        REQUIRE(wait_until([&] {
            auto st = rig.ctl_json("h2", {"ha", "status"});
            for (const auto& h : st.value("hosts", json::array()))
                if (h.value("host", "") == "h1")
                    return h.value("agent", "") == "active" && h.value("watchdog", json::object()).value("armed", false);
            return false;
        },
                           60s, 500ms));
        REQUIRE(wait_until([&] { return healthy(rig.ctl_json("h2", {"ceph", "status"})); }, 240s, 1s));
        const auto resets_before = resets();
        auto t0 = Clock::now();
        fault();
        bool moved = wait_until([&] {
            auto g = ha_of("h2", "mig01");
            return g.value("state", "") == "started" && g.value("host", "") == "h3";
        },
                                120s, 200ms);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
        INFO(what << ": " << last_ha << rig.log("h2") << rig.log("h3"));
        REQUIRE(moved);
        WARN("HA failover after " << what << " (h1 -> h3): " << ms << " ms");
        CHECK(resets() == resets_before + 1);
        CHECK(runs_on("h3", "mig01"));
        await_boot(what.c_str());
    };

    // h1's link cut (its hvd runs on but reaches no etcd quorum): no good keepalive, no pet,
    // its watchdog resets it; the others fence it and restart mig01 on h3.
    fail_over_to_h3("a cut link", [&] { REQUIRE(rig.rig({"cut", "h1"}).exit_code == 0); });
    // Healed and restarted: the stale copy on h1 goes before the fence is lifted, then mig01
    // fails back to h1.
    REQUIRE(rig.rig({"heal", "h1"}).exit_code == 0);
    REQUIRE(rig.rig({"start", "h1"}).exit_code == 0);
    CHECK(wait_until([&] { return ready_on("h2", "h1"); }, 150s, 500ms));
    CHECK(runs_on("h1", "mig01"));
    CHECK(!runs_on("h3", "mig01"));

    // h1's hvd frozen (SIGSTOP) with mig01 on it: no pets, its watchdog resets the host (the
    // frozen hvd with it, so it never thaws into a second copy); mig01 restarted on h3, and
    // back on h1 when h1 is.
    REQUIRE(wait_until([&] { return healthy(rig.ctl_json("h2", {"ceph", "status"})); }, 240s, 1s));
    const auto resets3 = resets();
    REQUIRE(rig.kill_hvd("h1", SIGSTOP));
    CHECK(wait_until([&] {
        auto g = ha_of("h2", "mig01");
        return g.value("state", "") == "started" && g.value("host", "") == "h3";
    },
                     120s, 200ms));
    INFO(last_ha << rig.log("h2") << rig.log("h3"));
    CHECK(resets() == resets3 + 1);
    CHECK(runs_on("h3", "mig01"));
    await_boot("after the frozen hvd");
    REQUIRE(rig.rig({"start", "h1"}).exit_code == 0);
    CHECK(wait_until([&] { return ready_on("h2", "h1"); }, 150s, 500ms));
    CHECK(runs_on("h1", "mig01"));
    CHECK(!runs_on("h3", "mig01"));
    CHECK(ha_of("h2", "mig01").value("restarts", 0) == 3);

    // One-way loss: every packet h1 sends on its link dropped (iptables in its namespace; this
    // kernel has no netem), while it still hears the others. Its keepalives get no answer: no
    // pet, its watchdog resets it; the others fence it and restart mig01 on h3; back on h1 once
    // the loss ends and h1 is started.
    const std::vector<std::string> drop{"OUTPUT", "-o", "rig0", "-j", "DROP"};
    auto ipt = [&](const char* op) {
        std::vector<std::string> cmd{"iptables", "-w", op};
        cmd.insert(cmd.end(), drop.begin(), drop.end());
        return rig.exec("h1", cmd);
    };
    fail_over_to_h3("one-way loss (h1's outgoing packets dropped)", [&] {
        auto add = ipt("-A");
        INFO(add.describe());
        REQUIRE(add.exit_code == 0);
    });
    REQUIRE(ipt("-D").exit_code == 0);
    REQUIRE(rig.rig({"start", "h1"}).exit_code == 0);
    CHECK(wait_until([&] { return ready_on("h2", "h1"); }, 150s, 500ms));
    CHECK(runs_on("h1", "mig01"));
    CHECK(!runs_on("h3", "mig01"));
    CHECK(ha_of("h2", "mig01").value("restarts", 0) == 4);

    // Never two copies, by the guest's own account: mig01 writes "HVEPOCH <epoch> <seq>" records
    // on its disk (hv.epoch, scripts/build-test-guest.sh), a new epoch at every boot, seq going
    // on from the largest it found. Read from the image: in seq order the epoch never goes
    // down (no older copy wrote after a newer one had started), over every start, restart and
    // live migration above.
    {
        const std::string img = rig.dir() + "/mig01-epochs.img";
        auto ex = rig.exec("h2", {"rbd", "-c", rig.dir() + "/h2/state/ceph/ceph.conf", "export", "vmpool/mig01-disk0", img});
        INFO(ex.describe());
        REQUIRE(ex.exit_code == 0);
        std::ifstream f(img, std::ios::binary);
        std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        std::vector<std::pair<long long, long long>> recs;  // seq, epoch
        for (std::size_t i = 1; i <= 8192 && (i + 1) * 512 <= data.size(); ++i) {
            long long e = 0, q = 0;
            if (std::sscanf(data.c_str() + i * 512, "HVEPOCH %lld %lld", &e, &q) == 2) recs.emplace_back(q, e);
        }
        std::filesystem::remove(img);
        std::sort(recs.begin(), recs.end());
        std::set<long long> epochs;
        std::string back;
        for (std::size_t i = 0; i < recs.size(); ++i) {
            epochs.insert(recs[i].second);
            if (i > 0 && recs[i].second < recs[i - 1].second && back.empty())
                back = "seq " + std::to_string(recs[i].first) + " by epoch " + std::to_string(recs[i].second) +
                       " after seq " + std::to_string(recs[i - 1].first) + " by epoch " +
                       std::to_string(recs[i - 1].second);
            if (i > 0 && recs[i].first == recs[i - 1].first && back.empty())
                back = "seq " + std::to_string(recs[i].first) + " written by epochs " +
                       std::to_string(recs[i - 1].second) + " and " + std::to_string(recs[i].second);
        }
        INFO("older writer after a newer one: " << back);
        CHECK(back.empty());
        // The guest writes a record every 0.2 s of its own (TCG) time plus an fsync; how many land depends
        // on the machine's load (81 to 369 seen). Enough that every boot wrote several is the point.
        CHECK(recs.size() > 40);
        // Every restarted copy wrote under the epoch it announced, each newer than the one before.
        std::string per_epoch;
        for (auto e : epochs)
            per_epoch += " " + std::to_string(e) + ":" +
                         std::to_string(std::count_if(recs.begin(), recs.end(), [e](const auto& r) { return r.second == e; }));
        INFO("records per epoch (epoch:count):" << per_epoch << "; epochs the HA restarts announced: "
                                                  << json(restart_epochs).dump());
        CHECK(restart_epochs.size() == 4);
        for (auto e : restart_epochs) CHECK(epochs.count(e) == 1);
        CHECK(epochs.size() >= 5);  // the first boot and the four HA restarts at least
        WARN("epoch checker: " << recs.size() << " records of " << epochs.size()
                               << " boots on mig01's disk, none by an older copy after a newer one");
    }

    // An admin's stop becomes HA's requested state: not started again; a start: started.
    REQUIRE(rig.ctl("h2", {"vm", "stop", "mig01"}).exit_code == 0);  // forwarded to h1
    CHECK(ha_of("h2", "mig01").value("requested", "") == "stopped");
    std::this_thread::sleep_for(3s);
    CHECK(!runs_on("h1", "mig01"));
    CHECK(wait_until([&] { return ha_of("h2", "mig01").value("state", "") == "stopped"; }, 30s, 500ms));
    REQUIRE(rig.ctl("h2", {"vm", "start", "mig01"}).exit_code == 0);
    CHECK(ha_of("h2", "mig01").value("requested", "") == "started");
    CHECK(wait_until([&] { return ha_of("h2", "mig01").value("why", "").find("ready on h1") != std::string::npos; }, 30s, 500ms));

    // A host shutdown: hv-guests.service's ExecStop (`hvctl autostart stop-all`) applies the
    // cluster's HA shutdown policy before it stops any guest (docs/ha.md). A "reboot" of a rig
    // host: hvd stopped, the boot id it recorded replaced (as after a boot), hvd started.
    int boots = 0;
    auto reboot = [&](const std::string& h) {
        REQUIRE(rig.kill_hvd(h, SIGTERM));
        std::ofstream(rig.dir() + "/" + h + "/state/boot_id") << "00000000-0000-4000-8000-00000000000" << ++boots << "\n";
        REQUIRE(rig.rig({"start", h}).exit_code == 0);
    };
    CHECK(rig.ctl_json("h3", {"ha", "settings"}).value("shutdown_policy", "") == "freeze");
    CHECK(rig.ctl("h3", {"ha", "settings", "--shutdown-policy", "failover"}).exit_code != 0);
    CHECK(rig.ctl_json("h2", {"ha", "settings"}).value("shutdown_policy", "") == "freeze");
    // freeze: mig01 is stopped with h1 and frozen: not recovered elsewhere, not started again
    // while h1 still runs; after h1's boot it starts on h1 again.
    auto sd = rig.ctl("h1", {"autostart", "stop-all", "-o", "json"}, 240s);
    INFO(sd.describe() << rig.log("h1"));
    REQUIRE(sd.exit_code == 0);
    CHECK(json::parse(sd.out).at("ha").value("policy", "") == "freeze");
    CHECK(!runs_on("h1", "mig01"));
    bool frozen = wait_until([&] { return ha_of("h2", "mig01").value("state", "") == "freeze"; }, 30s, 500ms);
    INFO(last_ha);
    CHECK(frozen);
    std::this_thread::sleep_for(5s);  // passes of the agent and the manager: nothing starts it
    CHECK(!runs_on("h1", "mig01"));
    CHECK(!runs_on("h2", "mig01"));
    CHECK(!runs_on("h3", "mig01"));
    CHECK(ha_of("h2", "mig01").value("requested", "") == "started");  // a shutdown is no admin's stop
    reboot("h1");
    CHECK(wait_until([&] { return ready_on("h2", "h1"); }, 120s, 500ms));
    INFO(last_ha << rig.log("h1"));
    CHECK(runs_on("h1", "mig01"));
    CHECK(ha_of("h2", "mig01").value("restarts", -1) == 4);  // started where it was: no recovery

    // migrate: h1 enters maintenance first, mig01 moves live (not restarted); after h1's boot
    // the maintenance is left and mig01 comes back to h1.
    REQUIRE(rig.ctl("h3", {"ha", "settings", "--shutdown-policy", "migrate"}).exit_code == 0);
    CHECK(rig.ctl_json("h1", {"ha", "settings"}).value("shutdown_policy", "") == "migrate");
    sd = rig.ctl("h1", {"autostart", "stop-all", "-o", "json"}, 300s);
    INFO(sd.describe() << rig.log("h1"));
    REQUIRE(sd.exit_code == 0);
    auto sdj = json::parse(sd.out);
    CHECK(sdj.at("ha").value("policy", "") == "migrate");
    std::string went_to;
    for (const auto& m : sdj.at("ha").at("maintenance").at("maintenance").value("moved", json::array()))
        if (m.value("guest", "") == "mig01") went_to = m.value("to", "");
    REQUIRE((went_to == "h2" || went_to == "h3"));
    CHECK(runs_on(went_to, "mig01"));
    CHECK(!runs_on("h1", "mig01"));
    auto mrec = rig.ctl_json("h2", {"host", "maintenance", "status", "h1"}).at("maintenance");
    CHECK(mrec.value("reason", "") == "host shutdown");
    // Ready on a member: where maintenance put it, or h3 (HA's failback: its group prefers h3 to
    // h2, h1 being in maintenance).
    bool ready_there = wait_until([&] {
        if (!ready_on("h2", "h2") && !ready_on("h2", "h3")) return false;
        went_to = ha_of("h2", "mig01").value("host", "");
        return true;
    },
                                  90s, 500ms);
    INFO(last_ha << rig.ctl("h2", {"ha", "status", "-o", "json"}).out << rig.log(went_to));
    CHECK(ready_there);
    CHECK(ha_of("h2", "mig01").value("restarts", -1) == 4);  // moved, not restarted
    reboot("h1");
    bool back_home = wait_until([&] { return runs_on("h1", "mig01") && !runs_on("h2", "mig01") && !runs_on("h3", "mig01"); }, 180s, 1s);
    INFO(last_ha << rig.log("h1"));
    CHECK(back_home);
    CHECK(wait_until([&] { return rig.ctl_json("h2", {"host", "maintenance", "status", "h1"}).at("maintenance").is_null(); },
                     60s, 1s));
    CHECK(wait_until([&] { return ready_on("h2", "h1"); }, 60s, 500ms));
    CHECK(ha_of("h2", "mig01").value("restarts", -1) == 4);
    REQUIRE(rig.ctl("h2", {"ha", "settings", "--shutdown-policy", "freeze"}).exit_code == 0);

    REQUIRE(rig.ctl("h3", {"ha", "disable", "mig01"}).exit_code == 0);
    CHECK(rig.ctl("h3", {"ha", "disable", "mig01"}).exit_code == 4);
    CHECK(rig.ctl("h2", {"ha", "group", "delete", "prefer-h1"}).exit_code == 0);
    CHECK(rig.ctl("h1", {"vm", "stop", "mig01"}).exit_code == 0);

    // An HA guest deleted through hv (forwarded to its host) leaves HA; it is not defined again.
    REQUIRE(rig.ctl("h2", {"ha", "enable", "mig01", "--state", "stopped"}).exit_code == 0);
    auto gone = rig.ctl("h3", {"vm", "delete", "mig01"}, 60s);
    INFO(gone.describe());
    REQUIRE(gone.exit_code == 0);
    CHECK(wait_until([&] { return ha_of("h2", "mig01").empty(); }, 30s, 500ms));
    CHECK(rig.ctl("h2", {"ha", "disable", "mig01"}).exit_code == 4);
    std::this_thread::sleep_for(2s);
    for (const auto& h : {"h1", "h2", "h3"}) {
        auto uri = "qemu:///system?socket=" + rig.dir() + "/" + h + "/libvirt/run/libvirt-sock";
        CHECK(!names(rig.exec(h, {"virsh", "-c", uri, "list", "--all", "--name"}).out, "mig01"));
    }
}
