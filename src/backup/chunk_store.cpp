#include "chunk_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include <openssl/evp.h>
#include <zstd.h>

#include "hv/error.hpp"
#include "hv/api/vm.hpp"
#include "hv/util/atomic_file.hpp"
#include "hv/util/fd.hpp"

namespace hv::backup {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Fd = util::UniqueFd;

void write_all(int fd, const char* p, std::size_t n, const std::string& what) {
    while (n > 0) {
        auto w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail(Errc::internal, "cannot write {}: {}", what, std::strerror(errno));
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

void fsync_dir(const std::string& dir) {
    Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.fd < 0 || ::fsync(d.fd) != 0) fail(Errc::internal, "cannot fsync directory {}: {}", dir, std::strerror(errno));
}

// The entry names of `dir`, never throwing: a directory that cannot be read, or an entry that
// goes while it is read, gives what could be read (a range-for over directory_iterator throws
// filesystem_error from its increment).
std::vector<std::string> entries(const std::string& dir, bool dirs_only = false) {
    std::vector<std::string> out;
    std::error_code ec;
    fs::directory_iterator it(dir, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
        std::error_code ec2;
        if (dirs_only && !it->is_directory(ec2)) continue;
        out.push_back(it->path().filename().string());
    }
    return out;
}

void make_dir(const std::string& p) {
    std::error_code ec;
    fs::create_directories(p, ec);
    if (ec) fail(Errc::internal, "cannot make directory {}: {}", p, ec.message());
}

std::string read_whole(const std::string& path, bool* missing) {
    Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (f.fd < 0) {
        if (errno == ENOENT && missing) {
            *missing = true;
            return {};
        }
        fail(Errc::internal, "cannot open {}: {}", path, std::strerror(errno));
    }
    std::string out;
    char buf[65536];
    for (;;) {
        auto r = ::read(f.fd, buf, sizeof buf);
        if (r < 0) {
            if (errno == EINTR) continue;
            fail(Errc::internal, "cannot read {}: {}", path, std::strerror(errno));
        }
        if (r == 0) break;
        out.append(buf, static_cast<std::size_t>(r));
    }
    return out;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
        fail(Errc::internal, "SHA-256 failed");
    static const char* hex = "0123456789abcdef";
    std::string out;
    out.reserve(len * 2);
    for (unsigned i = 0; i < len; ++i) {
        out.push_back(hex[md[i] >> 4]);
        out.push_back(hex[md[i] & 15]);
    }
    return out;
}

bool all_zero(std::string_view data) {
    static const char zeros[4096] = {};
    while (!data.empty()) {
        auto n = std::min(data.size(), sizeof zeros);
        if (std::memcmp(data.data(), zeros, n) != 0) return false;
        data.remove_prefix(n);
    }
    return true;
}

ChunkStore::ChunkStore(std::string root, bool create) : root_(std::move(root)) {
    std::error_code ec;
    if (!fs::is_directory(root_, ec)) fail(Errc::not_found, "backup store directory {} does not exist", root_);
    if (create) {
        make_dir(root_ + "/chunks");
        make_dir(root_ + "/backups");
    } else if (!fs::is_directory(root_ + "/chunks", ec) || !fs::is_directory(root_ + "/backups", ec)) {
        // An unmounted NAS leaves its empty mount point: never fill the root filesystem.
        fail(Errc::unavailable, "backup store directory {} has no chunks/ and backups/ (not mounted?)", root_);
    }
    make_dir(root_ + "/tmp");
}

std::string ChunkStore::scratch_dir() const {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0 || !host[0]) std::strcpy(host, "localhost");
    auto dir = tmp_dir() + "/" + host;
    make_dir(dir);
    // Swept at start as root: never a link to somewhere else.
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        fail(Errc::conflict, "the scratch directory {} is not a directory (a symbolic link?)", dir);
    return dir;
}

std::size_t ChunkStore::sweep_scratch() {
    std::size_t n = 0;
    std::error_code ec;
    for (const auto& name : entries(scratch_dir())) {
        const fs::path p = scratch_dir() + "/" + name;
        if (fs::is_regular_file(p, ec) && fs::remove(p, ec)) ++n;
    }
    return n;
}

std::string ChunkStore::chunk_path(const std::string& id) const {
    return root_ + "/chunks/" + id.substr(0, 2) + "/" + id;
}

bool ChunkStore::has(const std::string& id) const {
    if (id == kZeroChunk) return true;
    struct stat st{};
    return ::stat(chunk_path(id).c_str(), &st) == 0;
}

ChunkStore::Put ChunkStore::put(std::string_view data) {
    if (data.size() > kChunkSize) fail(Errc::internal, "chunk of {} bytes is larger than {}", data.size(), kChunkSize);
    Put p;
    if (all_zero(data)) {
        p.id = kZeroChunk;
        return p;
    }
    p.id = sha256_hex(data);
    auto dir = root_ + "/chunks/" + p.id.substr(0, 2);
    // Present: deduplicated. One call both finds it and sets its time to now (garbage
    // collection keeps chunks touched within its grace period, so a backup on another host
    // sharing the store never loses a chunk it found); its directory is synced with this
    // backup's (the chunk may come from a backup that failed before it synced).
    if (::utimensat(AT_FDCWD, chunk_path(p.id).c_str(), nullptr, 0) == 0 || errno != ENOENT) {
        dirty_dirs_.insert(dir);
        return p;
    }

    std::string comp(ZSTD_compressBound(data.size()), '\0');
    auto n = ZSTD_compress(comp.data(), comp.size(), data.data(), data.size(), 3);
    if (ZSTD_isError(n)) fail(Errc::internal, "zstd compression failed: {}", ZSTD_getErrorName(n));
    comp.resize(n);

    std::error_code dec;
    if (!fs::is_directory(dir, dec)) {
        make_dir(dir);
        dirty_dirs_.insert(root_ + "/chunks");  // the new directory's entry
    }
    std::string tmp = dir + "/." + p.id + ".tmp.XXXXXX";
    Fd f(::mkostemp(tmp.data(), O_CLOEXEC));
    if (f.fd < 0) fail(Errc::internal, "cannot make a temp file in {}: {}", dir, std::strerror(errno));
    try {
        write_all(f.fd, comp.data(), comp.size(), tmp);
        if (::fsync(f.fd) != 0) fail(Errc::internal, "cannot fsync {}: {}", tmp, std::strerror(errno));
        if (::rename(tmp.c_str(), chunk_path(p.id).c_str()) != 0)
            fail(Errc::internal, "cannot rename {}: {}", tmp, std::strerror(errno));
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
    {
        std::lock_guard lk(mu_);
        dirty_dirs_.insert(dir);
    }
    p.written = true;
    p.stored = comp.size();
    return p;
}

void ChunkStore::sync_dirs() {
    std::set<std::string> dirs;
    {
        std::lock_guard lk(mu_);
        dirs.swap(dirty_dirs_);
    }
    for (const auto& d : dirs) fsync_dir(d);
}

std::string ChunkStore::get(const std::string& id, std::size_t zero_size) const {
    if (id == kZeroChunk) return std::string(zero_size, '\0');
    if (!valid_chunk_id(id)) fail(Errc::invalid_input, "'{}' is no chunk name", id);
    bool missing = false;
    auto path = chunk_path(id);
    auto comp = read_whole(path, &missing);
    if (missing) fail(Errc::not_found, "chunk {} is missing ({})", id, path);
    auto size = ZSTD_getFrameContentSize(comp.data(), comp.size());
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > kChunkSize)
        fail(Errc::internal, "chunk {} is corrupt: not a zstd frame of at most {} bytes ({})", id, kChunkSize, path);
    std::string out(size, '\0');
    auto n = ZSTD_decompress(out.data(), out.size(), comp.data(), comp.size());
    if (ZSTD_isError(n) || n != size)
        fail(Errc::internal, "chunk {} is corrupt: {} ({})", id, ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short",
             path);
    if (sha256_hex(out) != id) fail(Errc::internal, "chunk {} is corrupt: its content has another SHA-256 ({})", id, path);
    return out;
}

std::string ChunkStore::manifest_path(const std::string& guest, const std::string& time) const {
    return root_ + "/backups/" + guest + "/" + time + ".json";
}

void ChunkStore::write_manifest(const Manifest& m) {
    sync_dirs();
    auto dir = root_ + "/backups/" + m.guest;
    make_dir(dir);
    fsync_dir(root_ + "/backups");
    auto path = manifest_path(m.guest, m.time);
    // Published with link(2), which fails when the name exists: of two backups of one guest in
    // the same second, one gets 409 and neither overwrites the other. The temp name starts with
    // a dot (listings skip it); a crash leaves at most that.
    static std::atomic<unsigned> seq{0};
    const std::string tmp = fmt::format("{}/.{}.{}.{}.tmp", dir, m.time, ::getpid(), seq++);
    util::write_file_atomic(tmp, to_json(m).dump() + "\n");
    if (::link(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        if (e == EEXIST) fail(Errc::conflict, "a backup of '{}' at {} exists already", m.guest, m.time);
        fail(Errc::internal, "cannot write {}: {}", path, std::strerror(e));
    }
    ::unlink(tmp.c_str());
    fsync_dir(dir);
}

Manifest ChunkStore::read_manifest(const std::string& guest, const std::string& time) const {
    api::validate_name(guest, "guest");
    if (!valid_backup_time(time)) fail(Errc::invalid_input, "'{}' is no backup time (like 2026-12-07T12:00:00Z)", time);
    bool missing = false;
    auto text = read_whole(manifest_path(guest, time), &missing);
    if (missing) fail(Errc::not_found, "no backup {}/{} in store {}", guest, time, root_);
    auto j = json::parse(text, nullptr, false);
    if (j.is_discarded()) fail(Errc::internal, "manifest of {}/{} is no JSON", guest, time);
    try {
        auto m = manifest_from_json(j);
        if (m.guest != guest || m.time != time)
            fail(Errc::invalid_input, "it names {}/{}", m.guest, m.time);
        return m;
    } catch (const Error& e) {
        fail(Errc::internal, "manifest of {}/{} is malformed: {}", guest, time, e.what());
    }
}

std::vector<Manifest> ChunkStore::manifests(const std::string& guest, std::vector<std::string>* bad) const {
    std::vector<Manifest> out;
    std::vector<std::string> guests;
    if (!guest.empty()) guests.push_back(guest);
    else guests = entries(root_ + "/backups", true);
    for (const auto& g : guests) {
        std::vector<std::string> times;
        for (const auto& n : entries(root_ + "/backups/" + g))
            if (n.size() == 25 && n.ends_with(".json") && n[0] != '.') times.push_back(n.substr(0, 20));
        for (const auto& t : times) {
            if (!valid_backup_time(t)) continue;
            try {
                out.push_back(read_manifest(g, t));
            } catch (const Error& e) {
                if (bad) bad->push_back(g + "/" + t + ": " + e.what());
            }
        }
    }
    std::sort(out.begin(), out.end(),
              [](const Manifest& a, const Manifest& b) { return a.time != b.time ? a.time < b.time : a.guest < b.guest; });
    return out;
}

void ChunkStore::remove_manifest(const std::string& guest, const std::string& time) {
    auto path = manifest_path(guest, time);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        fail(Errc::internal, "cannot remove {}: {}", path, std::strerror(errno));
    ::unlink((root_ + "/backups/" + guest + "/" + time + ".verified.json").c_str());
    fsync_dir(root_ + "/backups/" + guest);
}

json ChunkStore::verified(const std::string& guest, const std::string& time) const {
    bool missing = false;
    std::string text;
    try {
        text = read_whole(root_ + "/backups/" + guest + "/" + time + ".verified.json", &missing);
    } catch (const Error&) {
        return nullptr;
    }
    if (missing) return nullptr;
    auto j = json::parse(text, nullptr, false);
    if (!j.is_object() || !j.contains("ok") || !j["ok"].is_boolean()) return nullptr;
    return j;
}

void ChunkStore::set_verified(const std::string& guest, const std::string& time, bool ok, const std::string& at) {
    util::write_file_atomic(root_ + "/backups/" + guest + "/" + time + ".verified.json",
                            json{{"time", at}, {"ok", ok}}.dump() + "\n");
}

std::vector<std::string> ChunkStore::chunk_ids() const {
    std::vector<std::string> out;
    for (const auto& d : entries(root_ + "/chunks", true))
        for (const auto& n : entries(root_ + "/chunks/" + d))
            if (valid_chunk_id(n)) out.push_back(n);
    std::sort(out.begin(), out.end());
    return out;
}

std::optional<std::uint64_t> ChunkStore::remove_chunk(const std::string& id, std::int64_t older_than) {
    if (!valid_chunk_id(id)) fail(Errc::invalid_input, "'{}' is no chunk name", id);
    auto path = chunk_path(id);
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return 0;
    if (static_cast<std::int64_t>(st.st_mtime) >= older_than) return std::nullopt;  // written or found lately
    if (::unlink(path.c_str()) != 0) fail(Errc::internal, "cannot remove {}: {}", path, std::strerror(errno));
    return static_cast<std::uint64_t>(st.st_size);
}

std::string format_backup_time(std::int64_t t) {
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    ::gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::int64_t parse_backup_time(const std::string& t) {
    if (!valid_backup_time(t)) fail(Errc::invalid_input, "'{}' is no backup time (like 2026-12-07T12:00:00Z)", t);
    std::tm tm{};
    tm.tm_year = std::stoi(t.substr(0, 4)) - 1900;
    tm.tm_mon = std::stoi(t.substr(5, 2)) - 1;
    tm.tm_mday = std::stoi(t.substr(8, 2));
    tm.tm_hour = std::stoi(t.substr(11, 2));
    tm.tm_min = std::stoi(t.substr(14, 2));
    tm.tm_sec = std::stoi(t.substr(17, 2));
    return static_cast<std::int64_t>(::timegm(&tm));
}

}  // namespace hv::backup
