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
    // Disks on pools only this host sees are copied (live, NBD mirror) into new volumes of the
    // same name, size, format and provisioning in the destination's pool of the same name; the
    // source volumes are removed only after success.
    bool with_local_disks = false;
    // When raising the max downtime did not make it converge, switch to post-copy (the guest
    // runs on the destination and fetches the rest of its memory from here).
    bool postcopy = false;
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
    std::vector<std::string> copied_disks;  // "disk0: local/web01-disk0 (4 GiB)"
    bool postcopy = false;                  // it switched to post-copy
    std::vector<std::string> warnings;      // e.g. a source volume that could not be removed
};

nlohmann::json to_json(const MigrateRequest& r);
MigrateRequest migrate_request_from_json(const nlohmann::json& j);
nlohmann::json to_json(const MigrateReport& r);

}  // namespace hv::api
