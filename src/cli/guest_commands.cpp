// The verbs VMs and containers share, built from one table per kind (kVm, kCt below).
#include "guest_commands.hpp"

#include <memory>
#include <vector>

#include "hv/api/ct.hpp"
#include "hv/api/size.hpp"
#include "hv/api/vm.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace hv::cli {
namespace {

// A power action: POST /v1/vms|cts/NAME/<name>, then "<done> vm NAME (state running)".
struct Action {
    const char* name;
    const char* done;
    const char* help;
};

// One kind of guest as the shared verbs see it. Info is api::VmInfo or api::CtInfo; both are
// changed with an api::VmPatch.
template <typename Info>
struct Kind {
    std::string noun;       // in messages: "deleted vm web01", "deleted container app01"
    std::string name_help;  // the NAME argument of every verb
    struct Help {
        std::string list, show, shutdown, shutdown_timeout, shutdown_force, set, set_cpus, set_memory, set_cpu, del;
        std::string del_purge;  // empty: delete has no --purge
    } help;
    std::vector<Action> actions;  // in the order they are listed
    // shutdown --force had to stop it: "<forced> vm NAME (<not_down> within 60s)".
    std::string forced, not_down;
    // After "deleted vm NAME": what else went without and with --purge.
    std::string deleted_also, purged_also;

    std::vector<Info> (Client::*list)();
    Info (Client::*get)(const std::string& name);
    Info (Client::*act)(const std::string& name, const std::string& action);
    api::TaskInfo (Client::*shutdown)(const std::string& name, int timeout_s, bool force);
    Info (Client::*update)(const std::string& name, const api::VmPatch& p);
    api::TaskInfo (*remove)(Client& c, const std::string& name, bool purge);
    Info (*from_json)(const nlohmann::json& j);
    void (*print_list)(const Globals& g, const std::vector<Info>& guests);
    void (*print)(const Globals& g, const Info& guest);
};

const Kind<api::VmInfo> kVm{
    .noun = "vm",
    .name_help = "VM name",
    .help = {.list = "List VMs",
             .show = "Show a VM's configuration and state",
             .shutdown = "Shut a VM down through ACPI (the guest powers itself off)",
             .shutdown_timeout = "Seconds to wait for the guest",
             .shutdown_force = "Power off when the guest has not shut down within the timeout",
             .set = "Change a VM's settings (cpus, memory and cpu only while it is stopped)",
             .set_cpus = "Virtual CPUs (1-512)",
             .set_memory = "Memory, e.g. 2G",
             .set_cpu = "CPU while stopped: host | host-model | cluster (the members' baseline) | default | "
                        "MODEL[,+feature,-feature...]",
             .del = "Delete a stopped VM",
             .del_purge = "Also delete the disk images hvd created for it"},
    .actions = {{"start", "started", "Start a stopped VM"},
                {"stop", "stopped", "Power a VM off now (no guest shutdown; see 'shutdown')"},
                {"reboot", "rebooted", "Ask the guest to reboot"},
                {"reset", "reset", "Hard-reset a running VM"},
                {"suspend", "suspended", "Pause a VM's virtual CPUs"},
                {"resume", "resumed", "Continue a suspended VM"}},
    .forced = "powered off",
    .not_down = "the guest did not shut down",
    .deleted_also = "",
    .purged_also = " and its disk images",
    .list = &Client::list_vms,
    .get = &Client::get_vm,
    .act = &Client::vm_action,
    .shutdown = &Client::shutdown_vm,
    .update = &Client::update_vm,
    .remove = [](Client& c, const std::string& name, bool purge) { return c.delete_vm(name, purge); },
    .from_json = &api::vm_info_from_json,
    .print_list = &print_vm_list,
    .print = &print_vm,
};

const Kind<api::CtInfo> kCt{
    .noun = "container",
    .name_help = "Container name",
    .help = {.list = "List containers",
             .show = "Show a container's configuration, state and live limits",
             .shutdown = "Ask the container's init to stop (initctl, else SIGTERM)",
             .shutdown_timeout = "Seconds to wait",
             .shutdown_force = "Stop it when init has not exited within the timeout",
             .set = "Change a container's limits (applied at once while running) or labels",
             .set_cpus = "CPU limit in CPUs",
             .set_memory = "Memory limit, e.g. 1G",
             .del = "Delete a stopped container and its root filesystem",
             .del_purge = ""},
    .actions = {{"start", "started", "Start a stopped container"},
                {"stop", "stopped", "Stop a container now (kills its processes; see 'shutdown')"},
                {"reboot", "rebooted", "Ask the container's init to reboot"}},
    .forced = "stopped",
    .not_down = "init did not exit",
    .deleted_also = " and its root filesystem",
    .purged_also = "",
    .list = &Client::list_cts,
    .get = &Client::get_ct,
    .act = &Client::ct_action,
    .shutdown = &Client::shutdown_ct,
    .update = &Client::update_ct,
    .remove = [](Client& c, const std::string& name, bool) { return c.delete_ct(name); },
    .from_json = &api::ct_info_from_json,
    .print_list = &print_ct_list,
    .print = &print_ct,
};

template <typename Info>
void add_list_show(CLI::App& parent, Context& ctx, const Kind<Info>& k) {
    auto* list = parent.add_subcommand("list", k.help.list);
    list->alias("ls");
    on_run(list, ctx, [&g = ctx.g, &k] {
        k.print_list(g, (g.client().*k.list)());
        return 0;
    });
    auto name = std::make_shared<std::string>();
    auto* show = parent.add_subcommand("show", k.help.show);
    show->add_option("name", *name, k.name_help)->required();
    on_run(show, ctx, [&g = ctx.g, &k, name] {
        k.print(g, (g.client().*k.get)(*name));
        return 0;
    });
}

template <typename Info>
void add_actions(CLI::App& parent, Context& ctx, const Kind<Info>& k) {
    for (const auto& a : k.actions) {
        auto name = std::make_shared<std::string>();
        auto* cmd = parent.add_subcommand(a.name, a.help);
        cmd->add_option("name", *name, k.name_help)->required();
        on_run(cmd, ctx, [&g = ctx.g, &k, name, a] {
            Info info = (g.client().*k.act)(*name, a.name);
            if (g.json()) print_json(nlohmann::json(info));
            else print_line(fmt::format("{} {} {} (state {})", a.done, k.noun, *name, api::to_string(info.state)));
            return 0;
        });
    }
}

template <typename Info>
void add_shutdown(CLI::App& parent, Context& ctx, const Kind<Info>& k) {
    struct Opts {
        std::string name;
        int timeout = 60;
        bool force = false, async = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = parent.add_subcommand("shutdown", k.help.shutdown);
    cmd->add_option("name", o->name, k.name_help)->required();
    cmd->add_option("--timeout", o->timeout, k.help.shutdown_timeout)->check(CLI::Range(0, 86400))->capture_default_str();
    cmd->add_flag("--force", o->force, k.help.shutdown_force);
    cmd->add_flag("--async", o->async, "Do not wait: print the task and exit");
    on_run(cmd, ctx, [&g = ctx.g, &k, o] {
        Client c = g.client();
        return finish_task(g, c, (c.*k.shutdown)(o->name, o->timeout, o->force), o->async, [&](const api::TaskInfo& t) {
            if (g.json()) print_json(nlohmann::json(t));
            else if (t.result.is_object() && t.result.value("forced", false))
                print_line(fmt::format("{} {} {} ({} within {}s)", k.forced, k.noun, o->name, k.not_down, o->timeout));
            else print_line(fmt::format("shut down {} {}", k.noun, o->name));
            return 0;
        });
    });
}

template <typename Info>
void add_set(CLI::App& parent, Context& ctx, const Kind<Info>& k) {
    struct Opts {
        std::string name, memory, description, cpu;
        int cpus = 0;
        std::vector<std::string> tags;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = parent.add_subcommand("set", k.help.set);
    cmd->add_option("name", o->name, k.name_help)->required();
    auto* cpus = cmd->add_option("--cpus", o->cpus, k.help.set_cpus);
    auto* memory = cmd->add_option("--memory", o->memory, k.help.set_memory);
    CLI::Option* cpu = k.help.set_cpu.empty() ? nullptr : cmd->add_option("--cpu", o->cpu, k.help.set_cpu);
    auto* desc = cmd->add_option("--description", o->description, "Free text");
    auto* tags = cmd->add_option("--tag", o->tags, "Tag (repeatable; replaces all tags)")->allow_extra_args(false);
    on_run(cmd, ctx, [&g = ctx.g, &k, o, cpus, memory, cpu, desc, tags] {
        api::VmPatch p;
        if (cpus->count()) p.cpus = o->cpus;
        if (cpu && cpu->count()) p.cpu = api::parse_cpu_arg(o->cpu);
        if (memory->count()) p.memory = api::parse_size(o->memory, "memory");
        if (desc->count()) p.description = o->description;
        if (tags->count()) p.tags = o->tags;
        api::validate(p);
        Info info = (g.client().*k.update)(o->name, p);
        if (g.json()) print_json(nlohmann::json(info));
        else print_line(fmt::format("updated {} {}", k.noun, o->name));
        return 0;
    });
}

template <typename Info>
void add_delete(CLI::App& parent, Context& ctx, const Kind<Info>& k) {
    struct Opts {
        std::string name;
        bool purge = false, async = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = parent.add_subcommand("delete", k.help.del);
    cmd->alias("rm");
    cmd->add_option("name", o->name, k.name_help)->required();
    if (!k.help.del_purge.empty()) cmd->add_flag("--purge", o->purge, k.help.del_purge);
    cmd->add_flag("--async", o->async, "Do not wait: print the task and exit");
    on_run(cmd, ctx, [&g = ctx.g, &k, o] {
        Client c = g.client();
        return finish_task(g, c, k.remove(c, o->name, o->purge), o->async, [&](const api::TaskInfo& t) {
            if (g.json()) print_json(nlohmann::json(t));
            else print_line(fmt::format("deleted {} {}{}", k.noun, o->name, o->purge ? k.purged_also : k.deleted_also));
            return 0;
        });
    });
}

// k is kVm or kCt: the actions refer to it after parsing.
template <typename Info>
void add_verbs(CLI::App& parent, Context& ctx, const Kind<Info>& k) {
    add_list_show(parent, ctx, k);
    add_actions(parent, ctx, k);
    add_shutdown(parent, ctx, k);
    add_set(parent, ctx, k);
    add_delete(parent, ctx, k);
}

template <typename Info>
int create_tail(const Globals& g, Client& c, const Kind<Info>& k, const api::TaskInfo& task, const std::string& name,
                bool async, bool start) {
    return finish_task(g, c, task, async, [&](const api::TaskInfo& t) {
        Info info;
        try {
            info = k.from_json(t.result);
        } catch (const Error&) {
            info = (c.*k.get)(name);  // no usable result in the task: ask for the guest
        }
        if (!g.json()) print_line(fmt::format("created {} {} ({})", k.noun, name, info.uuid));
        if (start) {
            try {
                info = (c.*k.act)(name, "start");
            } catch (const DaemonUnreachable&) {
                throw;
            } catch (const Error& e) {
                throw Error(e.code(), fmt::format("{} {} was created but did not start: {}", k.noun, name, e.what()));
            }
            if (!g.json()) print_line(fmt::format("started {} {}", k.noun, name));
        }
        if (g.json()) print_json(nlohmann::json(info));
        return 0;
    });
}

}  // namespace

void add_guest_verbs(CLI::App& parent, Context& ctx, GuestType type) {
    if (type == GuestType::vm) add_verbs(parent, ctx, kVm);
    else add_verbs(parent, ctx, kCt);
}

int finish_create(const Globals& g, Client& c, GuestType type, const api::TaskInfo& task, const std::string& name,
                  bool async, bool start) {
    if (type == GuestType::vm) return create_tail(g, c, kVm, task, name, async, start);
    return create_tail(g, c, kCt, task, name, async, start);
}

}  // namespace hv::cli
