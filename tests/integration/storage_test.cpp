// Storage pools and volumes from hvctl: provisioning modes proven on the files themselves
// (allocation and unwritten extents via filefrag), eager zeroing as a cancellable task,
// free-space refusal with numbers, over-commit warnings, grow-only resize keeping the mode,
// clones, in-use protection, a btrfs pool on a loop-mounted image with reflink clones, and
// pools persisted across hvd restarts.
#include <sys/statvfs.h>

#include <fstream>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {

constexpr std::uint64_t MiB = 1ULL << 20;

// Extents of a file (filefrag -v): total and how many are unwritten (reserved, not written).
struct Extents {
    int total = 0;
    int unwritten = 0;
};
Extents extents(const std::string& path) {
    auto r = run({"filefrag", "-v", path});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    Extents e;
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) {
        if (line.find("..") == std::string::npos || line.find(':') == std::string::npos) continue;
        if (line.find("ext:") != std::string::npos) continue;
        ++e.total;
        if (line.find("unwritten") != std::string::npos) ++e.unwritten;
    }
    return e;
}

json volume(const Hvd& hvd, const std::string& pool, const std::string& name) {
    return hvd.ctl_json({"storage", "volume", "show", pool, name});
}

std::uint64_t free_bytes(const std::string& dir) {
    struct statvfs st {};
    REQUIRE(::statvfs(dir.c_str(), &st) == 0);
    return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

}  // namespace

TEST_CASE("volumes: thin, lazy-zeroed and eager-zeroed are what they say on disk", "[integration][storage]") {
    Hvd hvd;
    auto pools = hvd.ctl_json({"storage", "pool", "list"});
    REQUIRE(pools.size() == 1);
    CHECK(pools[0]["name"] == "local");
    CHECK(pools[0]["path"] == hvd.pool_dir);
    CHECK(pools[0]["active"] == true);
    CHECK(pools[0]["capacity"].get<std::uint64_t>() > 0);
    CHECK(pools[0]["free"].get<std::uint64_t>() > 0);
    CHECK(pools[0]["caps"]["provision"] == json({"thin", "lazy-zeroed", "eager-zeroed"}));

    for (std::string fmt : {"raw", "qcow2"}) {
        DYNAMIC_SECTION("format " << fmt) {
            for (std::string mode : {"thin", "lazy-zeroed", "eager-zeroed"}) {
                std::string name = "v-" + fmt + "-" + mode;
                auto r = hvd.ctl({"storage", "volume", "create", "local", name, "--size", "64M", "--format", fmt,
                                  "--provision", mode});
                INFO(r.describe());
                REQUIRE(r.exit_code == 0);
                auto v = volume(hvd, "local", name);
                INFO(v.dump());
                CHECK(v["provision"] == mode);
                CHECK(v["format"] == fmt);
                CHECK(v["capacity"] == 64 * MiB);
                std::string path = v["path"];
                CHECK(path == hvd.image_dir + "/" + name + "." + fmt);
                auto alloc = v["allocation"].get<std::uint64_t>();
                auto ext = extents(path);
                if (mode == "thin") {
                    CHECK(alloc < 2 * MiB);  // sparse (qcow2: header and tables only)
                } else {
                    CHECK(alloc >= 64 * MiB);  // all space reserved
                    if (mode == "lazy-zeroed") CHECK(ext.unwritten > 0);  // reserved, not written
                    else CHECK(ext.unwritten == 0);                       // every block written
                }
                if (fmt == "qcow2") {
                    auto chk = run({"qemu-img", "check", path});
                    INFO(chk.describe());
                    CHECK(chk.exit_code == 0);
                }
            }
        }
    }

    // Grow only; the mode applies to the new space.
    REQUIRE(hvd.ctl({"storage", "volume", "create", "local", "grow", "--size", "32M", "--format", "raw", "--provision",
                     "eager-zeroed"})
                .exit_code == 0);
    auto r = hvd.ctl({"storage", "volume", "resize", "local", "grow", "--size", "96M"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto g = volume(hvd, "local", "grow");
    CHECK(g["capacity"] == 96 * MiB);
    CHECK(g["provision"] == "eager-zeroed");
    CHECK(g["allocation"].get<std::uint64_t>() >= 96 * MiB);
    CHECK(extents(g["path"]).unwritten == 0);
    r = hvd.ctl({"storage", "volume", "resize", "local", "grow", "--size", "16M"});
    CHECK(r.exit_code == 3);
    CHECK_THAT(r.err, Catch::Contains("only grows"));

    // Clones keep format and mode.
    r = hvd.ctl({"storage", "volume", "clone", "local", "grow", "grow-copy"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto c = volume(hvd, "local", "grow-copy");
    CHECK(c["provision"] == "eager-zeroed");
    CHECK(c["capacity"] == 96 * MiB);
    CHECK(extents(c["path"]).unwritten == 0);

    // Bad input: exit 3, nothing made.
    for (auto bad : std::vector<std::vector<std::string>>{
             {"storage", "volume", "create", "local", "../escape", "--size", "16M"},
             {"storage", "volume", "create", "local", "x/y", "--size", "16M"},
             {"storage", "volume", "create", "local", "nosize", "--size", "0"},
             {"storage", "volume", "create", "local", "tiny", "--size", "1K"},
         }) {
        auto b = hvd.ctl(bad);
        INFO(b.describe());
        CHECK(b.exit_code == 3);
    }
    CHECK(hvd.ctl({"storage", "volume", "create", "local", "grow", "--size", "16M"}).exit_code == 5);
    CHECK(hvd.ctl({"storage", "volume", "create", "nopool", "x", "--size", "16M"}).exit_code == 4);
    CHECK(hvd.ctl({"storage", "volume", "show", "local", "missing"}).exit_code == 4);
    for (const auto& f : list_dir(hvd.image_dir)) CHECK(f.find("partial") == std::string::npos);
}

TEST_CASE("thick volumes that do not fit are refused with the numbers and thin ones over-commit with a warning",
          "[integration][storage]") {
    Hvd hvd;
    auto free = free_bytes(hvd.pool_dir);
    std::string too_big = std::to_string(free / MiB + 1024) + "M";
    for (std::string mode : {"lazy-zeroed", "eager-zeroed"}) {
        auto r = hvd.ctl({"storage", "volume", "create", "local", "huge", "--size", too_big, "--provision", mode});
        INFO(r.describe());
        CHECK(r.exit_code == 12);
        CHECK_THAT(r.err, Catch::Contains("free") && Catch::Contains("needs"));
    }
    CHECK(list_dir(hvd.image_dir).empty());

    // Thin: allowed beyond the pool's capacity, with a warning that says by how much.
    auto pool = hvd.ctl_json({"storage", "pool", "show", "local"});
    std::string beyond = std::to_string(pool["capacity"].get<std::uint64_t>() / MiB + 2048) + "M";
    auto r = hvd.ctl({"storage", "volume", "create", "local", "overcommit", "--size", beyond});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("over-committed by"));
    pool = hvd.ctl_json({"storage", "pool", "show", "local"});
    CHECK(pool["committed"].get<std::uint64_t>() > pool["capacity"].get<std::uint64_t>());
    CHECK(pool["volumes"] == 1);
}

TEST_CASE("eager zeroing is a task with progress and throughput and cancel removes the partial volume",
          "[integration][storage]") {
    Hvd hvd;
    // 12 GiB take seconds to zero even at this disk's ~2.6 GB/s, so a cancel sent as soon as the
    // first progress line shows (below half way) always lands mid-way.
    const std::uint64_t size = 12ULL << 30;
    INFO("free in " << hvd.pool_dir << ": " << free_bytes(hvd.pool_dir) / MiB << " MiB");
    REQUIRE(free_bytes(hvd.pool_dir) >= size + (4ULL << 30));
    auto t = hvd.ctl_json({"storage", "volume", "create", "local", "zeroing", "--size", std::to_string(size / MiB) + "M",
                           "--format", "raw", "--provision", "eager-zeroed", "--async"});
    std::string id = t["id"];
    json seen;
    bool zeroing = wait_until(
        [&] {
            seen = hvd.ctl_json({"task", "show", id});
            std::string msg = seen.value("message", "");
            return msg.find("zeroing") != std::string::npos && msg.find("MiB/s") != std::string::npos;
        },
        60s, 20ms);
    INFO(seen.dump());
    REQUIRE(zeroing);
    REQUIRE(seen["state"] == "running");
    CHECK_THAT(seen["message"].get<std::string>(), Catch::Contains("ETA"));
    CHECK(seen["progress"].get<int>() >= 0);
    REQUIRE(seen["progress"].get<int>() < 50);
    auto c = hvd.ctl({"task", "cancel", id});
    INFO(c.describe());
    REQUIRE(c.exit_code == 0);
    auto w = hvd.ctl({"task", "wait", id});
    INFO(w.describe());
    auto fin = hvd.ctl_json({"task", "show", id});
    INFO(fin.dump());
    REQUIRE(fin["state"] == "cancelled");
    CHECK(w.exit_code == 9);
    CHECK(hvd.ctl({"storage", "volume", "show", "local", "zeroing"}).exit_code == 4);
    CHECK(list_dir(hvd.image_dir).empty());  // neither the volume nor its .partial file
}

TEST_CASE("VM disks are pool volumes: provisioning per disk, in-use protection, attach by volume",
          "[integration][storage]") {
    Hvd hvd;
    auto name = hvd.vm("stvm");
    auto r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk",
                      "size=32M,provision=eager-zeroed,format=raw,bus=sata", "--disk", "size=32M"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto vm = hvd.show(name);
    CHECK(vm["disks"][0]["volume"] == name + "-disk0");
    CHECK(vm["disks"][0]["provision"] == "eager-zeroed");
    auto v = volume(hvd, "local", name + "-disk0");
    CHECK(v["provision"] == "eager-zeroed");
    CHECK(v["used_by"] == json({name}));
    CHECK(extents(v["path"]).unwritten == 0);

    // In use: delete refused (409), the volume stays.
    r = hvd.ctl({"storage", "volume", "delete", "local", name + "-disk1"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    CHECK_THAT(r.err, Catch::Contains(name));
    CHECK(file_exists(hvd.image_dir + "/" + name + "-disk1.qcow2"));

    // Attach an existing volume by name to a second VM; a volume in use is not attached twice.
    REQUIRE(hvd.ctl({"storage", "volume", "create", "local", "shared-data", "--size", "16M"}).exit_code == 0);
    auto second = hvd.vm("stvm2");
    r = hvd.ctl({"vm", "create", second, "--memory", "64M", "--disk", "volume=shared-data"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK(hvd.show(second)["disks"][0]["owned"] == false);
    auto third = hvd.vm("stvm3");
    r = hvd.ctl({"vm", "create", third, "--memory", "64M", "--disk", "volume=shared-data"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    CHECK_FALSE(domain_exists(third));
    r = hvd.ctl({"vm", "create", third, "--memory", "64M", "--disk", "volume=no-such-volume"});
    CHECK(r.exit_code == 4);
    CHECK_FALSE(domain_exists(third));

    // --force detaches from the stopped VM first.
    r = hvd.ctl({"storage", "volume", "delete", "local", "shared-data", "--force"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("detached from vm " + second));
    CHECK(hvd.show(second)["disks"].empty());
    CHECK(virsh({"domblklist", second}).out.find("shared-data") == std::string::npos);

    // delete --purge removes the VM's own volumes only.
    REQUIRE(hvd.ctl({"vm", "delete", name, "--purge"}).exit_code == 0);
    CHECK(hvd.ctl({"storage", "volume", "show", "local", name + "-disk0"}).exit_code == 4);
}

TEST_CASE("pools: add/remove, btrfs with reflink clones, persisted across hvd restarts", "[integration][storage]") {
    Hvd hvd;
    // Bad pools: exit 3 (or 4/5), nothing recorded.
    CHECK(hvd.ctl({"storage", "pool", "add", "rel", "--path", "relative/dir"}).exit_code == 3);
    CHECK(hvd.ctl({"storage", "pool", "add", "gone", "--path", hvd.dir + "/does-not-exist"}).exit_code == 3);
    CHECK(hvd.ctl({"storage", "pool", "add", "zfs1", "--type", "zfs", "--path", hvd.dir}).exit_code == 3);
    CHECK(hvd.ctl({"storage", "pool", "add", "inside", "--path", hvd.image_dir}).exit_code == 5);  // overlaps local
    CHECK(hvd.ctl({"storage", "pool", "remove", "local"}).exit_code == 5);
    CHECK(hvd.ctl({"storage", "pool", "remove", "nosuch"}).exit_code == 4);

    std::string plain = hvd.dir + "/plain";
    REQUIRE(run({"mkdir", "-p", plain}).exit_code == 0);
    auto r = hvd.ctl({"storage", "pool", "add", "bulk", "--path", plain});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK(hvd.ctl({"storage", "pool", "add", "bulk", "--path", plain}).exit_code == 5);
    // Mirrored in libvirt as dir pools hv-<name>, volumes visible to virsh.
    REQUIRE(hvd.ctl({"storage", "volume", "create", "bulk", "seen-by-virsh", "--size", "16M"}).exit_code == 0);
    auto lp = virsh({"pool-list", "--all", "--name"});
    CHECK_THAT(lp.out, Catch::Contains("hv-local") && Catch::Contains("hv-bulk"));
    CHECK_THAT(virsh({"vol-list", "hv-bulk"}).out, Catch::Contains("seen-by-virsh.qcow2"));
    REQUIRE(hvd.ctl({"storage", "volume", "delete", "bulk", "seen-by-virsh"}).exit_code == 0);
    CHECK(virsh({"vol-list", "hv-bulk"}).out.find("seen-by-virsh") == std::string::npos);
    // Not btrfs: refused for type btrfs.
    r = hvd.ctl({"storage", "pool", "add", "notbtrfs", "--type", "btrfs", "--path", hvd.dir + "/plain2"});
    CHECK(r.exit_code == 3);

    // btrfs on a loop-mounted image.
    std::string mnt = hvd.dir + "/btrfs";
    LoopFs fs(hvd.dir + "/btrfs.img", mnt, "1G", {"mkfs.btrfs", "-q"});
    bool btrfs = fs.ok;
    if (!btrfs) {
        WARN("btrfs part skipped: cannot make/mount a btrfs image here (mkfs.btrfs or loop devices missing)");
    } else {
        r = hvd.ctl({"storage", "pool", "add", "fast", "--type", "btrfs", "--path", mnt});
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
        auto p = hvd.ctl_json({"storage", "pool", "show", "fast"});
        CHECK(p["caps"]["clones"] == true);
        // The content directories are subvolumes (inode 256 is a subvolume's root on btrfs).
        for (const char* c : {"images", "iso", "vztmpl"}) {
            auto st = run({"stat", "-c", "%i", mnt + "/" + c});
            CHECK(st.out == "256\n");
        }
        REQUIRE(hvd.ctl({"storage", "volume", "create", "fast", "base", "--size", "256M", "--format", "raw"}).exit_code == 0);
        // Write real data so that a reflink is visible as shared extents.
        auto w = run({"dd", "if=/dev/urandom", "of=" + mnt + "/images/base.raw", "bs=1M", "count=64", "conv=notrunc",
                      "status=none"});
        REQUIRE(w.exit_code == 0);
        run({"sync"});
        r = hvd.ctl({"storage", "volume", "clone", "fast", "base", "base-clone"});
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
        auto fr = run({"filefrag", "-v", mnt + "/images/base-clone.raw"});
        CHECK_THAT(fr.out, Catch::Contains("shared"));  // reflinked, not copied
        CHECK(run({"cmp", mnt + "/images/base.raw", mnt + "/images/base-clone.raw"}).exit_code == 0);
        CHECK(volume(hvd, "fast", "base-clone")["provision"] == "thin");
        REQUIRE(hvd.ctl({"storage", "volume", "create", "fast", "thick", "--size", "64M", "--format", "raw",
                         "--provision", "eager-zeroed"})
                    .exit_code == 0);
        CHECK(extents(mnt + "/images/thick.raw").unwritten == 0);
    }

    // Pools survive an hvd restart.
    REQUIRE(hvd.stop() == 0);
    hvd.start();
    auto names = hvd.ctl_json({"storage", "pool", "list"});
    std::set<std::string> got;
    for (const auto& p : names) got.insert(p["name"].get<std::string>());
    CHECK(got.count("local"));
    CHECK(got.count("bulk"));
    if (btrfs) {
        CHECK(got.count("fast"));
        CHECK(hvd.ctl_json({"storage", "volume", "list", "fast"}).size() == 3);
        REQUIRE(hvd.ctl({"storage", "pool", "remove", "fast"}).exit_code == 0);
        CHECK(file_exists(mnt + "/images/base.raw"));  // files stay
    }
    REQUIRE(hvd.ctl({"storage", "pool", "remove", "bulk"}).exit_code == 0);
    CHECK(hvd.ctl({"storage", "pool", "show", "bulk"}).exit_code == 4);
    CHECK(virsh({"pool-list", "--all", "--name"}).out.find("hv-bulk") == std::string::npos);
}

TEST_CASE("a full pool gives a clear error and leaves nothing behind", "[integration][storage]") {
    Hvd hvd;
    // A tiny ext4 pool on a loop-mounted image made by the test.
    std::string mnt = hvd.dir + "/tiny";
    LoopFs fs(hvd.dir + "/tiny.img", mnt, "64M", {"mkfs.ext4", "-q", "-F"});
    if (!fs.ok) {
        WARN("skipped: cannot make/mount an ext4 image here (loop devices missing?)");
        return;
    }
    auto r = hvd.ctl({"storage", "pool", "add", "tiny", "--path", mnt});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto partials = [&] {
        int n = 0;
        for (const auto& f : list_dir(mnt + "/images"))
            if (f.find("partial") != std::string::npos) ++n;
        return n;
    };
    // Fill with eager-zeroed volumes until the pool refuses: every refusal is 507 (exit 12) with
    // the numbers, every success a complete volume.
    int made = 0, refused = 0;
    for (int i = 0; i < 8 && refused == 0; ++i) {
        auto c = hvd.ctl({"storage", "volume", "create", "tiny", "fill" + std::to_string(i), "--size", "16M", "--format",
                          "raw", "--provision", "eager-zeroed"});
        INFO(c.describe());
        if (c.exit_code == 0) {
            ++made;
        } else {
            CHECK(c.exit_code == 12);
            CHECK_THAT(c.err, Catch::Contains("free") || Catch::Contains("no space"));
            ++refused;
        }
    }
    CHECK(made >= 1);
    CHECK(refused == 1);
    CHECK(partials() == 0);
    // Exactly the free space: passes the check, then either fits or hits ENOSPC in fallocate;
    // either way nothing half-made remains and the space is given back.
    auto before = free_bytes(mnt);
    std::string exact = std::to_string(before / MiB) + "M";
    auto e = hvd.ctl({"storage", "volume", "create", "tiny", "exact", "--size", exact, "--format", "raw", "--provision",
                      "eager-zeroed"});
    INFO(e.describe());
    if (e.exit_code == 0) {
        auto v = volume(hvd, "tiny", "exact");
        CHECK(extents(v["path"]).unwritten == 0);
    } else {
        CHECK(e.exit_code == 12);
        CHECK(hvd.ctl({"storage", "volume", "show", "tiny", "exact"}).exit_code == 4);
        CHECK(free_bytes(mnt) + MiB >= before);
    }
    CHECK(partials() == 0);
    for (const auto& v : hvd.ctl_json({"storage", "volume", "list", "tiny"}))
        CHECK(v["allocation"].get<std::uint64_t>() >= v["capacity"].get<std::uint64_t>());
    REQUIRE(hvd.ctl({"storage", "pool", "remove", "tiny"}).exit_code == 0);
}
