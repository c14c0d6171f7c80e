// A pool whose volumes are files in a directory: the "dir" backend, and the base of "btrfs".
//
// Layout under the pool path (one sub-directory per content type):
//   images/<volume>.<format>   VM disks (qcow2 or raw)
//   iso/<name>                 CD/DVD images
//   vztmpl/<name>              container templates
// A volume being created is first the hidden file images/.<volume>.<format>.partial and is
// renamed (without replacing) only when complete, so a crash never leaves a half-made volume
// under a real name; leftover .partial files are removed at hvd start, after the intent records were rolled
// back (PoolManager::sweep_partials, docs/storage.md "Crash safety").
// The provisioning mode is recorded in the xattr user.hv.provision of the file.
#pragma once

#include "hv/storage/pool.hpp"

namespace hv::storage {

class FilePool : public StoragePool {
public:
    FilePool(api::PoolSpec spec, api::PoolCaps caps);

    const api::PoolSpec& spec() const override { return spec_; }
    api::PoolCaps caps() const override { return caps_; }
    void check() const override;
    FsUsage usage() const override;
    std::vector<api::VolumeInfo> volumes() const override;
    std::optional<api::VolumeInfo> find_volume(const std::string& name) const override;
    api::VolumeInfo create_volume(const api::VolumeSpec& spec, util::Progress& progress) override;
    void delete_volume(const std::string& name) override;
    api::VolumeInfo resize_volume(const std::string& name, std::uint64_t size, util::Progress& progress) override;
    api::VolumeInfo clone_volume(const std::string& source, const std::string& target,
                                 util::Progress& progress) override;
    // A qcow2 overlay whose backing file is the source's path (any format of source).
    api::VolumeInfo link_volume(const std::string& source, const std::string& target) override;
    void revert_grow(const std::string& name, std::uint64_t old_size) override;
    // A file source: the volume's path.
    api::DiskSource disk_source(const std::string& name) const override;
    std::optional<std::string> volume_of_path(const std::string& path) const override;
    std::string content_dir(const std::string& content) const override;
    void remove_leftovers(std::chrono::seconds min_age) const override;
    std::vector<std::string> remove_partial(const std::string& name) const override;
    // A plain directory; no limit (unsupported / "not applied").
    void make_rootfs_dir(const std::string& path) const override;
    std::string limit_rootfs(const std::string& path, std::uint64_t bytes) const override;
    std::string rootfs_quota(const std::string& path, std::uint64_t bytes) const override;

protected:
    // Whether clones of thin volumes must be reflinks (btrfs) or may fall back to a copy (dir).
    virtual bool require_reflink() const { return false; }
    // Creates a content directory (btrfs: a subvolume). EEXIST is not an error.
    virtual void make_content_dir(const std::string& path) const;

    std::string images_dir() const;
    std::string volume_file(const std::string& name, const std::string& format) const;
    void ensure_dirs() const;
    std::optional<api::VolumeInfo> info_of(const std::string& file) const;
    // Makes a fresh file at `path` (which the caller created empty) into a volume of `size`.
    void provision(const std::string& path, const std::string& format, api::Provision mode, std::uint64_t size,
                   const std::string& label, util::Progress& progress);
    void check_mode(const std::string& format, api::Provision mode) const;
    void check_space(api::Provision mode, const std::string& format, std::uint64_t bytes, const std::string& what) const;
    std::string publish(const std::string& partial, const std::string& name, const std::string& format) const;

    api::PoolSpec spec_;
    api::PoolCaps caps_;
};

}  // namespace hv::storage
