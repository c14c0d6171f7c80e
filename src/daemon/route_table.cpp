#include "route_table.hpp"

#include <stdlib.h>

#include <boost/asio/thread_pool.hpp>
#include <filesystem>

#include "../storage/ct_templates.hpp"
#include "api_routes.hpp"
#include "autostart_routes.hpp"
#include "ct_manager.hpp"
#include "ct_routes.hpp"
#include "event_bus.hpp"
#include "hv/error.hpp"
#include "netlink_backend.hpp"
#include "task_manager.hpp"
#include "vm_manager.hpp"

namespace hv::daemon {

void register_all_routes(Router& r, ApiContext& ctx, virt::CtManager& cts, storage::TemplateStore& templates,
                         AutostartService& autostart) {
    register_routes(r, ctx);
    register_ct_routes(r, ctx, cts, templates);
    register_autostart_routes(r, autostart);
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
        nlohmann::json j{{"method", rt.method}, {"pattern", pattern}};
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
    virt::VmManager vms(virt::VmManager::Options{}, pools, ignore);
    storage::TemplateStore templates(pools);
    virt::CtManager cts(virt::CtManager::Options{}, pools, templates, ignore);
    ApiContext ctx{cfg, vms, tasks, pools, net, std::chrono::steady_clock::now(), &cts};
    AutostartService autostart(ctx, bus, {});
    Router router;
    register_all_routes(router, ctx, cts, templates, autostart);
    return describe(router);
}

}  // namespace hv::daemon
