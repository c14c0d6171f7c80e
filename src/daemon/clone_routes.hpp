// POST /v1/vms/{name}/clone and /template: clones and templates of VMs (docs/api.md, docs/snapshots.md).
#pragma once

#include "api_routes.hpp"

namespace hv::daemon {

void register_clone_routes(Router& r, ApiContext& c);

}  // namespace hv::daemon
