// Backups (docs/backup.md, docs/api.md "Backups"): /v1/backup-stores, /v1/backups,
// POST /v1/vms/{name}/backup, restore, verify and prune of a store.
#pragma once

#include "api_routes.hpp"

namespace hv::daemon {

void register_backup_routes(Router& r, ApiContext& c);

}  // namespace hv::daemon
