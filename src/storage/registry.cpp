// The backend registry: one row per pool type. New backends (lvm, lvmthin, zfs, rbd) add a row
// (rbd: a StoragePool whose disk_source is a network source).
#include <algorithm>

#include "hv/error.hpp"
#include "hv/storage/pool.hpp"

namespace hv::storage {

const std::vector<Backend>& backends() {
    static const std::vector<Backend> k{
        {"dir", dir_caps(), make_dir_pool},
        {"btrfs", btrfs_caps(), make_btrfs_pool},
        {"rbd", rbd_caps(), make_rbd_pool},
    };
    return k;
}

const Backend& backend(const std::string& type) {
    for (const auto& b : backends())
        if (b.type == type) return b;
    std::vector<std::string> names;
    for (const auto& b : backends()) names.push_back(b.type);
    fail(Errc::invalid_input, "pool type '{}' is not available (available: {})", type, fmt::join(names, ", "));
}

std::unique_ptr<StoragePool> open_pool(const api::PoolSpec& spec) {
    api::validate(spec);
    const auto& b = backend(spec.type);
    for (const auto& c : spec.content)
        if (std::find(b.caps.content.begin(), b.caps.content.end(), c) == b.caps.content.end())
            fail(Errc::invalid_input, "pool type '{}' cannot hold {} content", spec.type, c);
    return b.make(spec);
}

}  // namespace hv::storage
