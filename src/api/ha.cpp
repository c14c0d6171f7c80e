#include "hv/api/ha.hpp"

#include <charconv>

#include "hv/api/cluster.hpp"
#include "hv/api/json_reader.hpp"
#include "hv/api/vm.hpp"
#include "hv/error.hpp"

namespace hv::api {
using nlohmann::json;

namespace {
int limit(ObjectReader& rd, const std::string& key, int dflt) {
    int v = read_int(rd, key, dflt);
    if (v < 0 || v > 10) fail(Errc::invalid_input, "field '{}' must be between 0 and 10", key);
    return v;
}
void check_group_name(const std::string& n) {
    bool ok = !n.empty() && n.size() <= 32 && n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos &&
              n.front() != '-';
    if (!ok) fail(Errc::invalid_input, "group name '{}': 1-32 of a-z 0-9 - (not starting with -)", n);
}
}  // namespace

json to_json(const HaEnable& e) {
    return {{"state", e.state}, {"group", e.group}, {"max_restart", e.max_restart}, {"max_relocate", e.max_relocate}};
}

HaEnable ha_enable_from_json(const json& j) {
    ObjectReader rd(j, "");
    HaEnable e;
    e.state = rd.opt<std::string>("state").value_or("started");
    e.group = rd.opt<std::string>("group").value_or("");
    e.max_restart = limit(rd, "max_restart", 1);
    e.max_relocate = limit(rd, "max_relocate", 1);
    rd.finish();
    if (e.state != "started" && e.state != "stopped")
        fail(Errc::invalid_input, "field 'state' must be 'started' or 'stopped', not '{}'", e.state);
    if (!e.group.empty()) check_group_name(e.group);
    return e;
}

json to_json(const HaGroup& g) {
    return {{"name", g.name}, {"hosts", g.hosts}, {"restricted", g.restricted}, {"nofailback", g.nofailback}};
}

HaGroup ha_group_from_json(const json& j) {
    ObjectReader rd(j, "");
    HaGroup g;
    g.name = rd.req<std::string>("name");
    check_group_name(g.name);
    const json* hosts = rd.raw("hosts");
    if (!hosts || !hosts->is_object() || hosts->empty())
        fail(Errc::invalid_input, "field 'hosts' must be an object of member -> priority with at least one member");
    for (const auto& [h, p] : hosts->items()) {
        check_cluster_name(h, "a host of field 'hosts'");
        if (!p.is_number_integer() || p.get<std::int64_t>() < 0 || p.get<std::int64_t>() > 1000)
            fail(Errc::invalid_input, "the priority of host '{}' must be an integer 0-1000", h);
        g.hosts[h] = p.get<int>();
    }
    g.restricted = rd.opt<bool>("restricted").value_or(false);
    g.nofailback = rd.opt<bool>("nofailback").value_or(false);
    rd.finish();
    return g;
}

json to_json(const HaSettings& s) { return json{{"shutdown_policy", s.shutdown_policy}}; }

HaSettings ha_settings_from_json(const json& j, HaSettings base) {
    ObjectReader rd(j, "");
    if (auto p = rd.opt<std::string>("shutdown_policy")) base.shutdown_policy = *p;
    rd.finish();
    if (base.shutdown_policy != "freeze" && base.shutdown_policy != "migrate")
        fail(Errc::invalid_input, "shutdown_policy '{}' is not one of freeze, migrate", name_excerpt(base.shutdown_policy));
    return base;
}

std::pair<std::string, int> parse_ha_host(const std::string& s) {
    auto colon = s.find(':');
    std::string host = s.substr(0, colon);
    int prio = 1;
    if (colon != std::string::npos) {
        auto p = s.substr(colon + 1);
        auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prio);
        if (p.empty() || ec != std::errc() || end != p.data() + p.size() || prio < 0 || prio > 1000)
            fail(Errc::invalid_input, "--host '{}': expected HOST or HOST:PRIORITY (0-1000)", s);
    }
    check_cluster_name(host, "--host");
    return {host, prio};
}

}  // namespace hv::api
