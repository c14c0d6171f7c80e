// /v1/net: NICs, kernel features, bridges, bonds, VLANs (see docs/api.md).
#pragma once

#include "net_manager.hpp"
#include "router.hpp"

namespace hv::daemon {

void register_net_routes(Router& r, net::NetManager& net);

}  // namespace hv::daemon
