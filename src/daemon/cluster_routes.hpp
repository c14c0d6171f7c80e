// /v1/cluster: create, tokens, join (user side and the host-to-host join request), leave,
// remove, status, hosts (docs/api.md "Cluster"). Thin: the work is cluster::Cluster's.
#pragma once

#include "cluster.hpp"
#include "config.hpp"
#include "router.hpp"
#include "task_manager.hpp"

namespace hv::daemon {

void register_cluster_routes(Router& r, cluster::Cluster& c, TaskManager& tasks, const Config& cfg);

}  // namespace hv::daemon
