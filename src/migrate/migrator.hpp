// Live and offline migration of VMs between members (docs/migration.md): the pre-flight
// checks, the libvirt tunnel through hvd's mutual TLS, libvirt's own migration
// (VmManager::migrate), and the hand-over of the guest's record in the cluster's directory.
#pragma once

#include <string>

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

private:
    virt::VmManager& vms_;
    storage::PoolManager& pools_;
    cluster::Cluster& cluster_;
    std::string run_dir_;
};

}  // namespace hv::migrate
