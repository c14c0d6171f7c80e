// hvctl vm migrate NAME --to HOST: live (or --offline) migration between members, and
// hvctl ct migrate NAME --to HOST: restart migration of a container (docs/migration.md);
// --dry-run lists every blocker and starts nothing.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "context.hpp"
#include "guest_commands.hpp"
#include "hv/api/migrate.hpp"
#include "hv/api/size.hpp"
#include "hv/api/task.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace hv::cli {
using nlohmann::json;


namespace {

// What `vm migrate` / `ct migrate` print: the dry run's blockers (exit 5 if any), or the result.
int print_report(Globals& g, const std::string& kind, const std::string& name, const api::MigrateRequest& rq,
                 const json& rep) {
    if (g.json()) return print_json(rep), 0;
    if (rq.dry_run) {
        auto blockers = rep.value("blockers", json::array());
        if (blockers.empty())
            print_line(fmt::format("{} {} can move to {} ({})", kind, name, rq.to,
                                   kind == "ct" ? "restart" : rq.offline ? "offline" : "live"));
        for (const auto& b : blockers) print_line("blocker: " + b.get<std::string>());
        return blockers.empty() ? 0 : 5;
    }
    if (kind == "ct")
        print_line(fmt::format("ct {} is on {}: {} ms in all", name, rep.value("to", ""), rep.value("total_ms", 0)));
    else
        print_line(fmt::format("vm {} runs on {}: {} ms in all, downtime {} ms, {} of memory sent{}", name, rep.value("to", ""),
                               rep.value("total_ms", 0), rep.value("downtime_ms", -1),
                               api::format_size(rep.value("transferred", std::uint64_t{0})),
                               rep.value("postcopy", false) ? " (finished in post-copy)" : ""));
    for (const auto& d : rep.value("copied_disks", json::array()))
        if (d.is_string()) print_line("copied " + d.get<std::string>());
    for (const auto& w : rep.value("warnings", json::array()))
        if (w.is_string()) print_line("warning: " + w.get<std::string>());
    return 0;
}

void add_migrate_verb(CLI::App& app, Context& ctx, const std::string& kind) {
    auto* noun = app.get_subcommand(kind);
    struct Args {
        std::string name;
        api::MigrateRequest rq;
        bool async = false;
    };
    auto a = std::make_shared<Args>();
    const bool vm = kind == "vm";
    auto* cmd = noun->add_subcommand(
        "migrate", vm ? "Move a VM to another member: live (running), or --offline (stopped)"
                      : "Move a container to another member by restart: shut down here, its root filesystem copied "
                        "(or reattached on a shared pool), started there if it ran");
    cmd->add_option("name", a->name, vm ? "VM name" : "Container name")->required();
    cmd->add_option("--to", a->rq.to, "The member that gets it")->required();
    cmd->add_flag("--dry-run", a->rq.dry_run, "Only the pre-flight checks: every blocker, nothing started");
    if (vm) {
        cmd->add_flag("--offline", a->rq.offline, "Move a stopped VM (its definition; disks on shared pools)");
        cmd->add_flag("--with-local-disks", a->rq.with_local_disks,
                      "Copy the disks only this host sees (live, NBD mirror) into new volumes in the destination's pool "
                      "of the same name; the ones here are removed after success");
        cmd->add_flag("--postcopy", a->rq.postcopy,
                      "When raising the max downtime does not make it converge, switch to post-copy (the guest runs "
                      "there and fetches the rest of its memory from here)");
        cmd->add_option("--bandwidth", a->rq.bandwidth, "MiB/s at most (default: unlimited)");
        cmd->add_option("--max-downtime", a->rq.max_downtime, "ms the guest may pause at the switch-over (raised in steps up to 4x)")
            ->capture_default_str();
    }
    cmd->add_flag("--async", a->async, "Do not wait: print the task and exit");
    on_run(cmd, ctx, [&g = ctx.g, a, kind] {
        Client c = g.client();
        auto r = c.request("POST", "/v1/" + kind + "s/" + escape_segment(a->name) + "/migrate", api::to_json(a->rq));
        if (a->rq.dry_run) return print_report(g, kind, a->name, a->rq, r.body);
        auto t = task_from_body(r.body);
        return finish_task(g, c, t, a->async,
                           [&](const api::TaskInfo& done) { return print_report(g, kind, a->name, a->rq, done.result); });
    });
}

}  // namespace

void add_migrate_command(CLI::App& app, Context& ctx) {
    add_migrate_verb(app, ctx, "vm");
    add_migrate_verb(app, ctx, "ct");
}

// hvctl host maintenance enter|exit|status [HOST]
void add_maintenance_command(CLI::App& app, Context& ctx) {
    auto* host = app.get_subcommand("host");
    auto* m = host->add_subcommand("maintenance", "Host maintenance: its running VMs move away, no new guests come");
    m->require_subcommand(1);
    struct Args {
        std::string host;
        bool wait = false, back = false, local = false;
    };
    auto a = std::make_shared<Args>();
    auto q = [a] { return a->host.empty() ? std::string() : "?host=" + escape_segment(a->host); };
    auto* enter = m->add_subcommand("enter", "Move every running VM to other members (a task); stays across restarts");
    enter->add_option("host", a->host, "The member (default: the host asked)");
    enter->add_flag("--wait", a->wait, "Wait until the host is empty (or says what blocks it)");
    enter->add_flag("--with-local-disks", a->local,
                    "VMs with disks only this host sees move with them copied (exit --return copies them back)");
    on_run(enter, ctx, [&g = ctx.g, a, q] {
        Client c = g.client();
        json body = json::object();
        if (a->local) body["with_local_disks"] = true;
        auto t = api::task_info_from_json(c.request("POST", "/v1/host/maintenance" + q(), body).body);
        return finish_task(g, c, t, !a->wait, [&](const api::TaskInfo& done) {
            auto doc = done.result.value("maintenance", json::object());
            if (g.json()) return print_json(done.result), doc.value("state", "") == "in" ? 0 : 5;
            print_line(fmt::format("{}: {}", done.result.value("host", ""),
                                   doc.value("state", "") == "in" ? "in maintenance" : "entering maintenance"));
            for (const auto& mv : doc.value("moved", json::array()))
                print_line(fmt::format("moved {} -> {}", mv.value("guest", ""), mv.value("to", "")));
            for (const auto& b : doc.value("blockers", json::array())) print_line("blocker: " + b.get<std::string>());
            return doc.value("state", "") == "in" ? 0 : 5;
        });
    });
    auto* leave = m->add_subcommand("exit", "End maintenance: new guests may come again");
    leave->add_option("host", a->host, "The member (default: the host asked)");
    leave->add_flag("--return", a->back, "Bring back (live) the VMs that maintenance moved away");
    on_run(leave, ctx, [&g = ctx.g, a, q] {
        Client c = g.client();
        std::string path = "/v1/host/maintenance" + q();
        if (a->back) path += (path.find('?') == std::string::npos ? "?" : "&") + std::string("return=1");
        auto t = api::task_info_from_json(c.request("DELETE", path).body);
        return finish_task(g, c, t, false, [&](const api::TaskInfo& done) {
            if (g.json()) return print_json(done.result), 0;
            print_line(done.result.value("host", "") + " left maintenance");
            for (const auto& b : done.result.value("returning", json::array()))
                print_line(fmt::format("back: {} (from {})", b.value("guest", ""), b.value("from", "")));
            for (const auto& f : done.result.value("failed", json::array()))
                print_line(fmt::format("not back: {}: {}", f.value("guest", ""), f.value("error", "")));
            return done.result.value("failed", json::array()).empty() ? 0 : 5;
        });
    });
    auto* st = m->add_subcommand("status", "Whether the host is in maintenance, what moved, what blocks");
    st->add_option("host", a->host, "The member (default: the host asked)");
    on_run(st, ctx, [&g = ctx.g, q] {
        auto r = g.client().request("GET", "/v1/host/maintenance" + q());
        if (g.json()) return print_json(r.body), 0;
        const auto& doc = r.body.at("maintenance");
        if (doc.is_null()) print_line(r.body.value("host", "") + ": not in maintenance");
        else print_line(r.body.value("host", "") + ": " + (doc.value("state", "") == "in" ? "in maintenance" : "entering maintenance"));
        return 0;
    });
}

}  // namespace hv::cli
