// The backup store (src/backup/chunk_store.cpp, manifest.cpp), prune selection (prune.cpp) and
// the backup request bodies (src/api/backup.cpp).
#include <sys/stat.h>

#include <atomic>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "chunk_store.hpp"
#include "hv/api/backup.hpp"
#include "hv/error.hpp"
#include "manifest.hpp"
#include "prune.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace hv::backup;
using hv::Errc;
using nlohmann::json;

namespace {

std::string pattern(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    std::uint32_t x = seed * 2654435761u + 1;
    for (std::size_t i = 0; i < n; ++i) {
        x = x * 1103515245u + 12345u;
        s[i] = static_cast<char>((i % 64 < 32) ? 'a' + (x >> 24) % 4 : 0);  // compressible, not zero
    }
    return s;
}

std::string file_text(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// The hv::Error f throws (the test fails when it throws none).
hv::Error error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const hv::Error& e) {
        return e;
    }
    FAIL("no hv::Error");
    return hv::Error(Errc::internal, "");
}
Errc code_of(const std::function<void()>& f) { return error_of(f).code(); }

Manifest sample(const std::string& guest, const std::string& time, std::vector<std::string> chunks,
                std::uint64_t size) {
    Manifest m;
    m.guest = guest;
    m.time = time;
    m.mode = "offline";
    m.spec = json{{"name", guest}};
    m.disks.push_back({"disk0", "raw", size, std::move(chunks)});
    m.size = size;
    m.new_data = 7;
    return m;
}

}  // namespace

TEST_CASE("backup store: a chunk is stored compressed under its SHA-256 and reads back checked", "[backup]") {
    hv::test::TempDir dir;
    ChunkStore cs(dir.path, true);
    for (const char* d : {"chunks", "backups", "tmp"}) CHECK(fs::is_directory(dir.path + "/" + d));
    auto data = pattern(kChunkSize, 1);
    auto p = cs.put(data);
    CHECK(p.id == sha256_hex(data));
    CHECK(p.written);
    auto path = dir.path + "/chunks/" + p.id.substr(0, 2) + "/" + p.id;
    REQUIRE(fs::exists(path));
    CHECK(fs::file_size(path) == p.stored);
    CHECK(p.stored < data.size() / 2);  // zstd did compress it
    CHECK(file_text(path).find(data.substr(0, 64)) == std::string::npos);
    CHECK(cs.get(p.id) == data);
    // No temp file stays beside it.
    for (const auto& e : fs::directory_iterator(dir.path + "/chunks/" + p.id.substr(0, 2)))
        CHECK(e.path().filename().string() == p.id);
    // A short last chunk.
    auto tail = pattern(12345, 2);
    auto t = cs.put(tail);
    CHECK(cs.get(t.id) == tail);
    CHECK(code_of([&] { cs.put(std::string(kChunkSize + 1, 'x')); }) == Errc::internal);
}

TEST_CASE("backup store: deduplication writes an existing chunk once", "[backup]") {
    hv::test::TempDir dir;
    ChunkStore cs(dir.path, true);
    auto a = pattern(kChunkSize, 3), b = pattern(kChunkSize, 4);
    auto p1 = cs.put(a);
    struct stat st1 {};
    REQUIRE(::stat(cs.chunk_path(p1.id).c_str(), &st1) == 0);
    const auto old = fs::file_time_type::clock::now() - std::chrono::hours(48);
    fs::last_write_time(cs.chunk_path(p1.id), old);
    auto p2 = cs.put(a);
    CHECK(p2.id == p1.id);
    CHECK_FALSE(p2.written);
    CHECK(p2.stored == 0);
    // Not written again (the same file), but its time is now: garbage collection's grace
    // period counts from the last backup that found it.
    struct stat st2 {};
    REQUIRE(::stat(cs.chunk_path(p1.id).c_str(), &st2) == 0);
    CHECK(st2.st_ino == st1.st_ino);
    CHECK(fs::last_write_time(cs.chunk_path(p1.id)) > old + std::chrono::hours(47));
    const std::int64_t now = std::time(nullptr);
    CHECK_FALSE(cs.remove_chunk(p1.id, now - 24 * 3600).has_value());  // recent: kept
    CHECK(cs.has(p1.id));
    auto p3 = cs.put(b);
    CHECK(p3.written);
    CHECK(p3.id != p1.id);
    CHECK(cs.chunk_ids().size() == 2);
    fs::last_write_time(cs.chunk_path(p1.id), old);
    auto freed = cs.remove_chunk(p1.id, now - 24 * 3600);
    REQUIRE(freed.has_value());
    CHECK(*freed > 0);
    CHECK_FALSE(cs.has(p1.id));
}

TEST_CASE("backup store: all-zero chunks are recorded as zero and never stored", "[backup]") {
    hv::test::TempDir dir;
    ChunkStore cs(dir.path, true);
    auto p = cs.put(std::string(kChunkSize, '\0'));
    CHECK(p.id == kZeroChunk);
    CHECK_FALSE(p.written);
    CHECK(cs.chunk_ids().empty());
    CHECK(cs.has(kZeroChunk));
    CHECK(cs.get(kZeroChunk, 100) == std::string(100, '\0'));
    // One non-zero byte at the very end is data.
    std::string almost(kChunkSize, '\0');
    almost.back() = 1;
    CHECK(cs.put(almost).id != kZeroChunk);
}

TEST_CASE("backup store: a corrupt or missing chunk is named", "[backup]") {
    hv::test::TempDir dir;
    ChunkStore cs(dir.path, true);
    auto p = cs.put(pattern(kChunkSize, 5));
    auto path = cs.chunk_path(p.id);
    {
        // Same length, one byte changed in the middle of the compressed frame.
        auto text = file_text(path);
        text[text.size() / 2] ^= 0x55;
        std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    }
    auto corrupt = error_of([&] { cs.get(p.id); });
    CHECK(corrupt.code() == Errc::internal);
    CHECK_THAT(corrupt.what(), Catch::Contains(p.id));
    // A chunk replaced by another valid chunk's content: the hash check finds it.
    auto q = cs.put(pattern(kChunkSize, 6));
    fs::copy_file(cs.chunk_path(q.id), path, fs::copy_options::overwrite_existing);
    CHECK(code_of([&] { cs.get(p.id); }) == Errc::internal);
    fs::remove(path);
    auto missing = error_of([&] { cs.get(p.id); });
    CHECK(missing.code() == Errc::not_found);
    CHECK_THAT(missing.what(), Catch::Contains(p.id));
    CHECK(code_of([&] { cs.get("../../etc/passwd"); }) == Errc::invalid_input);
}

TEST_CASE("backup store: manifests are written atomically, once, and a half-written one is invisible", "[backup]") {
    hv::test::TempDir dir;
    ChunkStore cs(dir.path, true);
    auto c = cs.put(pattern(kChunkSize, 7));
    auto m = sample("web01", "2026-12-07T12:00:00Z", {c.id, kZeroChunk}, kChunkSize + 100);
    cs.write_manifest(m);
    auto back = cs.read_manifest("web01", "2026-12-07T12:00:00Z");
    CHECK(to_json(back) == to_json(m));
    CHECK(code_of([&] { cs.write_manifest(m); }) == Errc::conflict);
    for (const auto& e : fs::directory_iterator(dir.path + "/backups/web01"))
        CHECK(e.path().filename().string() == "2026-12-07T12:00:00Z.json");

    // What a crash in the middle of write_file_atomic leaves: the dot temp file only.
    auto m2 = sample("web01", "2026-12-08T12:00:00Z", {c.id, kZeroChunk}, kChunkSize + 100);
    std::ofstream(dir.path + "/backups/web01/.2026-12-08T12:00:00Z.json.tmp") << to_json(m2).dump().substr(0, 40);
    // ... and a manifest whose content is damaged is named, not listed.
    std::ofstream(dir.path + "/backups/web01/2026-12-09T12:00:00Z.json") << "{\"version\":1,";
    std::vector<std::string> bad;
    auto list = cs.manifests("", &bad);
    REQUIRE(list.size() == 1);
    CHECK(list[0].time == "2026-12-07T12:00:00Z");
    REQUIRE(bad.size() == 1);
    CHECK_THAT(bad[0], Catch::Contains("2026-12-09T12:00:00Z"));
    CHECK(code_of([&] { cs.read_manifest("web01", "2026-12-08T12:00:00Z"); }) == Errc::not_found);
    CHECK(code_of([&] { cs.read_manifest("web01", "../x"); }) == Errc::invalid_input);

    // Two backups of one guest in the same second, at once: one is published, the other gets
    // 409, and neither overwrote the other (link(2), not rename).
    for (int round = 0; round < 20; ++round) {
        const std::string t = fmt::format("2026-12-10T12:00:{:02d}Z", round);
        auto a = sample("web01", t, {c.id}, kChunkSize), b = sample("web01", t, {kZeroChunk, c.id}, 2 * kChunkSize);
        std::atomic<int> ok{0}, conflict{0};
        auto write = [&](const hv::backup::Manifest& mm) {
            try {
                cs.write_manifest(mm);
                ++ok;
            } catch (const hv::Error& e) {
                if (e.code() == Errc::conflict) ++conflict;
            }
        };
        std::thread ta(write, a), tb(write, b);
        ta.join();
        tb.join();
        CHECK(ok == 1);
        CHECK(conflict == 1);
        auto won = to_json(cs.read_manifest("web01", t));
        CHECK((won == to_json(a) || won == to_json(b)));
        cs.remove_manifest("web01", t);
    }
    CHECK(cs.manifests("web01", &bad).size() == 1);
    for (const auto& e : fs::directory_iterator(dir.path + "/backups/web01"))  // no temp file left behind
        CHECK(e.path().filename().string().rfind(".2026-12-10", 0) != 0);

    CHECK(cs.verified("web01", m.time).is_null());
    cs.set_verified("web01", m.time, true, "2026-12-07T13:00:00Z");
    CHECK(cs.verified("web01", m.time)["ok"] == true);
    cs.remove_manifest("web01", m.time);
    CHECK(cs.manifests("web01").empty());
    CHECK(cs.verified("web01", m.time).is_null());
}

TEST_CASE("backup manifest: the strict parser refuses what does not add up", "[backup]") {
    auto good = to_json(sample("web01", "2026-12-07T12:00:00Z", {std::string(64, 'a')}, 10));
    CHECK_NOTHROW(manifest_from_json(good));
    auto bad = [&](const std::function<void(json&)>& edit) {
        json j = good;
        edit(j);
        return code_of([&] { manifest_from_json(j); });
    };
    CHECK(bad([](json& j) { j["colour"] = 1; }) == Errc::invalid_input);
    CHECK(bad([](json& j) { j["version"] = 2; }) == Errc::invalid_input);
    CHECK(bad([](json& j) { j["time"] = "yesterday"; }) == Errc::invalid_input);
    CHECK(bad([](json& j) { j["guest"] = "../etc"; }) == Errc::invalid_input);
    CHECK(bad([](json& j) { j["disks"][0]["chunks"].push_back("zero"); }) == Errc::invalid_input);
    CHECK(bad([](json& j) { j["disks"][0]["chunks"][0] = std::string(64, 'A'); }) == Errc::invalid_input);
    CHECK(bad([](json& j) { j["disks"][0]["size"] = 11; }) == Errc::invalid_input);  // sum differs
    CHECK(bad([](json& j) { j["chunk_size"] = 1024; }) == Errc::invalid_input);
    CHECK(bad([](json& j) { j["spec"] = "x"; }) == Errc::invalid_input);
    CHECK(bad([](json& j) { j["disks"][0]["format"] = "vmdk"; }) == Errc::invalid_input);
}

TEST_CASE("backup time: the one UTC form, both ways", "[backup]") {
    CHECK(format_backup_time(0) == "1970-01-01T00:00:00Z");
    CHECK(parse_backup_time("2026-12-07T12:34:56Z") == 1796646896);
    CHECK(format_backup_time(1796646896) == "2026-12-07T12:34:56Z");
    CHECK_FALSE(valid_backup_time("2026-12-07 12:34:56Z"));
    CHECK_FALSE(valid_backup_time("2026-12-07T12:34:56"));
}

namespace {
std::int64_t at(const std::string& t) { return parse_backup_time(t); }
std::vector<std::string> kept(const std::vector<std::string>& times, KeepPolicy p) {
    std::vector<std::int64_t> ts;
    for (const auto& t : times) ts.push_back(at(t));
    auto keep = prune_keep(ts, p);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < times.size(); ++i)
        if (keep[i]) out.push_back(times[i]);
    return out;
}
}  // namespace

TEST_CASE("prune: keep-last, daily, weekly and monthly select like Proxmox Backup Server", "[backup][prune]") {
    std::vector<std::string> t = {
        "2026-11-02T02:00:00Z",  // Mon, week 45
        "2026-11-20T02:00:00Z",  // Fri, week 47
        "2026-11-29T02:00:00Z",  // Sun, week 48
        "2026-11-30T02:00:00Z",  // Mon, week 49
        "2026-12-05T02:00:00Z",  // Sat, week 49
        "2026-12-06T02:00:00Z",  // Sun, week 49
        "2026-12-07T02:00:00Z",  // Mon, week 50
        "2026-12-07T14:00:00Z",  // the same day, later
    };
    using V = std::vector<std::string>;
    CHECK(kept(t, {3, 0, 0, 0}) == V{t[5], t[6], t[7]});
    // Daily: the newest of each day, the 3 newest days.
    CHECK(kept(t, {0, 3, 0, 0}) == V{t[4], t[5], t[7]});
    // Weekly (ISO weeks): the newest of weeks 50, 49, 48.
    CHECK(kept(t, {0, 0, 3, 0}) == V{t[2], t[5], t[7]});
    // Monthly: the newest of December and of November.
    CHECK(kept(t, {0, 0, 0, 2}) == V{t[3], t[7]});
    // Combined: keep-last 1 covers 2026-12-07; daily 2 then takes 12-06 and 12-05; weekly 2
    // finds weeks 50 and 49 covered and takes 48 and 47; monthly 2: both months covered.
    CHECK(kept(t, {1, 2, 2, 2}) == V{t[1], t[2], t[4], t[5], t[7]});
    // More than there is keeps all; the input order does not matter.
    CHECK(kept(t, {100, 0, 0, 0}).size() == t.size());
    std::vector<std::string> rev(t.rbegin(), t.rend());
    CHECK(kept(rev, {0, 3, 0, 0}) == V{t[7], t[5], t[4]});
    CHECK(prune_keep({}, {1, 1, 1, 1}).empty());
}

TEST_CASE("backup requests: strict bodies", "[backup]") {
    using namespace hv::api;
    CHECK(backup_create_from_json(json{{"store", "nas"}}).mode == "snapshot");
    CHECK(code_of([] { backup_create_from_json(json{{"store", "nas"}, {"mode", "hot"}}); }) == Errc::invalid_input);
    CHECK(code_of([] { backup_create_from_json(json{{"store", "nas"}, {"x", 1}}); }) == Errc::invalid_input);
    CHECK(code_of([] { backup_store_from_json(json{{"name", "nas"}, {"path", "rel/dir"}}); }) == Errc::invalid_input);
    CHECK(code_of([] { backup_store_from_json(json{{"name", "bad name"}, {"path", "/x"}}); }) == Errc::invalid_input);
    CHECK(code_of([] { backup_restore_from_json(json{{"as", "bad name"}}); }) == Errc::invalid_input);
    CHECK(code_of([] { backup_prune_from_json(json{{"guest", "web01"}}); }) == Errc::invalid_input);
    CHECK(code_of([] { backup_prune_from_json(json{{"guest", "web01"}, {"keep_last", -1}}); }) == Errc::invalid_input);
    auto p = backup_prune_from_json(json{{"guest", "web01"}, {"keep_daily", 7}, {"dry_run", true}});
    CHECK(p.keep_daily == 7);
    CHECK(p.dry_run);
    CHECK(backup_prune_from_json(to_json(p)).keep_daily == 7);
}
