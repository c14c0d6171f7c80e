// The "btrfs" backend: the dir layout on a btrfs filesystem, plus what btrfs adds:
// clones of thin volumes are reflinks (instant, sharing blocks until written), and the
// backend can snapshot (reflink copies). It refuses to open on another filesystem.
#include <sys/statfs.h>

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
            remove_partials();
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
