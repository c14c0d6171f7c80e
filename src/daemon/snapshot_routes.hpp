// /v1/vms/{name}/snapshots[/{snap}]: VM snapshots (docs/api.md, docs/snapshots.md).
#pragma once

#include "api_routes.hpp"

namespace hv::daemon {

void register_snapshot_routes(Router& r, ApiContext& c);

}  // namespace hv::daemon
