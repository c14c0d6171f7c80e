// Observability routes (docs/observability.md): GET /v1/metrics (Prometheus text, cached for
// `daemon.metrics_cache` seconds), GET /v1/tasks/{id}/log, GET /v1/version.
#pragma once

#include "api_routes.hpp"

namespace hv::daemon {

void register_obs_routes(Router& r, ApiContext& c);

}  // namespace hv::daemon
