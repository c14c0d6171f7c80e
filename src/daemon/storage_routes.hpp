// /v1/storage: pools, volumes (and ISO images), see docs/api.md.
#pragma once

#include "api_routes.hpp"

namespace hv::daemon {

void register_storage_routes(Router& r, ApiContext& c);

}  // namespace hv::daemon
