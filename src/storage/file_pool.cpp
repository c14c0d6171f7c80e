#include "file_pool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "ct_templates.hpp"
#include "file_ops.hpp"
#include "hv/api/size.hpp"
#include "hv/api/vm.hpp"
#include "hv/error.hpp"
#include "hv/util/command.hpp"
#include "hv/util/reverter.hpp"

namespace hv::storage {
namespace fs = std::filesystem;
using api::Provision;

namespace {

// qcow2 metadata for a fully allocated image: one 8-byte L2 entry per 64 KiB cluster plus
// refcounts, headers and tables; 1/4096 of the size + 2 MiB is a safe upper bound.
std::uint64_t qcow2_overhead(std::uint64_t size) { return size / 4096 + (2u << 20); }

std::string prealloc_option(Provision mode) {
    // lazy: reserved, unwritten extents. eager: qemu-img maps every cluster (metadata) and hv
    // writes the zeros into the holes itself: writing fresh blocks is faster than converting
    // unwritten extents, and hv reports progress and honours cancel.
    switch (mode) {
        case Provision::thin: return "off";
        case Provision::lazy_zeroed: return "falloc";
        case Provision::eager_zeroed: return "metadata";
    }
    return "off";
}

int open_excl(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            fail(Errc::conflict, "{} is being created by another request (or was left by a crash: it is removed when "
                 "hvd restarts)", path);
        fail(Errc::internal, "cannot create {}: {}", path, std::strerror(errno));
    }
    return fd;
}

std::string mode_label(Provision m) { return api::to_string(m); }

}  // namespace

FilePool::FilePool(api::PoolSpec spec, api::PoolCaps caps) : spec_(std::move(spec)), caps_(std::move(caps)) {
    caps_.shared = caps_.shared || spec_.shared;
    if (spec_.content.empty()) spec_.content = caps_.content;
}

void FilePool::check() const {
    struct stat st {};
    if (::stat(spec_.path.c_str(), &st) != 0)
        fail(Errc::unavailable, "pool '{}': {} is not accessible: {}", spec_.name, spec_.path, std::strerror(errno));
    if (!S_ISDIR(st.st_mode)) fail(Errc::unavailable, "pool '{}': {} is not a directory", spec_.name, spec_.path);
}

FsUsage FilePool::usage() const {
    struct statvfs st {};
    if (::statvfs(spec_.path.c_str(), &st) != 0)
        fail(Errc::unavailable, "pool '{}': statvfs {}: {}", spec_.name, spec_.path, std::strerror(errno));
    FsUsage u;
    u.capacity = static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize;
    u.free = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
    u.used = u.capacity - static_cast<std::uint64_t>(st.f_bfree) * st.f_frsize;
    return u;
}

std::string FilePool::images_dir() const { return spec_.path + "/images"; }

std::string FilePool::volume_file(const std::string& name, const std::string& format) const {
    return images_dir() + "/" + name + "." + format;
}

void FilePool::make_content_dir(const std::string& d) const {
    if (::mkdir(d.c_str(), 0711) != 0 && errno != EEXIST)
        fail(Errc::internal, "pool '{}': cannot create {}: {}", spec_.name, d, std::strerror(errno));
}

void FilePool::ensure_dirs() const {
    check();
    for (const auto& c : spec_.content) make_content_dir(spec_.path + "/" + c);
}

void FilePool::remove_leftovers(std::chrono::seconds min_age) const {
    std::error_code ec;
    auto now = fs::file_time_type::clock::now();
    for (const auto& c : spec_.content) {
        for (auto it = fs::directory_iterator(spec_.path + "/" + c, ec); !ec && it != fs::directory_iterator();
             it.increment(ec)) {
            auto n = it->path().filename().string();
            if (!(n.size() > 9 && n[0] == '.' && n.ends_with(".partial"))) continue;
            std::error_code tec;
            auto mtime = fs::last_write_time(it->path(), tec);
            if (!tec && now - mtime < min_age) continue;  // still being written
            // A container root filesystem being unpacked is a directory (a btrfs subvolume).
            if (n.ends_with(".rootfs.partial") && it->is_directory(tec)) {
                try {
                    remove_rootfs(it->path().string());
                } catch (const Error&) {
                }
                continue;
            }
            fs::remove(it->path(), tec);
        }
    }
}

std::vector<std::string> FilePool::remove_partial(const std::string& name) const {
    std::vector<std::string> out;
    for (const char* f : {"qcow2", "raw"}) {
        auto partial = images_dir() + "/." + name + "." + f + ".partial";
        if (::unlink(partial.c_str()) == 0) out.push_back(partial);
    }
    return out;
}

std::optional<api::VolumeInfo> FilePool::info_of(const std::string& file) const {
    auto fname = fs::path(file).filename().string();
    auto dot = fname.rfind('.');
    if (dot == std::string::npos || fname[0] == '.') return std::nullopt;
    std::string name = fname.substr(0, dot), format = fname.substr(dot + 1);
    if (format != "qcow2" && format != "raw") return std::nullopt;
    try {
        api::validate_name(name, "volume name");
    } catch (const Error&) {
        return std::nullopt;
    }
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    api::VolumeInfo v;
    v.name = name;
    v.pool = spec_.name;
    v.format = format;
    v.path = file;
    v.capacity = format == "qcow2" ? fileops::qcow2_virtual_size(file) : static_cast<std::uint64_t>(st.st_size);
    v.allocation = static_cast<std::uint64_t>(st.st_blocks) * 512;
    if (format == "qcow2")
        if (auto backing = fileops::qcow2_backing_file(file); !backing.empty())
            v.base = volume_of_path(backing).value_or(backing);
    auto tag = fileops::get_tag(file);
    if (!tag.empty()) {
        try {
            v.provision = api::provision_from_string(tag);
        } catch (const Error&) {
        }
    } else {
        // Not created by hv: what the allocation shows (lazy and eager look alike).
        v.provision = v.allocation + (1u << 20) >= v.capacity ? Provision::lazy_zeroed : Provision::thin;
    }
    return v;
}

std::vector<api::VolumeInfo> FilePool::volumes() const {
    check();
    std::vector<api::VolumeInfo> out;
    std::error_code ec;
    for (auto it = fs::directory_iterator(images_dir(), ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        if (auto v = info_of(it->path().string())) {
            bool dup = std::any_of(out.begin(), out.end(), [&](const auto& o) { return o.name == v->name; });
            if (!dup) out.push_back(std::move(*v));
        }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

std::optional<api::VolumeInfo> FilePool::find_volume(const std::string& name) const {
    for (const char* f : {"qcow2", "raw"})
        if (auto v = info_of(volume_file(name, f))) return v;
    return std::nullopt;
}

void FilePool::check_mode(const std::string& format, Provision mode) const {
    if (std::find(caps_.formats.begin(), caps_.formats.end(), format) == caps_.formats.end())
        fail(Errc::unsupported, "pool '{}' ({}) cannot store format {}", spec_.name, spec_.type, format);
    auto m = mode_label(mode);
    if (std::find(caps_.provision.begin(), caps_.provision.end(), m) == caps_.provision.end())
        fail(Errc::unsupported, "pool '{}' ({}) cannot provision {} volumes", spec_.name, spec_.type, m);
}

void FilePool::check_space(Provision mode, const std::string& format, std::uint64_t bytes, const std::string& what) const {
    if (mode == Provision::thin) return;  // over-commitment is reported as a warning by the manager
    std::uint64_t need = bytes + (format == "qcow2" ? qcow2_overhead(bytes) : 0);
    auto u = usage();
    if (need > u.free)
        fail(Errc::insufficient_space, "{} needs {} ({}), but pool '{}' has only {} free", what, api::format_size(need),
             mode_label(mode), spec_.name, api::format_size(u.free));
}

void FilePool::provision(const std::string& path, const std::string& format, Provision mode, std::uint64_t size,
                         const std::string& label, util::Progress& progress) {
    if (format == "raw") {
        int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) fail(Errc::internal, "cannot open {}: {}", path, std::strerror(errno));
        // eager: the zeros are appended like `dd oflag=direct` into a new file (the fastest way
        // on ext4/xfs); the file gets its size from the writes.
        int rc = mode == Provision::eager_zeroed ? 0 : ::ftruncate(fd, static_cast<off_t>(size));
        int err = errno;
        bool reserved = true;
        if (rc == 0 && mode == Provision::lazy_zeroed) {
            try {
                reserved = fileops::reserve(fd, 0, size, path);
            } catch (...) {
                ::close(fd);
                throw;
            }
        }
        ::close(fd);
        if (rc != 0) fail(Errc::internal, "cannot size {}: {}", path, std::strerror(err));
        if (!reserved && mode == Provision::lazy_zeroed)
            fail(Errc::unsupported,
                 "pool '{}': the filesystem cannot reserve space without writing it (fallocate); lazy-zeroed is not "
                 "possible here, use thin or eager-zeroed",
                 spec_.name);
    } else {
        auto r = util::run_command({"qemu-img", "create", "-q", "-f", "qcow2", "-o",
                                    "preallocation=" + prealloc_option(mode), path, std::to_string(size)},
                                   std::chrono::minutes(30));
        if (r.exit_status != 0) {
            if (r.err.find("No space left") != std::string::npos)
                fail(Errc::insufficient_space, "pool '{}': no space left for {}", spec_.name, label);
            if (mode == Provision::lazy_zeroed && r.err.find("not supported") != std::string::npos)
                fail(Errc::unsupported, "pool '{}': the filesystem cannot reserve space (fallocate); lazy-zeroed is "
                     "not possible here", spec_.name);
            fail(Errc::internal, "qemu-img create failed: {}", r.err);
        }
    }
    if (mode == Provision::eager_zeroed) {
        std::uint64_t file_size = size;
        struct stat st {};
        if (format != "raw" && ::stat(path.c_str(), &st) == 0) file_size = static_cast<std::uint64_t>(st.st_size);
        fileops::ZeroProgress zp(progress, label, file_size);
        fileops::zero_fill(path, 0, file_size, zp);
        double s = std::max(zp.seconds(), 1e-3);
        progress.log(fmt::format("zeroed {} ({}) in {:.1f} s, {:.0f} MiB/s", label, api::format_size(file_size), s,
                                 static_cast<double>(file_size) / s / (1 << 20)));
    }
    fileops::set_tag(path, mode_label(mode));
}

std::string FilePool::publish(const std::string& partial, const std::string& name, const std::string& format) const {
    // Another format of the same name may have appeared meanwhile: the name is the identity.
    if (find_volume(name)) fail(Errc::conflict, "volume '{}' already exists in pool '{}'", name, spec_.name);
    auto final_path = volume_file(name, format);
    if (::renameat2(AT_FDCWD, partial.c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE) != 0) {
        if (errno == EEXIST) fail(Errc::conflict, "volume '{}' already exists in pool '{}'", name, spec_.name);
        fail(Errc::internal, "cannot rename {} to {}: {}", partial, final_path, std::strerror(errno));
    }
    return final_path;
}

api::VolumeInfo FilePool::create_volume(const api::VolumeSpec& vs, util::Progress& progress) {
    api::validate(vs);
    check_mode(vs.format, vs.provision);
    ensure_dirs();
    if (find_volume(vs.name)) fail(Errc::conflict, "volume '{}' already exists in pool '{}'", vs.name, spec_.name);
    check_space(vs.provision, vs.format, vs.size, fmt::format("volume '{}'", vs.name));
    auto partial = images_dir() + "/." + vs.name + "." + vs.format + ".partial";
    util::Reverter revert;
    ::close(open_excl(partial));
    revert.add([partial] { ::unlink(partial.c_str()); });
    progress.step(vs.provision == Provision::eager_zeroed ? 0 : -1,
                  fmt::format("creating volume {} in pool {} ({} {}, {})", vs.name, spec_.name,
                              api::format_size(vs.size), vs.format, mode_label(vs.provision)));
    provision(partial, vs.format, vs.provision, vs.size, vs.name, progress);
    auto path = publish(partial, vs.name, vs.format);
    revert.release();
    progress.log("volume ready: " + path);
    auto v = info_of(path);
    if (!v) fail(Errc::internal, "volume {} vanished after creation", path);
    return *v;
}

void FilePool::delete_volume(const std::string& name) {
    auto v = find_volume(name);
    if (!v) fail(Errc::not_found, "volume '{}' does not exist in pool '{}'", name, spec_.name);
    std::vector<std::string> clones;
    for (const auto& o : volumes())
        if (o.base == name) clones.push_back(o.name);
    if (!clones.empty())
        fail(Errc::conflict, "volume '{}' is the base of linked clone(s) {}: delete them first", name,
             fmt::join(clones, ", "));
    if (::unlink(v->path.c_str()) != 0 && errno != ENOENT)
        fail(Errc::internal, "cannot remove {}: {}", v->path, std::strerror(errno));
}

api::VolumeInfo FilePool::resize_volume(const std::string& name, std::uint64_t size, util::Progress& progress) {
    auto v = find_volume(name);
    if (!v) fail(Errc::not_found, "volume '{}' does not exist in pool '{}'", name, spec_.name);
    if (size <= v->capacity)
        fail(Errc::invalid_input, "volume '{}' is {}: resize only grows (asked {})", name,
             api::format_size(v->capacity), api::format_size(size));
    if (size > (1ULL << 50)) fail(Errc::invalid_input, "size is too large (at most 1P)");
    std::uint64_t old = v->capacity;
    check_space(v->provision, v->format, size - old, fmt::format("growing '{}'", name));
    util::Reverter revert;
    if (v->format == "raw") {
        int fd = ::open(v->path.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) fail(Errc::internal, "cannot open {}: {}", v->path, std::strerror(errno));
        struct Closer {
            int fd;
            ~Closer() { ::close(fd); }
        } closer{fd};
        if (::ftruncate(fd, static_cast<off_t>(size)) != 0)
            fail(Errc::internal, "cannot grow {}: {}", v->path, std::strerror(errno));
        revert.add([this, name, old] { revert_grow(name, old); });
        if (v->provision == Provision::lazy_zeroed && !fileops::reserve(fd, old, size - old, v->path))
            fail(Errc::unsupported, "pool '{}': the filesystem cannot reserve space; cannot keep lazy-zeroed", spec_.name);
    } else {
        struct stat st {};
        ::stat(v->path.c_str(), &st);
        auto r = util::run_command({"qemu-img", "resize", "-q", "-f", "qcow2",
                                    "--preallocation=" + prealloc_option(v->provision), v->path, std::to_string(size)},
                                   std::chrono::minutes(30));
        if (r.exit_status != 0) fail(Errc::internal, "qemu-img resize failed: {}", r.err);
        revert.add([this, name, old] { revert_grow(name, old); });
    }
    if (v->provision == Provision::eager_zeroed) {
        struct stat st {};
        ::stat(v->path.c_str(), &st);
        // Only unwritten/hole ranges are written: existing data is never touched.
        fileops::ZeroProgress zp(progress, name, size - old);
        fileops::zero_fill(v->path, v->format == "raw" ? old : 0, static_cast<std::uint64_t>(st.st_size), zp);
    }
    revert.release();
    return *find_volume(name);
}

void FilePool::revert_grow(const std::string& name, std::uint64_t old_size) {
    auto v = find_volume(name);
    if (!v || v->capacity <= old_size) return;
    // The grown part holds only the zeros or holes hv put there: cutting it loses nothing.
    if (v->format == "raw") {
        if (::truncate(v->path.c_str(), static_cast<off_t>(old_size)) != 0)
            fail(Errc::internal, "cannot shrink {} back to {}: {}", v->path, old_size, std::strerror(errno));
        return;
    }
    auto r = util::run_command({"qemu-img", "resize", "-q", "-f", "qcow2", "--shrink", v->path, std::to_string(old_size)},
                               std::chrono::minutes(5));
    if (r.exit_status != 0) fail(Errc::internal, "cannot shrink {} back to {}: qemu-img: {}", v->path, old_size, r.err);
}

api::VolumeInfo FilePool::clone_volume(const std::string& source, const std::string& target, util::Progress& progress) {
    api::validate_name(target, "volume name");
    auto src = find_volume(source);
    if (!src) fail(Errc::not_found, "volume '{}' does not exist in pool '{}'", source, spec_.name);
    if (find_volume(target)) fail(Errc::conflict, "volume '{}' already exists in pool '{}'", target, spec_.name);
    // Thick volumes stay thick: a reflink would share their blocks, so they get a real copy.
    bool thin = src->provision == Provision::thin;
    if (!thin) check_space(src->provision, src->format, src->capacity, fmt::format("clone '{}'", target));
    auto partial = images_dir() + "/." + target + "." + src->format + ".partial";
    util::Reverter revert;
    // copy_file creates `partial` exclusively and removes it when it fails itself.
    if (!src->base.empty()) {
        // A linked clone's full copy is a volume of its own: its base's blocks and its own in
        // one new image (a copy of the overlay file would still read from the base).
        revert.add([partial] { ::unlink(partial.c_str()); });
        progress.step(0, fmt::format("copying {} with its base {} into one image", source, src->base));
        auto r = util::run_command({"qemu-img", "convert", "-q", "-f", "qcow2", "-O", "qcow2", src->path, partial},
                                   std::chrono::hours(6));
        if (r.exit_status != 0) {
            if (r.err.find("No space left") != std::string::npos)
                fail(Errc::insufficient_space, "pool '{}': no space left for clone '{}'", spec_.name, target);
            fail(Errc::internal, "qemu-img convert of {} failed: {}", src->path, r.err);
        }
    } else if (thin) {
        fileops::copy_file(src->path, partial, require_reflink() ? fileops::Reflink::require : fileops::Reflink::prefer,
                           progress);
        revert.add([partial] { ::unlink(partial.c_str()); });
    } else {
        // A real copy of the data, then the reservation / zeroing of the rest: mode kept.
        fileops::copy_file(src->path, partial, fileops::Reflink::never, progress);
        revert.add([partial] { ::unlink(partial.c_str()); });
        struct stat st {};
        ::stat(partial.c_str(), &st);
        auto len = static_cast<std::uint64_t>(st.st_size);
        int fd = ::open(partial.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) fail(Errc::internal, "cannot open {}: {}", partial, std::strerror(errno));
        bool ok = true;
        try {
            if (src->provision == Provision::lazy_zeroed) ok = fileops::reserve(fd, 0, len, partial);
        } catch (...) {
            ::close(fd);
            throw;
        }
        ::close(fd);
        if (!ok && src->provision == Provision::lazy_zeroed)
            fail(Errc::unsupported, "pool '{}': the filesystem cannot reserve space; cannot keep lazy-zeroed", spec_.name);
        if (src->provision == Provision::eager_zeroed) {
            fileops::ZeroProgress zp(progress, target, len);
            fileops::zero_fill(partial, 0, len, zp);
        }
    }
    fileops::set_tag(partial, mode_label(src->provision));
    auto path = publish(partial, target, src->format);
    revert.release();
    return *info_of(path);
}

api::VolumeInfo FilePool::link_volume(const std::string& source, const std::string& target) {
    api::validate_name(target, "volume name");
    auto src = find_volume(source);
    if (!src) fail(Errc::not_found, "volume '{}' does not exist in pool '{}'", source, spec_.name);
    if (find_volume(target)) fail(Errc::conflict, "volume '{}' already exists in pool '{}'", target, spec_.name);
    ensure_dirs();
    auto partial = images_dir() + "/." + target + ".qcow2.partial";
    util::Reverter revert;
    revert.add([partial] { ::unlink(partial.c_str()); });
    // The overlay records the base's absolute path and format (-F: never probed).
    auto r = util::run_command({"qemu-img", "create", "-q", "-f", "qcow2", "-b", src->path, "-F", src->format,
                                partial, std::to_string(src->capacity)},
                               std::chrono::minutes(5));
    if (r.exit_status != 0) {
        if (r.err.find("No space left") != std::string::npos)
            fail(Errc::insufficient_space, "pool '{}': no space left for linked clone '{}'", spec_.name, target);
        fail(Errc::internal, "qemu-img create (overlay of {}) failed: {}", src->path, r.err);
    }
    fileops::set_tag(partial, mode_label(Provision::thin));
    auto path = publish(partial, target, "qcow2");
    revert.release();
    return *info_of(path);
}

api::DiskSource FilePool::disk_source(const std::string& name) const {
    auto v = find_volume(name);
    if (!v) fail(Errc::not_found, "volume '{}' does not exist in pool '{}'", name, spec_.name);
    return api::DiskSource::file(v->path);
}

std::optional<std::string> FilePool::volume_of_path(const std::string& path) const {
    auto p = fs::path(path).lexically_normal();
    if (p.parent_path().string() != images_dir()) return std::nullopt;
    auto v = info_of(p.string());
    if (!v) return std::nullopt;
    return v->name;
}

std::string FilePool::content_dir(const std::string& content) const {
    if (std::find(spec_.content.begin(), spec_.content.end(), content) == spec_.content.end())
        fail(Errc::unsupported, "pool '{}' does not hold {} content (it holds: {})", spec_.name, content,
             fmt::join(spec_.content, ", "));
    ensure_dirs();
    return spec_.path + "/" + content;
}

// ---- the dir backend ---------------------------------------------------------------------------

api::PoolCaps dir_caps() {
    api::PoolCaps c;
    c.content = api::kPoolContents;
    c.formats = {"qcow2", "raw"};
    c.provision = {"thin", "lazy-zeroed", "eager-zeroed"};
    c.snapshots = true;  // of qcow2 volumes: libvirt internal snapshots (docs/snapshots.md); raw ones cannot
    c.clones = false;     // clones are full copies (reflinked when the filesystem can, e.g. xfs)
    c.shared = false;
    c.linked_clones = true;  // qcow2 overlays on a base volume
    return c;
}

void FilePool::make_rootfs_dir(const std::string& path) const {
    if (::mkdir(path.c_str(), 0755) != 0) fail(Errc::internal, "cannot create {}: {}", path, std::strerror(errno));
}

std::string FilePool::limit_rootfs(const std::string&, std::uint64_t) const {
    fail(Errc::unsupported, "pool '{}' ({}) cannot limit the size of a directory (a btrfs pool can)", spec_.name,
         spec_.type);
}

std::string FilePool::rootfs_quota(const std::string&, std::uint64_t) const {
    return fmt::format("not applied: pool '{}' ({}) cannot limit the size of a directory (a btrfs pool can)",
                       spec_.name, spec_.type);
}

namespace {
class DirPool final : public FilePool {
public:
    explicit DirPool(const api::PoolSpec& s) : FilePool(s, dir_caps()) {
        try {
            ensure_dirs();
        } catch (const Error&) {
            // An unavailable pool is still listed (inactive, with the reason).
        }
    }
};
}  // namespace

std::unique_ptr<StoragePool> make_dir_pool(const api::PoolSpec& spec) { return std::make_unique<DirPool>(spec); }

}  // namespace hv::storage
