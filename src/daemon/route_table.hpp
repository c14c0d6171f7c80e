// hvd's route table as data (`hvd --print-routes`): the request fuzzer of the integration tests
// (tests/integration/request_fuzz_test.cpp) walks every route from it, so a new route is fuzzed
// without anyone adding it to a list.
#pragma once

#include <nlohmann/json.hpp>

#include "router.hpp"

namespace hv::storage {
class TemplateStore;
}
namespace hv::virt {
class CtManager;
}
namespace hv::net {
class NetManager;
}
namespace hv::guest {
class AutostartService;
}
namespace hv::cluster {
class Cluster;
}
namespace hv::ceph {
class CephService;
}
namespace hv::migrate {
class Migrator;
}
namespace hv::ha {
class HaService;
}

namespace hv::daemon {

struct ApiContext;

// What the route files are given, each only its part.
struct RouteParts {
    ApiContext& api;  // VMs, storage, ISOs, observability, tasks, host (and the guest layer)
    net::NetManager& net;
    virt::CtManager& cts;
    storage::TemplateStore& templates;
    guest::AutostartService& autostart;
    cluster::Cluster& cluster;
    ceph::CephService& ceph;
    migrate::Migrator& migrator;
    ha::HaService& ha;
};

// Every route hvd serves, registered in one place (daemon.cpp's run() and route_table_json()).
void register_all_routes(Router& r, const RouteParts& parts);

// [{"method", "pattern", "resource", "kind": "fast"|"normal"|"streaming"|"upgrade", "protocol"?}] in
// registration order. Registers the routes on managers that are made but never started: no
// libvirt connection, no socket, no thread; their state files live in a temp dir removed again.
nlohmann::json route_table_json();

}  // namespace hv::daemon
