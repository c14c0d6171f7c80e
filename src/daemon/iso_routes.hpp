// /v1/storage/pools/{pool}/isos: the ISO library (list, show, streamed upload, delete),
// see docs/api.md. The logic lives in src/storage/iso_store.cpp.
#pragma once

#include "api_routes.hpp"

namespace hv::daemon {

void register_iso_routes(Router& r, ApiContext& c);

}  // namespace hv::daemon
