// hvctl storage pool ... and hvctl storage volume ...: pools, volumes and their provisioning.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/ranges.h>

#include "context.hpp"
#include "iso_commands.hpp"
#include "hv/api/size.hpp"
#include "hv/api/storage.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace hv::cli {
using nlohmann::json;

namespace {

template <typename F>
void run_with(CLI::App* cmd, Context& ctx, F fn) {
    cmd->callback([&ctx, fn] { ctx.action = fn; });
}

std::string pct(std::uint64_t part, std::uint64_t whole) {
    if (whole == 0) return "-";
    return fmt::format("{:.0f}%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

std::string size_or_dash(std::uint64_t b) { return b ? api::format_size(b) : "0"; }

void print_pools(const Globals& g, const std::vector<api::PoolInfo>& pools) {
    if (g.json()) return print_json(json(pools));
    std::vector<Row> rows;
    for (const auto& p : pools)
        rows.push_back({p.spec.name, p.spec.type, p.active ? "active" : "inactive", size_or_dash(p.capacity),
                        size_or_dash(p.used), size_or_dash(p.free),
                        p.active ? fmt::format("{} ({})", size_or_dash(p.committed), pct(p.committed, p.capacity)) : "-",
                        std::to_string(p.volumes), p.spec.path});
    print_table(g, {"NAME", "TYPE", "STATE", "CAPACITY", "USED", "FREE", "COMMITTED", "VOLUMES", "PATH"}, rows);
}

void print_pool(const Globals& g, const api::PoolInfo& p) {
    if (g.json()) return print_json(json(p));
    std::vector<std::pair<std::string, std::string>> kv{
        {"name", p.spec.name},
        {"type", p.spec.type + (p.builtin ? " (built in)" : "")},
        {"path", p.spec.path},
        {"state", p.active ? "active" : "inactive: " + p.error},
        {"content", fmt::format("{}", fmt::join(p.spec.content, ", "))},
        {"capacity", size_or_dash(p.capacity)},
        {"used", fmt::format("{} ({})", size_or_dash(p.used), pct(p.used, p.capacity))},
        {"free", size_or_dash(p.free)},
        {"committed", fmt::format("{} ({} of capacity{})", size_or_dash(p.committed), pct(p.committed, p.capacity),
                                  p.committed > p.capacity && p.capacity ? ", OVER-COMMITTED" : "")},
        {"allocated", size_or_dash(p.allocated)},
        {"volumes", std::to_string(p.volumes)},
        {"formats", fmt::format("{}", fmt::join(p.caps.formats, ", "))},
        {"provisioning", fmt::format("{}", fmt::join(p.caps.provision, ", "))},
        {"clones", p.caps.clones ? "reflink (instant)" : "full copy"},
        {"snapshots", p.caps.snapshots ? "yes" : "no"},
        {"shared", p.caps.shared ? "yes" : "no"},
    };
    if (p.spec.type == "rbd") {
        kv.insert(kv.begin() + 3, {"ceph", fmt::format("pool {} at {}, user client.{}, keyring {}", p.spec.rbd_pool,
                                                       fmt::join(p.spec.monitors, ","), p.spec.user, p.spec.keyring)});
    }
    if (p.warnings.empty()) kv.emplace_back("warnings", "-");
    for (std::size_t i = 0; i < p.warnings.size(); ++i) kv.emplace_back(i ? "" : "warnings", p.warnings[i]);
    std::cout << render_kv(kv) << std::flush;
}

void print_volumes(const Globals& g, const std::vector<api::VolumeInfo>& vols) {
    if (g.json()) return print_json(json(vols));
    std::vector<Row> rows;
    for (const auto& v : vols)
        rows.push_back({v.name, v.format, api::to_string(v.provision), api::format_size(v.capacity),
                        size_or_dash(v.allocation), v.used_by.empty() ? "-" : fmt::format("{}", fmt::join(v.used_by, ","))});
    print_table(g, {"NAME", "FORMAT", "PROVISION", "CAPACITY", "ALLOCATED", "USED BY"}, rows);
}

void print_volume(const Globals& g, const api::VolumeInfo& v) {
    if (g.json()) return print_json(json(v));
    std::cout << render_kv({
                     {"name", v.name},
                     {"pool", v.pool},
                     {"format", v.format},
                     {"provision", api::to_string(v.provision)},
                     {"capacity", api::format_size(v.capacity)},
                     {"allocated", fmt::format("{} ({})", size_or_dash(v.allocation), pct(v.allocation, v.capacity))},
                     {"path", v.path},
                     {"used by", v.used_by.empty() ? "-" : fmt::format("{}", fmt::join(v.used_by, ", "))},
                 })
              << std::flush;
}

// Volume result of a finished task: {"volume": {...}, "warnings": [...]} or a VolumeInfo.
int print_volume_result(const Globals& g, const api::TaskInfo& t, const char* verb) {
    json v = t.result.contains("volume") ? t.result.at("volume") : t.result;
    if (t.result.contains("warnings"))
        for (const auto& w : t.result.at("warnings")) std::cerr << "warning: " << w.get<std::string>() << "\n";
    if (g.json()) {
        print_json(t.result);
        return 0;
    }
    auto info = api::volume_info_from_json(v);
    print_line(fmt::format("{} volume {}:{} ({} {}, {})", verb, info.pool, info.name, api::format_size(info.capacity),
                           info.format, api::to_string(info.provision)));
    return 0;
}

void add_pool_commands(CLI::App& storage, Context& ctx) {
    auto* pool = storage.add_subcommand("pool", "Storage pools (where volumes, ISOs and templates live)");
    pool->require_subcommand(1);

    auto* list = pool->add_subcommand("list", "List pools with capacity, used, free and committed");
    list->alias("ls");
    run_with(list, ctx, [&g = ctx.g] {
        print_pools(g, g.client().list_pools());
        return 0;
    });

    auto name = std::make_shared<std::string>();
    auto* show = pool->add_subcommand("show", "Show a pool, its usage and what its backend can do");
    show->add_option("name", *name, "Pool name")->required();
    run_with(show, ctx, [&g = ctx.g, name] {
        print_pool(g, g.client().get_pool(*name));
        return 0;
    });

    auto spec = std::make_shared<api::PoolSpec>();
    auto* add = pool->add_subcommand("add", "Add a pool: an existing directory (dir, btrfs; its files are kept on "
                                            "remove) or a pool of a Ceph cluster (rbd)");
    add->add_option("name", spec->name, "Pool name")->required();
    add->add_option("--type", spec->type, "Backend: dir, btrfs or rbd")->capture_default_str();
    add->add_option("--path", spec->path, "dir, btrfs: absolute path of an existing directory");
    add->add_option("--content", spec->content, "Content types: images, iso, vztmpl (repeatable; default all)")
        ->allow_extra_args(false);
    add->add_option("--monitors", spec->monitors, "rbd: the Ceph monitors, HOST[:PORT] (comma-separated or repeated)")
        ->delimiter(',')
        ->allow_extra_args(false);
    add->add_option("--pool", spec->rbd_pool, "rbd: the Ceph pool that holds the images (default rbd)");
    add->add_option("--user", spec->user, "rbd: the cephx user, without client. (e.g. hv)");
    add->add_option("--keyring", spec->keyring, "rbd: absolute path of the keyring with that user's key");
    add->add_flag("--shared", spec->shared,
                  "dir: the directory is on storage every member sees at the same path (NFS, CephFS): VMs on it "
                  "migrate without a disk copy");
    run_with(add, ctx, [&g = ctx.g, spec] {
        if (spec->type == "rbd" && spec->rbd_pool.empty()) spec->rbd_pool = "rbd";
        auto p = g.client().add_pool(*spec);
        if (g.json()) print_json(json(p));
        else if (p.spec.type == "rbd")
            print_line(fmt::format("added pool {} (rbd: Ceph pool {} at {}, user {})", p.spec.name, p.spec.rbd_pool,
                                   fmt::join(p.spec.monitors, ","), p.spec.user));
        else print_line(fmt::format("added pool {} ({}, {}{})", p.spec.name, p.spec.type, p.spec.path, p.spec.shared ? ", shared" : ""));
        return 0;
    });

    auto rname = std::make_shared<std::string>();
    auto* rm = pool->add_subcommand("remove", "Forget a pool (refused while a VM uses one of its volumes); files stay");
    rm->add_option("name", *rname, "Pool name")->required();
    run_with(rm, ctx, [&g = ctx.g, rname] {
        g.client().remove_pool(*rname);
        if (g.json()) print_json(json{{"name", *rname}, {"removed", true}});
        else print_line(fmt::format("removed pool {} (its files were not touched)", *rname));
        return 0;
    });

    auto sname = std::make_shared<std::string>();
    auto* scan = pool->add_subcommand("scan", "Re-read a pool: list volumes placed by hand, drop leftovers of crashes");
    scan->add_option("name", *sname, "Pool name")->required();
    run_with(scan, ctx, [&g = ctx.g, sname] {
        print_pool(g, g.client().scan_pool(*sname));
        return 0;
    });
}

void add_volume_commands(CLI::App& storage, Context& ctx) {
    auto* vol = storage.add_subcommand("volume", "Volumes (VM disks) in a pool");
    vol->alias("vol");
    vol->require_subcommand(1);

    auto lpool = std::make_shared<std::string>();
    auto* list = vol->add_subcommand("list", "List a pool's volumes");
    list->alias("ls");
    list->add_option("pool", *lpool, "Pool name")->required();
    run_with(list, ctx, [&g = ctx.g, lpool] {
        print_volumes(g, g.client().list_volumes(*lpool));
        return 0;
    });

    struct Ref {
        std::string pool, name;
    };
    auto sref = std::make_shared<Ref>();
    auto* show = vol->add_subcommand("show", "Show a volume: mode, capacity, real allocation, users");
    show->add_option("pool", sref->pool, "Pool name")->required();
    show->add_option("name", sref->name, "Volume name")->required();
    run_with(show, ctx, [&g = ctx.g, sref] {
        print_volume(g, g.client().get_volume(sref->pool, sref->name));
        return 0;
    });

    struct CreateOpts {
        std::string pool, name, size, format, provision = "thin";
        bool async = false;
    };
    auto co = std::make_shared<CreateOpts>();
    auto* create = vol->add_subcommand(
        "create", "Create a volume: thin (sparse), lazy-zeroed (space reserved), eager-zeroed (zeros written; a task)");
    create->add_option("pool", co->pool, "Pool name")->required();
    create->add_option("name", co->name, "Volume name, e.g. vm-web01-disk1")->required();
    create->add_option("--size", co->size, "Capacity, e.g. 20G")->required();
    create->add_option("--provision", co->provision, "thin, lazy-zeroed or eager-zeroed")
        ->check(CLI::IsMember({"thin", "lazy-zeroed", "eager-zeroed"}))
        ->capture_default_str();
    create->add_option("--format", co->format, "qcow2 or raw (default: the pool's: qcow2 on dir and btrfs, raw on rbd)")->check(CLI::IsMember({"qcow2", "raw"}));
    create->add_flag("--async", co->async, "Do not wait: print the task and exit");
    run_with(create, ctx, [&g = ctx.g, co] {
        api::VolumeSpec s;
        s.pool = co->pool;
        s.name = co->name;
        s.size = api::parse_size(co->size, "--size");
        s.format = co->format;
        s.provision = api::provision_from_string(co->provision);
        api::validate(s);
        Client c = g.client();
        return finish_task(g, c, c.create_volume(s), co->async,
                           [&](const api::TaskInfo& t) { return print_volume_result(g, t, "created"); });
    });

    struct ResizeOpts {
        std::string pool, name, size;
        bool async = false;
    };
    auto ro = std::make_shared<ResizeOpts>();
    auto* resize = vol->add_subcommand("resize", "Grow a volume (its provisioning mode applies to the new space)");
    resize->add_option("pool", ro->pool, "Pool name")->required();
    resize->add_option("name", ro->name, "Volume name")->required();
    resize->add_option("--size", ro->size, "New capacity, e.g. 40G (grow only)")->required();
    resize->add_flag("--async", ro->async, "Do not wait: print the task and exit");
    run_with(resize, ctx, [&g = ctx.g, ro] {
        Client c = g.client();
        auto size = api::parse_size(ro->size, "--size");
        return finish_task(g, c, c.resize_volume(ro->pool, ro->name, size), ro->async,
                           [&](const api::TaskInfo& t) { return print_volume_result(g, t, "resized"); });
    });

    struct CloneOpts {
        std::string pool, name, target;
        bool async = false;
    };
    auto clo = std::make_shared<CloneOpts>();
    auto* clone = vol->add_subcommand("clone", "Copy a volume (reflink where the pool can), keeping format and mode");
    clone->add_option("pool", clo->pool, "Pool name")->required();
    clone->add_option("name", clo->name, "Source volume")->required();
    clone->add_option("target", clo->target, "New volume name")->required();
    clone->add_flag("--async", clo->async, "Do not wait: print the task and exit");
    run_with(clone, ctx, [&g = ctx.g, clo] {
        Client c = g.client();
        return finish_task(g, c, c.clone_volume(clo->pool, clo->name, clo->target), clo->async,
                           [&](const api::TaskInfo& t) { return print_volume_result(g, t, "cloned"); });
    });

    struct DeleteOpts {
        std::string pool, name;
        bool force = false;
    };
    auto dopts = std::make_shared<DeleteOpts>();
    auto* del = vol->add_subcommand("delete", "Delete a volume (refused while attached unless --force detaches it)");
    del->alias("rm");
    del->add_option("pool", dopts->pool, "Pool name")->required();
    del->add_option("name", dopts->name, "Volume name")->required();
    del->add_flag("--force", dopts->force, "Detach the volume from the VMs using it first");
    run_with(del, ctx, [&g = ctx.g, dopts] {
        auto detached = g.client().delete_volume(dopts->pool, dopts->name, dopts->force);
        if (g.json()) {
            print_json(json{{"pool", dopts->pool}, {"name", dopts->name}, {"deleted", true}, {"detached_from", detached}});
        } else {
            for (const auto& vm : detached) print_line(fmt::format("detached from vm {}", vm));
            print_line(fmt::format("deleted volume {}:{}", dopts->pool, dopts->name));
        }
        return 0;
    });
}

}  // namespace

void add_storage_commands(CLI::App& app, Context& ctx) {
    auto* storage = app.add_subcommand("storage", "Storage pools, volumes and ISO images");
    storage->require_subcommand(1);
    add_pool_commands(*storage, ctx);
    add_volume_commands(*storage, ctx);
    add_iso_commands(*storage, ctx);
}

}  // namespace hv::cli
