#include "file_ops.hpp"

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "hv/api/size.hpp"
#include "hv/error.hpp"
#include "hv/util/fd.hpp"

namespace hv::storage::fileops {
namespace {

constexpr std::uint64_t kAlign = 4096;
constexpr std::size_t kChunk = 8u << 20;  // 8 MiB per write: near the sequential write limit

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

using Fd = util::UniqueFd;

[[noreturn]] void io_fail(const char* what, const std::string& path, int err) {
    if (err == ENOSPC || err == EDQUOT) fail(Errc::insufficient_space, "{} {}: no space left in the pool", what, path);
    fail(Errc::internal, "{} {}: {}", what, path, std::strerror(err));
}

struct Range {
    std::uint64_t begin, end;
};

// Ranges of [from, to) that are not written data. nullopt when FIEMAP is not available.
std::optional<std::vector<Range>> unwritten_ranges(int fd, std::uint64_t from, std::uint64_t to) {
    std::vector<Range> out;
    std::uint64_t cursor = from;  // everything before cursor is classified
    constexpr unsigned kExtents = 256;
    std::vector<char> buf(sizeof(fiemap) + kExtents * sizeof(fiemap_extent));
    std::uint64_t pos = from;
    while (pos < to) {
        std::memset(buf.data(), 0, buf.size());
        auto* fm = reinterpret_cast<fiemap*>(buf.data());
        fm->fm_start = pos;
        fm->fm_length = to - pos;
        fm->fm_flags = FIEMAP_FLAG_SYNC;
        fm->fm_extent_count = kExtents;
        if (::ioctl(fd, FS_IOC_FIEMAP, fm) != 0) return std::nullopt;
        if (fm->fm_mapped_extents == 0) break;
        bool last = false;
        for (unsigned i = 0; i < fm->fm_mapped_extents; ++i) {
            const auto& e = fm->fm_extents[i];
            std::uint64_t b = std::max<std::uint64_t>(e.fe_logical, from);
            std::uint64_t en = std::min<std::uint64_t>(e.fe_logical + e.fe_length, to);
            if (b > cursor) out.push_back({cursor, b});  // a hole before this extent
            if (en > b && (e.fe_flags & FIEMAP_EXTENT_UNWRITTEN)) out.push_back({b, en});
            cursor = std::max(cursor, en);
            pos = e.fe_logical + e.fe_length;
            if (e.fe_flags & FIEMAP_EXTENT_LAST) last = true;
        }
        if (last) break;
    }
    if (cursor < to) out.push_back({cursor, to});  // trailing hole
    // Merge neighbours.
    std::vector<Range> merged;
    for (const auto& r : out) {
        if (!merged.empty() && merged.back().end >= r.begin) merged.back().end = std::max(merged.back().end, r.end);
        else merged.push_back(r);
    }
    return merged;
}

}  // namespace

ZeroProgress::ZeroProgress(util::Progress& p, std::string label, std::uint64_t total)
    : p_(p), label_(std::move(label)), total_(total), start_(now_s()) {}

double ZeroProgress::seconds() const { return now_s() - start_; }

void ZeroProgress::add(std::uint64_t bytes) {
    done_ += bytes;
    if (p_.cancelled()) fail(Errc::cancelled, "cancelled while zeroing {}", label_);
    double t = now_s();
    if (t - last_report_ < 0.25 && done_ < total_) return;
    last_report_ = t;
    double el = std::max(t - start_, 1e-3);
    double rate = static_cast<double>(done_) / el;
    int pct = total_ ? static_cast<int>(done_ * 100 / total_) : 100;
    double eta = rate > 0 ? static_cast<double>(total_ - std::min(done_, total_)) / rate : 0;
    auto line = fmt::format("zeroing {}: {} of {}, {:.0f} MiB/s, ETA {:.0f} s", label_, api::format_size(done_),
                            api::format_size(total_), rate / (1 << 20), eta);
    p_.update(std::min(pct, 100), line);
    if (pct / 10 > logged_decile_) {
        logged_decile_ = pct / 10;
        p_.log(fmt::format("{}% {}", std::min(pct, 100), line));
    }
}

bool reserve(int fd, std::uint64_t offset, std::uint64_t len, const std::string& path) {
    if (len == 0) return true;
    if (::fallocate(fd, 0, static_cast<off_t>(offset), static_cast<off_t>(len)) == 0) return true;
    int err = errno;
    if (err == EOPNOTSUPP || err == ENOSYS) return false;
    io_fail("cannot reserve space for", path, err);
}

void zero_fill(const std::string& path, std::uint64_t from, std::uint64_t to, ZeroProgress& progress) {
    if (to <= from) return;
    Fd plain(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (plain.fd < 0) io_fail("cannot open", path, errno);
    auto ranges = unwritten_ranges(plain.fd, from, to);
    std::vector<Range> to_zero = ranges ? *ranges : std::vector<Range>{{from, to}};
    Fd direct(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_DIRECT));
    void* raw = nullptr;
    if (::posix_memalign(&raw, kAlign, kChunk) != 0) fail(Errc::internal, "out of memory for the zero buffer");
    std::unique_ptr<void, decltype(&std::free)> buffer(raw, &std::free);
    std::memset(raw, 0, kChunk);
    auto write_all = [&](int fd, std::uint64_t off, std::uint64_t len) {
        while (len > 0) {
            std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(len, kChunk));
            ssize_t w = ::pwrite(fd, raw, n, static_cast<off_t>(off));
            if (w < 0) {
                if (errno == EINTR) continue;
                io_fail("cannot write zeros to", path, errno);
            }
            if (w == 0) io_fail("cannot write zeros to", path, EIO);
            off += static_cast<std::uint64_t>(w);
            len -= static_cast<std::uint64_t>(w);
            progress.add(static_cast<std::uint64_t>(w));
        }
    };
    for (const auto& r : to_zero) {
        std::uint64_t b = r.begin, e = r.end;
        // Unaligned head and tail through the page cache; the aligned middle with O_DIRECT.
        std::uint64_t ab = (b + kAlign - 1) / kAlign * kAlign;
        std::uint64_t ae = e / kAlign * kAlign;
        if (direct.fd < 0 || ab >= ae) {
            write_all(plain.fd, b, e - b);
            continue;
        }
        if (ab > b) write_all(plain.fd, b, ab - b);
        write_all(direct.fd, ab, ae - ab);
        if (e > ae) write_all(plain.fd, ae, e - ae);
    }
    if (::fdatasync(plain.fd) != 0) io_fail("cannot sync", path, errno);
}

std::uint64_t qcow2_virtual_size(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0) return 0;
    unsigned char h[32];
    if (::pread(fd.fd, h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return 0;
    if (!(h[0] == 'Q' && h[1] == 'F' && h[2] == 'I' && h[3] == 0xfb)) return 0;
    std::uint64_t size = 0;
    for (int i = 24; i < 32; ++i) size = (size << 8) | h[i];
    return size;
}

std::string qcow2_backing_file(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0) return "";
    unsigned char h[20];
    if (::pread(fd.fd, h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return "";
    if (!(h[0] == 'Q' && h[1] == 'F' && h[2] == 'I' && h[3] == 0xfb)) return "";
    std::uint64_t off = 0;
    for (int i = 8; i < 16; ++i) off = (off << 8) | h[i];
    std::uint32_t len = 0;
    for (int i = 16; i < 20; ++i) len = (len << 8) | h[i];
    if (off == 0 || len == 0 || len > 1023) return "";  // qcow2 limits the name to 1023 bytes
    std::string name(len, '\0');
    if (::pread(fd.fd, name.data(), len, static_cast<off_t>(off)) != static_cast<ssize_t>(len)) return "";
    return name;
}

bool copy_file(const std::string& src, const std::string& dst, Reflink reflink, util::Progress& progress) {
    Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.fd < 0) io_fail("cannot open", src, errno);
    Fd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (out.fd < 0) {
        if (errno == EEXIST) fail(Errc::conflict, "{} already exists", dst);
        io_fail("cannot create", dst, errno);
    }
    // dst is ours now: a failure removes it.
    struct Unlink {
        const std::string& p;
        bool armed = true;
        ~Unlink() {
            if (armed) ::unlink(p.c_str());
        }
    } guard{dst};
    if (reflink != Reflink::never) {
        if (::ioctl(out.fd, FICLONE, in.fd) == 0) {
            progress.step(100, "cloned (reflink)");
            guard.armed = false;
            return true;
        }
        if (reflink == Reflink::require)
            fail(Errc::unsupported, "the filesystem of {} cannot reflink: {}", src, std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(in.fd, &st) != 0) io_fail("cannot stat", src, errno);
    auto size = static_cast<std::uint64_t>(st.st_size);
    if (::ftruncate(out.fd, st.st_size) != 0) io_fail("cannot size", dst, errno);
    // Copy the data segments only; holes stay holes.
    std::uint64_t copied = 0;
    std::uint64_t total = allocated_bytes(src);
    double last = 0;
    off_t pos = 0;
    while (static_cast<std::uint64_t>(pos) < size) {
        off_t data = ::lseek(in.fd, pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) break;  // only a hole remains
            io_fail("cannot read", src, errno);
        }
        off_t hole = ::lseek(in.fd, data, SEEK_HOLE);
        if (hole < 0) hole = st.st_size;
        off_t off_in = data, off_out = data;
        while (off_in < hole) {
            std::size_t want = static_cast<std::size_t>(std::min<off_t>(hole - off_in, 64 << 20));
            ssize_t n = ::copy_file_range(in.fd, &off_in, out.fd, &off_out, want, 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                io_fail("cannot copy to", dst, errno);
            }
            if (n == 0) break;
            copied += static_cast<std::uint64_t>(n);
            if (progress.cancelled()) fail(Errc::cancelled, "cancelled while copying {}", src);
            double t = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
            if (t - last > 0.25) {
                last = t;
                int pct = total ? static_cast<int>(std::min<std::uint64_t>(copied * 100 / total, 99)) : -1;
                progress.update(pct, fmt::format("copying: {} of {}", api::format_size(copied), api::format_size(total)));
            }
        }
        pos = hole;
    }
    if (::fdatasync(out.fd) != 0) io_fail("cannot sync", dst, errno);
    progress.step(100, fmt::format("copied {}", api::format_size(copied)));
    guard.armed = false;
    return false;
}

std::uint64_t allocated_bytes(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return 0;
    return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

std::string get_tag(const std::string& path) {
    char buf[64] = {};
    ssize_t n = ::getxattr(path.c_str(), "user.hv.provision", buf, sizeof buf - 1);
    if (n <= 0) return "";
    return std::string(buf, static_cast<std::size_t>(n));
}

bool set_tag(const std::string& path, const std::string& value) {
    return ::setxattr(path.c_str(), "user.hv.provision", value.data(), value.size(), 0) == 0;
}

}  // namespace hv::storage::fileops
