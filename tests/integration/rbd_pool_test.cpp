// The rbd pool backend against a real Ceph cluster (scripts/ceph-lab.sh: 1 mon, 1 mgr, 3
// OSDs on files, pool "rbd" with 3 replicas), started in the private libvirtd's network
// namespace so that hvd (in_libvirt_netns) and QEMU both reach its monitor on 127.0.0.1 there.
// Driven through hvctl; Ceph's own `rbd` tool checks what hv did.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {

class CephLab {
public:
    CephLab() {
        script_ = env("HV_CEPH_LAB");
        char tmpl[] = "/tmp/hv-ceph-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        auto r = run({script_, "start", dir, "--netns", libvirt_netns_path()}, 300s);
        INFO(r.describe());
        if (r.exit_code == 77) {
            skipped = true;
            return;
        }
        REQUIRE(r.exit_code == 0);
    }
    ~CephLab() {
        if (std::getenv("HV_TEST_KEEP")) return;
        run({script_, "stop", dir}, 120s);
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    // `rbd` as client.admin inside the lab's namespace.
    Result rbd(std::vector<std::string> args) const {
        std::vector<std::string> argv{script_, "exec", dir, "--", "rbd", "-c", dir + "/ceph.conf"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(argv, 60s);
    }
    Result ceph(std::vector<std::string> args) const {
        std::vector<std::string> argv{script_, "exec", dir, "--", "ceph", "-c", dir + "/ceph.conf"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(argv, 60s);
    }
    std::string dir;
    bool skipped = false;

private:
    std::string script_;
};

}  // namespace

TEST_CASE("rbd pool: volumes in a real Ceph pool through librbd, a VM with an rbd disk, bad input refused", "[storage][rbd]") {
    skip_unless_runnable();
    CephLab lab;
    if (lab.skipped) {
        WARN("Ceph is not installed (scripts/install-deps.sh): the rbd pool test is skipped");
        return;
    }
    Hvd hvd(true, "", true);

    // --- bad input: nothing added -------------------------------------------------------
    {
        auto no_keyring = hvd.ctl({"storage", "pool", "add", "vmpool", "--type", "rbd", "--monitors", "127.0.0.1", "--user",
                                   "hv", "--keyring", lab.dir + "/nonexistent.keyring"});
        CHECK(no_keyring.exit_code == 3);
        CHECK_THAT(no_keyring.err, Catch::Contains("cannot be read"));
        // A key Ceph does not know for client.hv.
        std::string wrong = lab.dir + "/wrong.keyring";
        std::ofstream(wrong) << "[client.hv]\n\tkey = AQBpGhNrRZKEORAA8RIwxBkFqqK1N3/hMJDJOQ==\n";
        auto bad_key = hvd.ctl({"storage", "pool", "add", "vmpool", "--type", "rbd", "--monitors", "127.0.0.1", "--user",
                                "hv", "--keyring", wrong},
                               90s);
        INFO(bad_key.describe());
        CHECK(bad_key.exit_code == 3);
        CHECK_THAT(bad_key.err, Catch::Contains("refused client.hv"));
        auto no_pool = hvd.ctl({"storage", "pool", "add", "vmpool", "--type", "rbd", "--monitors", "127.0.0.1", "--pool",
                                "nosuch", "--user", "hv", "--keyring", lab.dir + "/hv.keyring"},
                               90s);
        CHECK(no_pool.exit_code == 3);
        CHECK_THAT(no_pool.err, Catch::Contains("has no pool 'nosuch'"));
        auto with_path = hvd.ctl({"storage", "pool", "add", "vmpool", "--type", "rbd", "--path", "/tmp", "--monitors",
                                  "127.0.0.1", "--user", "hv", "--keyring", lab.dir + "/hv.keyring"});
        CHECK(with_path.exit_code == 3);
        auto pools = hvd.ctl_json({"storage", "pool", "list"});
        CHECK(pools.dump().find("vmpool") == std::string::npos);
    }

    // --- the pool -----------------------------------------------------------------------
    auto added = hvd.ctl({"storage", "pool", "add", "vmpool", "--type", "rbd", "--monitors", "127.0.0.1", "--pool", "rbd",
                          "--user", "hv", "--keyring", lab.dir + "/hv.keyring", "-o", "json"},
                         90s);
    INFO(added.describe() << hvd.log_tail());
    REQUIRE(added.exit_code == 0);
    auto pool = hvd.ctl_json({"storage", "pool", "show", "vmpool"});
    CHECK(pool.at("active") == true);
    CHECK(pool.at("type") == "rbd");
    CHECK(pool.at("caps").at("shared") == true);
    CHECK(pool.at("capacity").get<std::uint64_t>() > 0);
    // The libvirt secret QEMU will authenticate with exists, with the pool's usage name.
    auto secrets = virsh({"secret-list"});
    CHECK_THAT(secrets.out, Catch::Contains("hv pool vmpool"));

    // --- volumes: every allowed mode, refused modes refused ----------------------------
    auto thin = hvd.ctl({"storage", "volume", "create", "vmpool", "thin1", "--size", "1G", "--format", "raw", "-o", "json"},
                        120s);
    INFO(thin.describe());
    REQUIRE(thin.exit_code == 0);
    auto info = lab.rbd({"info", "rbd/thin1", "--format", "json"});
    INFO(info.describe());
    REQUIRE(info.exit_code == 0);
    CHECK(json::parse(info.out).at("size") == 1073741824);
    auto v = hvd.ctl_json({"storage", "volume", "show", "vmpool", "thin1"});
    CHECK(v.at("provision") == "thin");
    CHECK(v.at("allocation").get<std::uint64_t>() < 8u << 20);

    auto eager = hvd.ctl({"storage", "volume", "create", "vmpool", "eager1", "--size", "64M", "--format", "raw",
                          "--provision", "eager-zeroed"},
                         180s);
    INFO(eager.describe());
    REQUIRE(eager.exit_code == 0);
    auto du = lab.rbd({"du", "rbd/eager1", "--format", "json"});
    INFO(du.describe());
    REQUIRE(du.exit_code == 0);
    // Every object written: RBD counts 64 MiB used (zeros stored, not holes).
    CHECK(json::parse(du.out).at("images").at(0).at("used_size") == 64u << 20);
    CHECK(hvd.ctl_json({"storage", "volume", "show", "vmpool", "eager1"}).at("provision") == "eager-zeroed");

    auto lazy = hvd.ctl({"storage", "volume", "create", "vmpool", "lazy1", "--size", "64M", "--format", "raw",
                         "--provision", "lazy-zeroed"});
    CHECK(lazy.exit_code == 8);
    CHECK_THAT(lazy.err, Catch::Contains("cannot provision lazy-zeroed"));
    auto qcow = hvd.ctl({"storage", "volume", "create", "vmpool", "q1", "--size", "64M", "--format", "qcow2"});
    CHECK(qcow.exit_code == 8);
    CHECK_THAT(qcow.err, Catch::Contains("cannot store format qcow2"));
    CHECK(lab.rbd({"ls", "rbd"}).out.find("lazy1") == std::string::npos);
    CHECK(lab.rbd({"ls", "rbd"}).out.find("q1") == std::string::npos);
    auto dup = hvd.ctl({"storage", "volume", "create", "vmpool", "thin1", "--size", "64M", "--format", "raw"});
    CHECK(dup.exit_code == 5);

    // Grow (eager: the new space zeroed too), never shrink.
    REQUIRE(hvd.ctl({"storage", "volume", "resize", "vmpool", "eager1", "--size", "128M"}, 180s).exit_code == 0);
    CHECK(json::parse(lab.rbd({"du", "rbd/eager1", "--format", "json"}).out).at("images").at(0).at("used_size") ==
          128u << 20);
    auto shrink = hvd.ctl({"storage", "volume", "resize", "vmpool", "eager1", "--size", "64M"});
    CHECK(shrink.exit_code == 3);

    // A clone is an independent copy with the same mode.
    {
        auto w = lab.rbd({"bench", "--io-type", "write", "--io-size", "4096", "--io-total", "65536", "rbd/thin1"});
        INFO(w.describe());
        REQUIRE(w.exit_code == 0);
        auto cl = hvd.ctl({"storage", "volume", "clone", "vmpool", "thin1", "thin1-copy"}, 180s);
        INFO(cl.describe());
        REQUIRE(cl.exit_code == 0);
        auto a = lab.rbd({"export", "rbd/thin1", lab.dir + "/a.img"});
        auto b = lab.rbd({"export", "rbd/thin1-copy", lab.dir + "/b.img"});
        REQUIRE((a.exit_code == 0 && b.exit_code == 0));
        CHECK(run({"cmp", lab.dir + "/a.img", lab.dir + "/b.img"}).exit_code == 0);
        std::filesystem::remove(lab.dir + "/a.img");
        std::filesystem::remove(lab.dir + "/b.img");
        CHECK(lab.rbd({"info", "rbd/thin1-copy", "--format", "json"}).out.find("\"parent\"") == std::string::npos);
    }
    // --- one OSD of three down: degraded, still readable and writable (size 3, min_size 2) ----
    {
        auto warned = [&](const std::string& what) {
            auto p = hvd.ctl_json({"storage", "pool", "show", "vmpool"});
            for (const auto& w : p.at("warnings"))
                if (w.get<std::string>().find(what) != std::string::npos) return true;
            return false;
        };
        CHECK(hvd.ctl_json({"storage", "pool", "show", "vmpool"}).at("warnings").empty());
        REQUIRE(run({env("HV_CEPH_LAB"), "stop-osd", lab.dir, "2"}, 60s).exit_code == 0);
        CHECK(wait_until([&] { return warned("1 of 3 OSDs down"); }, 60s, 1s));
        CHECK(wait_until([&] { return warned("degraded:"); }, 60s, 1s));
        auto table = hvd.ctl({"storage", "pool", "show", "vmpool"});
        CHECK_THAT(table.out, Catch::Contains("warnings") && Catch::Contains("degraded"));
        auto during = hvd.ctl({"storage", "volume", "create", "vmpool", "during", "--size", "16M", "--format", "raw",
                               "--provision", "eager-zeroed"},
                              120s);
        INFO(during.describe());
        CHECK(during.exit_code == 0);
        auto read = lab.rbd({"export", "rbd/thin1", lab.dir + "/r.img"});
        CHECK(read.exit_code == 0);
        std::filesystem::remove(lab.dir + "/r.img");
        REQUIRE(run({env("HV_CEPH_LAB"), "start-osd", lab.dir, "2"}, 60s).exit_code == 0);
        CHECK(wait_until([&] { return hvd.ctl_json({"storage", "pool", "show", "vmpool"}).at("warnings").empty(); }, 120s,
                         1s));
        REQUIRE(hvd.ctl({"storage", "volume", "delete", "vmpool", "during"}).exit_code == 0);
    }

    // Nothing half-made is listed.
    for (const auto& vol : hvd.ctl_json({"storage", "volume", "list", "vmpool"}))
        CHECK(vol.at("name").get<std::string>().find("partial") == std::string::npos);

    // --- a VM with rbd disks: QEMU opens them through libvirt's ceph secret, the guest reads one
    {
        // An image placed by Ceph's own tool, whose first line the test guest prints.
        std::string mark = lab.dir + "/mark.img";
        {
            std::ofstream f(mark, std::ios::binary);
            f << "HV-DISK-MARK-" << 6 * 7 << "\n";
            f << std::string(1 << 20, '\0');
        }
        auto imported = lab.rbd({"import", mark, "rbd/marked"});
        INFO(imported.describe());
        REQUIRE(imported.exit_code == 0);
        std::string guest = env("HV_TEST_GUEST_DIR");
        auto name = hvd.vm("rbd");
        auto made = hvd.ctl({"vm", "create", name, "--memory", "128M", "--disk", "volume=marked,pool=vmpool", "--disk",
                             "size=256M,pool=vmpool,format=raw", "--kernel", guest + "/vmlinuz", "--initrd",
                             guest + "/initrd.gz", "--cmdline", "console=ttyS0 quiet panic=-1"},
                            180s);
        INFO(made.describe());
        REQUIRE(made.exit_code == 0);
        auto xml = virsh({"dumpxml", name});
        CHECK_THAT(xml.out, Catch::Contains("protocol='rbd'") && Catch::Contains("<secret type='ceph'"));
        auto started = hvd.ctl({"vm", "start", name}, 120s);
        INFO(started.describe() << hvd.log_tail());
        REQUIRE(started.exit_code == 0);
        std::string serial = hvd.log_dir + "/" + name + ".serial.log";
        CHECK(wait_until([&] { return read_file(serial).find("HV-GUEST-BOOTED") != std::string::npos; }, 90s, 250ms));
        INFO("serial log:\n" << read_file(serial));
        CHECK(read_file(serial).find("HV-GUEST-DISK HV-DISK-MARK-42") != std::string::npos);
        // QEMU holds the images open: a watcher on each.
        auto disk = hvd.show(name).at("disks").at(1);
        std::string image = disk.value("volume", "");
        REQUIRE_FALSE(image.empty());
        auto status = lab.rbd({"status", "rbd/" + image, "--format", "json"});
        INFO(status.describe());
        CHECK(json::parse(status.out).at("watchers").size() == 1);
        // In use: not deleted.
        auto busy = hvd.ctl({"storage", "volume", "delete", "vmpool", image});
        CHECK(busy.exit_code == 5);
        REQUIRE(hvd.ctl({"vm", "stop", name}, 60s).exit_code == 0);

        // The VM as a template: a linked clone's disks are RBD clones of its images' protected
        // snapshot; the clone's guest reads the template's data through them.
        REQUIRE(hvd.ctl({"vm", "template", name}).exit_code == 0);
        auto lc = hvd.vm("rbdlc");
        auto linked = hvd.ctl({"vm", "clone", name, lc, "--linked"}, 120s);
        INFO(linked.describe());
        REQUIRE(linked.exit_code == 0);
        auto lcd = hvd.show(lc).at("disks");
        REQUIRE(lcd.size() == 2);
        auto lvol = hvd.ctl_json({"storage", "volume", "show", "vmpool", lcd.at(0).value("volume", "")});
        CHECK(lvol.value("base", "") == "marked");
        auto rinfo = lab.rbd({"info", "rbd/" + lcd.at(0).value("volume", ""), "--format", "json"});
        CHECK_THAT(rinfo.out, Catch::Contains("\"parent\"") && Catch::Contains("hv-base"));
        auto lstart = hvd.ctl({"vm", "start", lc}, 120s);
        INFO(lstart.describe() << hvd.log_tail());
        REQUIRE(lstart.exit_code == 0);
        std::string lserial = hvd.log_dir + "/" + lc + ".serial.log";
        CHECK(wait_until([&] { return read_file(lserial).find("HV-GUEST-DISK HV-DISK-MARK-42") != std::string::npos; },
                         90s, 250ms));
        REQUIRE(hvd.ctl({"vm", "stop", lc}, 60s).exit_code == 0);
        // The bases stay while the clone lives; nothing changes on a refused delete.
        CHECK(hvd.ctl({"vm", "delete", name, "--purge"}).exit_code == 5);
        CHECK(hvd.ctl({"storage", "volume", "delete", "vmpool", "marked"}).exit_code == 5);
        CHECK(hvd.ctl({"storage", "volume", "delete", "vmpool", image}).exit_code == 5);
        REQUIRE(hvd.ctl({"vm", "delete", lc, "--purge"}, 120s).exit_code == 0);
        CHECK(lab.rbd({"ls", "rbd"}).out.find(lc) == std::string::npos);
        REQUIRE(hvd.ctl({"vm", "delete", name, "--purge"}, 120s).exit_code == 0);
        // --purge removes what hv made with the VM, not the image attached by name.
        auto left = lab.rbd({"ls", "rbd"}).out;
        CHECK(left.find(image) == std::string::npos);
        CHECK(left.find("marked") != std::string::npos);
    }

    REQUIRE(hvd.ctl({"storage", "volume", "delete", "vmpool", "thin1-copy"}).exit_code == 0);
    CHECK(lab.rbd({"ls", "rbd"}).out.find("thin1-copy") == std::string::npos);
    REQUIRE(hvd.ctl({"storage", "pool", "remove", "vmpool"}).exit_code == 0);
    CHECK(virsh({"secret-list"}).out.find("hv pool vmpool") == std::string::npos);
}
