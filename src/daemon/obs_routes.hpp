// Observability routes (docs/observability.md): GET /v1/metrics (Prometheus text, cached for
// `daemon.metrics_cache` seconds), GET /v1/tasks/{id}/log, GET /v1/version.
#pragma once

#include "api_routes.hpp"

namespace hv::virt {
class CtManager;
}
namespace hv::migrate {
class Migrator;
}

namespace hv::daemon {

// `cts`: the containers' manager (their metrics); nullptr when hvd has none. `migrator`: the
// migration counters (hv_migrations_total, ...); nullptr: none.
void register_obs_routes(Router& r, ApiContext& c, virt::CtManager* cts, const migrate::Migrator* migrator);

}  // namespace hv::daemon
