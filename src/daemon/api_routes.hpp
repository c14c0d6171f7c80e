// The REST API: every route of /v1 registered in one table (docs/api.md documents them).
#pragma once

#include <chrono>

#include "config.hpp"
#include "guest.hpp"
#include "host_service.hpp"
#include "net_manager.hpp"
#include "router.hpp"
#include "task_manager.hpp"
#include "vm_manager.hpp"

namespace hv::daemon {

// What the VM, storage, ISO and observability route files are given. Containers, the guest
// routes, networking and autostart get their own narrower parts (route_table.cpp).
struct ApiContext {
    const Config& config;
    virt::VmManager& vms;
    TaskManager& tasks;
    storage::PoolManager& pools;
    guest::Guests& guests;
    HostService& host;
};

void register_routes(Router& r, ApiContext& ctx);

}  // namespace hv::daemon
