// Crashes in the middle of long operations (issue 12): hvd is killed with SIGKILL while a VM
// create zeroes its second disk, a volume grows, an ISO upload streams, a container's root
// filesystem is unpacked, a template is built and a VM clone copies its second disk; after a restart with the same state dir
// nothing half-made remains (no .partial, no volume no domain owns, no domain without its
// disks, no intent record), the task is failed with what was rolled back, and the same
// operation then works. And libvirtd killed while a VM create zeroes a disk.
// Each test waits for the operation's own progress (task show / the partial file), never
// for a fixed time.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

// Every *.partial (file or directory) under `dir`.
std::vector<std::string> partials(const std::string& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        auto n = it->path().filename().string();
        if (n.ends_with(".partial")) {
            out.push_back(it->path().string());
            if (it->is_directory()) it.disable_recursion_pending();
        }
    }
    return out;
}

std::vector<std::string> pending_records(const Hvd& h) { return list_dir(h.state_dir + "/pending"); }

// Polls `task show` until pred(task) or the deadline; returns the last task seen.
json wait_task(const Hvd& h, const std::string& id, const std::function<bool(const json&)>& pred,
               std::chrono::milliseconds timeout = 60s) {
    json t;
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
        auto r = h.ctl({"task", "show", id, "-o", "json"});
        if (r.exit_code == 0) {
            t = json::parse(r.out, nullptr, false);
            if (pred(t)) return t;
            if (t.value("state", "") != "running" && t.value("state", "") != "queued") return t;
        }
        std::this_thread::sleep_for(20ms);
    }
    return t;
}

// Programs hvd started that outlive it (tar, qemu-img, debootstrap: SIGKILL reaches hvd only):
// those whose command line names this test's directory. Waits for them to end; after the
// deadline they are killed by pid (they belong to this test's hvd).
void wait_orphans(const std::string& marker, std::chrono::milliseconds timeout = 10s) {
    auto find = [&] {
        std::vector<pid_t> out;
        for (const auto& n : list_dir("/proc")) {
            if (n.empty() || !std::isdigit(static_cast<unsigned char>(n[0]))) continue;
            auto cmd = read_file("/proc/" + n + "/cmdline");
            if (cmd.find(marker) != std::string::npos) out.push_back(std::stoi(n));
        }
        return out;
    };
    if (wait_until([&] { return find().empty(); }, timeout, 50ms)) return;
    for (pid_t p : find()) ::kill(p, SIGKILL);
    wait_until([&] { return find().empty(); }, 5s, 50ms);
}

void check_failed_with_rollback(const Hvd& h, const std::string& id, const std::string& rolled) {
    auto t = h.ctl_json({"task", "show", id});
    INFO(t.dump());
    CHECK(t["state"] == "failed");
    REQUIRE(t["error"].is_object());
    std::string msg = t["error"]["message"];
    CHECK_THAT(msg, Catch::Contains("hvd stopped while the task was running"));
    CHECK_THAT(msg, Catch::Contains("rolled back after restart"));
    CHECK_THAT(msg, Catch::Contains(rolled));
}

std::uint64_t free_bytes(const std::string& dir) { return fs::space(dir).available; }

// Undefines the container a test made (declared after the Hvd, so it runs first).
struct LxcCleanup {
    std::string name;
    ~LxcCleanup() {
        if (lxc_virsh({"dominfo", name}).exit_code != 0) return;
        lxc_virsh({"destroy", name});
        lxc_virsh({"undefine", name});
    }
};

}  // namespace

TEST_CASE("crash: hvd killed while a VM create zeroes its second disk leaves no volume, no domain",
          "[integration][crash]") {
    Hvd hvd;
    auto name = hvd.vm("crashvm");
    std::uint64_t big = free_bytes(hvd.pool_dir) > (10ull << 30) ? 3072 : 1024;  // MiB
    auto t = hvd.ctl_json({"vm", "create", name, "--memory", "64M", "--disk",
                           "size=16M,provision=eager-zeroed,format=raw", "--disk",
                           "size=" + std::to_string(big) + "M,provision=eager-zeroed,format=raw", "--async"});
    std::string id = t["id"];
    auto seen = wait_task(hvd, id, [&](const json& t) {
        return t.value("message", "").find("zeroing " + name + "-disk1") != std::string::npos;
    });
    INFO(seen.dump());
    REQUIRE(seen["state"] == "running");
    // The first disk is a complete volume now, the second a .partial file.
    CHECK(file_exists(hvd.image_dir + "/" + name + "-disk0.raw"));
    CHECK_FALSE(partials(hvd.pool_dir).empty());
    CHECK(pending_records(hvd).size() >= 1);
    hvd.kill_hard();
    wait_orphans(hvd.dir);

    hvd.start();
    CHECK(partials(hvd.pool_dir).empty());
    CHECK(list_dir(hvd.image_dir).empty());  // disk0 (complete) was removed too: no VM owns it
    CHECK_FALSE(domain_exists(name));
    CHECK(pending_records(hvd).empty());
    check_failed_with_rollback(hvd, id, "removed volume local:" + name + "-disk0");

    auto r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M,provision=eager-zeroed,format=raw",
                      "--disk", "size=32M,provision=eager-zeroed,format=raw"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto vm = hvd.show(name);
    REQUIRE(vm["disks"].size() == 2);
    auto xml = virsh({"dumpxml", name});
    for (const auto& d : vm["disks"]) {
        CHECK(file_exists(d["path"].get<std::string>()));
        CHECK(xml.out.find(d["path"].get<std::string>()) != std::string::npos);
    }
    CHECK(hvd.ctl({"vm", "delete", name, "--purge"}).exit_code == 0);
}

TEST_CASE("crash: hvd killed while a VM clone copies its second disk leaves no volume, no domain",
          "[integration][crash][clone]") {
    Hvd hvd;
    auto src = hvd.vm("crashcs");
    auto dst = hvd.vm("crashcd");
    const std::uint64_t big = 1024;  // MiB: its copy takes seconds, the kill comes within them
    auto made = hvd.ctl({"vm", "create", src, "--memory", "64M", "--disk", "size=16M,provision=eager-zeroed,format=raw",
                         "--disk", "size=" + std::to_string(big) + "M,provision=eager-zeroed,format=raw"},
                        300s);
    INFO(made.describe());
    REQUIRE(made.exit_code == 0);
    auto t = hvd.ctl_json({"vm", "clone", src, dst, "--async"});
    std::string id = t["id"];
    // The first copy is a complete volume once the second one's partial file exists.
    const std::string second = hvd.image_dir + "/." + dst + "-disk1.raw.partial";
    REQUIRE(wait_until([&] { return file_exists(second); }, 120s, 10ms));
    CHECK(file_exists(hvd.image_dir + "/" + dst + "-disk0.raw"));
    CHECK(pending_records(hvd).size() >= 1);
    hvd.kill_hard();
    wait_orphans(hvd.dir);

    hvd.start();
    CHECK(partials(hvd.pool_dir).empty());
    CHECK_FALSE(file_exists(hvd.image_dir + "/" + dst + "-disk0.raw"));
    CHECK_FALSE(domain_exists(dst));
    CHECK(pending_records(hvd).empty());
    check_failed_with_rollback(hvd, id, "removed volume local:" + dst + "-disk0");
    // The source is untouched and the same clone works now.
    CHECK(file_exists(hvd.image_dir + "/" + src + "-disk1.raw"));
    auto again = hvd.ctl({"vm", "clone", src, dst}, 300s);
    INFO(again.describe());
    REQUIRE(again.exit_code == 0);
    CHECK(hvd.show(dst)["disks"].size() == 2);
    CHECK(hvd.ctl({"vm", "delete", dst, "--purge"}, 60s).exit_code == 0);
    CHECK(hvd.ctl({"vm", "delete", src, "--purge"}, 60s).exit_code == 0);
}

TEST_CASE("crash: hvd killed while a volume is created or grown: gone, or back at its old size",
          "[integration][crash][storage]") {
    Hvd hvd;
    std::uint64_t big = free_bytes(hvd.pool_dir) > (10ull << 30) ? 3072 : 1024;  // MiB
    // A create killed while zeroing.
    auto t = hvd.ctl_json({"storage", "volume", "create", "local", "crashvol", "--size", std::to_string(big) + "M",
                           "--format", "raw", "--provision", "eager-zeroed", "--async"});
    std::string id = t["id"];
    auto seen = wait_task(hvd, id, [](const json& t) { return t.value("message", "").find("zeroing") != std::string::npos; });
    INFO(seen.dump());
    REQUIRE(seen["state"] == "running");
    hvd.kill_hard();
    wait_orphans(hvd.dir);
    hvd.start();
    CHECK(partials(hvd.pool_dir).empty());
    CHECK(list_dir(hvd.image_dir).empty());
    CHECK(pending_records(hvd).empty());
    check_failed_with_rollback(hvd, id, "removed " + hvd.image_dir + "/.crashvol.raw.partial");
    auto r = hvd.ctl({"storage", "volume", "create", "local", "crashvol", "--size", "64M", "--format", "raw",
                      "--provision", "eager-zeroed"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);

    // A grow killed while zeroing the new space: the volume is its old size again, whole.
    t = hvd.ctl_json({"storage", "volume", "resize", "local", "crashvol", "--size", std::to_string(big + 64) + "M",
                      "--async"});
    id = t["id"];
    seen = wait_task(hvd, id, [](const json& t) { return t.value("message", "").find("zeroing") != std::string::npos; });
    INFO(seen.dump());
    REQUIRE(seen["state"] == "running");
    hvd.kill_hard();
    wait_orphans(hvd.dir);
    hvd.start();
    auto v = hvd.ctl_json({"storage", "volume", "show", "local", "crashvol"});
    INFO(v.dump());
    CHECK(v["capacity"] == 64 * MiB);
    CHECK(v["provision"] == "eager-zeroed");
    CHECK(fs::file_size(hvd.image_dir + "/crashvol.raw") == 64 * MiB);
    CHECK(pending_records(hvd).empty());
    check_failed_with_rollback(hvd, id, "back to its old size 64M");
    r = hvd.ctl({"storage", "volume", "resize", "local", "crashvol", "--size", "128M"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(hvd.ctl_json({"storage", "volume", "show", "local", "crashvol"})["capacity"] == 128 * MiB);
}

TEST_CASE("crash: hvd killed during a slow ISO upload leaves no partial file", "[integration][crash][iso]") {
    Hvd hvd;
    auto fifo = hvd.dir + "/upload.fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    // curl reads the body from the FIFO: the test decides how fast it comes. Opened read-write
    // first so that neither side blocks in open().
    int w = ::open(fifo.c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(w >= 0);
    Child up({"curl", "-sS", "--max-time", "60", "--unix-socket", hvd.socket, "-T", "-", "-H",
              "Transfer-Encoding: chunked", "-o", "-", "-w", "\n%{http_code}",
              "http://hvd/v1/storage/pools/local/isos/slow.iso"},
             "", fifo);
    std::string chunk(1 << 20, 'x');
    REQUIRE(::write(w, chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size()));
    REQUIRE(wait_until([&] { return !partials(hvd.pool_dir + "/iso").empty(); }, 20s, 20ms));
    CHECK(pending_records(hvd).size() == 1);
    hvd.kill_hard();
    ::close(w);
    up.finish(10s);
    hvd.start();
    CHECK(partials(hvd.pool_dir).empty());
    CHECK(list_dir(hvd.pool_dir + "/iso").empty());
    CHECK(pending_records(hvd).empty());
    std::ofstream(hvd.dir + "/slow.iso") << chunk;
    auto r = hvd.ctl({"storage", "iso", "upload", "local", hvd.dir + "/slow.iso"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(file_exists(hvd.pool_dir + "/iso/slow.iso"));
}

TEST_CASE("crash: hvd killed while a container's root filesystem is unpacked", "[integration][crash][ct]") {
    skip_unless_runnable();
    Hvd hvd;
    auto name = "it-crashct-" + std::to_string(::getpid());
    LxcCleanup cleanup{name};
    // A template whose unpacking takes a moment: /sbin/init plus 1 GiB of data (not sparse).
    auto root = hvd.dir + "/tmplroot";
    fs::create_directories(root + "/sbin");
    std::ofstream(root + "/sbin/init") << "#!/bin/sh\nexec sleep 1000\n";
    ::chmod((root + "/sbin/init").c_str(), 0755);
    REQUIRE(run({"dd", "if=/dev/zero", "of=" + root + "/big", "bs=8M", "count=128", "status=none"}).exit_code == 0);
    fs::create_directories(hvd.pool_dir + "/vztmpl");
    REQUIRE(run({"tar", "-cf", hvd.pool_dir + "/vztmpl/slow.tar", "-C", root, "."}).exit_code == 0);
    fs::remove_all(root);

    auto lxc_up = [&] { return hvd.ctl({"ct", "list"}).exit_code == 0; };
    REQUIRE(wait_until(lxc_up, 20s));
    auto t = hvd.ctl_json({"ct", "create", name, "--template", "slow", "--privileged", "--async"});
    std::string id = t["id"];
    auto seen = wait_task(hvd, id, [&](const json&) { return !partials(hvd.image_dir).empty(); });
    INFO(seen.dump());
    REQUIRE(seen["state"] == "running");
    hvd.kill_hard();
    wait_orphans(hvd.dir);
    hvd.start();
    CHECK(partials(hvd.pool_dir).empty());
    CHECK(list_dir(hvd.image_dir).empty());  // neither .NAME.rootfs.partial nor NAME.rootfs
    CHECK(pending_records(hvd).empty());
    CHECK(lxc_virsh({"dominfo", name}).exit_code != 0);
    check_failed_with_rollback(hvd, id, "removed " + hvd.image_dir + "/." + name + ".rootfs.partial");

    REQUIRE(wait_until(lxc_up, 20s));
    auto r = hvd.ctl({"ct", "create", name, "--template", "slow", "--privileged"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(file_exists(hvd.image_dir + "/" + name + ".rootfs/sbin/init"));
    CHECK(hvd.ctl({"ct", "delete", name}).exit_code == 0);
}

TEST_CASE("crash: hvd killed during a template build leaves no partial and no scratch directory",
          "[integration][crash][ct]") {
    // debootstrap against a "mirror" that accepts connections and never answers: the build
    // sits in its first download until hvd is killed.
    int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(ls >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(ls, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len);
    auto mirror = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/debian";
    Hvd hvd(true, "[containers]\ndebian_mirror = \"" + mirror + "\"\n");
    auto t = hvd.ctl_json({"ct", "template", "build", "debian-12", "--async"});
    std::string id = t["id"];
    auto seen = wait_task(hvd, id, [](const json& t) {
        return t.value("message", "").find("debootstrap") != std::string::npos;
    });
    INFO(seen.dump());
    REQUIRE(seen["state"] == "running");
    CHECK(partials(hvd.pool_dir + "/vztmpl").size() == 1);
    bool scratch = false;
    for (const auto& n : pending_records(hvd)) scratch |= n.ends_with(".d");
    CHECK(scratch);
    hvd.kill_hard();
    ::close(ls);  // debootstrap's download fails now and it ends
    wait_orphans(hvd.dir);
    hvd.start();
    CHECK(partials(hvd.pool_dir).empty());
    CHECK(pending_records(hvd).empty());  // record and scratch directory
    check_failed_with_rollback(hvd, id, "removed " + hvd.pool_dir + "/vztmpl/.debian-12.tar.gz.partial");
    auto r = hvd.ctl({"ct", "template", "build", "busybox"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(pending_records(hvd).empty());
}

TEST_CASE("crash: libvirtd killed while a VM create zeroes a disk: the create fails cleanly, hvd serves",
          "[integration][crash][libvirtd]") {
    Hvd hvd;
    auto name = hvd.vm("crashlv");
    std::uint64_t big = free_bytes(hvd.pool_dir) > (10ull << 30) ? 3072 : 1024;  // MiB
    auto t = hvd.ctl_json({"vm", "create", name, "--memory", "64M", "--disk",
                           "size=" + std::to_string(big) + "M,provision=eager-zeroed,format=raw", "--async"});
    std::string id = t["id"];
    LibvirtdRestartGuard guard;
    auto seen = wait_task(hvd, id, [&](const json& t) { return t.value("message", "").find("zeroing") != std::string::npos; });
    INFO(seen.dump());
    REQUIRE(seen["state"] == "running");
    guard.stop_libvirtd();
    auto fin = wait_task(hvd, id, [](const json&) { return false; }, 90s);
    INFO(fin.dump());
    // Defining the domain needs libvirt: the create fails and removes its disk.
    CHECK(fin["state"] == "failed");
    CHECK(partials(hvd.pool_dir).empty());
    CHECK(list_dir(hvd.image_dir).empty());
    CHECK(pending_records(hvd).empty());
    guard.start_libvirtd();
    Result r;
    CHECK(wait_until([&] {
        r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=32M,provision=eager-zeroed,format=raw"});
        return r.exit_code != 6;
    }, 30s, 250ms));
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(domain_exists(name));
    CHECK(hvd.ctl({"vm", "delete", name, "--purge"}).exit_code == 0);
}

TEST_CASE("crash: a record that needs libvirt waits while it is down and is rolled back when it is back",
          "[integration][crash][libvirtd]") {
    Hvd hvd;
    auto name = hvd.vm("crashwait");
    auto r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto vm = hvd.show(name);
    std::string uuid = vm["uuid"], disk = vm["disks"][0]["path"];
    REQUIRE(hvd.stop() == 0);
    // What a create killed right after defining the domain leaves: its record, naming the
    // volume and the domain by the uuid it chose.
    fs::create_directories(hvd.state_dir + "/pending");
    std::ofstream(hvd.state_dir + "/pending/op-1-1.json")
        << json{{"id", "op-1-1"}, {"op", "vm.create"}, {"target", "vm/" + name}, {"task", ""}, {"created", 1},
                {"items", json::array({{{"type", "volume"}, {"data", {{"pool", "local"}, {"name", name + "-disk0"}}}},
                                       {{"type", "vm-domain"}, {"data", {{"name", name}, {"uuid", uuid}}}}})}}
               .dump();
    LibvirtdRestartGuard guard;
    guard.stop_libvirtd();
    hvd.start(/*wait_for_libvirt=*/false);
    // Nothing of it is touched while libvirt cannot say whether the domain exists.
    CHECK(file_exists(hvd.state_dir + "/pending/op-1-1.json"));
    CHECK(file_exists(disk));
    guard.start_libvirtd();
    CHECK(wait_until([&] { return !file_exists(hvd.state_dir + "/pending/op-1-1.json"); }, 30s, 100ms));
    CHECK_FALSE(domain_exists(name));
    CHECK_FALSE(file_exists(disk));
    CHECK(partials(hvd.pool_dir).empty());
    CHECK_THAT(hvd.log_tail(200), Catch::Contains("undefined vm " + name));
}
