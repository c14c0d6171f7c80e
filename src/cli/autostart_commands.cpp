// hvctl vm autostart NAME ..., hvctl ct autostart NAME ... and
// hvctl autostart host|plan|run|status|stop-all (VMs and containers alike).
#include <chrono>
#include <memory>
#include <thread>

#include <CLI/CLI.hpp>

#include "context.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace hv::cli {
namespace {
using nlohmann::json;

template <typename F>
void on_run(CLI::App* cmd, Context& ctx, F fn) {
    cmd->callback([&ctx, fn] { ctx.action = fn; });
}

std::string secs(const json& v) {
    if (!v.is_number() || v.get<double>() < 0) return "-";
    return fmt::format("+{:.1f}s", v.get<double>());
}

void print_settings(const Globals& g, const std::string& kind, const std::string& name, const json& s) {
    if (g.json()) return print_json(s);
    std::vector<Row> rows{{kind, name},
                          {"enabled", s.value("enabled", false) ? "yes" : "no"},
                          {"order", s.value("order", 0) == 0 ? "unordered" : std::to_string(s.value("order", 0))},
                          {"up", fmt::format("{}s", s.value("up", 0))},
                          {"down", fmt::format("{}s", s.value("down", 0))},
                          {"wait_for", s.value("wait_for", "")},
                          {"wait_timeout", fmt::format("{}s", s.value("wait_timeout", 0))},
                          {"after", fmt::format("{}", fmt::join(s.value("after", std::vector<std::string>{}), ","))}};
    print_table(g, {"KEY", "VALUE"}, rows);
}

std::vector<Row> run_rows(const json& r) {
    std::vector<Row> rows;
    auto groups = r.value("groups", std::vector<std::string>{});
    for (const auto& v : r.value("vms", json::array())) {
        auto gi = v.value("group", 0);
        rows.push_back({gi >= 0 && static_cast<std::size_t>(gi) < groups.size() ? groups[gi] : "?",
                        v.value("name", ""), v.value("type", "vm"), v.value("state", ""), std::to_string(v.value("attempts", 0)),
                        secs(v["started_at"]), secs(v["ready_at"]),
                        v.value("waiting_on", "").empty() ? v.value("error", "") : "waiting: " + v.value("waiting_on", "")});
    }
    return rows;
}

// Warnings of a report (e.g. containers skipped while the LXC connection is down), one line each.
void print_warnings(const Globals& g, const json& r) {
    if (g.json()) return;
    for (const auto& w : r.value("warnings", std::vector<std::string>{})) print_line("warning: " + w);
}

// `hvctl vm autostart` and `hvctl ct autostart`: the same settings at /v1/vms/... or /v1/cts/...
// (containers have no guest-agent gate: hvd refuses it).
void add_guest_autostart(CLI::App& parent, Context& ctx, const std::string& kind, const std::string& collection) {
    struct Opts {
        std::string name, wait_for;
        int order = 0, up = 0, down = 0, wait_timeout = 0;
        std::vector<std::string> after;
        bool enable = false, disable = false, no_after = false;
    };
    auto o = std::make_shared<Opts>();
    const bool ct = kind == "container";
    const std::string what = ct ? "container" : "VM";
    auto* cmd = parent.add_subcommand("autostart", fmt::format("Show or change a {}'s autostart settings (only given "
                                                                "flags change)", what));
    cmd->add_option("name", o->name, what + " name")->required();
    auto* en = cmd->add_flag("--enable", o->enable, fmt::format("Start this {} at host boot", what));
    cmd->add_flag("--disable", o->disable, fmt::format("Do not start this {} at host boot", what))->excludes(en);
    auto* order = cmd->add_option("--order", o->order, "Start group, ascending; 0 = unordered (last)")->check(CLI::Range(0, 1000));
    auto* up = cmd->add_option("--up", o->up, fmt::format("Seconds after this {} is ready before the next group starts",
                                                          what))
                   ->check(CLI::Range(0, 86400));
    auto* down = cmd->add_option("--down", o->down,
                                 ct ? "Seconds for init to exit (stop-all) before the container is stopped"
                                    : "Seconds for ACPI shutdown before power off (stop-all)")
                     ->check(CLI::Range(0, 86400));
    auto* wait = cmd->add_option("--wait-for", o->wait_for,
                                 ct ? "Readiness: none|running|tcp:PORT (PORT inside the container)"
                                    : "Readiness: none|running|guest-agent|tcp:PORT");
    auto* wt = cmd->add_option("--wait-timeout", o->wait_timeout, "Seconds to wait for readiness")->check(CLI::Range(1, 86400));
    auto* after = cmd->add_option("--after", o->after,
                                  "VM or container that must be ready first (repeatable; replaces the list)")
                      ->allow_extra_args(false);
    cmd->add_flag("--no-after", o->no_after, "Clear the --after list")->excludes(after);
    on_run(cmd, ctx, [&g = ctx.g, o, order, up, down, wait, wt, after, kind, collection] {
        json patch = json::object();
        if (o->enable) patch["enabled"] = true;
        if (o->disable) patch["enabled"] = false;
        if (order->count()) patch["order"] = o->order;
        if (up->count()) patch["up"] = o->up;
        if (down->count()) patch["down"] = o->down;
        if (wait->count()) patch["wait_for"] = o->wait_for;
        if (wt->count()) patch["wait_timeout"] = o->wait_timeout;
        if (after->count()) patch["after"] = o->after;
        if (o->no_after) patch["after"] = json::array();
        Client c = g.client();
        auto path = "/v1/" + collection + "/" + o->name + "/autostart";
        auto r = patch.empty() ? c.request("GET", path) : c.request("PUT", path, patch);
        print_settings(g, kind, o->name, r.body);
        return 0;
    });
}
}  // namespace

void add_ct_autostart_command(CLI::App& app, Context& ctx) {
    add_guest_autostart(*app.get_subcommand("ct"), ctx, "container", "cts");
}

void add_autostart_commands(CLI::App& app, Context& ctx) {
    add_guest_autostart(*app.get_subcommand("vm"), ctx, "vm", "vms");
    auto* as = app.add_subcommand("autostart",
                                  "Start VMs and containers at host boot in order; stop them at host shutdown");
    as->require_subcommand(1);

    struct HostOpts {
        int boot_delay = 0, max_parallel = 0, retries = 0, retry_delay = 0;
    };
    auto h = std::make_shared<HostOpts>();
    auto* host = as->add_subcommand("host", "Show or change the host's autostart settings");
    auto* bd = host->add_option("--boot-delay", h->boot_delay, "Seconds after host boot before the first start")->check(CLI::Range(0, 86400));
    auto* mp = host->add_option("--max-parallel", h->max_parallel, "Guests booting at the same time")->check(CLI::Range(1, 1000));
    auto* rt = host->add_option("--retries", h->retries, "Extra attempts for a guest that fails to start")->check(CLI::Range(0, 100));
    auto* rd = host->add_option("--retry-delay", h->retry_delay, "Seconds between attempts")->check(CLI::Range(0, 86400));
    on_run(host, ctx, [&g = ctx.g, h, bd, mp, rt, rd] {
        json patch = json::object();
        if (bd->count()) patch["boot_delay"] = h->boot_delay;
        if (mp->count()) patch["max_parallel"] = h->max_parallel;
        if (rt->count()) patch["retries"] = h->retries;
        if (rd->count()) patch["retry_delay"] = h->retry_delay;
        Client c = g.client();
        auto r = patch.empty() ? c.request("GET", "/v1/autostart/host") : c.request("PUT", "/v1/autostart/host", patch);
        if (g.json()) print_json(r.body);
        else
            print_table(g, {"KEY", "VALUE"},
                        {{"boot_delay", fmt::format("{}s", r.body.value("boot_delay", 0))},
                         {"max_parallel", std::to_string(r.body.value("max_parallel", 0))},
                         {"retries", std::to_string(r.body.value("retries", 0))},
                         {"retry_delay", fmt::format("{}s", r.body.value("retry_delay", 0))}});
        return 0;
    });

    auto* plan = as->add_subcommand("plan", "Print the start sequence with the earliest expected times after host boot");
    on_run(plan, ctx, [&g = ctx.g] {
        auto r = g.client().request("GET", "/v1/autostart/plan").body;
        if (g.json()) return print_json(r), 0;
        std::vector<Row> rows;
        auto groups = r.value("groups", std::vector<std::string>{});
        for (const auto& v : r.value("vms", json::array()))
            rows.push_back({groups.at(v.value("group", 0)), v.value("name", ""), v.value("type", "vm"),
                            v.value("wait_for", ""),
                            fmt::format("{}", fmt::join(v.value("after", std::vector<std::string>{}), ",")),
                            secs(v["started_at"])});
        print_table(g, {"GROUP", "NAME", "TYPE", "WAIT-FOR", "AFTER", "START"}, rows);
        print_warnings(g, r);
        if (!g.no_headers)
            print_line(fmt::format("(times from hvd start at host boot, boot delay {}s, max parallel {}, "
                                   "assuming each guest is ready at once)",
                                   r["host"].value("boot_delay", 0), r["host"].value("max_parallel", 0)));
        return 0;
    });

    auto run_opts = std::make_shared<std::pair<bool, bool>>(false, false);  // boot delay, async
    auto* run = as->add_subcommand("run", "Start every autostart VM and container now, as a task");
    run->add_flag("--boot-delay", run_opts->first, "Wait the host's boot delay first");
    run->add_flag("--async", run_opts->second, "Do not wait: print the task and exit");
    on_run(run, ctx, [&g = ctx.g, run_opts] {
        Client c = g.client();
        auto t = api::task_info_from_json(
            c.request("POST", "/v1/autostart/run", json{{"boot_delay", run_opts->first}}).body);
        return finish_task(g, c, t, run_opts->second, [&](const api::TaskInfo& done) {
            if (g.json()) print_json(done.result);
            else {
                print_table(g, {"GROUP", "NAME", "TYPE", "STATE", "ATTEMPTS", "STARTED", "READY", "ERROR"},
                            run_rows(done.result));
                print_warnings(g, done.result);
            }
            int failed = done.result.value("failed", 0);
            if (failed > 0) {
                print_error(fmt::format("{} guest(s) did not start", failed));
                return kExitTaskFailed;
            }
            return 0;
        });
    });

    auto status_wait = std::make_shared<bool>(false);
    auto* status = as->add_subcommand("status", "Show the autostart run in progress (or the last one)");
    status->add_flag("--wait", *status_wait,
                     "Wait until no autostart run or stop-all is in progress (exit 11 if guests failed to start); "
                     "hv-guests.service waits so for the run hvd starts at host boot");
    on_run(status, ctx, [&g = ctx.g, status_wait] {
        Client c = g.client();
        auto r = c.request("GET", "/v1/autostart/status").body;
        while (*status_wait && r.value("busy", false)) {
            std::this_thread::sleep_for(std::chrono::seconds(1));
            r = c.request("GET", "/v1/autostart/status").body;
        }
        int code = *status_wait && r.value("failed", 0) > 0 ? kExitTaskFailed : 0;
        if (code) print_error(fmt::format("{} guest(s) did not start", r.value("failed", 0)));
        if (g.json()) return print_json(r), code;
        if (!r.contains("vms")) return print_line("no autostart run since hvd started"), code;
        print_line(r.value("running", false) ? fmt::format("running; group: {}", r.value("group", ""))
                                             : fmt::format("finished in {:.1f}s; {} failed", r.value("duration", 0.0),
                                                           r.value("failed", 0)));
        print_table(g, {"GROUP", "NAME", "TYPE", "STATE", "ATTEMPTS", "STARTED", "READY", "WAITING/ERROR"},
                    run_rows(r));
        print_warnings(g, r);
        return code;
    });

    auto stop_async = std::make_shared<bool>(false);
    auto* stop = as->add_subcommand(
        "stop-all", "Shut every running VM and container down in reverse autostart order (ACPI or init, then power "
                    "off after its down timeout)");
    stop->add_flag("--async", *stop_async, "Do not wait: print the task and exit");
    on_run(stop, ctx, [&g = ctx.g, stop_async] {
        Client c = g.client();
        auto t = api::task_info_from_json(c.request("POST", "/v1/autostart/stop-all", json::object()).body);
        return finish_task(g, c, t, *stop_async, [&](const api::TaskInfo& done) {
            if (g.json()) return print_json(done.result), 0;
            std::vector<Row> rows;
            int errors = 0;
            for (const auto& v : done.result.value("vms", json::array())) {
                errors += !v.value("error", "").empty();
                rows.push_back({std::to_string(v.value("wave", 0) + 1), v.value("name", ""), v.value("type", "vm"),
                                v.value("forced", false) ? "yes" : "no", secs(v["stopped_at"]), v.value("error", "")});
            }
            print_table(g, {"WAVE", "NAME", "TYPE", "FORCED", "STOPPED", "ERROR"}, rows);
            print_warnings(g, done.result);
            auto forced = done.result.value("forced", std::vector<std::string>{});
            if (!forced.empty()) print_line(fmt::format("needed force: {}", fmt::join(forced, ", ")));
            return errors ? kExitTaskFailed : 0;
        });
    });
}

}  // namespace hv::cli
