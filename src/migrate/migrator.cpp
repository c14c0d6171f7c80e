#include "migrator.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cluster.hpp"
#include "hv/api/size.hpp"
#include "hv/error.hpp"
#include "hv/storage/pool_manager.hpp"
#include "https_client.hpp"
#include "libvirt_tunnel.hpp"
#include "vm_manager.hpp"

namespace hv::migrate {
using nlohmann::json;

namespace {

// A GET on another member's API over mutual TLS (runs there: no ?host=).
json member_get(const cluster::Cluster& c, const std::string& node, const std::string& path) {
    auto id = c.identity();
    auto addr = c.address_of(node);
    if (!id || !addr) fail(Errc::unavailable, "host {} cannot be reached (no address or no identity)", node);
    cluster::HttpsClient client(*id, std::chrono::seconds(5));
    cluster::HttpsRequest rq;
    rq.target = path;
    auto r = client.request(addr->first, addr->second, rq);
    if (r.status != 200) fail(Errc::unavailable, "host {} answered {} to GET {}", node, r.status, path);
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_discarded()) fail(Errc::unavailable, "host {} sent no JSON for GET {}", node, path);
    return j;
}

std::set<std::string> names_of(const json& list) {
    std::set<std::string> out;
    if (list.is_array())
        for (const auto& e : list)
            if (e.is_object() && e.contains("name") && e["name"].is_string()) out.insert(e["name"].get<std::string>());
    return out;
}

std::atomic<int> tunnel_seq{0};

}  // namespace

Migrator::Migrator(virt::VmManager& vms, storage::PoolManager& pools, cluster::Cluster& cluster, std::string run_dir)
    : vms_(vms), pools_(pools), cluster_(cluster), run_dir_(std::move(run_dir)) {}

api::MigrateReport Migrator::check(const std::string& name, const api::MigrateRequest& rq) const {
    if (!cluster_.member()) fail(Errc::conflict, "this host is in no cluster: a vm migrates between members (hvctl cluster create/join)");
    api::MigrateReport r;
    r.vm = name;
    r.from = cluster_.node();
    r.to = rq.to;
    r.live = !rq.offline;
    auto info = vms_.get(name);  // 404
    if (rq.to == r.from) fail(Errc::invalid_input, "vm '{}' is on {} already", name, rq.to);
    auto members = cluster_.member_names();
    if (std::find(members.begin(), members.end(), rq.to) == members.end())
        fail(Errc::not_found, "no member named '{}' in the cluster", rq.to);
    auto& b = r.blockers;
    const bool running = info.state == api::VmState::running;
    const bool stopped = info.state == api::VmState::stopped || info.state == api::VmState::crashed;
    if (!rq.offline && !running)
        b.push_back(fmt::format("vm '{}' is {}: only a running vm migrates live (--offline moves a stopped one)", name,
                                api::to_string(info.state)));
    if (rq.offline && !stopped)
        b.push_back(fmt::format("vm '{}' is {}: --offline moves a stopped vm (leave it out to migrate it live)", name,
                                api::to_string(info.state)));
    const auto& spec = info.spec;
    for (const auto& d : spec.disks) {
        std::string type;
        try {
            type = pools_.get(d.pool).spec.type;
        } catch (const Error&) {
            type = "?";
        }
        if (type != "rbd")
            b.push_back(fmt::format("disk {} is on pool '{}' ({}), which only this host sees: move it to a shared pool "
                                    "(rbd); copying local disks (--with-local-disks) is not there yet",
                                    d.name, d.pool, type));
    }
    if (!spec.cdrom.empty())
        b.push_back(fmt::format("the CD-ROM holds {}, a file of this host: eject it first (hvctl vm cdrom eject {})",
                                spec.cdrom, name));
    if (!cluster_.online(rq.to)) {
        b.push_back(fmt::format("host {} is offline", rq.to));
        return r;
    }
    try {
        auto pools = names_of(member_get(cluster_, rq.to, "/v1/storage/pools"));
        for (const auto& d : spec.disks)
            if (!pools.count(d.pool)) b.push_back(fmt::format("host {} has no storage pool '{}' (disk {})", rq.to, d.pool, d.name));
        bool bridged = std::any_of(spec.nics.begin(), spec.nics.end(), [](const auto& n) { return !n.bridge.empty(); });
        if (bridged) {
            auto bridges = names_of(member_get(cluster_, rq.to, "/v1/net/bridges"));
            for (const auto& n : spec.nics)
                if (!n.bridge.empty() && !bridges.count(n.bridge))
                    b.push_back(fmt::format("host {} has no bridge '{}' (nic {})", rq.to, n.bridge, n.name));
        }
        for (const auto& h : cluster_.hosts()) {
            if (h.name != rq.to || h.memory_total == 0) continue;
            std::uint64_t free = h.memory_total > h.memory_used ? h.memory_total - h.memory_used : 0;
            if (free < spec.memory)
                b.push_back(fmt::format("host {} has {} of memory free, vm '{}' needs {}", rq.to, api::format_size(free), name,
                                        api::format_size(spec.memory)));
        }
    } catch (const Error& e) {
        b.push_back(fmt::format("host {} cannot be asked: {}", rq.to, e.what()));
    }
    r.ok = b.empty();
    return r;
}

api::MigrateReport Migrator::migrate(const std::string& name, const api::MigrateRequest& rq, util::Progress& progress) {
    auto r = check(name, rq);
    if (!r.ok)
        fail(Errc::conflict, "cannot migrate vm '{}' to {}: {}", name, rq.to, fmt::join(r.blockers, "; "));
    auto id = cluster_.identity();
    auto addr = cluster_.address_of(rq.to);
    if (!id || !addr) fail(Errc::unavailable, "host {} cannot be reached", rq.to);
    ::mkdir(run_dir_.c_str(), 0700);
    cluster_.hold(name);
    try {
        cluster::LibvirtTunnel tunnel(*id, addr->first, addr->second,
                                      fmt::format("{}/migrate-{}.sock", run_dir_, ++tunnel_seq));
        virt::VmManager::MigrateParams mp;
        mp.uri = tunnel.uri();
        mp.live = !rq.offline;
        mp.bandwidth_mib = rq.bandwidth;
        mp.max_downtime_ms = rq.max_downtime;
        progress.log(fmt::format("vm {}: {} migration {} -> {}", name, mp.live ? "live" : "offline", r.from, rq.to));
        auto stats = vms_.migrate(name, mp, progress);
        r.total_ms = stats.value("total_ms", 0);
        r.downtime_ms = stats.value("downtime_ms", -1);
        r.transferred = stats.value("transferred", 0);
    } catch (...) {
        cluster_.release(name);
        throw;
    }
    cluster_.hand_over(name, rq.to);
    progress.step(100, fmt::format("vm {} runs on {} ({} ms, downtime {} ms)", name, rq.to, r.total_ms, r.downtime_ms));
    spdlog::info("vm {}: migrated to {} in {} ms (downtime {} ms)", name, rq.to, r.total_ms, r.downtime_ms);
    r.ok = true;
    return r;
}

}  // namespace hv::migrate
