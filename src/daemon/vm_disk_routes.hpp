// /v1/vms/{name}/disks and /v1/vms/{name}/cdrom: disks and CD/DVD of existing VMs (docs/api.md).
#pragma once

#include "api_routes.hpp"

namespace hv::daemon {

void register_vm_disk_routes(Router& r, ApiContext& c);

}  // namespace hv::daemon
