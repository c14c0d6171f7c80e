// hvctl vm migrate NAME --to HOST: live (or --offline) migration between members
// (docs/migration.md); --dry-run lists every blocker and starts nothing.
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
std::string escape(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.') out += static_cast<char>(c);
        else out += fmt::format("%{:02X}", c);
    }
    return out;
}
}  // namespace

void add_migrate_command(CLI::App& app, Context& ctx) {
    auto* vm = app.get_subcommand("vm");
    struct Args {
        std::string name;
        api::MigrateRequest rq;
        bool async = false;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = vm->add_subcommand("migrate", "Move a VM to another member: live (running), or --offline (stopped)");
    cmd->add_option("name", a->name, "VM name")->required();
    cmd->add_option("--to", a->rq.to, "The member that gets it")->required();
    cmd->add_flag("--offline", a->rq.offline, "Move a stopped VM (its definition; disks on shared pools)");
    cmd->add_flag("--dry-run", a->rq.dry_run, "Only the pre-flight checks: every blocker, nothing started");
    cmd->add_option("--bandwidth", a->rq.bandwidth, "MiB/s at most (default: unlimited)");
    cmd->add_option("--max-downtime", a->rq.max_downtime, "ms the guest may pause at the switch-over (raised in steps up to 4x)")
        ->capture_default_str();
    cmd->add_flag("--async", a->async, "Do not wait: print the task and exit");
    on_run(cmd, ctx, [&g = ctx.g, a] {
        Client c = g.client();
        auto r = c.request("POST", "/v1/vms/" + escape(a->name) + "/migrate", api::to_json(a->rq));
        auto report_out = [&](const json& rep) {
            if (g.json()) return print_json(rep), 0;
            if (a->rq.dry_run) {
                auto blockers = rep.value("blockers", json::array());
                if (blockers.empty()) print_line(fmt::format("vm {} can move to {} ({})", a->name, a->rq.to,
                                                            a->rq.offline ? "offline" : "live"));
                for (const auto& b : blockers) print_line("blocker: " + b.get<std::string>());
                return blockers.empty() ? 0 : 5;
            }
            print_line(fmt::format("vm {} runs on {}: {} ms in all, downtime {} ms, {} sent", a->name, rep.value("to", ""),
                                   rep.value("total_ms", 0), rep.value("downtime_ms", -1),
                                   api::format_size(rep.value("transferred", std::uint64_t{0}))));
            return 0;
        };
        if (a->rq.dry_run) return report_out(r.body);
        api::TaskInfo t;
        try {
            t = api::task_info_from_json(r.body);
        } catch (const Error& e) {
            fail(Errc::internal, "hvd sent a malformed task: {}", e.what());
        }
        return finish_task(g, c, t, a->async, [&](const api::TaskInfo& done) { return report_out(done.result); });
    });
}

}  // namespace hv::cli
