// Wire model of HA (docs/ha.md): PUT /v1/ha/resources/{name}, the groups of
// /v1/ha/groups. from_json is strict (unknown fields -> invalid_input).
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace hv::api {

// hvctl ha enable NAME [--group G] [--max-restart N] [--max-relocate N] [--state started|stopped]
struct HaEnable {
    std::string state = "started";  // what HA keeps the guest in: started | stopped
    std::string group;              // "" = any member
    int max_restart = 1;            // start attempts on its host after a failed start (0-10)
    int max_relocate = 1;           // moves to another host after those failed (0-10)
};

// hvctl ha group create NAME --host A:2 --host B:1 [--restricted] [--nofailback]
struct HaGroup {
    std::string name;
    std::map<std::string, int> hosts;  // member -> priority (higher first), 0-1000
    bool restricted = false;  // only these hosts (else: these first, then any member)
    bool nofailback = false;  // a guest stays where it is when a higher-priority host returns
};

// GET/PUT /v1/ha/settings (hvctl ha settings): the cluster's HA settings, one record.
struct HaSettings {
    // What a host's shutdown (hv-guests.service's `hvctl autostart stop-all`) does with its HA
    // guests: "freeze" (stopped with the host, started there again when it is back; nothing is
    // recovered elsewhere) or "migrate" (the host enters maintenance first: every running guest
    // moves live to another member, and they come back after the host's next boot).
    std::string shutdown_policy = "freeze";
};

nlohmann::json to_json(const HaSettings& s);
// Strict; a PUT body may leave fields out (they keep `base`'s values).
HaSettings ha_settings_from_json(const nlohmann::json& j, HaSettings base = {});

nlohmann::json to_json(const HaEnable& e);
HaEnable ha_enable_from_json(const nlohmann::json& j);
nlohmann::json to_json(const HaGroup& g);
HaGroup ha_group_from_json(const nlohmann::json& j);
// "A:2" -> {A, 2}; "A" -> {A, 1}.
std::pair<std::string, int> parse_ha_host(const std::string& s);

}  // namespace hv::api
