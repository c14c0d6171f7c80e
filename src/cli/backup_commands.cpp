// hvctl backup store add|list|remove, backup create|list|restore|verify|prune (docs/backup.md).
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "context.hpp"
#include "format.hpp"
#include "guest_commands.hpp"
#include "hv/api/backup.hpp"
#include "hv/api/size.hpp"
#include "hv/api/task.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace hv::cli {
using nlohmann::json;

namespace {

std::string size_text(const json& j, const char* key) { return api::format_size(j.value(key, std::uint64_t{0})); }

std::string verified_text(const json& b) {
    const auto& v = b.contains("verified") ? b["verified"] : json();
    if (!v.is_object()) return "-";
    return fmt::format("{} {}", v.value("ok", false) ? "ok" : "FAILED", v.value("time", ""));
}

// "VM/TIME" -> {VM, TIME}; TIME may be empty when `time_optional`.
std::pair<std::string, std::string> split_ref(const std::string& ref, bool time_optional) {
    auto slash = ref.find('/');
    if (slash == std::string::npos) {
        if (time_optional) return {ref, ""};
        fail(Errc::invalid_input, "'{}' is no backup: give VM/TIME (hvctl backup list)", ref);
    }
    return {ref.substr(0, slash), ref.substr(slash + 1)};
}

}  // namespace

void add_backup_commands(CLI::App& app, Context& ctx) {
    auto* backup = app.add_subcommand("backup", "Backups of VMs into deduplicated chunk stores");
    backup->require_subcommand(1);

    // --- stores
    auto* store = backup->add_subcommand("store", "Backup stores (directories of chunks and manifests)");
    store->require_subcommand(1);
    auto sa = std::make_shared<api::BackupStoreSpec>();
    auto* add = store->add_subcommand("add", "Add a backup store on an existing directory");
    add->add_option("name", sa->name, "Name of the store")->required();
    add->add_option("--path", sa->path, "The directory (absolute; it must exist)")->required();
    on_run(add, ctx, [&g = ctx.g, sa] {
        auto r = g.client().request("POST", "/v1/backup-stores", api::to_json(*sa));
        if (g.json()) return print_json(r.body), 0;
        print_line(fmt::format("backup store {} added ({})", r.body.value("name", ""), r.body.value("path", "")));
        return 0;
    });
    on_run(store->add_subcommand("list", "List the backup stores"), ctx, [&g = ctx.g] {
        auto r = g.client().request("GET", "/v1/backup-stores");
        if (g.json()) return print_json(r.body), 0;
        std::vector<Row> rows;
        for (const auto& s : r.body) rows.push_back({s.value("name", ""), s.value("path", "")});
        print_table(g, {"NAME", "PATH"}, rows);
        return 0;
    });
    auto rm_name = std::make_shared<std::string>();
    auto* rm = store->add_subcommand("remove", "Forget a backup store (its directory and backups stay)");
    rm->add_option("name", *rm_name, "Name of the store")->required();
    on_run(rm, ctx, [&g = ctx.g, rm_name] {
        auto r = g.client().request("DELETE", "/v1/backup-stores/" + escape_segment(*rm_name));
        if (g.json()) return print_json(r.body), 0;
        print_line(fmt::format("backup store {} removed", *rm_name));
        return 0;
    });

    // --- create
    struct CreateArgs {
        std::string vm;
        api::BackupCreate rq;
        bool async = false;
    };
    auto ca = std::make_shared<CreateArgs>();
    auto* create = backup->add_subcommand("create", "Back up a VM (running: libvirt's backup job; stopped: its disks)");
    create->add_option("vm", ca->vm, "The VM")->required();
    create->add_option("--store", ca->rq.store, "The backup store")->required();
    create->add_option("--mode", ca->rq.mode, "snapshot (as it is, running or not) or stop (shut down, back up, start)")
        ->check(CLI::IsMember({"snapshot", "stop"}));
    create->add_option("--shutdown-timeout", ca->rq.shutdown_timeout,
                       "--mode stop: seconds the guest has to shut down, else the backup fails (default 60)");
    create->add_flag("--async", ca->async, "Do not wait: print the task and exit");
    on_run(create, ctx, [&g = ctx.g, ca] {
        Client c = g.client();
        auto path = "/v1/vms/" + escape_segment(ca->vm) + "/backup";
        auto t = task_from_body(c.request("POST", path, api::to_json(ca->rq)).body);
        return finish_task(g, c, t, ca->async, [&](const api::TaskInfo& done) {
            if (g.json()) return print_json(done.result), 0;
            const auto& b = done.result;
            print_line(fmt::format("backup {}/{} in store {}: {}, new data {} ({} ms)", b.value("guest", ""),
                                   b.value("time", ""), b.value("store", ""), size_text(b, "size"),
                                   size_text(b, "new_data"), b.value("duration_ms", 0)));
            return 0;
        });
    });

    // --- list
    struct ListArgs {
        std::string store, vm;
    };
    auto la = std::make_shared<ListArgs>();
    auto* list = backup->add_subcommand("list", "List backups (of every store, or one; of every guest, or one)");
    list->add_option("vm", la->vm, "Only this guest's backups");
    list->add_option("--store", la->store, "Only this store");
    on_run(list, ctx, [&g = ctx.g, la] {
        std::string q;
        if (!la->store.empty()) q += "store=" + escape_segment(la->store);
        if (!la->vm.empty()) q += std::string(q.empty() ? "" : "&") + "guest=" + escape_segment(la->vm);
        auto r = g.client().request("GET", "/v1/backups" + (q.empty() ? "" : "?" + q));
        if (g.json()) return print_json(r.body), 0;
        std::vector<Row> rows;
        for (const auto& b : r.body)
            rows.push_back({b.value("store", ""), b.value("guest", "") + "/" + b.value("time", ""), b.value("mode", ""),
                            size_text(b, "size"), size_text(b, "new_data"), verified_text(b)});
        print_table(g, {"STORE", "BACKUP", "MODE", "SIZE", "NEW DATA", "VERIFIED"}, rows);
        return 0;
    });

    // --- restore
    struct RestoreArgs {
        std::string store, ref;
        api::BackupRestore rq;
        bool async = false;
    };
    auto ra = std::make_shared<RestoreArgs>();
    auto* restore = backup->add_subcommand("restore", "Restore a backup as a new VM (new volumes; an existing name is refused)");
    restore->add_option("store", ra->store, "The backup store")->required();
    restore->add_option("backup", ra->ref, "VM/TIME, as backup list shows it")->required();
    restore->add_option("--as", ra->rq.as, "Name of the new VM (default: the backed-up VM's)");
    restore->add_option("--pool", ra->rq.pool, "Pool of the new volumes (default: each disk's own)");
    restore->add_flag("--start", ra->rq.start, "Start the VM once restored");
    restore->add_flag("--async", ra->async, "Do not wait: print the task and exit");
    on_run(restore, ctx, [&g = ctx.g, ra] {
        auto [vm, time] = split_ref(ra->ref, false);
        Client c = g.client();
        auto t = task_from_body(c.request("POST",
                                   "/v1/backup-stores/" + escape_segment(ra->store) + "/backups/" + escape_segment(vm) +
                                       "/" + escape_segment(time) + "/restore",
                                   api::to_json(ra->rq))
                                  .body);
        return finish_task(g, c, t, ra->async, [&](const api::TaskInfo& done) {
            if (g.json()) return print_json(done.result), 0;
            print_line(fmt::format("restored {} as vm {}", ra->ref, done.result.value("name", "")));
            return 0;
        });
    });

    // --- verify
    struct VerifyArgs {
        std::string store, ref;
        bool async = false;
    };
    auto va = std::make_shared<VerifyArgs>();
    auto* verify = backup->add_subcommand("verify", "Read every chunk of the backups and check its hash");
    verify->add_option("store", va->store, "The backup store")->required();
    verify->add_option("backup", va->ref, "VM (its backups) or VM/TIME (one); default: every backup");
    verify->add_flag("--async", va->async, "Do not wait: print the task and exit");
    on_run(verify, ctx, [&g = ctx.g, va] {
        json body = json::object();
        if (!va->ref.empty()) {
            auto [vm, time] = split_ref(va->ref, true);
            body["guest"] = vm;
            if (!time.empty()) body["time"] = time;
        }
        Client c = g.client();
        auto path = "/v1/backup-stores/" + escape_segment(va->store) + "/verify";
        auto t = task_from_body(c.request("POST", path, body).body);
        return finish_task(g, c, t, va->async, [&](const api::TaskInfo& done) {
            if (g.json()) return print_json(done.result), 0;
            for (const auto& b : done.result.value("backups", json::array()))
                print_line(fmt::format("{}/{}: {}", b.value("guest", ""), b.value("time", ""), b.value("ok", false) ? "ok" : "FAILED"));
            print_line(fmt::format("{} chunk(s) checked", done.result.value("chunks_checked", 0)));
            return 0;
        });
    });

    // --- prune
    struct PruneArgs {
        std::string store;
        api::BackupPrune rq;
        bool async = false;
    };
    auto pa = std::make_shared<PruneArgs>();
    auto* prune = backup->add_subcommand("prune", "Remove a VM's backups the keep rules do not keep, then unused chunks");
    prune->add_option("store", pa->store, "The backup store")->required();
    prune->add_option("vm", pa->rq.guest, "The guest whose backups are pruned")->required();
    prune->add_option("--keep-last", pa->rq.keep_last, "Keep the N newest");
    prune->add_option("--keep-daily", pa->rq.keep_daily, "Keep the newest of each of the last N days with backups");
    prune->add_option("--keep-weekly", pa->rq.keep_weekly, "... of N ISO weeks");
    prune->add_option("--keep-monthly", pa->rq.keep_monthly, "... of N months");
    prune->add_flag("--dry-run", pa->rq.dry_run, "Only show what would be kept and removed");
    prune->add_flag("--async", pa->async, "Do not wait: print the task and exit");
    on_run(prune, ctx, [&g = ctx.g, pa] {
        Client c = g.client();
        auto path = "/v1/backup-stores/" + escape_segment(pa->store) + "/prune";
        auto t = task_from_body(c.request("POST", path, api::to_json(pa->rq)).body);
        return finish_task(g, c, t, pa->async, [&](const api::TaskInfo& done) {
            if (g.json()) return print_json(done.result), 0;
            const auto& r = done.result;
            for (const auto& k : r.value("kept", json::array())) print_line("keep   " + k.get<std::string>());
            for (const auto& k : r.value("removed", json::array()))
                print_line((pa->rq.dry_run ? "would remove " : "removed ") + k.get<std::string>());
            if (r.contains("gc") && r["gc"].contains("chunks_removed"))
                print_line(fmt::format("garbage collection: {} chunk(s), {} freed", r["gc"].value("chunks_removed", 0),
                                       api::format_size(r["gc"].value("bytes_freed", std::uint64_t{0}))));
            return 0;
        });
    });
}

}  // namespace hv::cli
