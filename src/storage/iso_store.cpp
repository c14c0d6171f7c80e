#include "iso_store.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "hv/api/size.hpp"
#include "hv/error.hpp"
#include "hv/util/utf8.hpp"
#include "hv/util/fd.hpp"

namespace hv::storage {
namespace fs = std::filesystem;

namespace {

constexpr const char* kShaAttr = "user.hv.sha256";
constexpr const char* kStampAttr = "user.hv.sha256.stamp";
constexpr std::size_t kIoSize = 1024 * 1024;

bool ends_with_iso(const std::string& n) {
    if (n.size() < 4) return false;
    auto tail = n.substr(n.size() - 4);
    std::transform(tail.begin(), tail.end(), tail.begin(), [](unsigned char c) { return std::tolower(c); });
    return tail == ".iso";
}

std::string stamp_of(const struct stat& st) {
    return fmt::format("{}:{}", static_cast<std::uint64_t>(st.st_size),
                       static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec);
}

std::string get_attr(int fd, const char* name) {
    char buf[256];
    auto n = ::fgetxattr(fd, name, buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// Stores sha + stamp; a filesystem without user xattrs only loses the cached sum.
void store_sum(int fd, const std::string& path, const std::string& sha) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return;
    auto stamp = stamp_of(st);
    if (::fsetxattr(fd, kShaAttr, sha.data(), sha.size(), 0) != 0 ||
        ::fsetxattr(fd, kStampAttr, stamp.data(), stamp.size(), 0) != 0)
        spdlog::warn("cannot store the checksum of {} in xattr {}: {}", path, kShaAttr, std::strerror(errno));
}

// The stored sum when it still matches the file (size and mtime), else "".
std::string cached_sum(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return "";
    auto sha = get_attr(fd, kShaAttr);
    if (sha.size() != 64 || get_attr(fd, kStampAttr) != stamp_of(st)) return "";
    return sha;
}

using Fd = util::UniqueFd;

std::uint64_t free_bytes(const std::string& dir) {
    struct statvfs sv {};
    if (::statvfs(dir.c_str(), &sv) != 0) fail(Errc::internal, "statvfs {}: {}", dir, std::strerror(errno));
    return static_cast<std::uint64_t>(sv.f_bavail) * sv.f_frsize;
}

}  // namespace

void validate_iso_name(const std::string& name) {
    api::validate_file_name(name, "iso name");
    // ".NAME.partial" must fit in a directory entry too.
    if (name.size() > 240) fail(Errc::invalid_input, "iso name is too long ({} bytes, at most 240)", name.size());
    if (!ends_with_iso(name)) fail(Errc::invalid_input, "iso name '{}' must end in .iso", name);
}

std::string normalize_sha256(const std::string& hex) {
    std::string out = hex;
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    if (out.size() != 64 || out.find_first_not_of("0123456789abcdef") != std::string::npos)
        fail(Errc::invalid_input, "sha256 '{}' must be 64 hexadecimal digits", hex);
    return out;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1)
        fail(Errc::internal, "OpenSSL: cannot initialise SHA-256");
}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256::update(const void* data, std::size_t n) {
    if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n) != 1) fail(Errc::internal, "OpenSSL: SHA-256 update failed");
}
std::string Sha256::hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len) != 1) fail(Errc::internal, "OpenSSL: SHA-256 final failed");
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
        out += digits[md[i] >> 4];
        out += digits[md[i] & 15];
    }
    return out;
}

api::IsoInfo IsoStore::info(const std::string& pool, const std::string& dir, const std::string& name, bool compute) const {
    api::IsoInfo i;
    i.name = name;
    i.pool = pool;
    i.path = dir + "/" + name;
    Fd f(::open(i.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat st {};
    if (f.fd < 0 || ::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode))
        fail(Errc::not_found, "{} does not exist in pool '{}'", label(name), pool);
    i.size = static_cast<std::uint64_t>(st.st_size);
    i.sha256 = cached_sum(f.fd);
    if (i.sha256.empty() && compute) {
        Sha256 h;
        std::vector<char> buf(kIoSize);
        for (;;) {
            auto n = ::read(f.fd, buf.data(), buf.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail(Errc::internal, "cannot read {}: {}", i.path, std::strerror(errno));
            if (n == 0) break;
            h.update(buf.data(), static_cast<std::size_t>(n));
        }
        i.sha256 = h.hex();
        // Only when the file did not change while it was read.
        struct stat after {};
        if (::fstat(f.fd, &after) == 0 && stamp_of(after) == stamp_of(st)) store_sum(f.fd, i.path, i.sha256);
    }
    i.used_by = pools_.users_of(i.path);
    return i;
}

std::vector<api::IsoInfo> IsoStore::list(const std::string& pool) const {
    std::vector<std::string> names;
    if (!pool.empty()) {
        names.push_back(pool);
    } else {
        for (const auto& p : pools_.list())
            if (p.active && std::find(p.caps.content.begin(), p.caps.content.end(), kind_.content) != p.caps.content.end() &&
                (p.spec.content.empty() ||
                 std::find(p.spec.content.begin(), p.spec.content.end(), kind_.content) != p.spec.content.end()))
                names.push_back(p.spec.name);
    }
    std::vector<api::IsoInfo> out;
    for (const auto& pn : names) {
        std::string dir;
        try {
            dir = pools_.content_dir(pn, kind_.content);
        } catch (const Error&) {
            if (!pool.empty()) throw;
            continue;
        }
        std::vector<std::string> files;
        std::error_code ec;
        for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
            auto n = it->path().filename().string();
            if (n.empty() || n[0] == '.') continue;  // uploads in progress (.NAME.partial)
            // Not addressable through the API (names are UTF-8 there): left alone, not listed.
            if (!util::valid_utf8(n)) {
                spdlog::warn("{}: skipping a file whose name is not UTF-8: '{}'", dir, util::sanitize_utf8(n));
                continue;
            }
            std::error_code sec;
            if (!it->is_regular_file(sec) || it->is_symlink(sec)) continue;
            files.push_back(n);
        }
        std::sort(files.begin(), files.end());
        for (const auto& n : files) {
            try {
                out.push_back(info(pn, dir, n, false));
            } catch (const Error&) {
                // Removed while listing.
            }
        }
    }
    return out;
}

api::IsoInfo IsoStore::get(const std::string& pool, const std::string& name) const {
    api::validate_file_name(name, (kind_.noun + " name").c_str());
    return info(pool, pools_.content_dir(pool, kind_.content), name, true);
}

void IsoStore::precheck(const Upload& u) const {
    kind_.validate(u.name);
    if (!u.sha256.empty()) normalize_sha256(u.sha256);
    auto dir = pools_.content_dir(u.pool, kind_.content);  // not_found / unsupported
    auto path = dir + "/" + u.name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!u.replace)
            fail(Errc::conflict, "{} already exists in pool '{}' ({}); use --replace (replace=1) to overwrite it",
                 label(u.name), u.pool, api::format_size(static_cast<std::uint64_t>(st.st_size)));
        if (!S_ISREG(st.st_mode)) fail(Errc::conflict, "{} exists and is not a regular file", path);
        auto users = pools_.users_of(path);
        if (!users.empty())
            fail(Errc::conflict, "{} is used by {}; eject it (or stop using it) before replacing it", label(u.name),
                 fmt::join(users, ", "));
    }
    if (u.length) {
        auto free = free_bytes(dir);
        if (*u.length > free)
            fail(Errc::insufficient_space, "{} is {}, but pool '{}' has only {} free", label(u.name),
                 api::format_size(*u.length), u.pool, api::format_size(free));
    }
}

api::IsoInfo IsoStore::upload(const Upload& u, const std::function<std::size_t(char*, std::size_t)>& read) {
    precheck(u);
    std::string want = u.sha256.empty() ? "" : normalize_sha256(u.sha256);
    auto dir = pools_.content_dir(u.pool, kind_.content);
    auto key = u.pool + "/" + u.name;
    {
        std::lock_guard lk(mu_);
        if (!uploading_.insert(key).second)
            fail(Errc::conflict, "{} is being uploaded to pool '{}' already", label(u.name), u.pool);
    }
    std::shared_ptr<void> unmark(nullptr, [this, key](void*) {
        std::lock_guard lk(mu_);
        uploading_.erase(key);
    });

    auto partial = dir + "/." + u.name + ".partial";
    auto final_path = dir + "/" + u.name;
    // Not ours (no upload of this name runs here): a leftover of a crash; start over.
    ::unlink(partial.c_str());
    // Declared before the cleanup below, so the record goes after it ran (and on success).
    auto intent = pools_.intents().begin(kind_.noun + ".upload", kind_.noun + "/" + u.pool + "/" + u.name);
    intent.add("file", {{"path", partial}});
    Fd f(::open(partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (f.fd < 0) fail(Errc::internal, "cannot create {}: {}", partial, std::strerror(errno));
    bool published = false;
    std::shared_ptr<void> cleanup(nullptr, [&](void*) {
        if (!published) ::unlink(partial.c_str());
    });

    auto started = std::chrono::steady_clock::now();
    if (u.length && *u.length > 0) {
        // Reserve the space up front where the filesystem can (ENOSPC now, not at 90 %).
        if (::fallocate(f.fd, 0, 0, static_cast<off_t>(*u.length)) != 0 && (errno == ENOSPC || errno == EDQUOT))
            fail(Errc::insufficient_space, "{} ({}) does not fit in pool '{}'", label(u.name), api::format_size(*u.length),
                 u.pool);
    }
    Sha256 hash;
    std::vector<char> buf(kIoSize);
    std::uint64_t total = 0;
    for (;;) {
        // Fill the buffer (the body arrives in small pieces) so that writes are large.
        std::size_t have = 0;
        bool end = false;
        while (have < buf.size()) {
            auto n = read(buf.data() + have, buf.size() - have);
            if (n == 0) {
                end = true;
                break;
            }
            have += n;
        }
        if (have > 0) {
            hash.update(buf.data(), have);
            std::size_t off = 0;
            while (off < have) {
                auto w = ::pwrite(f.fd, buf.data() + off, have - off, static_cast<off_t>(total + off));
                if (w < 0 && errno == EINTR) continue;
                if (w < 0 && (errno == ENOSPC || errno == EDQUOT))
                    fail(Errc::insufficient_space, "pool '{}' is full after {} of {}", u.pool, api::format_size(total + off),
                         label(u.name));
                if (w < 0) fail(Errc::internal, "cannot write {}: {}", partial, std::strerror(errno));
                off += static_cast<std::size_t>(w);
            }
            total += have;
            if (u.length && total > *u.length)
                fail(Errc::invalid_input, "the body is longer than its Content-Length ({})", *u.length);
        }
        if (end) break;
    }
    if (u.length && total != *u.length)
        fail(Errc::invalid_input, "the body ended after {} of {} bytes", total, *u.length);
    if (total == 0) fail(Errc::invalid_input, "the request body is empty: nothing to store as {}", label(u.name));
    if (::ftruncate(f.fd, static_cast<off_t>(total)) != 0)  // chunked bodies: no reservation beyond the data
        fail(Errc::internal, "cannot truncate {}: {}", partial, std::strerror(errno));
    auto sum = hash.hex();
    if (!want.empty() && sum != want)
        fail(Errc::invalid_input, "checksum mismatch for {}: expected sha256 {}, received data has {}; nothing was stored",
             u.name, want, sum);
    if (::fdatasync(f.fd) != 0) fail(Errc::internal, "cannot flush {}: {}", partial, std::strerror(errno));
    store_sum(f.fd, partial, sum);

    // Re-checked at the last moment: a VM may have started to use the old ISO meanwhile.
    if (u.replace) {
        auto users = pools_.users_of(final_path);
        if (!users.empty())
            fail(Errc::conflict, "{} is used by {}; eject it (or stop using it) before replacing it", label(u.name),
                 fmt::join(users, ", "));
        if (::rename(partial.c_str(), final_path.c_str()) != 0)
            fail(Errc::internal, "cannot rename {} to {}: {}", partial, final_path, std::strerror(errno));
    } else if (::renameat2(AT_FDCWD, partial.c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE) != 0) {
        if (errno == EEXIST)
            fail(Errc::conflict, "{} appeared in pool '{}' during the upload; use --replace to overwrite it", label(u.name),
                 u.pool);
        if (errno == ENOENT)
            fail(Errc::conflict, "the partial file of {} was removed during the upload (pool scan?)", label(u.name));
        fail(Errc::internal, "cannot rename {} to {}: {}", partial, final_path, std::strerror(errno));
    }
    published = true;
    if (int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    spdlog::info("{} {}/{} uploaded: {} in {:.1f} s ({}/s), sha256 {}", kind_.noun, u.pool, u.name, api::format_size(total), secs,
                 api::format_size(static_cast<std::uint64_t>(secs > 0 ? total / secs : 0)), sum);
    auto out = info(u.pool, dir, u.name, false);
    out.sha256 = sum;
    return out;
}

std::string IsoStore::label(const std::string& name) const { return fmt::format("{} '{}'", kind_.noun, name); }

IsoStore::Kind IsoStore::iso_kind() { return Kind{"iso", "iso", validate_iso_name}; }

void IsoStore::remove(const std::string& pool, const std::string& name) {
    api::validate_file_name(name, (kind_.noun + " name").c_str());
    auto dir = pools_.content_dir(pool, kind_.content);
    auto path = dir + "/" + name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        fail(Errc::not_found, "{} does not exist in pool '{}'", label(name), pool);
    auto users = pools_.users_of(path);
    if (!users.empty())
        fail(Errc::conflict, "{} is used by {}; eject it first (hvctl vm cdrom VM eject)", label(name), fmt::join(users, ", "));
    if (::unlink(path.c_str()) != 0) fail(Errc::internal, "cannot remove {}: {}", path, std::strerror(errno));
}

}  // namespace hv::storage
