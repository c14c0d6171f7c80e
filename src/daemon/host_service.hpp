// GET /v1/host: what this host is and has (hostname, versions, CPU and memory, the default
// pool, guests, network features, libvirt). The libvirt facts come from virt::VmManager.
#pragma once

#include <chrono>

#include "config.hpp"
#include "hv/api/host.hpp"
#include "net_manager.hpp"
#include "vm_manager.hpp"

namespace hv::daemon {

class HostService {
public:
    HostService(const Config& cfg, virt::VmManager& vms, storage::PoolManager& pools, net::NetManager& net,
                std::chrono::steady_clock::time_point started)
        : cfg_(cfg), vms_(vms), pools_(pools), net_(net), started_(started) {}
    api::HostInfo info() const;
    // A /proc/meminfo field in bytes ("MemTotal:"); 0 when absent.
    static std::uint64_t meminfo(const char* key);
    std::chrono::steady_clock::time_point started() const { return started_; }

private:
    const Config& cfg_;
    virt::VmManager& vms_;
    storage::PoolManager& pools_;
    net::NetManager& net_;
    std::chrono::steady_clock::time_point started_;
};

}  // namespace hv::daemon
