#include "hv/util/guard.hpp"
#include "obs_routes.hpp"

#include <charconv>
#include <fstream>
#include <memory>
#include <thread>

#include <spdlog/spdlog.h>

#include "ct_manager.hpp"
#include "ct_stats.hpp"
#include "domain_stats.hpp"
#include "hv/api/host.hpp"
#include "metrics.hpp"
#include "migrator.hpp"

namespace hv::daemon {
namespace {

MetricsSnapshot collect(ApiContext& c, virt::CtManager* cts, const migrate::Migrator* migrator) {
    MetricsSnapshot s;
    if (migrator)
        for (const auto& [kind, m] : migrator->counters())
            s.migrations.push_back({kind, m.ok, m.failed, m.seconds, m.downtime_seconds});
    s.version = HV_VERSION;
    s.escaped_exceptions = util::escaped_exceptions();
    s.uptime_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - c.host.started()).count();
    s.cpus = static_cast<int>(std::thread::hardware_concurrency());
    s.memory_total = HostService::meminfo("MemTotal:");
    s.memory_available = HostService::meminfo("MemAvailable:");
    for (const auto& p : c.pools.list())
        s.pools.push_back(PoolFacts{p.spec.name, p.active, p.capacity, p.used, p.free, p.committed,
                                    static_cast<std::uint64_t>(std::max(0, p.volumes))});
    auto counters = c.tasks.counters();
    for (const auto& [state, n] : counters.by_state) s.tasks_by_state.emplace_back(api::to_string(state), n);
    for (const auto& [key, n] : counters.finished)
        s.tasks_finished.push_back({key.first, api::to_string(key.second), n});
    auto t0 = std::chrono::steady_clock::now();
    try {
        auto conn = c.vms.connection().get();
        s.vms = virt::bulk_domain_stats(conn.get());
        s.libvirt_up = true;
    } catch (const Error& e) {
        spdlog::debug("metrics: no domain statistics: {}", e.what());
    }
    s.containers = cts != nullptr;
    try {
        if (cts) {
            s.cts = virt::container_stats(cts->connection());
            s.lxc_up = true;
        }
    } catch (const Error& e) {
        spdlog::debug("metrics: no container statistics: {}", e.what());
    }
    s.collect_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
}

std::uint64_t after_param(const Request& req) {
    auto it = req.query.find("after");
    if (it == req.query.end()) return 0;
    const auto& v = it->second;
    std::uint64_t n = 0;
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc() || ptr != v.data() + v.size())
        fail(Errc::invalid_input, "query parameter 'after' must be a line number (got '{}')", v);
    return n;
}

}  // namespace

void register_obs_routes(Router& r, ApiContext& c, virt::CtManager* cts, const migrate::Migrator* migrator) {
    auto cache = std::make_shared<MetricsCache>(std::chrono::seconds(c.config.metrics_cache),
                                                [&c, cts, migrator] { return render_metrics(collect(c, cts, migrator)); });
    // Not fast: the first scrape of a period makes the libvirt call (a worker thread).
    r.add("GET", "/v1/metrics", "host", [cache](const Request&) {
        return Response{200, cache->get(), "text/plain; version=0.0.4; charset=utf-8"};
    });
    r.add("GET", "/v1/tasks/{id}/log", "task:{id}",
          [&c](const Request& req) { return Response{200, c.tasks.log(req.param("id"), after_param(req))}; }, true);
    r.add("GET", "/v1/version", "host", [](const Request&) {
        return Response{200, api::VersionInfo{HV_VERSION, api::kApiVersion}};
    }, true);
}

}  // namespace hv::daemon
