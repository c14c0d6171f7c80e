// Wire model of VM snapshots (docs/snapshots.md): POST /v1/vms/{name}/snapshots (create),
// GET .../snapshots (list, tree order), GET/DELETE .../snapshots/{snap},
// POST .../snapshots/{snap}/revert. from_json is strict (unknown fields -> invalid_input).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::api {

inline constexpr std::size_t kMaxSnapshotDescription = 4096;

// Snapshot names follow the VM name rule (validate_name): 1-63 of [A-Za-z0-9._-], first a
// letter or digit. Throws invalid_input.
void validate_snapshot_name(const std::string& name);

// POST /v1/vms/{name}/snapshots
struct SnapshotCreate {
    std::string name;         // "pre-upgrade"
    bool memory = false;      // save RAM too: revert resumes the guest where it was (running VM only)
    bool quiesce = false;     // freeze the guest's filesystems through its agent for the moment
    std::string description;  // free text, at most 4096 bytes
};

// POST /v1/vms/{name}/snapshots/{snap}/revert
struct SnapshotRevert {
    bool start = false;  // run the VM after the revert (a memory snapshot resumes running anyway)
};

struct SnapshotInfo {
    std::string name;         // "pre-upgrade"
    std::string parent;       // "" for a root
    std::int64_t created = 0; // Unix time (s) the snapshot was taken
    bool memory = false;      // revert resumes the saved RAM
    std::string state;        // the VM's state when it was taken: "running", "paused", "stopped", ...
    std::string description;
    bool current = false;     // the snapshot the VM runs on (the parent of the next one)
};

nlohmann::json to_json(const SnapshotCreate& c);
SnapshotCreate snapshot_create_from_json(const nlohmann::json& j);
nlohmann::json to_json(const SnapshotRevert& r);
SnapshotRevert snapshot_revert_from_json(const nlohmann::json& j);
nlohmann::json to_json(const SnapshotInfo& s);
SnapshotInfo snapshot_info_from_json(const nlohmann::json& j);
nlohmann::json to_json(const std::vector<SnapshotInfo>& list);
std::vector<SnapshotInfo> snapshot_list_from_json(const nlohmann::json& j);

// Tree order: each snapshot after its parent, siblings (and roots) by creation time then name;
// a snapshot whose parent is not in the list counts as a root. depth: 0 for roots.
struct SnapshotNode {
    SnapshotInfo info;
    int depth = 0;
};
std::vector<SnapshotNode> snapshot_tree(std::vector<SnapshotInfo> list);

}  // namespace hv::api
