// The "btrfs" backend: the dir layout on a btrfs filesystem, plus what btrfs adds:
// the content directories (images/, iso/, vztmpl/) are subvolumes (snapshot/send units of
// their own), clones of thin volumes are reflinks (instant, sharing blocks until written),
// and the backend can snapshot. It refuses to open on another filesystem.
#include <fcntl.h>
#include <linux/btrfs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "file_pool.hpp"
#include "hv/api/size.hpp"
#include "hv/error.hpp"
#include "hv/util/command.hpp"

namespace hv::storage {

namespace {
constexpr long kBtrfsMagic = 0x9123683E;  // BTRFS_SUPER_MAGIC

class BtrfsPool final : public FilePool {
public:
    explicit BtrfsPool(const api::PoolSpec& s) : FilePool(s, btrfs_caps()) {
        try {
            ensure_dirs();
        } catch (const Error&) {
        }
    }
    void check() const override {
        FilePool::check();
        struct statfs st {};
        if (::statfs(spec_.path.c_str(), &st) != 0)
            fail(Errc::unavailable, "pool '{}': statfs {}: {}", spec_.name, spec_.path, std::strerror(errno));
        if (static_cast<long>(st.f_type) != kBtrfsMagic)
            fail(Errc::unavailable, "pool '{}': {} is not on a btrfs filesystem (use type dir)", spec_.name, spec_.path);
    }

    // A subvolume per root filesystem: the unit a qgroup limits.
    void make_rootfs_dir(const std::string& path) const override { make_subvolume(path, false); }

    // Quotas are enabled on the filesystem when the first limit is set (a filesystem-wide
    // switch with some write cost, so not before a container asks for it).
    std::string limit_rootfs(const std::string& path, std::uint64_t bytes) const override {
        if (!is_subvolume(path))
            fail(Errc::unsupported, "{} is not a btrfs subvolume (made before hv limited root filesystems)", path);
        auto limit = util::run_command({"btrfs", "qgroup", "limit", std::to_string(bytes), path}, std::chrono::minutes(1));
        if (limit.exit_status != 0) {
            spdlog::info("pool {}: enabling btrfs quotas on {} for container root filesystem limits", spec_.name,
                         spec_.path);
            util::run_checked({"btrfs", "quota", "enable", spec_.path}, std::chrono::minutes(5));
            util::run_checked({"btrfs", "qgroup", "limit", std::to_string(bytes), path}, std::chrono::minutes(1));
        }
        return rootfs_quota(path, bytes);
    }

    std::string rootfs_quota(const std::string& path, std::uint64_t bytes) const override {
        if (!is_subvolume(path)) return FilePool::rootfs_quota(path, bytes);
        return fmt::format("btrfs qgroup limit {} on subvolume {}", api::format_size(bytes), path);
    }

protected:
    bool require_reflink() const override { return true; }
    void make_content_dir(const std::string& path) const override { make_subvolume(path, true); }

private:
    static bool is_subvolume(const std::string& path) {
        struct stat st {};
        return ::stat(path.c_str(), &st) == 0 && st.st_ino == 256 && S_ISDIR(st.st_mode);  // a subvolume's root
    }

    void make_subvolume(const std::string& path, bool existing_ok) const {
        struct stat st {};
        if (existing_ok && ::stat(path.c_str(), &st) == 0) return;  // subvolume or directory made earlier
        auto slash = path.rfind('/');
        std::string parent = path.substr(0, slash), name = path.substr(slash + 1);
        int fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) fail(Errc::internal, "pool '{}': cannot open {}: {}", spec_.name, parent, std::strerror(errno));
        btrfs_ioctl_vol_args args{};
        name.copy(args.name, sizeof(args.name) - 1);
        int rc = ::ioctl(fd, BTRFS_IOC_SUBVOL_CREATE, &args);
        int err = errno;
        ::close(fd);
        if (rc != 0 && !(existing_ok && err == EEXIST))
            fail(Errc::internal, "pool '{}': cannot create subvolume {}: {}", spec_.name, path, std::strerror(err));
        ::chmod(path.c_str(), existing_ok ? 0711 : 0755);
    }
};
}  // namespace

api::PoolCaps btrfs_caps() {
    api::PoolCaps c;
    c.content = api::kPoolContents;
    c.formats = {"raw", "qcow2"};
    c.provision = {"thin", "lazy-zeroed", "eager-zeroed"};
    c.snapshots = true;  // qcow2 volumes: internal snapshots (docs/snapshots.md); raw: reflink copies, not used by hv yet
    c.clones = true;     // thin volumes clone by reflink
    c.shared = false;
    c.linked_clones = true;  // qcow2 overlays on a base volume
    return c;
}

std::unique_ptr<StoragePool> make_btrfs_pool(const api::PoolSpec& spec) { return std::make_unique<BtrfsPool>(spec); }

}  // namespace hv::storage
