// hvctl vm clone SRC DST [--linked] [--pool P] and hvctl vm template NAME (docs/snapshots.md).
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "context.hpp"
#include "guest_commands.hpp"
#include "hv/api/task.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace hv::cli {
using nlohmann::json;

void add_clone_command(CLI::App& app, Context& ctx) {
    auto* vm = app.get_subcommand("vm");
    struct Args {
        std::string src, dst, pool;
        bool async = false, linked = false;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = vm->add_subcommand(
        "clone", "Clone a stopped VM or a template: new uuid, new MACs, a full copy of every disk (or --linked)");
    cmd->add_option("source", a->src, "The VM or template to copy (stopped)")->required();
    cmd->add_option("name", a->dst, "Name of the new VM")->required();
    cmd->add_option("--pool", a->pool, "Pool of the full copies (default: each disk's own pool; another file pool: copied with qemu-img)");
    cmd->add_flag("--linked", a->linked,
                  "Of a template: linked clones of its disks (they hold only their own writes; the template's disks "
                  "stay their base)");
    cmd->add_flag("--async", a->async, "Do not wait: print the task and exit");
    on_run(cmd, ctx, [&g = ctx.g, a] {
        Client c = g.client();
        json body{{"name", a->dst}};
        if (!a->pool.empty()) body["pool"] = a->pool;
        if (a->linked) body["linked"] = true;
        auto r = c.request("POST", "/v1/vms/" + escape_segment(a->src) + "/clone", body);
        auto t = task_from_body(r.body);
        return finish_task(g, c, t, a->async, [&](const api::TaskInfo& done) {
            if (g.json()) return print_json(done.result), 0;
            print_line(fmt::format("{} vm {} to {} ({})", a->linked ? "linked clone of" : "cloned", a->src, a->dst,
                                   done.result.value("uuid", "")));
            return 0;
        });
    });

    auto name = std::make_shared<std::string>();
    auto* tpl = vm->add_subcommand("template", "Make a stopped VM a template: never started again, the base of clones");
    tpl->add_option("name", *name, "The VM (stopped, without snapshots)")->required();
    on_run(tpl, ctx, [&g = ctx.g, name] {
        Client c = g.client();
        auto r = c.request("POST", "/v1/vms/" + escape_segment(*name) + "/template", json::object());
        if (g.json()) return print_json(r.body), 0;
        print_line(fmt::format("vm {} is a template", *name));
        return 0;
    });
}

}  // namespace hv::cli
