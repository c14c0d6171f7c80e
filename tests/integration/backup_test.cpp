// Backups against a real hvd + private libvirtd (docs/backup.md): a stopped VM with known data
// on its disks is backed up into a store, a second backup of the unchanged disks adds no new
// data, a restore --as another name gives disks of the same guest-visible content, verify
// passes, then finds and names a corrupted and a missing chunk; a restore that meets it leaves
// nothing; prune (dry run, then real) keeps the newest and collects the chunk only the others
// named; bad input is refused with nothing made. A running VM is backed up through libvirt's
// backup job, and --mode stop starts it again.
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> chunk_files(const std::string& store) {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(store + "/chunks"))
        if (e.is_regular_file()) out.push_back(e.path().string());
    return out;
}

// No scratch file left in the store's tmp/<host>/ (or anywhere below tmp/).
bool scratch_empty(const std::string& store) {
    for (const auto& e : fs::recursive_directory_iterator(store + "/tmp"))
        if (!e.is_directory()) return false;
    return true;
}

json backup_json(const Hvd& hvd, const std::vector<std::string>& args) {
    auto r = hvd.ctl(args, 300s);
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
}

// Every disk of a and b has the same guest-visible content (qemu-img compare reads through the
// format; -U: one of them may be open in a running QEMU).
void same_disks(const json& a, const json& b) {
    REQUIRE(a["disks"].size() == b["disks"].size());
    for (std::size_t i = 0; i < a["disks"].size(); ++i) {
        const auto& x = a["disks"][i];
        const auto& y = b["disks"][i];
        CHECK(x["name"] == y["name"]);
        CHECK(x["format"] == y["format"]);
        CHECK(x["size"] == y["size"]);
        CHECK(x["path"] != y["path"]);
        auto cmp = run({"qemu-img", "compare", "-U", "-f", x.value("format", ""), "-F", y.value("format", ""),
                        x.value("path", ""), y.value("path", "")});
        INFO(cmp.describe());
        CHECK(cmp.exit_code == 0);
    }
}

}  // namespace

TEST_CASE("backup: a stopped VM, deduplicated second backup, restore --as, verify finds a corrupt chunk, prune",
          "[integration][backup]") {
    Hvd hvd;
    auto src = hvd.vm("bksrc");
    auto dst = hvd.vm("bkdst");
    auto dst2 = hvd.vm("bkdst2");
    // A qcow2 disk and a raw one whose size is no multiple of the 4 MiB chunk.
    {
        auto r = hvd.ctl({"vm", "create", src, "--memory", "64M", "--disk", "size=16M", "--disk", "size=9M,format=raw"});
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
    }
    auto s = hvd.show(src);
    REQUIRE(s["disks"].size() == 2);
    const std::vector<std::vector<std::string>> writes = {{"write -P 0x5a 0 64k", "write -P 0xa5 5M 1M"},
                                                          {"write -P 0x33 1M 512k", "write -P 0x44 9215k 1k"}};
    for (std::size_t i = 0; i < 2; ++i)
        for (const auto& w : writes[i]) {
            auto r = run({"qemu-io", "-f", s["disks"][i].value("format", ""), "-c", w, s["disks"][i].value("path", "")});
            INFO(r.describe());
            REQUIRE(r.exit_code == 0);
        }

    const std::string store = hvd.dir + "/store";
    fs::create_directories(store);
    // Refusals first: nothing made.
    CHECK(hvd.http("POST", "/v1/backup-stores", R"({"name":"st","path":"relative"})").status == 400);
    CHECK(hvd.http("POST", "/v1/backup-stores", R"({"name":"st","path":")" + hvd.dir + R"(/nope"})").status == 400);
    CHECK(hvd.http("POST", "/v1/vms/" + src + "/backup", R"({"store":"nosuch"})").status == 404);
    REQUIRE(hvd.ctl({"backup", "store", "add", "st", "--path", store}).exit_code == 0);
    CHECK(hvd.http("POST", "/v1/backup-stores", R"({"name":"st","path":")" + store + R"("})").status == 409);
    auto stores = hvd.ctl_json({"backup", "store", "list"});
    REQUIRE(stores.size() == 1);
    CHECK(stores[0]["path"] == store);
    CHECK(read_file(hvd.state_dir + "/backup-stores.json").find(store) != std::string::npos);
    CHECK(hvd.http("POST", "/v1/vms/" + src + "/backup", R"({"store":"st","mode":"hot"})").status == 400);
    CHECK(hvd.http("POST", "/v1/vms/it-no-such-vm/backup", R"({"store":"st"})").status == 404);

    // The first backup stores the data; the zero chunks are not stored.
    auto b1 = backup_json(hvd, {"backup", "create", src, "--store", "st", "-o", "json"});
    CHECK(b1["mode"] == "offline");
    CHECK(b1["size"] == 25 * 1024 * 1024);
    CHECK(b1["new_data"].get<std::uint64_t>() > 0);
    REQUIRE(b1["disks"].size() == 2);
    CHECK(b1["disks"][0]["chunks"] == 4);
    CHECK(b1["disks"][0]["zero_chunks"] == 2);
    CHECK(b1["disks"][1]["chunks"] == 3);
    CHECK(b1["disks"][1]["zero_chunks"] == 1);
    auto files = chunk_files(store);
    CHECK(files.size() == 4);
    CHECK(scratch_empty(store));  // scratch files removed
    CHECK(domstate(src) == "shut off");

    // A second backup of the unchanged disks: no new data, no new chunk.
    std::this_thread::sleep_for(1100ms);
    auto b2 = backup_json(hvd, {"backup", "create", src, "--store", "st", "-o", "json"});
    CHECK(b2["time"] != b1["time"]);
    CHECK(b2["new_data"] == 0);
    CHECK(chunk_files(store).size() == files.size());
    auto list = hvd.ctl_json({"backup", "list", "--store", "st", src});
    REQUIRE(list.size() == 2);
    CHECK(list[0]["time"] == b1["time"]);
    CHECK(list[1]["new_data"] == 0);
    auto table = hvd.ctl({"backup", "list"});
    CHECK(table.out.find(src + "/" + b1["time"].get<std::string>()) != std::string::npos);

    const std::string ref = src + "/" + b1["time"].get<std::string>();
    // Restore refusals: the existing name (409), a backup that does not exist (404).
    CHECK(hvd.http("POST", "/v1/backup-stores/st/backups/" + src + "/" + b1["time"].get<std::string>() + "/restore", "{}")
              .status == 409);
    CHECK(hvd.http("POST", "/v1/backup-stores/st/backups/" + src + "/2020-01-01T00:00:00Z/restore",
                   R"({"as":")" + dst + R"("})")
              .status == 404);
    CHECK(hvd.ctl({"backup", "restore", "st", ref}).exit_code != 0);
    CHECK(!domain_exists(dst));

    auto r = backup_json(hvd, {"backup", "restore", "st", ref, "--as", dst, "-o", "json"});
    CHECK(r["name"] == dst);
    auto d = hvd.show(dst);
    CHECK(d["state"] == "stopped");
    CHECK(d["uuid"] != s["uuid"]);
    CHECK(d["nics"].size() == s["nics"].size());
    for (const auto& disk : d["disks"]) CHECK(disk["owned"] == true);
    same_disks(s, d);
    CHECK(scratch_empty(store));

    // Verify: every chunk good.
    {
        auto v = hvd.ctl({"backup", "verify", "st", "-o", "json"}, 300s);
        INFO(v.describe());
        REQUIRE(v.exit_code == 0);
        auto vj = json::parse(v.out);
        CHECK(vj["ok"] == true);
        CHECK(vj["chunks_checked"] == 4);
        CHECK(vj["backups"].size() == 2);
    }
    CHECK(hvd.ctl_json({"backup", "list", "--store", "st"})[0]["verified"]["ok"] == true);

    // One chunk file damaged: verify fails and names it.
    std::string victim;
    for (const auto& f : files)
        if (fs::file_size(f) > 16) victim = f;
    REQUIRE(!victim.empty());
    {
        std::fstream io(victim, std::ios::in | std::ios::out | std::ios::binary);
        io.seekp(static_cast<std::streamoff>(fs::file_size(victim) / 2));
        io.put('\x7f');
        io.put('\x00');
        io.put('\x13');
    }
    const std::string id = fs::path(victim).filename().string();
    {
        auto v = hvd.ctl({"backup", "verify", "st", src}, 300s);
        INFO(v.describe());
        CHECK(v.exit_code != 0);
        CHECK(v.err.find(id) != std::string::npos);
    }
    CHECK(hvd.ctl_json({"backup", "list", "--store", "st", src})[0]["verified"]["ok"] == false);

    // A restore that meets the corrupt chunk fails and leaves no VM and no volume.
    auto f = hvd.ctl({"backup", "restore", "st", ref, "--as", dst2}, 300s);
    INFO(f.describe());
    CHECK(f.exit_code != 0);
    CHECK(!domain_exists(dst2));
    for (const auto& name : list_dir(hvd.image_dir)) CHECK(name.find(dst2) == std::string::npos);
    CHECK(scratch_empty(store));

    // A missing chunk is named too.
    fs::remove(victim);
    auto v = hvd.ctl({"backup", "verify", "st", ref}, 300s);
    CHECK(v.exit_code != 0);
    CHECK(v.err.find(id) != std::string::npos);
    CHECK(v.err.find("missing") != std::string::npos);

    // New data on disk0's first chunk, a third backup; prune keeps only it: a dry run first
    // changes nothing, then the two older manifests go and the chunk only they named.
    {
        auto w = run({"qemu-io", "-f", s["disks"][0].value("format", ""), "-c", "write -P 0x77 0 64k",
                      s["disks"][0].value("path", "")});
        INFO(w.describe());
        REQUIRE(w.exit_code == 0);
    }
    std::this_thread::sleep_for(1100ms);
    auto b3 = backup_json(hvd, {"backup", "create", src, "--store", "st", "-o", "json"});
    CHECK(b3["new_data"].get<std::uint64_t>() > 0);
    auto before = chunk_files(store).size();
    CHECK(hvd.http("POST", "/v1/backup-stores/st/prune", R"({"guest":")" + src + R"("})").status == 400);
    auto dry = backup_json(hvd, {"backup", "prune", "st", src, "--keep-last", "1", "--dry-run", "-o", "json"});
    CHECK(dry["kept"] == json::array({b3["time"]}));
    CHECK(dry["removed"] == json::array({b1["time"], b2["time"]}));
    CHECK(hvd.ctl_json({"backup", "list", "--store", "st", src}).size() == 3);
    CHECK(chunk_files(store).size() == before);
    auto pr = backup_json(hvd, {"backup", "prune", "st", src, "--keep-last", "1", "-o", "json"});
    CHECK(pr["removed"].size() == 2);
    // The old first chunk of disk0 is named by no manifest now, but it is younger than the
    // grace period (a backup on another host sharing the store could have just found it): kept.
    CHECK(pr["gc"]["chunks_removed"] == 0);
    CHECK(pr["gc"]["recent_kept"] == 1);
    CHECK(chunk_files(store).size() == before);
    // Two days later (every chunk's time set back): collected; the chunks the last backup
    // names stay whatever their age.
    for (const auto& f : chunk_files(store))
        fs::last_write_time(f, fs::file_time_type::clock::now() - std::chrono::hours(48));
    auto pr2 = backup_json(hvd, {"backup", "prune", "st", src, "--keep-last", "1", "-o", "json"});
    CHECK(pr2["removed"].empty());
    CHECK(pr2["gc"]["chunks_removed"] == 1);
    CHECK(chunk_files(store).size() == before - 1);
    auto left = hvd.ctl_json({"backup", "list", "--store", "st", src});
    REQUIRE(left.size() == 1);
    CHECK(left[0]["time"] == b3["time"]);
    // What is left is whole: the garbage collection kept every chunk the last backup names.
    auto ok = hvd.ctl({"backup", "verify", "st"}, 300s);
    INFO(ok.describe());
    CHECK(ok.exit_code == 0);
}

TEST_CASE("backup: a running VM through libvirt's backup job, and --mode stop starts it again",
          "[integration][backup][guest]") {
    Hvd hvd;
    const std::string guest = env("HV_TEST_GUEST_DIR");
    auto src = hvd.vm("bklive");
    auto dst = hvd.vm("bklivedst");
    {
        auto r = hvd.ctl({"vm", "create", src, "--memory", "128M", "--disk", "size=32M", "--disk", "size=6M,format=raw",
                          "--kernel", guest + "/vmlinuz", "--initrd", guest + "/initrd.gz", "--cmdline",
                          "console=ttyS0 quiet panic=-1"},
                         180s);
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
    }
    auto s = hvd.show(src);
    // Known data on both disks (the guest only reads its first disk's first line).
    for (const auto& [i, w] : std::vector<std::pair<int, std::string>>{
             {0, "write -P 0x61 1M 128k"}, {0, "write -P 0x62 20M 4M"}, {1, "write -P 0x63 0 5M"}}) {
        auto r = run({"qemu-io", "-f", s["disks"][i].value("format", ""), "-c", w, s["disks"][i].value("path", "")});
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
    }
    REQUIRE(hvd.ctl({"vm", "start", src}).exit_code == 0);
    REQUIRE(domstate(src) == "running");
    const std::string serial = hvd.log_dir + "/" + src + ".serial.log";

    const std::string store = hvd.dir + "/store";
    fs::create_directories(store);
    REQUIRE(hvd.ctl({"backup", "store", "add", "st", "--path", store}).exit_code == 0);

    // Once its agent answers, the guest's filesystems are frozen for the start of the job.
    REQUIRE(wait_until([&] { return read_file(serial).find("HV-GUEST-BOOTED") != std::string::npos; }, 120s, 250ms));
    REQUIRE(wait_until([&] { return virsh({"qemu-agent-command", src, R"({"execute":"guest-ping"})"}).exit_code == 0; },
                       60s, 500ms));
    auto b1 = backup_json(hvd, {"backup", "create", src, "--store", "st", "-o", "json"});
    CHECK(b1["mode"] == "snapshot");
    CHECK(b1["quiesced"] == true);
    // Thawed after the start of the job.
    CHECK(virsh({"qemu-agent-command", src, R"({"execute":"guest-fsfreeze-status"})"}).out.find("thawed") !=
          std::string::npos);
    CHECK(b1["new_data"].get<std::uint64_t>() > 0);
    CHECK(domstate(src) == "running");  // it ran all along
    CHECK(scratch_empty(store));

    // --mode stop: shut down, back up, started again; nothing new on the disks.
    auto started = hvd.show(src)["started_at"].get<std::int64_t>();
    REQUIRE(started > 0);
    std::this_thread::sleep_for(1100ms);
    auto b2 = backup_json(hvd, {"backup", "create", src, "--store", "st", "--mode", "stop", "-o", "json"});
    CHECK(b2["mode"] == "stop");
    CHECK(b2["quiesced"] == false);
    CHECK(b2["new_data"] == 0);
    CHECK(domstate(src) == "running");
    // Started again after the backup: a later start time than before it.
    CHECK(hvd.show(src)["started_at"].get<std::int64_t>() > started);

    auto r = backup_json(hvd, {"backup", "restore", "st", src + "/" + b1["time"].get<std::string>(), "--as", dst,
                               "-o", "json"});
    CHECK(r["name"] == dst);
    same_disks(s, hvd.show(dst));
    REQUIRE(hvd.ctl({"backup", "verify", "st", src}, 300s).exit_code == 0);
}

TEST_CASE("backup: hvd killed in the middle of a backup leaves no backup, and the next one works", "[integration][backup]") {
    Hvd hvd;
    auto src = hvd.vm("bkkill");
    {
        auto r = hvd.ctl({"vm", "create", src, "--memory", "64M", "--disk", "size=384M,format=raw"});
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
    }
    auto s = hvd.show(src);
    // Data in every chunk (one pattern per 64 MiB), so the backup takes a while.
    for (int i = 0; i < 6; ++i) {
        auto w = run({"qemu-io", "-f", "raw", "-c",
                      fmt::format("write -P {} {}M 64M", 0x10 + i, i * 64), s["disks"][0].value("path", "")});
        INFO(w.describe());
        REQUIRE(w.exit_code == 0);
    }
    const std::string store = hvd.dir + "/store";
    fs::create_directories(store);
    REQUIRE(hvd.ctl({"backup", "store", "add", "st", "--path", store}).exit_code == 0);
    auto task = hvd.ctl_json({"backup", "create", src, "--store", "st", "--async"});
    // Killed once its scratch file exists (qemu-img is reading the disk, or it is being chunked).
    REQUIRE(wait_until([&] { return !scratch_empty(store); }, 60s, 20ms));
    hvd.kill_hard();
    CHECK((list_dir(store + "/backups").empty() || list_dir(store + "/backups/" + src).empty()));
    hvd.start();
    // The scratch file is swept at start, the store has no backup, and the next one works.
    CHECK(scratch_empty(store));
    CHECK(hvd.ctl_json({"backup", "list", "--store", "st"}).empty());
    auto t = hvd.ctl_json({"task", "show", task.value("id", "")});
    CHECK(t["state"] == "failed");
    auto b = backup_json(hvd, {"backup", "create", src, "--store", "st", "-o", "json"});
    CHECK(b["size"] == 384ull * 1024 * 1024);
    CHECK(hvd.ctl_json({"backup", "list", "--store", "st"}).size() == 1);
    auto v = hvd.ctl({"backup", "verify", "st"}, 300s);
    INFO(v.describe());
    CHECK(v.exit_code == 0);
}
