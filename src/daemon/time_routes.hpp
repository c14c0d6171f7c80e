// GET/PUT /v1/time: the host's time service (chrony), see src/time/chrony_manager.hpp.
#pragma once

#include "config.hpp"
#include "router.hpp"

namespace hv::daemon {

// Checks the [time] keys (throws invalid_input naming the key) and adds the routes; the
// ChronyManager they share lives as long as the router's handlers.
void register_time_routes(Router& r, const Config& cfg);

}  // namespace hv::daemon
