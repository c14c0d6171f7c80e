// The /v1 routes of autostart (docs/api.md); the service is guest::AutostartService.
#pragma once

#include "autostart_service.hpp"
#include "router.hpp"

namespace hv::daemon {

void register_autostart_routes(Router& r, guest::AutostartService& s);

}  // namespace hv::daemon
