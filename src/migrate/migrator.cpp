#include "migrator.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cluster.hpp"
#include "hv/api/size.hpp"
#include "hv/error.hpp"
#include "hv/storage/pool_manager.hpp"
#include "hv/util/guard.hpp"
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
    if (cluster_.maintenance(rq.to)) b.push_back(fmt::format("host {} is in maintenance", rq.to));
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

void Migrator::precheck_maintenance() const {
    if (!cluster_.member()) fail(Errc::conflict, "this host is in no cluster: maintenance moves its guests to other members");
}

json Migrator::enter_maintenance(int parallel, util::Progress& progress) {
    precheck_maintenance();
    const std::string self = cluster_.node();
    json doc = cluster_.maintenance(self).value_or(json::object());
    if (!doc.contains("since")) doc["since"] = static_cast<std::int64_t>(std::time(nullptr));
    if (!doc.contains("moved") || !doc["moved"].is_array()) doc["moved"] = json::array();
    doc["state"] = "entering";
    doc["blockers"] = json::array();
    cluster_.put_maintenance(doc);
    progress.step(1, "no new guests on " + self + "; moving the running VMs");

    std::vector<std::string> queue;  // running VMs not handled yet
    for (const auto& v : vms_.list())
        if (v.state == api::VmState::running) queue.push_back(v.spec.name);
    std::mutex mu;
    std::map<std::string, std::uint64_t> planned;  // memory sent to each host by this run
    std::vector<std::string> blockers;
    std::size_t done = 0;
    auto pick = [&](const std::string& vm) -> std::string {
        auto info = vms_.get(vm);
        std::string best;
        std::uint64_t best_free = 0;
        std::vector<std::string> why;
        for (const auto& h : cluster_.hosts()) {
            if (h.name == self || !h.online || cluster_.maintenance(h.name)) continue;
            api::MigrateRequest rq;
            rq.to = h.name;
            auto r = check(vm, rq);
            std::uint64_t free = h.memory_total > h.memory_used ? h.memory_total - h.memory_used : 0;
            std::lock_guard lk(mu);
            free = free > planned[h.name] ? free - planned[h.name] : 0;
            if (!r.ok) {
                why.push_back(fmt::format("{}: {}", h.name, fmt::join(r.blockers, "; ")));
                continue;
            }
            if (free >= info.spec.memory && (best.empty() || free > best_free)) {
                best = h.name;
                best_free = free;
            }
        }
        std::lock_guard lk(mu);
        if (best.empty())
            blockers.push_back(fmt::format("vm {}: no member can take it{}{}", vm, why.empty() ? "" : ": ", fmt::join(why, " | ")));
        else
            planned[best] += info.spec.memory;
        return best;
    };
    auto worker = [&] {
        for (;;) {
            std::string vm;
            {
                std::lock_guard lk(mu);
                if (queue.empty() || progress.cancelled()) return;
                vm = queue.back();
                queue.pop_back();
            }
            util::NullProgress quiet;
            std::string to;
            try {
                to = pick(vm);
                if (!to.empty()) {
                    api::MigrateRequest rq;
                    rq.to = to;
                    migrate(vm, rq, quiet);
                }
            } catch (const std::exception& e) {
                std::lock_guard lk(mu);
                blockers.push_back(fmt::format("vm {}: {}", vm, e.what()));
                to.clear();
            }
            std::lock_guard lk(mu);
            ++done;
            if (!to.empty()) {
                doc["moved"].push_back(json{{"guest", vm}, {"to", to}});
                progress.log(fmt::format("vm {} -> {}", vm, to));
            }
            progress.step(static_cast<int>(5 + 90 * done / std::max<std::size_t>(1, done + queue.size())),
                          fmt::format("{} of the running VMs handled", done));
        }
    };
    std::vector<std::thread> pool;
    for (int i = 0; i < std::max(1, parallel); ++i) pool.emplace_back([&] { util::guarded("maintenance", worker); });
    for (auto& t : pool) t.join();
    if (running_cts_)
        for (const auto& ct : running_cts_())
            blockers.push_back(fmt::format("ct {}: containers do not migrate yet (stop it or move it by hand)", ct));
    doc["blockers"] = blockers;
    doc["state"] = blockers.empty() ? "in" : "entering";
    cluster_.put_maintenance(doc);
    progress.step(100, blockers.empty() ? self + " is in maintenance: no running guest left"
                                        : fmt::format("{} stays entering maintenance: {} blocker(s)", self, blockers.size()));
    return json{{"host", self}, {"maintenance", doc}};
}

json Migrator::maintenance_status() const {
    if (!cluster_.member()) return json{{"host", cluster_.node()}, {"maintenance", nullptr}};
    auto doc = cluster_.maintenance(cluster_.node());
    return json{{"host", cluster_.node()}, {"maintenance", doc ? *doc : json()}};
}

json Migrator::exit_maintenance(bool bring_back, util::Progress& progress) {
    if (!cluster_.member()) fail(Errc::conflict, "this host is in no cluster");
    const std::string self = cluster_.node();
    auto doc = cluster_.maintenance(self);
    if (!doc) fail(Errc::conflict, "host {} is not in maintenance", self);
    cluster_.clear_maintenance();
    json back = json::array(), failed = json::array();
    if (bring_back && doc->contains("moved") && (*doc)["moved"].is_array()) {
        const auto& moved = (*doc)["moved"];
        std::size_t i = 0;
        for (const auto& m : moved) {
            ++i;
            std::string vm = m.value("guest", ""), from = m.value("to", "");
            if (vm.empty() || from.empty() || cluster_.owner_of(vm) != from) continue;
            progress.step(static_cast<int>(100 * i / (moved.size() + 1)), "bringing back vm " + vm + " from " + from);
            // The request runs on the VM's owner: through that member's API.
            try {
                auto id = cluster_.identity();
                auto addr = cluster_.address_of(from);
                if (!id || !addr) fail(Errc::unavailable, "host {} cannot be reached", from);
                cluster::HttpsClient client(*id, std::chrono::seconds(300));
                cluster::HttpsRequest rq;
                rq.method = "POST";
                rq.target = "/v1/vms/" + vm + "/migrate";
                rq.body = json{{"to", self}}.dump();
                // That member may not have seen the end of the maintenance yet (its cache
                // follows the watch): a blocker "in maintenance" is asked again for 10 s.
                auto r = client.request(addr->first, addr->second, rq);
                for (int i = 0; i < 40 && r.status == 409 && r.body.find("in maintenance") != std::string::npos; ++i) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(250));
                    r = client.request(addr->first, addr->second, rq);
                }
                if (r.status != 202) fail(Errc::conflict, "{} answered {}: {}", from, r.status, r.body.substr(0, 300));
                auto task = json::parse(r.body, nullptr, false);
                std::string tid = task.is_object() ? task.value("id", "") : "";
                // Wait for it (one at a time: they come back to this one host).
                std::string state = "queued";
                auto until = std::chrono::steady_clock::now() + std::chrono::minutes(10);
                while (!tid.empty() && state != "succeeded" && state != "failed" && state != "cancelled" &&
                       std::chrono::steady_clock::now() < until && !progress.cancelled()) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(500));
                    cluster::HttpsRequest q;
                    q.target = "/v1/tasks/" + tid;
                    auto t = client.request(addr->first, addr->second, q);
                    auto tj = json::parse(t.body, nullptr, false);
                    if (tj.is_object()) state = tj.value("state", state);
                }
                if (state != "succeeded") fail(Errc::conflict, "bringing vm {} back from {}: its task {} is {}", vm, from, tid, state);
                back.push_back(json{{"guest", vm}, {"from", from}, {"task", tid}});
            } catch (const std::exception& e) {
                failed.push_back(json{{"guest", vm}, {"error", e.what()}});
            }
        }
    }
    progress.step(100, fmt::format("{} left maintenance", self));
    return json{{"host", self}, {"returning", back}, {"failed", failed}};
}

}  // namespace hv::migrate
