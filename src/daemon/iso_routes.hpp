// /v1/storage/pools/{pool}/isos: the ISO library (list, show, streamed upload, delete),
// see docs/api.md. The logic lives in src/storage/iso_store.cpp.
#pragma once

#include <memory>
#include <string>

#include "api_routes.hpp"

namespace hv::storage {
class IsoStore;
}

namespace hv::daemon {

void register_iso_routes(Router& r, ApiContext& c);

// The routes of one file store (list, show, delete, streamed upload) under
// /v1/storage/{collection} and /v1/storage/pools/{pool}/{collection}[/{name}]: the ISO library
// ("isos") and the container templates ("templates") are the same store on another content.
void register_file_store_routes(Router& r, ApiContext& c, std::shared_ptr<storage::IsoStore> store,
                                const std::string& collection);

}  // namespace hv::daemon
