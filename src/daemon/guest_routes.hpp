// The routes every guest kind shares, registered once per driver of the guest layer:
// GET /v1/{vms,cts}, GET/PATCH/DELETE /v1/{vms,cts}/{name}, POST .../{action} (the driver's
// actions), POST .../shutdown. Each decodes, calls the guest layer, encodes. Creates and the
// kind-only features are in api_routes.cpp (VMs), vm_disk_routes.cpp and ct_routes.cpp.
#pragma once

#include "guest.hpp"
#include "router.hpp"
#include "task_manager.hpp"

namespace hv::daemon {

void register_guest_routes(Router& r, guest::Guests& guests, TaskManager& tasks);

// A body that must be empty or {} (actions without options).
void expect_no_options(const Request& req);

}  // namespace hv::daemon
