// /v1/cts (containers) and /v1/storage/.../templates: registered from daemon.cpp next to the
// VM routes (docs/api.md, "Containers").
#pragma once

#include "api_routes.hpp"
#include "ct_manager.hpp"

namespace hv::storage {
class TemplateStore;
}

namespace hv::daemon {

void register_ct_routes(Router& r, ApiContext& c, virt::CtManager& cts, storage::TemplateStore& templates);

}  // namespace hv::daemon
