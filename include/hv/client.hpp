// Typed client of hvd's REST API over its Unix socket. hvctl speaks only this; it never
// knows libvirt exists. Errors arrive as hv::Error with the daemon's code and message.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hv/api/ct.hpp"
#include "hv/api/host.hpp"
#include "hv/api/net.hpp"
#include "hv/api/storage.hpp"
#include "hv/api/task.hpp"
#include "hv/api/vm.hpp"
#include "hv/error.hpp"

namespace hv {

// Default socket: $HV_SOCKET, else /run/hv/hvd.sock.
std::string default_socket_path();
// Percent-encodes one URL path segment or query value (A-Z a-z 0-9 - _ . ~ stay).
std::string escape_segment(const std::string& s);

// Thrown when the daemon's socket cannot be reached at all (hvctl exit code 10).
class DaemonUnreachable : public Error {
public:
    using Error::Error;
};

class Client {
public:
    explicit Client(std::string socket_path);

    struct Response {
        int status = 0;
        nlohmann::json body;
    };
    // One HTTP/1.1 request; non-2xx answers throw hv::Error built from the error body.
    Response request(const std::string& method, const std::string& target,
                     const std::optional<nlohmann::json>& body = std::nullopt);

    // GET `target` asking to switch to `protocol` (e.g. a console): on "101 Switching
    // Protocols" returns the connected socket (the caller closes it) and the bytes that came
    // with the answer; any other answer throws like request().
    struct Upgraded {
        int fd = -1;
        std::string pending;
    };
    Upgraded upgrade(const std::string& target, const std::string& protocol);
    // GET /v1/cts/{name}/console upgraded to "hv-console" (raw console bytes both ways).
    Upgraded ct_console(const std::string& name, bool force);

    api::HostInfo host();
    std::vector<api::VmInfo> list_vms();
    api::VmInfo get_vm(const std::string& name);
    // host: the cluster member that gets the VM ("" = the host asked).
    api::TaskInfo create_vm(const api::VmSpec& spec, const std::string& host = {});  // 202 -> task
    api::VmInfo update_vm(const std::string& name, const api::VmPatch& p);  // PATCH
    api::TaskInfo delete_vm(const std::string& name, bool purge);           // 202 -> task
    // action: start|stop|reboot|reset|suspend|resume -> VmInfo
    api::VmInfo vm_action(const std::string& name, const std::string& action);
    api::TaskInfo shutdown_vm(const std::string& name, int timeout_s, bool force);  // 202 -> task
    // Disks and CD/DVD of an existing VM (hot-plug while running for virtio/scsi).
    api::TaskInfo attach_disk(const std::string& vm, const api::DiskSpec& disk);             // 202 -> task
    api::VmInfo detach_disk(const std::string& vm, const std::string& disk, bool purge);
    api::VmInfo set_cdrom(const std::string& vm, const std::string& iso);  // "" ejects
    api::VmInfo add_nic(const std::string& vm, const api::NicSpec& nic);
    api::VmInfo set_nic(const std::string& vm, const std::string& nic, const api::NicPatch& patch);
    api::VmInfo remove_nic(const std::string& vm, const std::string& nic);

    // Storage: pools and volumes (creates, resizes and clones are tasks).
    std::vector<api::PoolInfo> list_pools();
    api::PoolInfo get_pool(const std::string& name);
    api::PoolInfo add_pool(const api::PoolSpec& spec);
    void remove_pool(const std::string& name);
    api::PoolInfo scan_pool(const std::string& name);
    std::vector<api::VolumeInfo> list_volumes(const std::string& pool);
    api::VolumeInfo get_volume(const std::string& pool, const std::string& name);
    api::TaskInfo create_volume(const api::VolumeSpec& spec);
    // Returns the VMs the volume was detached from (force).
    std::vector<std::string> delete_volume(const std::string& pool, const std::string& name, bool force);
    api::TaskInfo resize_volume(const std::string& pool, const std::string& name, std::uint64_t size);
    api::TaskInfo clone_volume(const std::string& pool, const std::string& name, const std::string& target);

    // ISO library. list_isos("") lists every pool. upload_iso streams `file` (never held in
    // memory) as the body of PUT .../isos/{name}; it sends "Expect: 100-continue", so a refusal
    // (name, exists, in use, no space) arrives before any data. on_progress(sent, total) is
    // called after each piece written to the socket. 201 (new) or 200 (replaced) -> IsoInfo.
    std::vector<api::IsoInfo> list_isos(const std::string& pool);
    api::IsoInfo get_iso(const std::string& pool, const std::string& name);
    api::IsoInfo upload_iso(const std::string& pool, const std::string& name, const std::string& file,
                            const std::string& sha256, bool replace,
                            const std::function<void(std::uint64_t sent, std::uint64_t total)>& on_progress = {});
    void delete_iso(const std::string& pool, const std::string& name);

    // Host networking (hv-managed bridges, bonds, VLANs; NICs and kernel features read-only).
    std::vector<api::NicInfo> list_nics(bool all);
    api::KernelFeatures net_features();
    std::vector<api::BridgeInfo> list_bridges();
    api::BridgeInfo get_bridge(const std::string& name);
    api::BridgeInfo create_bridge(const api::BridgeSpec& spec);
    void delete_bridge(const std::string& name, bool force);
    api::BridgeInfo update_bridge(const std::string& name, const api::BridgePatch& patch);
    api::BondInfo update_bond(const std::string& name, const api::BondPatch& patch);
    api::VlanInfo update_vlan(const std::string& name, const api::VlanPatch& patch);
    // Safe apply: staged changes, apply with automatic rollback, confirm, revert.
    api::NetApplyState net_pending();
    api::NetApplyState net_apply(int confirm_within_s);
    api::NetApplyState net_confirm();
    api::NetApplyState net_revert();
    std::vector<api::BondInfo> list_bonds();
    api::BondInfo get_bond(const std::string& name);
    api::BondInfo create_bond(const api::BondSpec& spec);
    void delete_bond(const std::string& name);
    std::vector<api::VlanInfo> list_vlans();
    api::VlanInfo get_vlan(const std::string& name);
    api::VlanInfo create_vlan(const api::VlanSpec& spec);
    void delete_vlan(const std::string& name);

    // Containers (libvirt LXC); same task and state shapes as VMs.
    std::vector<api::CtInfo> list_cts();
    api::CtInfo get_ct(const std::string& name);
    api::TaskInfo create_ct(const api::CtSpec& spec, const std::string& host = {});                     // 202 -> task
    api::CtInfo update_ct(const std::string& name, const api::CtPatch& p);  // PATCH
    api::TaskInfo delete_ct(const std::string& name);                       // 202 -> task
    api::CtInfo ct_action(const std::string& name, const std::string& action);  // start|stop|reboot
    api::TaskInfo shutdown_ct(const std::string& name, int timeout_s, bool force);  // 202 -> task
    api::ExecResult exec_ct(const std::string& name, const std::vector<std::string>& command, int timeout_s);
    // Container templates (a pool's vztmpl content; same objects and upload as ISOs).
    // list_templates("") lists every pool.
    std::vector<api::IsoInfo> list_templates(const std::string& pool);
    api::IsoInfo upload_template(const std::string& pool, const std::string& name, const std::string& file,
                                 const std::string& sha256, bool replace,
                                 const std::function<void(std::uint64_t sent, std::uint64_t total)>& on_progress = {});
    void delete_template(const std::string& pool, const std::string& name);
    api::TaskInfo build_template(const std::string& pool, const std::string& kind, bool replace);  // 202 -> task

    std::vector<api::TaskInfo> list_tasks();
    api::TaskInfo get_task(const std::string& id);
    api::TaskInfo cancel_task(const std::string& id);
    // GET /v1/tasks/{id}/log?after=SEQ: the task's log lines after `after`, with its state.
    api::TaskLog task_log(const std::string& id, std::uint64_t after = 0);
    // GET /v1/version (404 from an older hvd: throws not_found).
    api::VersionInfo version();
    // GET /v1/metrics: the Prometheus text as hvd sends it.
    std::string metrics();
    // Polls until the task is final; calls on_update on every change. Does not throw for a
    // failed task: the caller reads TaskInfo::error.
    api::TaskInfo wait_task(const std::string& id,
                            const std::function<void(const api::TaskInfo&)>& on_update = {},
                            std::chrono::milliseconds poll = std::chrono::milliseconds(200));

    // Streams GET /v1/events; returns when on_event returns false or the daemon closes.
    // host: another cluster member's events, relayed by the host asked.
    void events(const std::function<bool(const api::Event&)>& on_event, const std::string& host = {});

private:
    // PUT /v1/storage/pools/{pool}/{collection}/{name} streamed from `file` ("isos", "templates").
    api::IsoInfo upload_file(const std::string& collection, const std::string& pool, const std::string& name,
                             const std::string& file, const std::string& sha256, bool replace,
                             const std::function<void(std::uint64_t, std::uint64_t)>& on_progress);
    std::string socket_;
};

}  // namespace hv
