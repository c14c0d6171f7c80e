// Live and offline migration of VMs between members (docs/migration.md): the pre-flight
// checks, the libvirt tunnel through hvd's mutual TLS, libvirt's own migration
// (VmManager::migrate), and the hand-over of the guest's record in the cluster's directory.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hv/api/migrate.hpp"
#include "hv/api/vm.hpp"
#include "hv/util/progress.hpp"

namespace hv::cluster {
class Cluster;
}
namespace hv::storage {
class PoolManager;
}
namespace hv::virt {
class VmManager;
class CtManager;
}

namespace hv::migrate {

// The names a migration gives QEMU's data sockets: hvm-<16 hex>-mem.sock | hvm-<16 hex>-nbd.sock
// (the only ones GET /v1/host/migration-stream joins).
bool is_stream_socket_name(const std::string& name);

class Migrator {
public:
    struct Options {
        std::string run_dir;     // where the libvirt tunnels' Unix sockets are made (<state_dir>/run)
        std::string socket_dir;  // QEMU's migration data sockets ([cluster] migration_socket_dir)
        int timeout_per_gib = 120;  // seconds per GiB of memory + copied disks ([cluster] migration_timeout)
        std::string records_dir;    // in-flight copies of local disks (<state_dir>/migrations); "" = none
    };
    Migrator(virt::VmManager& vms, storage::PoolManager& pools, cluster::Cluster& cluster, Options opts);
    ~Migrator();
    // Finishes what a killed hvd left of migrations with copied disks (its records): the VM
    // still here -> the volumes made on the destination go there; the VM gone (it arrived) ->
    // its volumes here go. In a thread, tried again while the destination cannot be asked.
    void start();
    void stop();

    // Every blocker, nothing changed (also what --dry-run answers). Throws for a request
    // that is wrong in itself: 404 no such vm or member, 400 the vm's own host, 409 outside a
    // cluster.
    api::MigrateReport check(const std::string& vm, const api::MigrateRequest& rq) const;
    // check(), 409 with the blockers, then the migration; the VM runs on here after any failure.
    api::MigrateReport migrate(const std::string& vm, const api::MigrateRequest& rq, util::Progress& progress);

    // Host maintenance of this host (a task). enter: the record (state "entering") stops new
    // guests here; every running VM moves live to the member with the most free memory that
    // passes the pre-flight (at most `parallel` at once); a guest that cannot move is named
    // with its blocker and the state stays "entering" (else "in"). Called again, it tries what
    // is left; then the running containers, one at a time (ct migrate). exit: the record goes;
    // with bring_back, the guests it moved come back (VMs live, containers by restart).
    // with_local_disks: VMs with disks only this host sees move with them copied (as `vm migrate
    // --with-local-disks`; exit --return copies them back); without it such a VM is a blocker.
    // reason: "" for an admin's; "host shutdown" when the HA shutdown policy "migrate" enters
    // it (HaService leaves such a maintenance after the next boot).
    nlohmann::json enter_maintenance(int parallel, bool with_local_disks, util::Progress& progress,
                                     const std::string& reason = "");
    void precheck_maintenance() const;  // 409 outside a cluster (before the task)
    nlohmann::json exit_maintenance(bool bring_back, util::Progress& progress);
    // The destination's side of a data stream: the path of socket `name` (one of the names a
    // migration makes) in the socket directory; 400 for anything else.
    std::string stream_socket(const std::string& name) const;
    // {host, maintenance: the record or null}
    nlohmann::json maintenance_status() const;
    // The running containers of this host (maintenance moves them after the VMs).
    void set_running_containers(std::function<std::vector<std::string>()> f) { running_cts_ = std::move(f); }

    // Containers: restart migration (shut down here, the root filesystem copied — or reattached
    // on a shared pool —, defined and started there, removed here). `shut_down` is the guest
    // layer's shutdown (request, wait, force).
    void set_containers(virt::CtManager& cts, std::function<void(const std::string&, util::Progress&)> shut_down) {
        cts_ = &cts;
        shut_down_ct_ = std::move(shut_down);
    }
    // Events of this host's event stream: "vm.migrate" / "ct.migrate" when a guest left
    // (data: to, ok, total_ms, downtime_ms, copied_disks, error); the destination's own
    // lifecycle event says it arrived ("started", reason "migrated").
    using Publish = std::function<void(const std::string& type, const std::string& target, const nlohmann::json& data)>;
    void set_publisher(Publish p) { publish_ = std::move(p); }
    // Migrations that left this host since hvd started, by kind ("vm", "ct"): GET /v1/metrics.
    struct Counters {
        std::uint64_t ok = 0, failed = 0;
        double seconds = 0, downtime_seconds = 0;  // of those that ended well
    };
    std::map<std::string, Counters> counters() const;
    // The destination's side of the CPU pre-flight (POST /v1/host/cpu-check): whether this
    // host's hypervisor can run `cpu` ({compatible, reason}).
    nlohmann::json check_cpu_here(const api::CpuSpec& cpu) const;
    api::MigrateReport check_ct(const std::string& ct, const api::MigrateRequest& rq) const;
    api::MigrateReport migrate_ct(const std::string& ct, const api::MigrateRequest& rq, util::Progress& progress);
    // The destination's side of a root filesystem copy (GET /v1/host/ct-rootfs): check()s
    // before the upgrade (4xx), then receive() on the upgraded connection (never throws).
    void check_rootfs_receive(const std::string& pool, const std::string& ct) const;
    void receive_rootfs(int fd, std::string pending, const std::string& pool, const std::string& ct);
    // The destination's side of an offline disk copy (GET /v1/host/volume-data): the volume
    // exists and no VM uses it (4xx before the upgrade); then its file is written from the
    // stream (never throws).
    api::VolumeInfo check_volume_receive(const std::string& pool, const std::string& name) const;
    void receive_volume(int fd, std::string pending, const std::string& pool, const std::string& name);

private:
    virt::VmManager& vms_;
    storage::PoolManager& pools_;
    cluster::Cluster& cluster_;
    Options opts_;
    std::mutex run_mu_;
    std::condition_variable run_cv_;
    bool stopping_ = false;
    std::thread recovery_;
    void recover_records();
    std::function<std::vector<std::string>()> running_cts_;
    virt::CtManager* cts_ = nullptr;
    Publish publish_;
    void check_cpu(const api::VmSpec& spec, const std::string& to, std::vector<std::string>& blockers) const;
    void announce(const std::string& kind, const std::string& name, const std::string& to, const api::MigrateReport* r,
                  const std::string& error) const;
    mutable std::mutex counters_mu_;
    mutable std::map<std::string, Counters> counters_;  // by kind
    std::function<void(const std::string&, util::Progress&)> shut_down_ct_;
};

}  // namespace hv::migrate
