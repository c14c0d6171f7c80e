// util::write_file_atomic (src/util/atomic_file.cpp): the one durable writer of state files.
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "hv/error.hpp"
#include "hv/util/atomic_file.hpp"

namespace fs = std::filesystem;
using hv::util::atomic_temp_path;
using hv::util::write_file_atomic;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        std::string t = (fs::temp_directory_path() / "hv-atomic-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::size_t entries(const std::string& dir) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
    return n;
}

}  // namespace

TEST_CASE("atomic file: the temp name is a dot file beside the target", "[atomic_file]") {
    CHECK(atomic_temp_path("/var/lib/hv/pools.json") == "/var/lib/hv/.pools.json.tmp");
    CHECK(atomic_temp_path("/var/lib/hv/tasks/t-000001.json") == "/var/lib/hv/tasks/.t-000001.json.tmp");
    CHECK(atomic_temp_path("state.json") == ".state.json.tmp");
}

TEST_CASE("atomic file: creates, replaces, keeps binary contents exactly, leaves no temp file", "[atomic_file]") {
    TempDir d;
    auto p = d.path + "/pools.json";
    write_file_atomic(p, "first\n");
    CHECK(slurp(p) == "first\n");

    std::string bin("a\0b\xff\n", 5);
    bin += std::string(1 << 20, 'x');  // more than one write() may take
    write_file_atomic(p, bin);
    CHECK(slurp(p) == bin);

    write_file_atomic(p, "");
    CHECK(fs::exists(p));
    CHECK(fs::file_size(p) == 0);
    CHECK(entries(d.path) == 1);
    CHECK_FALSE(fs::exists(atomic_temp_path(p)));
}

TEST_CASE("atomic file: mode applies to a new file (under the umask)", "[atomic_file]") {
    TempDir d;
    auto p = d.path + "/secret.json";
    mode_t old = ::umask(022);
    write_file_atomic(p, "{}\n", 0600);
    write_file_atomic(d.path + "/open.json", "{}\n", 0666);
    ::umask(old);
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat((d.path + "/open.json").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0644);
}

TEST_CASE("atomic file: a stale temp file from a crash is overwritten, not appended to", "[atomic_file]") {
    TempDir d;
    auto p = d.path + "/network.json";
    std::ofstream(atomic_temp_path(p)) << "half-written garbage from before the crash";
    write_file_atomic(p, "{\"bridges\":[]}\n");
    CHECK(slurp(p) == "{\"bridges\":[]}\n");
    CHECK_FALSE(fs::exists(atomic_temp_path(p)));
}

TEST_CASE("atomic file: failures throw internal with the file named and leave the old file", "[atomic_file]") {
    TempDir d;
    SECTION("missing directory") {
        auto p = d.path + "/no/such/dir/state.json";
        try {
            write_file_atomic(p, "x");
            FAIL("no exception");
        } catch (const hv::Error& e) {
            CHECK(e.code() == hv::Errc::internal);
            CHECK_THAT(e.what(), Catch::Contains(atomic_temp_path(p)));
            CHECK_THAT(e.what(), Catch::Contains("No such file or directory"));
        }
    }
    SECTION("the target is a directory: rename fails, old contents stay, temp file removed") {
        auto p = d.path + "/state.json";
        fs::create_directory(p);
        std::ofstream(p + "/inside") << "kept";
        try {
            write_file_atomic(p, "new");
            FAIL("no exception");
        } catch (const hv::Error& e) {
            CHECK(e.code() == hv::Errc::internal);
            CHECK_THAT(e.what(), Catch::Contains("rename"));
            CHECK_THAT(e.what(), Catch::Contains(p));
        }
        CHECK(slurp(p + "/inside") == "kept");
        CHECK_FALSE(fs::exists(atomic_temp_path(p)));
    }
    SECTION("a temp path that is a symlink is not followed") {
        auto p = d.path + "/link.json";
        auto victim = d.path + "/victim";
        std::ofstream(victim) << "untouched";
        fs::create_symlink(victim, atomic_temp_path(p));
        CHECK_THROWS_AS(write_file_atomic(p, "new"), hv::Error);
        CHECK(slurp(victim) == "untouched");
        CHECK_FALSE(fs::exists(p));
    }
    SECTION("an empty name") {
        CHECK_THROWS_AS(write_file_atomic("", "x"), hv::Error);
        CHECK_THROWS_AS(write_file_atomic(d.path + "/", "x"), hv::Error);
    }
}

// Found on the rig: two threads of hvd wrote one keyring at once; they shared the temp file
// and the second rename failed (ENOENT).
TEST_CASE("atomic file: writers of one file at once take turns", "[atomic_file]") {
    TempDir d;
    auto p = d.path + "/shared.json";
    std::atomic<int> errors{0};
    auto writer = [&](char c) {
        for (int i = 0; i < 200; ++i) {
            try {
                write_file_atomic(p, std::string(64, c));
            } catch (const hv::Error&) {
                ++errors;
            }
        }
    };
    std::thread a(writer, 'a'), b(writer, 'b');
    a.join();
    b.join();
    CHECK(errors == 0);
    auto text = slurp(p);
    CHECK((text == std::string(64, 'a') || text == std::string(64, 'b')));
    CHECK_FALSE(fs::exists(atomic_temp_path(p)));
}
