// Wire model of backups (docs/backup.md, docs/api.md "Backups"): backup stores
// (/v1/backup-stores), POST /v1/vms/{name}/backup, restore, verify and prune of a store.
// from_json is strict (unknown fields -> invalid_input naming the field).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace hv::api {

// POST /v1/backup-stores; persisted in <state_dir>/backup-stores.json.
struct BackupStoreSpec {
    std::string name;  // "nas" (the VM name rule)
    std::string path;  // an existing absolute directory: "/mnt/backup"
};

// POST /v1/vms/{name}/backup
struct BackupCreate {
    std::string store;                // "nas"
    std::string mode = "snapshot";    // "snapshot" (as it runs, or as it is when stopped) | "stop"
    int shutdown_timeout = 60;        // --mode stop: seconds the guest has to shut down (1-3600); then the backup fails
};

// POST /v1/backup-stores/{store}/backups/{guest}/{time}/restore
struct BackupRestore {
    std::string as;    // the new VM's name; "" = the backed-up guest's name
    std::string pool;  // the pool of every new volume; "" = each disk's pool in the backup
    bool start = false;
};

// POST /v1/backup-stores/{store}/prune
struct BackupPrune {
    std::string guest;  // "web01"
    int keep_last = 0, keep_daily = 0, keep_weekly = 0, keep_monthly = 0;
    bool dry_run = false;
};

nlohmann::json to_json(const BackupStoreSpec& s);
nlohmann::json to_json(const BackupCreate& c);
nlohmann::json to_json(const BackupRestore& r);
nlohmann::json to_json(const BackupPrune& p);
BackupStoreSpec backup_store_from_json(const nlohmann::json& j);
BackupCreate backup_create_from_json(const nlohmann::json& j);
BackupRestore backup_restore_from_json(const nlohmann::json& j);
BackupPrune backup_prune_from_json(const nlohmann::json& j);
// POST /v1/backup-stores/{store}/verify: {"guest": G (optional), "time": T (optional, with
// guest)}; an empty body is {}.
struct BackupVerify {
    std::string guest, time;
};
BackupVerify backup_verify_from_json(const nlohmann::json& j);

}  // namespace hv::api
