// /v1/net: NICs, kernel features, bridges, bonds, VLANs (see docs/api.md).
#pragma once

#include "api_routes.hpp"

namespace hv::daemon {

void register_net_routes(Router& r, ApiContext& c);

}  // namespace hv::daemon
