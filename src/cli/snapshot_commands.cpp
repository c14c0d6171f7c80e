// hvctl vm snapshot create|list|show|revert|delete (docs/snapshots.md): libvirt internal
// snapshots of qcow2 disks; create, revert and delete are tasks with progress.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "context.hpp"
#include "guest_commands.hpp"
#include "hv/api/snapshot.hpp"
#include "hv/api/task.hpp"
#include "output.hpp"
#include "progress.hpp"
#include "snapshot_commands.hpp"

namespace hv::cli {
using nlohmann::json;

namespace {

std::string snapshots_path(const std::string& vm) { return "/v1/vms/" + escape_segment(vm) + "/snapshots"; }
std::string snapshot_path(const std::string& vm, const std::string& snap) {
    return snapshots_path(vm) + "/" + escape_segment(snap);
}

}  // namespace

// The rows of `snapshot list`: the tree drawn by indenting each name under its parent.
std::vector<Row> snapshot_rows(const std::vector<api::SnapshotInfo>& list) {
    std::vector<Row> rows;
    for (const auto& n : api::snapshot_tree(list)) {
        const auto& s = n.info;
        rows.push_back({std::string(2 * static_cast<std::size_t>(n.depth), ' ') + s.name + (s.current ? " *" : ""),
                        s.parent.empty() ? "-" : s.parent, format_time_ms(s.created * 1000), s.memory ? "yes" : "no",
                        s.state, s.description});
    }
    return rows;
}

void add_snapshot_commands(CLI::App& app, Context& ctx) {
    auto* vm = app.get_subcommand("vm");
    auto* sn = vm->add_subcommand("snapshot", "VM snapshots (qcow2 disks): create, list, show, revert, delete");
    sn->require_subcommand(1);
    struct Args {
        std::string vm, snap;
        api::SnapshotCreate create;
        bool start = false, children = false, async = false;
    };
    auto a = std::make_shared<Args>();

    auto* create = sn->add_subcommand("create", "Take a snapshot (a running VM is paused for the moment)");
    create->add_option("vm", a->vm, "VM name")->required();
    create->add_option("snapshot", a->create.name, "Snapshot name (the VM name rules)")->required();
    create->add_flag("--memory", a->create.memory, "Save the RAM too: revert resumes the guest where it was");
    create->add_flag("--quiesce", a->create.quiesce, "Freeze the guest's filesystems through its agent for the moment");
    create->add_option("--description", a->create.description, "Free text kept with the snapshot");
    create->add_flag("--async", a->async, "Do not wait: print the task and exit");
    on_run(create, ctx, [&g = ctx.g, a] {
        Client c = g.client();
        auto t = task_from_body(c.request("POST", snapshots_path(a->vm), api::to_json(a->create)).body);
        return finish_task(g, c, t, a->async, [&](const api::TaskInfo& done) {
            if (g.json()) return print_json(done.result), 0;
            print_line(fmt::format("snapshot {} of vm {} taken{}", a->create.name, a->vm,
                                   a->create.memory ? " (with memory)" : ""));
            return 0;
        });
    });

    auto* list = sn->add_subcommand("list", "The VM's snapshots as a tree (* marks the current one)");
    list->add_option("vm", a->vm, "VM name")->required();
    on_run(list, ctx, [&g = ctx.g, a] {
        auto r = g.client().request("GET", snapshots_path(a->vm));
        if (g.json()) return print_json(r.body), 0;
        print_table(g, {"NAME", "PARENT", "CREATED", "MEMORY", "STATE", "DESCRIPTION"},
                    snapshot_rows(api::snapshot_list_from_json(r.body)));
        return 0;
    });

    auto* show = sn->add_subcommand("show", "One snapshot");
    show->add_option("vm", a->vm, "VM name")->required();
    show->add_option("snapshot", a->snap, "Snapshot name")->required();
    on_run(show, ctx, [&g = ctx.g, a] {
        auto r = g.client().request("GET", snapshot_path(a->vm, a->snap));
        if (g.json()) return print_json(r.body), 0;
        auto s = api::snapshot_info_from_json(r.body);
        print_line("name:        " + s.name + (s.current ? " (current)" : ""));
        print_line("parent:      " + (s.parent.empty() ? std::string("-") : s.parent));
        print_line("created:     " + format_time_ms(s.created * 1000));
        print_line(std::string("memory:      ") + (s.memory ? "yes" : "no"));
        print_line("state:       " + s.state);
        print_line("description: " + s.description);
        return 0;
    });

    auto* revert = sn->add_subcommand("revert", "Go back to a snapshot (a memory snapshot resumes the guest)");
    revert->add_option("vm", a->vm, "VM name")->required();
    revert->add_option("snapshot", a->snap, "Snapshot name")->required();
    revert->add_flag("--start", a->start, "Run the VM afterwards (a snapshot without memory boots from its disks)");
    revert->add_flag("--async", a->async, "Do not wait: print the task and exit");
    on_run(revert, ctx, [&g = ctx.g, a] {
        Client c = g.client();
        api::SnapshotRevert rq;
        rq.start = a->start;
        auto t = task_from_body(c.request("POST", snapshot_path(a->vm, a->snap) + "/revert", api::to_json(rq)).body);
        return finish_task(g, c, t, a->async, [&](const api::TaskInfo& done) {
            if (g.json()) return print_json(done.result), 0;
            print_line(fmt::format("vm {} reverted to {}: {}", a->vm, a->snap, done.result.value("state", "?")));
            return 0;
        });
    });

    auto* del = sn->add_subcommand("delete", "Delete a snapshot (its children stay, under its parent)");
    del->add_option("vm", a->vm, "VM name")->required();
    del->add_option("snapshot", a->snap, "Snapshot name")->required();
    del->add_flag("--children", a->children, "Delete every snapshot under it too");
    del->add_flag("--async", a->async, "Do not wait: print the task and exit");
    on_run(del, ctx, [&g = ctx.g, a] {
        Client c = g.client();
        auto target = snapshot_path(a->vm, a->snap) + (a->children ? "?children=1" : "");
        auto t = task_from_body(c.request("DELETE", target).body);
        return finish_task(g, c, t, a->async, [&](const api::TaskInfo& done) {
            if (g.json()) return print_json(done.result), 0;
            for (const auto& n : done.result.value("deleted", json::array()))
                print_line(fmt::format("deleted snapshot {} of vm {}", n.get<std::string>(), a->vm));
            return 0;
        });
    });
}

}  // namespace hv::cli
