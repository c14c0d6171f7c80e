// Live and offline migration of VMs between members (docs/migration.md): the pre-flight
// checks, the libvirt tunnel through hvd's mutual TLS, libvirt's own migration
// (VmManager::migrate), and the hand-over of the guest's record in the cluster's directory.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hv/api/migrate.hpp"
#include "hv/util/progress.hpp"

namespace hv::cluster {
class Cluster;
}
namespace hv::storage {
class PoolManager;
}
namespace hv::virt {
class VmManager;
}

namespace hv::migrate {

class Migrator {
public:
    // run_dir: where the tunnels' Unix sockets are made (<state_dir>/run).
    Migrator(virt::VmManager& vms, storage::PoolManager& pools, cluster::Cluster& cluster, std::string run_dir);

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
    // is left. exit: the record goes; with bring_back, the VMs it moved come back (live).
    nlohmann::json enter_maintenance(int parallel, util::Progress& progress);
    void precheck_maintenance() const;  // 409 outside a cluster (before the task)
    nlohmann::json exit_maintenance(bool bring_back, util::Progress& progress);
    // {host, maintenance: the record or null}
    nlohmann::json maintenance_status() const;
    // The running containers of this host (they cannot move yet: blockers of maintenance).
    void set_running_containers(std::function<std::vector<std::string>()> f) { running_cts_ = std::move(f); }

private:
    virt::VmManager& vms_;
    storage::PoolManager& pools_;
    cluster::Cluster& cluster_;
    std::string run_dir_;
    std::function<std::vector<std::string>()> running_cts_;
};

}  // namespace hv::migrate
