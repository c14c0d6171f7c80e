// HA (docs/ha.md): guests of a failed host restarted on another, after it is fenced, never
// two copies. One HaService per hvd runs both halves:
// - the manager: elected through the store (a key on the host's alive lease; every write it
//   makes is guarded by that key's create revision, so a deposed manager cannot act), it
//   decides each guest's HA state and host, fences failed hosts (their lease gone, so their
//   watchdog fired; plus the storage fence: Ceph blocklist) and assigns recoveries;
// - the local agent: pets the watchdog after each good lease keepalive while this host has HA
//   guests, starts what the directory gives this host (defined from the stored definition),
//   reports readiness (the autostart gate) and failures, removes stale copies after it was
//   fenced, and freezes its guests on a clean hvd stop.
// Both are level-triggered: each pass reads /hv/ha/ (and the directory) from the store and
// acts on what differs; passes run on every change the cluster's watch brings.
//
// Store layout:
//   /hv/ha/resources/<guest>  {guest, kind, state, group, max_restart, max_relocate, xml, disks, enabled}
//   /hv/ha/status/<guest>     {state, host, since, why, restarts, relocates, target} (manager;
//                             target: where a "migrate" (failback) goes)
//   /hv/ha/groups/<group>     {name, hosts: {host: priority}, restricted, nofailback}
//   /hv/ha/manager            {node, since}                    (on the manager's alive lease)
//   /hv/ha/fence/<node>       {node, address, since, storage: [...], watchdog}      (manager)
//   /hv/ha/agent/<node>       {state: active|frozen, since, watchdog, pools, ready, failed,
//                              migrate_failed, shutdown}
//   /hv/ha/settings           {shutdown_policy: freeze|migrate}      (an admin's PUT)
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <atomic>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "hv/api/ha.hpp"
#include "watchdog.hpp"

namespace hv::cluster {
class Cluster;
}
namespace hv::storage {
class PoolManager;
}
namespace hv::virt {
class VmManager;
}
namespace hv::guest {
class Guests;
class AutostartService;
}
namespace hv::util {
class Progress;
}

namespace hv::ha {

struct Options {
    std::string watchdog = "/dev/watchdog";
    int watchdog_timeout = 3;  // s; checked against the lease: see check_timing()
    int lease_ttl = 5;         // [cluster] lease_ttl
};

// The fencing rule (docs/ha.md): the watchdog is petted at most kPetWindow after the keepalive
// that allows it was sent, and fires `watchdog_timeout` after the last pet; the lease expires
// no earlier than lease_ttl after that keepalive was sent. So pet window + watchdog timeout +
// margin <= lease_ttl means the host is dead before its lease can be gone. Throws
// invalid_input when the configuration breaks it.
inline constexpr std::chrono::milliseconds kPetWindow{1000};
inline constexpr std::chrono::milliseconds kFenceMargin{1000};
void check_timing(const Options& o);

class HaService {
public:
    HaService(Options o, cluster::Cluster& cluster, guest::Guests& guests, virt::VmManager& vms,
              storage::PoolManager& pools, guest::AutostartService& autostart);
    ~HaService();
    HaService(const HaService&) = delete;
    HaService& operator=(const HaService&) = delete;

    void start();
    // A planned stop of hvd: this host's HA guests are frozen (not recovered elsewhere while
    // their QEMUs run on), the watchdog disarmed.
    void stop();

    // The routes. enable runs on the guest's host (guest:{name}): 409 outside a cluster, on
    // one host, for a disk on storage not every host reaches (naming it), without a watchdog.
    nlohmann::json enable(const std::string& guest, const api::HaEnable& e);
    void disable(const std::string& guest);
    nlohmann::json status();
    nlohmann::json put_group(const api::HaGroup& g);
    void delete_group(const std::string& name);
    nlohmann::json groups();
    // Autostart leaves HA guests to the agent (cache of the last pass).
    bool managed(const std::string& guest) const;
    // An admin's stop/shutdown of an HA guest becomes its requested state `stopped` (the agent
    // does not start it again), a start `started` (Proxmox's ha-manager does the same).
    void requested(const std::string& guest, const std::string& action);
    // How the agent moves a guest the manager put in state "migrate" (the failback of a group
    // with nofailback=false): starts a live migration to `to` (a task) and returns; the task
    // calls migration_done() when it ends ("" = it arrived). Without it, no failback.
    using MigrateFn = std::function<void(const std::string& vm, const std::string& to)>;
    void set_migrate(MigrateFn f);
    void migration_done(const std::string& vm, const std::string& error);

    // The cluster's HA settings (/hv/ha/settings; the defaults when there is no record).
    api::HaSettings settings() const;
    nlohmann::json put_settings(const nlohmann::json& patch);
    // The host shuts down (hv-guests.service's stop-all, before any guest is stopped), by the
    // shutdown policy: "migrate" first enters maintenance (`maintenance`, which moves every
    // running guest and returns the record); then, either way, this host's agent is frozen:
    // it starts no HA guest again (the stop-all stops them) and the manager sets them "freeze",
    // not recovered. Outside a cluster: nothing. Returns {policy, maintenance?}.
    using MaintenanceFn = std::function<nlohmann::json(util::Progress&)>;
    nlohmann::json host_shutdown(util::Progress& progress, const MaintenanceFn& maintenance);
    // After the host's next boot (hvd's first start in it): a maintenance that host_shutdown
    // entered is left again, with its guests brought back (`resume`, a task), once the host is
    // online in the cluster again.
    void after_boot(std::function<void()> resume);

    struct View;  // one reading of /hv/ha/ (ha_service.cpp)

private:
    void trigger();
    void loop();
    bool pass();
    bool manage(const View& v);
    bool act(const View& v);
    void watchdog_loop();
    nlohmann::json agent_doc(bool frozen);
    void write_agent(bool frozen);

    Options o_;
    cluster::Cluster& cluster_;
    guest::Guests& guests_;
    virt::VmManager& vms_;
    storage::PoolManager& pools_;
    guest::AutostartService& autostart_;
    Watchdog wd_;

    mutable std::mutex mu_;
    std::mutex write_mu_;  // agent_written_
    std::condition_variable cv_;
    bool dirty_ = true, quit_ = false, started_ = false;
    std::thread loop_, wd_thread_;
    std::set<std::string> managed_;  // HA guests (last pass)
    bool read_once_ = false;
    // Agent state (loop thread only, except what the watchdog thread reads under mu_).
    bool want_armed_ = false;
    std::string wd_error_;
    std::map<std::string, int> attempts_;                 // failed starts of a guest here
    std::map<std::string, std::string> failed_;           // guest -> why (gave up)
    std::map<std::string, std::int64_t> ready_;           // guest -> ready at (unix s)
    std::map<std::string, std::chrono::steady_clock::time_point> started_at_;
    MigrateFn migrate_;
    std::set<std::string> migrating_;                     // failbacks under way from here
    std::map<std::string, std::string> migrate_failed_;   // guest -> why its failback failed
    nlohmann::json agent_written_;                       // what /hv/ha/agent/<me> holds
    bool waiting_alive_ = false;                         // act() logged that it waits for the lease
    std::int64_t active_since_ = 0;
    std::int64_t cleaned_ = 0;
    std::atomic<bool> shutting_down_{false};            // host_shutdown() ran: frozen, starts nothing
    std::function<void()> resume_;                       // after_boot(): still to do (loop thread)
    std::map<std::string, std::string> unfence_errors_;  // node -> the last error lifting its fence (logged once)  // the fence of this host whose stale copies are gone (its since)
};

}  // namespace hv::ha
