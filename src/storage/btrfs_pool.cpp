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

#include "file_pool.hpp"
#include "hv/error.hpp"

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

protected:
    bool require_reflink() const override { return true; }
    void make_content_dir(const std::string& path) const override {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) return;  // subvolume or directory made earlier
        auto slash = path.rfind('/');
        std::string parent = path.substr(0, slash), name = path.substr(slash + 1);
        int fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) fail(Errc::internal, "pool '{}': cannot open {}: {}", spec_.name, parent, std::strerror(errno));
        btrfs_ioctl_vol_args args{};
        name.copy(args.name, sizeof(args.name) - 1);
        int rc = ::ioctl(fd, BTRFS_IOC_SUBVOL_CREATE, &args);
        int err = errno;
        ::close(fd);
        if (rc != 0 && err != EEXIST)
            fail(Errc::internal, "pool '{}': cannot create subvolume {}: {}", spec_.name, path, std::strerror(err));
        ::chmod(path.c_str(), 0711);
    }
};
}  // namespace

api::PoolCaps btrfs_caps() {
    api::PoolCaps c;
    c.content = api::kPoolContents;
    c.formats = {"raw", "qcow2"};
    c.provision = {"thin", "lazy-zeroed", "eager-zeroed"};
    c.snapshots = true;  // reflink copies; hv's snapshot feature is not there yet
    c.clones = true;     // thin volumes clone by reflink
    c.shared = false;
    return c;
}

std::unique_ptr<StoragePool> make_btrfs_pool(const api::PoolSpec& spec) { return std::make_unique<BtrfsPool>(spec); }

}  // namespace hv::storage
