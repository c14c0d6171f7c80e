// The ISO library through hvctl and raw HTTP against a real hvd: streamed uploads with
// checksums, name checks, replace, an interrupted upload, memory during a multi-GiB upload,
// delete refused while a VM uses the ISO.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <dirent.h>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {

// A file of `mib` MiB of pseudo-random bytes (not compressible, not sparse).
std::string make_file(const std::string& path, std::size_t mib) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    std::mt19937_64 rng(static_cast<unsigned>(mib) * 7919u + static_cast<unsigned>(path.size()));
    std::vector<std::uint64_t> buf(1024 * 1024 / 8);
    for (std::size_t i = 0; i < mib; ++i) {
        for (auto& w : buf) w = rng();
        out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size() * 8));
    }
    out.close();
    return path;
}

// A sparse file of `bytes` (reads as zeros, costs no disk).
void make_sparse(const std::string& path, std::uint64_t bytes) {
    auto r = run({"truncate", "-s", std::to_string(bytes), path});
    REQUIRE(r.exit_code == 0);
}

std::string sha256sum(const std::string& path) {
    auto r = run({"sha256sum", path});
    REQUIRE(r.exit_code == 0);
    return r.out.substr(0, 64);
}

std::string iso_dir(const Hvd& hvd) { return hvd.pool_dir + "/iso"; }

bool has_partial(const Hvd& hvd) {
    auto names = list_dir(iso_dir(hvd));
    return std::any_of(names.begin(), names.end(), [](const std::string& n) { return n.find(".partial") != std::string::npos; });
}

std::optional<json> find_iso(const Hvd& hvd, const std::string& name) {
    auto list = hvd.ctl_json({"storage", "iso", "list", "local"});
    for (const auto& i : list)
        if (i.value("name", "") == name) return i;
    return std::nullopt;
}

// PID of the hvd serving `socket` (found through /proc/*/cmdline).
pid_t hvd_pid(const Hvd& hvd) {
    DIR* d = ::opendir("/proc");
    pid_t found = -1;
    while (dirent* e = d ? ::readdir(d) : nullptr) {
        pid_t pid = std::atoi(e->d_name);
        if (pid <= 0) continue;
        auto cmd = read_file(std::string("/proc/") + e->d_name + "/cmdline");
        std::replace(cmd.begin(), cmd.end(), '\0', ' ');
        if (cmd.find(env("HVD_BIN")) != std::string::npos && cmd.find(hvd.dir) != std::string::npos) found = pid;
    }
    if (d) ::closedir(d);
    return found;
}

// VmRSS / VmHWM of a process in KiB.
long status_kib(pid_t pid, const std::string& key) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key + ":", 0) == 0) return std::atol(line.c_str() + key.size() + 1);
    return -1;
}

}  // namespace

TEST_CASE("iso upload: checksum, listing, wrong checksum, names, replace, delete", "[integration][storage][iso]") {
    Hvd hvd;
    auto file = make_file(hvd.dir + "/test-image.iso", 64);
    auto sum = sha256sum(file);

    auto r = hvd.ctl({"storage", "iso", "upload", "local", file, "--sha256", sum});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto iso = find_iso(hvd, "test-image.iso");
    REQUIRE(iso);
    CHECK((*iso)["size"] == 64ull * 1024 * 1024);
    CHECK((*iso)["sha256"] == sum);
    CHECK((*iso)["used_by"].empty());
    CHECK(sha256sum(iso_dir(hvd) + "/test-image.iso") == sum);
    CHECK_FALSE(has_partial(hvd));
    // Listing every pool shows it too; show gives the same sum (from the xattr).
    auto all = hvd.ctl_json({"storage", "iso", "list"});
    CHECK(std::any_of(all.begin(), all.end(), [](const json& i) { return i["name"] == "test-image.iso"; }));
    CHECK(hvd.ctl_json({"storage", "iso", "show", "local", "test-image.iso"})["sha256"] == sum);

    // Wrong checksum: 400 -> exit 3, nothing stored.
    std::string wrong(64, '0');
    r = hvd.ctl({"storage", "iso", "upload", "local", file, "--name", "wrong.iso", "--sha256", wrong});
    INFO(r.describe());
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("checksum") != std::string::npos);
    CHECK_FALSE(file_exists(iso_dir(hvd) + "/wrong.iso"));
    CHECK_FALSE(has_partial(hvd));

    // Names: path separators, "..", not .iso -> exit 3.
    for (std::string bad : {"a/b.iso", "../x.iso", "..", "x..iso", ".hidden.iso", "image.img", "noext"}) {
        r = hvd.ctl({"storage", "iso", "upload", "local", file, "--name", bad});
        INFO(bad << ": " << r.describe());
        CHECK(r.exit_code == 3);
    }
    CHECK_FALSE(file_exists(hvd.pool_dir + "/x.iso"));
    CHECK_FALSE(file_exists(hvd.state_dir + "/x.iso"));
    CHECK_FALSE(has_partial(hvd));
    // Upper-case extension is fine.
    r = hvd.ctl({"storage", "iso", "upload", "local", file, "--name", "UPPER.ISO"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);

    // Existing name without --replace -> 409 -> exit 5; with --replace it is overwritten.
    auto other = make_file(hvd.dir + "/other.bin", 2);
    r = hvd.ctl({"storage", "iso", "upload", "local", other, "--name", "test-image.iso"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    CHECK(sha256sum(iso_dir(hvd) + "/test-image.iso") == sum);
    r = hvd.ctl({"storage", "iso", "upload", "local", other, "--name", "test-image.iso", "--replace"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    iso = find_iso(hvd, "test-image.iso");
    REQUIRE(iso);
    CHECK((*iso)["size"] == 2ull * 1024 * 1024);
    CHECK((*iso)["sha256"] == sha256sum(other));

    // Unknown pool -> 404 -> exit 4.
    r = hvd.ctl({"storage", "iso", "upload", "nosuchpool", file});
    CHECK(r.exit_code == 4);

    // Delete.
    r = hvd.ctl({"storage", "iso", "delete", "local", "test-image.iso"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK_FALSE(file_exists(iso_dir(hvd) + "/test-image.iso"));
    CHECK_FALSE(find_iso(hvd, "test-image.iso"));
    r = hvd.ctl({"storage", "iso", "delete", "local", "test-image.iso"});
    CHECK(r.exit_code == 4);
}

TEST_CASE("iso upload over raw HTTP: chunked body, refusals before the body", "[integration][storage][iso]") {
    Hvd hvd;
    auto file = make_file(hvd.dir + "/chunked.iso", 8);
    auto sum = sha256sum(file);
    // Chunked transfer encoding (no Content-Length).
    auto r = run({"curl", "-sS", "--max-time", "60", "--unix-socket", hvd.socket, "-T", file, "-H",
                  "Transfer-Encoding: chunked", "-o", "-", "-w", "\n%{http_code}",
                  "http://hvd/v1/storage/pools/local/isos/chunked.iso?sha256=" + sum});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.substr(r.out.rfind('\n') + 1) == "201");
    auto iso = find_iso(hvd, "chunked.iso");
    REQUIRE(iso);
    CHECK((*iso)["sha256"] == sum);
    CHECK((*iso)["size"] == 8ull * 1024 * 1024);

    // Existing name: 409 with curl's Expect: 100-continue (refused before the body).
    r = run({"curl", "-sS", "--max-time", "60", "--unix-socket", hvd.socket, "-T", file, "-o", "-", "-w",
             "\n%{http_code}", "http://hvd/v1/storage/pools/local/isos/chunked.iso"});
    INFO(r.describe());
    CHECK(r.out.substr(r.out.rfind('\n') + 1) == "409");
    // Encoded slash in the name: 400.
    r = run({"curl", "-sS", "--max-time", "60", "--unix-socket", hvd.socket, "-T", file, "-o", "-", "-w",
             "\n%{http_code}", "http://hvd/v1/storage/pools/local/isos/..%2Fescape.iso"});
    INFO(r.describe());
    CHECK(r.out.substr(r.out.rfind('\n') + 1) == "400");
    CHECK_FALSE(file_exists(hvd.pool_dir + "/escape.iso"));
    // Larger than the free space: 507 before any byte is written.
    r = run({"curl", "-sS", "--max-time", "60", "--unix-socket", hvd.socket, "-X", "PUT", "-H",
             "Content-Length: 1125899906842624", "-H", "Expect: 100-continue", "--data-binary", "x", "-o", "-", "-w",
             "\n%{http_code}", "http://hvd/v1/storage/pools/local/isos/huge.iso"});
    INFO(r.describe());
    CHECK(r.out.find("insufficient_space") != std::string::npos);
    CHECK_FALSE(has_partial(hvd));
    // Other routes still work on the same server (JSON bodies, limits).
    CHECK(hvd.http("GET", "/v1/storage/pools/local/isos/chunked.iso").status == 200);
    CHECK(hvd.http("GET", "/v1/storage/pools/local/isos/missing.iso").status == 404);
}

TEST_CASE("iso upload: a client killed mid-way leaves no partial file", "[integration][storage][iso]") {
    Hvd hvd;
    auto big = hvd.dir + "/big.iso";
    make_sparse(big, 4ull << 30);  // 4 GiB: far from done when killed
    Child up(hvd.ctl_argv({"storage", "iso", "upload", "local", big}));
    REQUIRE(wait_until([&] { return has_partial(hvd); }, 20s, 20ms));
    std::this_thread::sleep_for(300ms);
    REQUIRE(up.running());
    ::kill(up.pid(), SIGKILL);
    up.finish(10s);
    CHECK(wait_until([&] { return !has_partial(hvd); }, 10s));
    CHECK_FALSE(file_exists(iso_dir(hvd) + "/big.iso"));
    // The name is free again (the aborted upload lets go of it right after removing its
    // partial file) and hvd still answers.
    auto small = make_file(hvd.dir + "/small.iso", 1);
    Result r;
    CHECK(wait_until([&] {
        r = hvd.ctl({"storage", "iso", "upload", "local", small, "--name", "big.iso"});
        return r.exit_code == 0;
    }, 5s));
    INFO(r.describe());
    CHECK(r.exit_code == 0);
}

TEST_CASE("iso upload: hvd's memory stays small during a 2 GiB upload", "[integration][storage][iso]") {
    Hvd hvd;
    auto big = hvd.dir + "/sparse.iso";
    make_sparse(big, 2ull << 30);
    pid_t pid = hvd_pid(hvd);
    REQUIRE(pid > 0);
    long before = status_kib(pid, "VmRSS");
    long peak = 0;
    Child up(hvd.ctl_argv({"storage", "iso", "upload", "local", big}));
    while (up.running()) {
        peak = std::max(peak, status_kib(pid, "VmRSS"));
        std::this_thread::sleep_for(50ms);
    }
    auto r = up.finish(10s);
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto iso = find_iso(hvd, "sparse.iso");
    REQUIRE(iso);
    CHECK((*iso)["size"] == 2ull << 30);
    UNSCOPED_INFO("hvd VmRSS before " << before << " KiB, peak during upload " << peak << " KiB");
    WARN("hvd VmRSS before " << before << " KiB, peak during the 2 GiB upload " << peak << " KiB");
    CHECK(peak - before < 48 * 1024);
    ::unlink((iso_dir(hvd) + "/sparse.iso").c_str());
}

TEST_CASE("iso in use by a VM: delete and replace refused", "[integration][storage][iso]") {
    Hvd hvd;
    auto file = make_file(hvd.dir + "/boot.iso", 1);
    REQUIRE(hvd.ctl({"storage", "iso", "upload", "local", file}).exit_code == 0);
    auto name = hvd.vm("iso");
    auto r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--cdrom", "local:iso/boot.iso"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto iso = find_iso(hvd, "boot.iso");
    REQUIRE(iso);
    CHECK((*iso)["used_by"] == json::array({name}));

    r = hvd.ctl({"storage", "iso", "delete", "local", "boot.iso"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    CHECK(file_exists(iso_dir(hvd) + "/boot.iso"));
    r = hvd.ctl({"storage", "iso", "upload", "local", file, "--replace"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);

    REQUIRE(hvd.ctl({"vm", "delete", name}).exit_code == 0);
    r = hvd.ctl({"storage", "iso", "delete", "local", "boot.iso"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
}
