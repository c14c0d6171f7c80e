// hvctl ceph init|status|mon create|osd create|osd list|pool create: hv's hyperconverged Ceph
// through /v1/ceph (docs/ceph.md). Creating monitors, OSDs and pools are tasks (progress).
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "context.hpp"
#include "format.hpp"
#include "guest_commands.hpp"
#include "hv/api/ceph.hpp"
#include "hv/api/size.hpp"
#include "hv/api/task.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace hv::cli {
using nlohmann::json;

namespace {

std::string host_query(const std::string& host) { return host.empty() ? std::string() : "?host=" + escape_segment(host); }

api::TaskInfo task_of(const Client::Response& r) { return task_from_body(r.body); }

std::string str(const json& j, const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
std::uint64_t num(const json& j, const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>()
           : it != j.end() && it->is_number_integer() ? static_cast<std::uint64_t>(std::max<std::int64_t>(0, it->get<std::int64_t>()))
                                                      : 0;
}

std::vector<Row> osd_rows(const json& list) {
    std::vector<Row> rows;
    for (const auto& o : list)
        rows.push_back({fmt::format("osd.{}", o.value("id", -1)), str(o, "host"), str(o, "device"),
                        str(o, "db_device").empty() ? "-" : str(o, "db_device"), o.value("up", false) ? "up" : "DOWN",
                        o.value("in", false) ? "in" : "out"});
    return rows;
}

void print_status(const Globals& g, const json& s) {
    if (g.json()) return print_json(s);
    if (!s.value("initialized", false)) {
        for (const auto& l : s.value("summary", json::array())) print_line(l.get<std::string>());
        return;
    }
    std::vector<std::pair<std::string, std::string>> kv{
        {"health", str(s, "health").empty() ? "unknown" : str(s, "health")},
        {"fsid", str(s, "fsid")},
        {"network", str(s, "network") + (str(s, "cluster_network").empty() ? "" : " (cluster " + str(s, "cluster_network") + ")")},
        {"capacity", num(s, "raw_total") ? fmt::format("{} raw, {} used, {} available", api::format_size(num(s, "raw_total")),
                                                       api::format_size(num(s, "raw_used")), api::format_size(num(s, "raw_avail")))
                                         : "-"}};
    std::cout << render_kv(kv);
    for (const auto& l : s.value("summary", json::array())) print_line(l.get<std::string>());
    std::vector<Row> mons;
    for (const auto& m : s.value("mons", json::array()))
        mons.push_back({str(m, "name"), str(m, "address"), m.value("in_quorum", false) ? "in quorum" : "OUT"});
    if (!mons.empty()) {
        std::cout << "\n";
        print_table(g, {"MON", "ADDRESS", "STATE"}, mons);
    }
    auto osds = osd_rows(s.value("osd_list", json::array()));
    if (!osds.empty()) {
        std::cout << "\n";
        print_table(g, {"OSD", "HOST", "DEVICE", "DB", "UP", "IN"}, osds);
    }
    std::vector<Row> pools;
    for (const auto& p : s.value("pools", json::array()))
        pools.push_back({str(p, "name"), fmt::format("{}/{}", p.value("size", 0), p.value("min_size", 0)),
                         std::to_string(p.value("pg_num", 0)), str(p, "failure_domain"),
                         str(p, "storage_pool").empty() ? "-" : str(p, "storage_pool")});
    if (!pools.empty()) {
        std::cout << "\n";
        print_table(g, {"POOL", "SIZE/MIN", "PGS", "COPIES PER", "STORAGE POOL"}, pools);
    }
    for (const auto& w : s.value("warnings", json::array())) print_line("warning: " + w.get<std::string>());
}

}  // namespace

void add_ceph_commands(CLI::App& app, Context& ctx) {
    auto* ceph = app.add_subcommand("ceph", "Hyperconverged Ceph on the cluster's hosts (monitors, OSDs, pools)");
    ceph->require_subcommand(1);

    struct InitArgs {
        std::string network, cluster_network;
    };
    auto ia = std::make_shared<InitArgs>();
    auto* init = ceph->add_subcommand("init", "Set up Ceph for this cluster: its network (once per cluster)");
    init->add_option("--network", ia->network, "Ceph's public network, e.g. 10.10.10.0/24")->required();
    init->add_option("--cluster-network", ia->cluster_network, "A separate network for OSD replication (default: --network)");
    on_run(init, ctx, [&g = ctx.g, ia] {
        auto r = g.client().request("POST", "/v1/ceph/init", api::to_json(api::CephInit{ia->network, ia->cluster_network}));
        print_status(g, r.body);
        return 0;
    });

    on_run(ceph->add_subcommand("status", "Health in plain words, monitors, OSDs up/in, placement groups, recovery, "
                                          "capacity, pools"),
           ctx, [&g = ctx.g] {
               auto r = g.client().request("GET", "/v1/ceph");
               print_status(g, r.body);
               return 0;
           });

    struct MonArgs {
        std::string host;
        bool async = false;
    };
    auto* mon = ceph->add_subcommand("mon", "Ceph monitors (with a manager beside each)");
    mon->require_subcommand(1);
    auto ma = std::make_shared<MonArgs>();
    auto* mc = mon->add_subcommand("create", "Create a monitor and a manager on a host (one monitor per host; 3 or 5 in all)");
    mc->add_option("--host", ma->host, "Cluster member that gets it (default: the host asked)");
    mc->add_flag("--async", ma->async, "Do not wait: print the task and exit");
    on_run(mc, ctx, [&g = ctx.g, ma] {
        Client c = g.client();
        auto t = task_of(c.request("POST", "/v1/ceph/mons" + host_query(ma->host), json::object()));
        return finish_task(g, c, t, ma->async, [&](const api::TaskInfo& done) {
            auto m = done.result.value("mon", json::object());
            if (g.json()) print_json(m);
            else print_line(fmt::format("monitor {} running at {} (with manager {})", str(m, "name"), str(m, "address"), str(m, "name")));
            return 0;
        });
    });

    auto* osd = ceph->add_subcommand("osd", "Ceph OSDs (BlueStore, one per device)");
    osd->require_subcommand(1);
    struct OsdArgs {
        std::string device, db_device, host;
        bool zap = false, async = false;
    };
    auto oa = std::make_shared<OsdArgs>();
    auto* oc = osd->add_subcommand("create", "Create a BlueStore OSD on a device of a host");
    oc->add_option("device", oa->device, "Block device (e.g. /dev/sdb) or, for labs, a file")->required();
    oc->add_option("--db-dev", oa->db_device, "BlueStore DB/WAL on this faster device or partition (the SSD cache)");
    oc->add_option("--host", oa->host, "Cluster member the device is in (default: the host asked)");
    oc->add_flag("--zap", oa->zap, "Wipe what is on the device(s) first (filesystem, partition table, old OSD)");
    oc->add_flag("--async", oa->async, "Do not wait: print the task and exit");
    on_run(oc, ctx, [&g = ctx.g, oa] {
        Client c = g.client();
        api::CephOsdCreate in{oa->device, oa->db_device, oa->zap};
        auto t = task_of(c.request("POST", "/v1/ceph/osds" + host_query(oa->host), api::to_json(in)));
        return finish_task(g, c, t, oa->async, [&](const api::TaskInfo& done) {
            auto o = done.result.value("osd", json::object());
            if (g.json()) print_json(o);
            else print_line(fmt::format("osd.{} up on {} ({})", o.value("id", -1), str(o, "host"), str(o, "device")));
            return 0;
        });
    });
    on_run(osd->add_subcommand("list", "The OSDs: host, device, DB device, up/in"), ctx, [&g = ctx.g] {
        auto r = g.client().request("GET", "/v1/ceph");
        auto list = r.body.value("osd_list", json::array());
        if (g.json()) return print_json(list), 0;
        print_table(g, {"OSD", "HOST", "DEVICE", "DB", "UP", "IN"}, osd_rows(list));
        return 0;
    });

    auto* pool = ceph->add_subcommand("pool", "Ceph pools (replicated, for RBD)");
    pool->require_subcommand(1);
    struct PoolArgs {
        api::CephPoolCreate in;
        bool no_storage = false, async = false;
        int min_size = 0;
    };
    auto pa = std::make_shared<PoolArgs>();
    auto* pc = pool->add_subcommand("create", "Create a replicated pool; also adds an hv storage pool of that name (type rbd)");
    pc->add_option("name", pa->in.name, "Pool name (1-32 of a-z 0-9 -)")->required();
    pc->add_option("--size", pa->in.size, "Copies of every object")->capture_default_str();
    pc->add_option("--min-size", pa->min_size, "Copies that must be up for I/O (default: size - size/2)");
    pc->add_option("--pg-num", pa->in.pg_num, "Placement groups (power of two)")->capture_default_str();
    pc->add_flag("--force", pa->in.force, "Allow more copies than hosts with OSDs (copies share hosts)");
    pc->add_flag("--no-storage", pa->no_storage, "Do not add an hv storage pool");
    pc->add_flag("--async", pa->async, "Do not wait: print the task and exit");
    on_run(pc, ctx, [&g = ctx.g, pa] {
        Client c = g.client();
        auto in = pa->in;
        in.add_storage = !pa->no_storage;
        json body = api::to_json(in);
        if (pa->min_size) body["min_size"] = pa->min_size;
        else body.erase("min_size");
        auto t = task_of(c.request("POST", "/v1/ceph/pools", body));
        return finish_task(g, c, t, pa->async, [&](const api::TaskInfo& done) {
            auto p = done.result.value("pool", json::object());
            if (g.json()) print_json(p);
            else
                print_line(fmt::format("pool {}: {} copies (I/O with {}), one per {}{}", str(p, "name"), p.value("size", 0),
                                       p.value("min_size", 0), str(p, "failure_domain"),
                                       str(p, "storage_pool").empty() ? "" : "; storage pool " + str(p, "storage_pool")));
            return 0;
        });
    });
}

}  // namespace hv::cli
