// Wire model of migration (docs/migration.md): POST /v1/vms/{name}/migrate. from_json is
// strict (unknown fields -> invalid_input).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::api {

struct MigrateRequest {
    std::string to;           // the destination member
    bool offline = false;     // a stopped VM: its definition moves (disks on shared pools)
    bool dry_run = false;     // only the pre-flight checks
    std::uint64_t bandwidth = 0;  // MiB/s, 0 = unlimited
    int max_downtime = 300;       // ms the guest may pause at the switch-over (raised in steps up to 4x)
};

struct MigrateReport {
    std::string vm;
    std::string from;
    std::string to;
    bool live = true;
    bool ok = false;                    // dry run: no blocker; migration: done
    std::vector<std::string> blockers;  // why it cannot move, one sentence each
    std::int64_t total_ms = 0;
    std::int64_t downtime_ms = -1;      // -1: libvirt did not say
    std::uint64_t transferred = 0;      // bytes of memory sent
};

nlohmann::json to_json(const MigrateRequest& r);
MigrateRequest migrate_request_from_json(const nlohmann::json& j);
nlohmann::json to_json(const MigrateReport& r);

}  // namespace hv::api
