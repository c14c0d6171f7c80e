// Wire model for system containers (libvirt LXC), shared by hvd and hvctl. Same three shapes
// as VMs (vm.hpp): CtSpec (create, and the full desired config), CtPatch (PATCH), CtInfo
// (CtSpec + runtime state). States, NICs and tasks are the VM ones, so clients treat both alike.
// JSON mapping: from_json is strict (unknown fields -> invalid_input, field named).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hv/api/vm.hpp"

namespace hv::api {

// The container's root filesystem: a directory in the "images" content of a pool,
// `<pool>/images/<name>.rootfs/`, unpacked from the template.
struct RootfsSpec {
    // Storage pool. Example: "local".
    std::string pool = "local";
    // Quota in bytes (input may be "8G"); 0 = none. Applied only where the pool's backend can
    // limit a directory (none today: CtInfo::rootfs_quota says so). Example: 8589934592.
    std::uint64_t size = 0;
    // Directory name in the pool's images/. Set by hvd. Example: "app01.rootfs".
    std::string volume;
    // Absolute path of that directory. Set by hvd.
    std::string path;
};

struct CtSpec {
    // Example: "app01".
    std::string name;
    // CPU limit: cgroup cpu shares 1024*cpus and a CFS quota of `cpus` CPUs. 1-512. Example: 2.
    int cpus = 1;
    // Memory limit in bytes (cgroup memory.limit_in_bytes; input may be "512M"). Example: 536870912.
    std::uint64_t memory = 512 * MiB;
    RootfsSpec rootfs;
    // Template the root filesystem was made from: a template name in the vztmpl content of a
    // pool ("busybox" finds busybox.tar.gz, .tar.xz, .tar.zst or .tar; the rootfs pool first),
    // "POOL:vztmpl/FILE", or the absolute path of a pool's template. Stored as the path.
    std::string tmpl;
    // Same type as VM NICs (network= or bridge=, mac chosen by hvd when empty).
    std::vector<NicSpec> nics;
    // User namespace: container root is host uid/gid kUnprivilegedBase (65536 ids mapped).
    // Privileged containers (false) are refused unless asked for explicitly; hvd logs a warning.
    bool unprivileged = true;
    std::string description;
    std::vector<std::string> tags;
};

// First host uid/gid of an unprivileged container and the number of ids mapped.
inline constexpr std::uint32_t kUnprivilegedBase = 100000;
inline constexpr std::uint32_t kUnprivilegedCount = 65536;

// Checks ranges and consistency; throws invalid_input naming the field.
void validate(const CtSpec& spec);

// PATCH /v1/cts/{name}: only the fields present change. cpus and memory apply at once to a
// running container (cgroup limits) and to its definition.
// PATCH of a container: the same editable fields and rules as a VM's (validate, to_json and
// the reader are VmPatch's).
using CtPatch = VmPatch;

struct CtInfo : GuestStatusInfo {
    CtSpec spec;
    // Always "container" (so mixed lists of VMs and containers can tell them apart).
    std::string type = "container";
    // PID (host namespace) of the container's init while running; 0 otherwise.
    std::int64_t init_pid = 0;
    // Memory limit as the kernel enforces it (libvirt's reading of the cgroup) while running.
    std::uint64_t memory_limit = 0;
    // CPU shares and CFS quota (microseconds per 100 ms period) while running.
    std::uint64_t cpu_shares = 0;
    std::int64_t cpu_quota = 0;
    // Whether rootfs.size is enforced, and if not why. Example: "not applied: pool 'local'
    // (dir) cannot limit a directory's size".
    std::string rootfs_quota;
};

// Result of POST /v1/cts/{name}/exec.
struct ExecResult {
    int exit_code = 0;
    std::string stdout_text;
    std::string stderr_text;
    bool timed_out = false;
};

void to_json(nlohmann::json& j, const RootfsSpec& v);
void to_json(nlohmann::json& j, const CtSpec& v);
void to_json(nlohmann::json& j, const CtInfo& v);
void to_json(nlohmann::json& j, const ExecResult& v);

CtSpec ct_spec_from_json(const nlohmann::json& j);
inline CtPatch ct_patch_from_json(const nlohmann::json& j) { return vm_patch_from_json(j); }
CtInfo ct_info_from_json(const nlohmann::json& j);
ExecResult exec_result_from_json(const nlohmann::json& j);

// hvctl's --rootfs "pool=local,size=8G".
RootfsSpec parse_rootfs_arg(const std::string& arg);

// Template files: NAME.tar, NAME.tar.gz, NAME.tar.xz, NAME.tar.zst (validate_file_name rules).
void validate_template_name(const std::string& file);

}  // namespace hv::api
