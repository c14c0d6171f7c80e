// The REST API: every route of /v1 registered in one table (docs/api.md documents them).
#pragma once

#include <chrono>

#include "config.hpp"
#include "net_manager.hpp"
#include "router.hpp"
#include "task_manager.hpp"
#include "vm_manager.hpp"

namespace hv::virt {
class CtManager;
}

namespace hv::daemon {

struct ApiContext {
    const Config& config;
    virt::VmManager& vms;
    TaskManager& tasks;
    storage::PoolManager& pools;
    net::NetManager& net;
    std::chrono::steady_clock::time_point started;
    // Containers (set by daemon.cpp once made; VMs and containers share one name space).
    virt::CtManager* cts = nullptr;
};

void register_routes(Router& r, ApiContext& ctx);

}  // namespace hv::daemon
