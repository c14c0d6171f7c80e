#include "route_table.hpp"

#include <stdlib.h>

#include <boost/asio/thread_pool.hpp>
#include <filesystem>

#include "../storage/ct_templates.hpp"
#include "api_routes.hpp"
#include "autostart_routes.hpp"
#include "cluster.hpp"
#include "ceph_routes.hpp"
#include "ceph_service.hpp"
#include "migrate_routes.hpp"
#include "ha_routes.hpp"
#include "cluster_routes.hpp"
#include "ct_manager.hpp"
#include "ct_routes.hpp"
#include "drivers.hpp"
#include "guest_routes.hpp"
#include "host_service.hpp"
#include "net_routes.hpp"
#include "obs_routes.hpp"
#include "event_bus.hpp"
#include "hv/error.hpp"
#include "netlink_backend.hpp"
#include "task_manager.hpp"
#include "vm_manager.hpp"

namespace hv::daemon {

void register_all_routes(Router& r, const RouteParts& p) {
    // The guest routes first: GET /v1/vms before POST /v1/vms (the Allow header's order).
    register_guest_routes(r, p.api.guests, p.api.tasks);
    register_routes(r, p.api);
    register_obs_routes(r, p.api, &p.cts, &p.migrator);
    register_net_routes(r, p.net);
    register_ct_routes(r, p.api, p.cts, p.templates);
    register_autostart_routes(r, p.autostart);
    register_cluster_routes(r, p.cluster, p.api.tasks, p.api.config);
    register_ceph_routes(r, p.ceph, p.api.tasks);
    register_migrate_routes(r, p.migrator, p.api.tasks, p.api.config.libvirt_uri, p.api.config.cluster_maintenance_parallel);
    register_ha_routes(r, p.ha);
}

namespace {
// A temp directory for the state files the managers read at construction (none exist there).
struct TempDir {
    std::string path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "hvd-routes-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) fail(Errc::internal, "cannot make a temp directory in {}", tmpl);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

nlohmann::json describe(const Router& r) {
    auto out = nlohmann::json::array();
    for (const auto& rt : r.routes()) {
        std::string pattern;
        for (const auto& s : rt.segments) pattern += "/" + s;
        nlohmann::json j{{"method", rt.method}, {"pattern", pattern}, {"resource", rt.resource}};
        if (rt.upgrade) {
            j["kind"] = "upgrade";
            j["protocol"] = rt.protocol;
        } else {
            j["kind"] = rt.streaming ? "streaming" : rt.fast ? "fast" : "normal";
        }
        out.push_back(std::move(j));
    }
    return out;
}
}  // namespace

nlohmann::json route_table_json() {
    // The handlers capture these objects by reference and are never called here: the
    // objects only have to exist while the routes are registered.
    TempDir tmp;
    Config cfg;
    cfg.state_dir = tmp.path;
    EventBus bus;
    boost::asio::thread_pool pool(1);
    TaskManager tasks(pool, bus, 1, "");
    storage::PoolManager pools(tmp.path + "/pools.json", api::PoolSpec{"local", "dir", tmp.path + "/images", {}});
    net::NetManager net(tmp.path + "/network.json", std::make_unique<net::NetlinkBackend>());
    auto ignore = [](const std::string&, const std::string&, const nlohmann::json&) {};
    guest::Guests guests(ignore);
    virt::VmManager vms(virt::VmManager::Options{}, pools, ignore);
    auto vm_driver = guest::make_vm_driver(vms);
    guests.add(*vm_driver);
    storage::TemplateStore templates(pools);
    virt::CtManager cts(virt::CtManager::Options{}, pools, templates, ignore);
    auto ct_driver = guest::make_ct_driver(cts);
    guests.add(*ct_driver);
    HostService host(cfg, vms, pools, net, std::chrono::steady_clock::now());
    ApiContext ctx{cfg, vms, tasks, pools, guests, host};
    guest::AutostartService autostart(
        guests, [&tasks](const std::string& k, const std::string& t, TaskManager::Work w) {
            return tasks.submit(k, t, std::move(w));
        },
        ignore, tmp.path, {});
    cluster::ClusterOptions co;
    co.state_dir = tmp.path + "/cluster";
    co.node_name = "routes";
    cluster::Cluster cluster(co, {});
    ceph::CephService ceph({tmp.path + "/ceph", "routes"}, cluster, pools);
    migrate::Migrator migrator(vms, pools, cluster, {tmp.path + "/run", tmp.path + "/migrate", 120});
    ha::HaService ha({}, cluster, guests, vms, pools, autostart);
    Router router;
    register_all_routes(router, RouteParts{ctx, net, cts, templates, autostart, cluster, ceph, migrator, ha});
    return describe(router);
}

}  // namespace hv::daemon
