// hvctl time show | set: the host's time service (chrony) through GET/PUT /v1/time.
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "context.hpp"
#include "format.hpp"
#include "hv/api/time.hpp"
#include "output.hpp"

namespace hv::cli {
using nlohmann::json;

namespace {

std::string seconds_text(double s) {
    double a = s < 0 ? -s : s;
    if (a < 1e-3) return fmt::format("{:+.1f} us", s * 1e6);
    if (a < 1) return fmt::format("{:+.3f} ms", s * 1e3);
    return fmt::format("{:+.3f} s", s);
}

void print_time(const Globals& g, const api::TimeStatus& t) {
    if (g.json()) return print_json(json(t));
    std::string sync = !t.chronyd_running ? "no (chronyd is not running)"
                       : t.synchronised   ? fmt::format("yes, to {} (stratum {})", t.source, t.stratum)
                                          : "no";
    std::string last = t.last_update_ago < 0 ? "-" : t.last_update_ago == 0 ? "just now"
                                                                           : format_duration(t.last_update_ago) + " ago";
    std::cout << render_kv({
        {"synchronised", sync},
        {"offset", t.chronyd_running && (t.synchronised || t.offset_seconds != 0)
                       ? seconds_text(t.offset_seconds) + " (positive: clock ahead)"
                       : "-"},
        {"last update", last},
        {"leap status", t.leap_status.empty() ? "-" : t.leap_status},
        {"timezone", t.timezone.empty() ? "-" : t.timezone},
        {"enabled at boot", t.enabled_at_boot},
        {"sources file", t.sources_file},
    });
    std::vector<Row> rows;
    for (const auto& s : t.servers)
        rows.push_back({s.name, s.mode, s.state, fmt::format("{:o}", s.reach), s.stratum ? std::to_string(s.stratum) : "-",
                        s.state == "configured" || s.state == "unreachable" ? "-" : seconds_text(s.offset_seconds)});
    if (!rows.empty()) {
        std::cout << "\n";
        print_table(g, {"NAME", "MODE", "STATE", "REACH", "STRATUM", "OFFSET"}, rows);
    }
    std::cout << std::flush;
}

api::TimeStatus decode(const json& j) {
    try {
        return api::time_status_from_json(j);
    } catch (const Error& e) {
        fail(Errc::internal, "hvd sent a malformed time status: {}", e.what());
    }
}

}  // namespace

void add_time_commands(CLI::App& app, Context& ctx) {
    auto* time = app.add_subcommand("time", "The host's time service (chrony)");
    time->require_subcommand(1);
    time->add_subcommand("show", "Sync state, source, offset, servers, timezone, boot status")->callback([&ctx] {
        ctx.action = [&g = ctx.g] {
            print_time(g, decode(g.client().request("GET", "/v1/time").body));
            return 0;
        };
    });

    struct SetArgs {
        std::vector<std::string> servers, pools;
        bool iburst = false, enable = false;
    };
    auto args = std::make_shared<SetArgs>();
    auto* set = time->add_subcommand(
        "set", "Replace hv's NTP sources (reloaded without restarting chronyd); --enable starts chronyd at boot");
    set->add_option("--server", args->servers, "NTP server: HOST, HOST:PORT or [IPv6]:PORT (repeatable)");
    set->add_option("--pool", args->pools, "NTP pool name, [:PORT] (repeatable)");
    set->add_flag("--iburst", args->iburst, "Send a burst of requests at start (faster first sync)");
    set->add_flag("--enable", args->enable, "Make chronyd start at boot (systemd)");
    set->callback([&ctx, args] {
        ctx.action = [&g = ctx.g, args] {
            api::TimeSettings s;
            // No --server/--pool at all: only --enable, or an empty list that hvd rejects.
            if (!args->servers.empty() || !args->pools.empty() || !args->enable) {
                s.servers = args->servers;
                s.pools = args->pools;
            }
            s.iburst = args->iburst;
            s.enable = args->enable;
            print_time(g, decode(g.client().request("PUT", "/v1/time", json(s)).body));
            return 0;
        };
    });
}

}  // namespace hv::cli
