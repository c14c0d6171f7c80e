// Where VM disk images come from. The foundation has one backend, a directory; the storage
// issue replaces this with pools (dir, btrfs, later lvm/zfs/rbd) behind the same calls.
// Contract: create() either returns a ready image or throws having removed what it made.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "hv/api/vm.hpp"
#include "hv/util/progress.hpp"

namespace hv::storage {

class DiskStore {
public:
    virtual ~DiskStore() = default;
    // Name of the pool this store serves (DiskSpec::pool must match). Example: "local".
    virtual std::string pool() const = 0;
    // Creates the image for disk `disk` of VM `vm`; returns its absolute path.
    // Throws conflict when the image already exists, invalid_input for bad format/size.
    virtual std::string create(const std::string& vm, const api::DiskSpec& disk, util::Progress& progress) = 0;
    // Removes an image this store created; missing files are not an error.
    virtual void remove(const std::string& path) = 0;
    // Whether `path` lies inside this store (so hv may delete it).
    virtual bool contains(const std::string& path) const = 0;
    // Free bytes where images are created.
    virtual std::uint64_t free_bytes() const = 0;
    virtual std::string location() const = 0;
};

// A directory of image files: qcow2 via qemu-img (argv, no shell), raw as a sparse file.
std::unique_ptr<DiskStore> make_dir_store(std::string pool_name, std::string directory);

}  // namespace hv::storage
