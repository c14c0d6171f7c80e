// hvctl ha enable|disable|status|settings and hvctl ha group create|list|delete (docs/ha.md).
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "context.hpp"
#include "format.hpp"
#include "guest_commands.hpp"
#include "hv/api/ha.hpp"
#include "output.hpp"

namespace hv::cli {
using nlohmann::json;

void add_ha_commands(CLI::App& app, Context& ctx) {
    auto* ha = app.add_subcommand("ha", "High availability: guests of a failed host restarted on another, after it is fenced");
    ha->require_subcommand(1);

    struct EnableArgs {
        std::string name;
        api::HaEnable e;
    };
    auto ea = std::make_shared<EnableArgs>();
    auto* enable = ha->add_subcommand("enable", "Put a VM under HA (its disks must be on rbd or a --shared pool)");
    enable->add_option("name", ea->name, "VM name")->required();
    enable->add_option("--group", ea->e.group, "HA group: the hosts it prefers (hvctl ha group create)");
    enable->add_option("--max-restart", ea->e.max_restart, "Start attempts on its host after a failed start")->capture_default_str();
    enable->add_option("--max-relocate", ea->e.max_relocate, "Moves to another host after those failed")->capture_default_str();
    enable->add_option("--state", ea->e.state, "started: HA keeps it running; stopped: HA does not start it")
        ->check(CLI::IsMember({"started", "stopped"}))
        ->capture_default_str();
    on_run(enable, ctx, [&g = ctx.g, ea] {
        Client c = g.client();
        auto r = c.request("PUT", "/v1/ha/resources/" + escape_segment(ea->name), api::to_json(ea->e));
        if (g.json()) return print_json(r.body), 0;
        print_line(fmt::format("{} is under HA ({})", ea->name, ea->e.state));
        return 0;
    });

    auto name = std::make_shared<std::string>();
    auto* disable = ha->add_subcommand("disable", "Take a guest out of HA (it keeps running where it is)");
    disable->add_option("name", *name, "Guest name")->required();
    on_run(disable, ctx, [&g = ctx.g, name] {
        Client c = g.client();
        auto r = c.request("DELETE", "/v1/ha/resources/" + escape_segment(*name));
        if (g.json()) return print_json(r.body), 0;
        print_line(*name + " is no longer under HA");
        return 0;
    });

    auto* status = ha->add_subcommand("status", "Per guest: requested state, HA state, host, since and why; hosts and fences");
    on_run(status, ctx, [&g = ctx.g] {
        Client c = g.client();
        auto r = c.request("GET", "/v1/ha/status");
        if (g.json()) return print_json(r.body), 0;
        const auto& b = r.body;
        print_line("manager: " + (b.value("manager", json()).is_string() ? b["manager"].get<std::string>() : "(none)"));
        std::vector<Row> rows;
        for (const auto& x : b.value("guests", json::array()))
            rows.push_back({x.value("guest", ""), x.value("requested", ""), x.value("state", ""), x.value("host", ""),
                            x.value("since", 0) ? format_time_ms(x.value("since", std::int64_t{0}) * 1000) : "-",
                            x.value("why", "")});
        print_table(g, {"GUEST", "REQUESTED", "STATE", "HOST", "SINCE", "WHY"}, rows);
        for (const auto& h : b.value("hosts", json::array())) {
            auto wd = h.value("watchdog", json::object());
            std::string line = fmt::format("host {}: {}, agent {}, watchdog {}{}", h.value("host", ""),
                                           h.value("online", false) ? "online" : "offline", h.value("agent", ""),
                                           wd.value("what", "-"), wd.value("armed", false) ? " (armed)" : "");
            if (!wd.value("error", "").empty()) line += ", " + wd.value("error", "");
            if (h.contains("fenced") && h["fenced"].is_object())
                line += fmt::format("; fenced: {}", fmt::join(h["fenced"].value("storage", std::vector<std::string>{}), "; "));
            print_line(line);
        }
        return 0;
    });

    auto policy = std::make_shared<std::string>();
    auto* settings = ha->add_subcommand("settings", "The cluster's HA settings; with an option: change them");
    auto* policy_opt = settings->add_option("--shutdown-policy", *policy,
                                            "What a host's shutdown does with its HA guests: freeze (stopped with it, started "
                                            "there again) or migrate (the host enters maintenance first, they move live)")
                           ->check(CLI::IsMember({"freeze", "migrate"}));
    on_run(settings, ctx, [&g = ctx.g, policy, policy_opt] {
        Client c = g.client();
        auto r = policy_opt->count() ? c.request("PUT", "/v1/ha/settings", json{{"shutdown_policy", *policy}})
                                     : c.request("GET", "/v1/ha/settings");
        if (g.json()) return print_json(r.body), 0;
        print_line("shutdown policy: " + r.body.value("shutdown_policy", ""));
        return 0;
    });

    auto* group = ha->add_subcommand("group", "HA groups: which hosts a guest prefers, with priorities");
    group->require_subcommand(1);
    struct GroupArgs {
        api::HaGroup g;
        std::vector<std::string> hosts;
    };
    auto ga = std::make_shared<GroupArgs>();
    auto* create = group->add_subcommand("create", "Create a group: --host A:2 --host B:1 (higher priority first)");
    create->add_option("name", ga->g.name, "Group name")->required();
    create->add_option("--host", ga->hosts, "HOST[:PRIORITY] (default priority 1); repeat")->required();
    create->add_flag("--restricted", ga->g.restricted, "Only these hosts (else these first, then any member)");
    create->add_flag("--nofailback", ga->g.nofailback, "Stay where it is when a higher-priority host returns");
    on_run(create, ctx, [&g = ctx.g, ga] {
        for (const auto& h : ga->hosts) ga->g.hosts.insert(api::parse_ha_host(h));
        Client c = g.client();
        auto r = c.request("POST", "/v1/ha/groups", api::to_json(ga->g));
        if (g.json()) return print_json(r.body), 0;
        print_line("HA group " + ga->g.name + " created");
        return 0;
    });
    auto* list = group->add_subcommand("list", "The HA groups");
    on_run(list, ctx, [&g = ctx.g] {
        Client c = g.client();
        auto r = c.request("GET", "/v1/ha/groups");
        if (g.json()) return print_json(r.body), 0;
        std::vector<Row> rows;
        for (const auto& x : r.body) {
            std::vector<std::string> hs;
            for (const auto& [h, p] : x.value("hosts", json::object()).items()) hs.push_back(fmt::format("{}:{}", h, p.get<int>()));
            rows.push_back({x.value("name", ""), fmt::format("{}", fmt::join(hs, ",")), x.value("restricted", false) ? "yes" : "no",
                            x.value("nofailback", false) ? "yes" : "no"});
        }
        print_table(g, {"NAME", "HOSTS", "RESTRICTED", "NOFAILBACK"}, rows);
        return 0;
    });
    auto gname = std::make_shared<std::string>();
    auto* del = group->add_subcommand("delete", "Delete a group no guest uses");
    del->add_option("name", *gname, "Group name")->required();
    on_run(del, ctx, [&g = ctx.g, gname] {
        Client c = g.client();
        auto r = c.request("DELETE", "/v1/ha/groups/" + escape_segment(*gname));
        if (g.json()) return print_json(r.body), 0;
        print_line("HA group " + *gname + " deleted");
        return 0;
    });
}

}  // namespace hv::cli
