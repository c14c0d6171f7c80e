// hvctl cluster create|token|join|status|leave|remove and hvctl host list: the cluster through
// /v1/cluster (docs/cluster.md). Create and join are tasks (they start the local etcd member).
#include <cctype>
#include <ctime>
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "context.hpp"
#include "format.hpp"
#include "guest_commands.hpp"
#include "hv/api/cluster.hpp"
#include "hv/api/size.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace hv::cli {
using nlohmann::json;

namespace {

template <typename F>
auto decode(const char* what, F f) -> decltype(f()) {
    try {
        return f();
    } catch (const Error& e) {
        fail(Errc::internal, "hvd sent a malformed {}: {}", what, e.what());
    }
}

// "90", "90s", "30m", "1h", "2d" -> seconds.
std::int64_t parse_duration(const std::string& text, const char* what) {
    std::size_t i = 0;
    std::int64_t n = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && n < 100000000)
        n = n * 10 + (text[i++] - '0');
    std::string unit = text.substr(i);
    std::int64_t mult = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : 0;
    if (i == 0 || mult == 0) fail(Errc::invalid_input, "{} must be a number with s, m, h or d (got '{}')", what, text);
    return n * mult;
}

std::string since_text(std::int64_t since) {
    if (since <= 0) return "-";
    auto now = static_cast<std::int64_t>(std::time(nullptr));
    return now > since ? format_duration(now - since) : "0s";
}

void print_status(const Globals& g, const api::ClusterStatus& s) {
    if (g.json()) return print_json(api::to_json(s));
    if (s.name.empty()) {
        print_line(fmt::format("this host ({}) is in no cluster: hvctl cluster create NAME, or cluster join", s.node));
        return;
    }
    std::cout << render_kv({{"cluster", s.name},
                            {"this host", s.node},
                            {"quorum", s.quorum ? fmt::format("yes ({} of {} voters reachable)", s.reachable, s.voters)
                                                : fmt::format("NO ({} of {} voters reachable)", s.reachable, s.voters)}});
    std::vector<Row> rows;
    for (const auto& m : s.members)
        rows.push_back({m.name, fmt::format("{}:{}", m.address, m.port),
                        m.online ? "online" : "offline", since_text(m.since), m.role, m.version.empty() ? "-" : m.version,
                        m.clock_offset_ms ? fmt::format("{:+.1f} ms", *m.clock_offset_ms) : "-", std::to_string(m.guests)});
    std::cout << "\n";
    print_table(g, {"NAME", "ADDRESS", "STATE", "SINCE", "ROLE", "VERSION", "CLOCK", "GUESTS"}, rows);
    for (const auto& w : s.warnings) print_line("warning: " + w);
}

int print_task_status(const Globals& g, const api::TaskInfo& t) {
    api::ClusterStatus s = decode("cluster status", [&] {
        if (!t.result.is_object() || !t.result.contains("cluster")) fail(Errc::internal, "no cluster in the task result");
        return api::cluster_status_from_json(t.result["cluster"]);
    });
    print_status(g, s);
    return 0;
}

api::TaskInfo task_of(const Client::Response& r) {
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}

}  // namespace

void add_cluster_commands(CLI::App& app, Context& ctx) {
    auto* cl = app.add_subcommand("cluster", "Hosts joined into one cluster (etcd, mutual TLS)");
    cl->require_subcommand(1);

    struct CreateArgs {
        std::string name, address;
        bool async = false;
    };
    auto ca = std::make_shared<CreateArgs>();
    auto* create = cl->add_subcommand("create", "Make this host the first member of a new cluster");
    create->add_option("name", ca->name, "Cluster name (1-32 of a-z 0-9 -)")->required();
    create->add_option("--address", ca->address, "This host's address in the cluster network (default: [cluster] address)");
    create->add_flag("--async", ca->async, "Do not wait: print the task and exit");
    on_run(create, ctx, [&g = ctx.g, ca] {
        json body{{"name", ca->name}};
        if (!ca->address.empty()) body["address"] = ca->address;
        Client c = g.client();
        auto t = task_of(c.request("POST", "/v1/cluster", body));
        return finish_task(g, c, t, ca->async, [&](const api::TaskInfo& done) { return print_task_status(g, done); });
    });

    auto ttl = std::make_shared<std::string>("1h");
    auto* token = cl->add_subcommand("token", "Make a single-use join token (it carries the members' addresses and the CA fingerprint)");
    token->add_option("--ttl", *ttl, "How long it may be used: 60s-7d, e.g. 30m, 1h, 2d")->capture_default_str();
    on_run(token, ctx, [&g = ctx.g, ttl] {
        std::int64_t seconds = parse_duration(*ttl, "--ttl");
        auto r = g.client().request("POST", "/v1/cluster/tokens", api::to_json(api::TokenRequest{seconds}));
        auto t = decode("token", [&] { return api::token_info_from_json(r.body); });
        if (g.json()) print_json(api::to_json(t));
        else print_line(t.token);
        return 0;
    });

    struct JoinArgs {
        std::string member, token, address;
        bool async = false;
    };
    auto ja = std::make_shared<JoinArgs>();
    auto* join = cl->add_subcommand("join", "Join this host to a cluster");
    join->add_option("member", ja->member, "Address of a member (ADDRESS or ADDRESS:PORT)")->required();
    join->add_option("--token", ja->token, "The join token (hvctl cluster token on a member)")->required();
    join->add_option("--address", ja->address, "This host's address in the cluster network (default: [cluster] address, "
                                               "else the local address of the route to the member)");
    join->add_flag("--async", ja->async, "Do not wait: print the task and exit");
    on_run(join, ctx, [&g = ctx.g, ja] {
        api::JoinRequest r{ja->token, ja->address, ja->member};
        Client c = g.client();
        auto t = task_of(c.request("POST", "/v1/cluster/join", api::to_json(r)));
        return finish_task(g, c, t, ja->async, [&](const api::TaskInfo& done) { return print_task_status(g, done); });
    });

    on_run(cl->add_subcommand("status", "Name, quorum and the members: address, online/offline since, store role, "
                                        "version, clock offset, guests"),
           ctx, [&g = ctx.g] {
               auto r = g.client().request("GET", "/v1/cluster");
               print_status(g, decode("cluster status", [&] { return api::cluster_status_from_json(r.body); }));
               return 0;
           });

    on_run(cl->add_subcommand("leave", "Take this host out of the cluster (its guests stay on it)"), ctx, [&g = ctx.g] {
        auto r = g.client().request("POST", "/v1/cluster/leave", json::object());
        if (g.json()) print_json(r.body);
        else print_line("this host left the cluster");
        return 0;
    });

    struct RemoveArgs {
        std::string host;
        bool force = false;
    };
    auto ra = std::make_shared<RemoveArgs>();
    auto* remove = cl->add_subcommand("remove", "Remove another member (offline, or with --force)");
    remove->add_option("host", ra->host, "The member's name")->required();
    remove->add_flag("--force", ra->force, "Also when it is online or owns guests (their records are dropped)");
    on_run(remove, ctx, [&g = ctx.g, ra] {
        auto r = g.client().request("DELETE", "/v1/cluster/members/" + escape_segment(ra->host) +
                                                  (ra->force ? "?force=1" : ""));
        if (g.json()) print_json(r.body);
        else print_line(fmt::format("removed {} from the cluster", ra->host));
        return 0;
    });
}

// hvctl host list (added to `hvctl host` by add_host_commands' caller).
void add_host_list_command(CLI::App& app, Context& ctx) {
    auto* host = app.get_subcommand("host");
    on_run(host->add_subcommand("list", "The cluster's hosts: state, CPUs, memory used/total, CPU model, guests"), ctx,
           [&g = ctx.g] {
               auto r = g.client().request("GET", "/v1/cluster/hosts");
               std::vector<api::MemberStatus> hosts = decode("host list", [&] {
                   if (!r.body.is_array()) fail(Errc::internal, "expected a JSON array");
                   std::vector<api::MemberStatus> out;
                   for (const auto& h : r.body) out.push_back(api::member_status_from_json(h));
                   return out;
               });
               if (g.json()) {
                   json out = json::array();
                   for (const auto& h : hosts) out.push_back(api::to_json(h));
                   print_json(out);
                   return 0;
               }
               std::vector<Row> rows;
               for (const auto& h : hosts)
                   rows.push_back({h.name, h.online ? "online" : "offline", h.cpus ? std::to_string(h.cpus) : "-",
                                   h.memory_total ? fmt::format("{} / {}", api::format_size(h.memory_used),
                                                                api::format_size(h.memory_total))
                                                  : "-",
                                   h.cpu_model.empty() ? "-" : h.cpu_model, std::to_string(h.guests)});
               print_table(g, {"NAME", "STATE", "CPUS", "MEMORY", "CPU MODEL", "GUESTS"}, rows);
               return 0;
           });
}

}  // namespace hv::cli
