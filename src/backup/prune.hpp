// Which backups a prune keeps (docs/backup.md "Prune"): pure, unit-tested. The rules are
// Proxmox Backup Server's: keep-last N newest; then, per rule in the order daily, weekly,
// monthly, walking newest first, the newest backup of each of the N most recent periods that
// no earlier rule already covers (a period holding a backup kept by an earlier rule counts as
// covered and is not one of the N). Everything not kept is removed.
#pragma once

#include <cstdint>
#include <vector>

namespace hv::backup {

struct KeepPolicy {
    int last = 0, daily = 0, weekly = 0, monthly = 0;
};

// times: Unix seconds (UTC) of a guest's backups, any order. Returns keep[i] for times[i].
std::vector<bool> prune_keep(const std::vector<std::int64_t>& times, const KeepPolicy& policy);

}  // namespace hv::backup
