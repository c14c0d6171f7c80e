// hvctl ct ...: containers (libvirt LXC): create, exec, console, templates; the verbs they share
// with `hvctl vm` come from guest_commands.cpp. And `hvctl list`: VMs and containers in one table.
#include <filesystem>
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "console.hpp"
#include "context.hpp"
#include "guest_commands.hpp"
#include "hv/api/ct.hpp"
#include "hv/api/size.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace hv::cli {
namespace {

void add_create(CLI::App& ct, Context& ctx) {
    struct Opts {
        std::string name, tmpl, memory = "512M", rootfs, description, host;
        int cpus = 1;
        std::vector<std::string> nets, tags;
        bool privileged = false, unprivileged = false, start = false, async = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = ct.add_subcommand("create", "Create a container from a template (waits for the task unless --async)");
    cmd->add_option("name", o->name, "Container name")->required();
    cmd->add_option("--template", o->tmpl,
                    "Template: NAME (e.g. busybox, from a pool's vztmpl), POOL:vztmpl/FILE, the path of a pool's template, "
                    "or a local ./FILE.tar[.gz|.xz|.zst] (uploaded to the rootfs pool first)")
        ->required();
    cmd->add_option("--cpus", o->cpus, "CPU limit in CPUs (cgroup shares and quota)")->capture_default_str();
    cmd->add_option("--memory", o->memory, "Memory limit, e.g. 512M")->capture_default_str();
    cmd->add_option("--rootfs", o->rootfs, "Root filesystem: pool=local[,size=8G] (size: quota where the pool can)");
    cmd->add_option("--net", o->nets, "NIC: bridge=vmbr0[,vlan=100][,trunks=10;20-30][,mac=52:54:00:..] or network=default (repeatable)")
        ->allow_extra_args(false);
    auto* unpriv = cmd->add_flag("--unprivileged", o->unprivileged, "User namespace id mapping (the default)");
    auto* priv = cmd->add_flag("--privileged", o->privileged, "No user namespace: container root is host root (unsafe)");
    priv->excludes(unpriv);
    cmd->add_option("--description", o->description, "Free text");
    cmd->add_option("--tag", o->tags, "Tag (repeatable)")->allow_extra_args(false);
    cmd->add_option("--host", o->host, "Cluster member that gets the container (default: the host asked)");
    auto* start = cmd->add_flag("--start", o->start, "Start the container once it is created");
    auto* async = cmd->add_flag("--async", o->async, "Do not wait: print the task and exit");
    start->excludes(async);
    on_run(cmd, ctx, [&g = ctx.g, o] {
        api::CtSpec s;
        s.name = o->name;
        s.tmpl = o->tmpl;
        s.cpus = o->cpus;
        s.memory = api::parse_size(o->memory, "memory");
        if (!o->rootfs.empty()) s.rootfs = api::parse_rootfs_arg(o->rootfs);
        for (const auto& n : o->nets) s.nics.push_back(api::parse_nic_arg(n));
        s.unprivileged = !o->privileged;
        s.description = o->description;
        s.tags = o->tags;
        // A local tarball ("./rootfs.tar.zst"): uploaded into the rootfs pool's templates first.
        std::string local;
        if (s.tmpl.rfind("./", 0) == 0 || s.tmpl.rfind("../", 0) == 0) {
            local = s.tmpl;
            if (!o->host.empty())
                fail(Errc::invalid_input,
                     "a local template file is uploaded to the host asked, not to --host {}: upload it there first "
                     "(hvctl ct template upload, on {}), then name it with --template",
                     o->host, o->host);
            s.tmpl = s.rootfs.pool + ":vztmpl/" + std::filesystem::path(local).filename().string();
        }
        api::validate(s);
        if (o->privileged)
            std::cerr << "warning: a privileged container's root is the host's root; a process that escapes it owns "
                         "the host. Prefer the default (unprivileged).\n";
        Client c = g.client();
        if (!local.empty()) {
            auto name = std::filesystem::path(local).filename().string();
            api::validate_template_name(name);
            auto up = c.upload_template(s.rootfs.pool, name, local, "", false);
            if (!g.json()) print_line(fmt::format("uploaded template {}:vztmpl/{} ({})", up.pool, up.name, api::format_size(up.size)));
        }
        return finish_create(g, c, GuestType::ct, c.create_ct(s, o->host), s.name, o->async, o->start);
    });
}

void add_exec(CLI::App& ct, Context& ctx) {
    struct Opts {
        std::string name;
        std::vector<std::string> command;
        int timeout = 0;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = ct.add_subcommand("exec", "Run a command in a running container: hvctl ct exec NAME -- CMD [ARGS...]; "
                                          "exits with the command's exit code");
    cmd->add_option("name", o->name, "Container name")->required();
    cmd->add_option("command", o->command, "Command and arguments (after --)")->required();
    cmd->add_option("--timeout", o->timeout, "Seconds before the command is killed (default 20)");
    on_run(cmd, ctx, [&g = ctx.g, o] {
        auto r = g.client().exec_ct(o->name, o->command, o->timeout);
        if (g.json()) {
            print_json(nlohmann::json(r));
        } else {
            std::cout << r.stdout_text << std::flush;
            std::cerr << r.stderr_text << std::flush;
            if (r.timed_out) print_error(fmt::format("the command was killed after the timeout"));
        }
        return r.exit_code;
    });
}

void add_console(CLI::App& ct, Context& ctx) {
    struct Opts {
        std::string name;
        bool force = false;
        double idle = 2;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = ct.add_subcommand("console", "Attach to a running container's console (/dev/console; detach: Ctrl+])");
    cmd->add_option("name", o->name, "Container name")->required();
    cmd->add_flag("--force", o->force, "Take the console over from another session");
    cmd->add_option("--idle", o->idle,
                    "Without a terminal (stdin from a pipe or file): once the input has been sent, print the "
                    "output until the console has been quiet this many seconds (default 2)")
        ->check(CLI::Range(0.1, 3600.0));
    on_run(cmd, ctx, [&g = ctx.g, o] {
        auto up = g.client().ct_console(o->name, o->force);
        run_console(up.fd, std::move(up.pending), "container " + o->name, o->idle);
        return 0;
    });
}

void add_template(CLI::App& ct, Context& ctx) {
    auto* t = ct.add_subcommand("template", "Container templates in a pool's vztmpl content");
    t->require_subcommand(1);
    auto pool = std::make_shared<std::string>();
    auto* list = t->add_subcommand("list", "List templates (every pool unless --pool)");
    list->alias("ls");
    list->add_option("--pool", *pool, "Only this pool");
    on_run(list, ctx, [&g = ctx.g, pool] {
        auto ts = g.client().list_templates(*pool);
        if (g.json()) return print_json(nlohmann::json(ts)), 0;
        std::vector<Row> rows;
        for (const auto& x : ts) rows.push_back({x.pool, x.name, api::format_size(x.size), x.path});
        print_table(g, {"POOL", "NAME", "SIZE", "PATH"}, rows);
        return 0;
    });
    struct UpOpts {
        std::string pool = "local", file, name, sha256;
        bool replace = false;
    };
    auto u = std::make_shared<UpOpts>();
    auto* up = t->add_subcommand("upload", "Upload a local template tarball into a pool (streamed, like ISOs)");
    up->add_option("file", u->file, "Local file, e.g. ./rootfs.tar.zst")->required();
    up->add_option("--pool", u->pool, "Pool")->capture_default_str();
    up->add_option("--name", u->name, "Name in the pool (default: the file's name): NAME.tar[.gz|.xz|.zst]");
    up->add_option("--sha256", u->sha256, "Expected SHA-256 (hex); a mismatch stores nothing");
    up->add_flag("--replace", u->replace, "Overwrite a template of the same name");
    on_run(up, ctx, [&g = ctx.g, u] {
        std::string name = u->name.empty() ? std::filesystem::path(u->file).filename().string() : u->name;
        api::validate_template_name(name);
        auto info = g.client().upload_template(u->pool, name, u->file, u->sha256, u->replace);
        if (g.json()) print_json(nlohmann::json(info));
        else print_line(fmt::format("uploaded {}:vztmpl/{} ({}, sha256 {})", info.pool, info.name, api::format_size(info.size),
                                    info.sha256));
        return 0;
    });
    struct BuildOpts {
        std::string kind, pool = "local";
        bool replace = false, async = false;
    };
    auto b = std::make_shared<BuildOpts>();
    auto* build = t->add_subcommand("build", "Build a template: busybox (offline, from busybox-static) or debian-12 "
                                             "(debootstrap from containers.debian_mirror)");
    build->add_option("kind", b->kind, "busybox or debian-12")->required()->check(CLI::IsMember({"busybox", "debian-12"}));
    build->add_option("--pool", b->pool, "Pool to store it in")->capture_default_str();
    build->add_flag("--replace", b->replace, "Build again when it exists");
    build->add_flag("--async", b->async, "Do not wait: print the task and exit");
    on_run(build, ctx, [&g = ctx.g, b] {
        Client c = g.client();
        return finish_task(g, c, c.build_template(b->pool, b->kind, b->replace), b->async, [&](const api::TaskInfo& t) {
            if (g.json()) print_json(t.result);
            else print_line(fmt::format("built template {}", t.result.value("path", b->kind)));
            return 0;
        });
    });
    struct DelOpts {
        std::string pool = "local", name;
    };
    auto d = std::make_shared<DelOpts>();
    auto* del = t->add_subcommand("delete", "Delete a template file");
    del->alias("rm");
    del->add_option("name", d->name, "File name, e.g. busybox.tar.gz")->required();
    del->add_option("--pool", d->pool, "Pool")->capture_default_str();
    on_run(del, ctx, [&g = ctx.g, d] {
        g.client().delete_template(d->pool, d->name);
        if (!g.json()) print_line(fmt::format("deleted template {} from pool {}", d->name, d->pool));
        else print_json(nlohmann::json{{"pool", d->pool}, {"name", d->name}, {"deleted", true}});
        return 0;
    });
}

}  // namespace

void add_ct_commands(CLI::App& app, Context& ctx) {
    auto* ct = app.add_subcommand("ct", "Manage system containers (LXC)");
    ct->require_subcommand(1);
    add_create(*ct, ctx);
    add_guest_verbs(*ct, ctx, GuestType::ct);  // list, show, start, stop, reboot, shutdown, set, delete
    add_exec(*ct, ctx);
    add_console(*ct, ctx);
    add_template(*ct, ctx);

    // hvctl list: every guest, VMs and containers, with a TYPE column.
    auto* list = app.add_subcommand("list", "List VMs and containers");
    on_run(list, ctx, [&g = ctx.g] {
        Client c = g.client();
        auto vms = c.list_vms();
        auto cts = c.list_cts();
        if (g.json()) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& v : vms) {
                nlohmann::json j = v;
                j["type"] = "vm";
                out.push_back(std::move(j));
            }
            for (const auto& x : cts) out.push_back(nlohmann::json(x));
            print_json(out);
            return 0;
        }
        std::vector<Row> rows;
        for (const auto& v : vms)
            rows.push_back({v.spec.name, "vm", api::to_string(v.state), std::to_string(v.spec.cpus),
                            api::format_size(v.spec.memory)});
        for (const auto& x : cts)
            rows.push_back({x.spec.name, "container", api::to_string(x.state), std::to_string(x.spec.cpus),
                            api::format_size(x.spec.memory)});
        std::sort(rows.begin(), rows.end());
        print_table(g, {"NAME", "TYPE", "STATE", "CPUS", "MEMORY"}, rows);
        return 0;
    });
}

}  // namespace hv::cli
