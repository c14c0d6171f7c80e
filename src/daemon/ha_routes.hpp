// HA routes (docs/ha.md): /v1/ha/resources/{name} (on the guest's host), /v1/ha/status and
// /v1/ha/groups (from the store, on any member).
#pragma once

#include "ha_service.hpp"
#include "router.hpp"

namespace hv::daemon {

void register_ha_routes(Router& r, ha::HaService& ha);

}  // namespace hv::daemon
