// Storage pools: one interface, backends behind it chosen through a small registry.
//
// A pool holds volumes (VM disks) and, when its backend stores files, content directories for
// ISO images and container templates. Backends today: "dir" (any filesystem), "btrfs"
// (reflink clones) and "rbd" (images in a Ceph pool, librbd). lvm, lvmthin and zfs fit the
// same interface later: a volume is a name
// with a capacity, a format and a provisioning mode, and a disk source QEMU can open
// (api::DiskSource: a file path for file pools, a network source for rbd).
//
// Contract for every backend:
//  - create/resize/clone that fail (or are cancelled through Progress) remove what they made
//    and leave an existing volume as it was;
//  - a provisioning mode the backend cannot do is refused with Errc::unsupported, never
//    silently downgraded;
//  - names are validated by the caller (api::validate); backends never see paths from users.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hv/error.hpp"
#include "hv/api/storage.hpp"
#include "hv/util/progress.hpp"

namespace hv::storage {

struct FsUsage {
    std::uint64_t capacity = 0;
    std::uint64_t used = 0;
    std::uint64_t free = 0;
};

class StoragePool {
public:
    virtual ~StoragePool() = default;
    virtual const api::PoolSpec& spec() const = 0;
    virtual api::PoolCaps caps() const = 0;
    // Throws unavailable when the pool cannot be used right now (path missing, wrong fs).
    virtual void check() const = 0;
    virtual FsUsage usage() const = 0;
    // What is wrong with the pool right now, one sentence each (PoolInfo::warnings); empty
    // when all is well. rbd: the Ceph cluster's health (degraded data, blocked I/O, OSDs down).
    virtual std::vector<std::string> health() const { return {}; }

    // Volumes (content "images"). VolumeInfo::used_by is left empty (the manager fills it).
    virtual std::vector<api::VolumeInfo> volumes() const = 0;
    virtual std::optional<api::VolumeInfo> find_volume(const std::string& name) const = 0;
    // Throws conflict when the name exists. Eager zeroing reports progress and honours cancel.
    virtual api::VolumeInfo create_volume(const api::VolumeSpec& spec, util::Progress& progress) = 0;
    // Missing volumes are not_found.
    virtual void delete_volume(const std::string& name) = 0;
    // Grow only; the provisioning mode of the volume is kept for the new space.
    virtual api::VolumeInfo resize_volume(const std::string& name, std::uint64_t size, util::Progress& progress) = 0;
    // Undoes a grow that did not finish (hvd killed while resize_volume ran): back to
    // `old_size` when the volume is larger, so it is its old size with its old contents and
    // mode. Idempotent; nothing to do when it is not larger.
    virtual void revert_grow(const std::string& name, std::uint64_t old_size) = 0;
    // A copy with the same format and mode (reflink where the filesystem can).
    virtual api::VolumeInfo clone_volume(const std::string& source, const std::string& target,
                                         util::Progress& progress) = 0;
    // A linked clone (caps().linked_clones): a new thin volume `target` that holds only what is
    // written to it and reads the rest from `source`, whose contents must not change from now
    // on (a template's disk: docs/snapshots.md). Its VolumeInfo::base names `source`, and
    // delete_volume refuses (conflict) a volume that is the base of another. Same
    // all-or-nothing and conflict rules as clone_volume. Without the capability: unsupported.
    virtual api::VolumeInfo link_volume(const std::string& source, const std::string& target) {
        (void)source;
        (void)target;
        fail(Errc::unsupported, "pool '{}' ({}) has no linked clones; make a full clone", spec().name, spec().type);
    }
    // Where QEMU reads volume `name` from (what a VM's <disk> needs): file pools return a file
    // source with the volume's path (VolumeInfo::path); network backends (rbd) a network
    // source. Missing volumes are not_found.
    virtual api::DiskSource disk_source(const std::string& name) const = 0;
    // Name of the volume whose path is `path`, if it is one of this pool's volumes.
    virtual std::optional<std::string> volume_of_path(const std::string& path) const = 0;

    // Removes what interrupted creates/uploads left (hidden .partial files) that were not
    // written for at least `min_age` (0 at hvd start; a scan spares work in progress).
    virtual void remove_leftovers(std::chrono::seconds min_age) const = 0;
    // Removes what an interrupted create/clone of volume `name` left before it was complete
    // (recovery of its intent record); returns the paths removed.
    virtual std::vector<std::string> remove_partial(const std::string& name) const = 0;

    // Directory of a file content type ("iso", "vztmpl"), created on first use.
    // Throws unsupported when this pool does not hold that content.
    virtual std::string content_dir(const std::string& content) const = 0;

    // Container root filesystems: directories in images/. make_rootfs_dir makes the empty
    // directory `path` (btrfs: a subvolume, so it can carry a quota).
    virtual void make_rootfs_dir(const std::string& path) const = 0;
    // Limits what `path` (made by make_rootfs_dir) may hold to `bytes`; returns how, e.g.
    // "btrfs qgroup limit 1 GiB". Throws unsupported when the backend cannot limit a directory.
    virtual std::string limit_rootfs(const std::string& path, std::uint64_t bytes) const = 0;
    // For CtInfo: whether a limit of `bytes` on `path` is enforced and how (no command run).
    virtual std::string rootfs_quota(const std::string& path, std::uint64_t bytes) const = 0;
    // HA's storage fence (docs/ha.md): every client of this storage at `address` (a failed
    // host) is cut off, so that host's guests can no longer write; returns what was done, ""
    // when the backend has no fence (files: only the watchdog). unfence_clients lifts it.
    virtual std::string fence_clients(const std::string& address) {
        (void)address;
        return {};
    }
    virtual void unfence_clients(const std::string& address) { (void)address; }
};

// The registry: backend type -> capabilities + factory.
struct Backend {
    std::string type;
    api::PoolCaps caps;
    std::function<std::unique_ptr<StoragePool>(const api::PoolSpec&)> make;
};
const std::vector<Backend>& backends();
// Throws invalid_input naming the available types when `type` is unknown.
const Backend& backend(const std::string& type);
// Validates the spec against the backend (content types) and opens the pool.
std::unique_ptr<StoragePool> open_pool(const api::PoolSpec& spec);

// Backends (registered in registry.cpp).
std::unique_ptr<StoragePool> make_dir_pool(const api::PoolSpec& spec);
std::unique_ptr<StoragePool> make_btrfs_pool(const api::PoolSpec& spec);
std::unique_ptr<StoragePool> make_rbd_pool(const api::PoolSpec& spec);
api::PoolCaps dir_caps();
api::PoolCaps btrfs_caps();
api::PoolCaps rbd_caps();

// The libvirt secret an rbd pool's disks authenticate with: its uuid (the same for the pool's
// name on every host), usage name ("hv pool NAME") and value (the raw cephx key of the
// pool's user, from its keyring; throws invalid_input when the keyring has none).
struct RbdSecret {
    std::string uuid, usage, value;
};
std::string rbd_secret_uuid(const std::string& pool);
// VolumeInfo::path of an rbd pool's volume: "rbd:<hv pool>:<ceph pool>/<image>" (what the VMs'
// disk users are keyed by too).
std::string rbd_volume_path(const std::string& pool, const std::string& image);
RbdSecret rbd_secret(const api::PoolSpec& spec);

}  // namespace hv::storage
