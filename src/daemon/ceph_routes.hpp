// /v1/ceph: hv's hyperconverged Ceph (docs/api.md "Ceph", docs/ceph.md). Thin: the work is
// ceph::CephService's. Monitor and OSD creation run on the host of ?host= (forwarded there).
#pragma once

#include "ceph_service.hpp"
#include "router.hpp"
#include "task_manager.hpp"

namespace hv::daemon {

void register_ceph_routes(Router& r, ceph::CephService& ceph, TaskManager& tasks);

}  // namespace hv::daemon
