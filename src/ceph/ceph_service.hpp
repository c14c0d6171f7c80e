// Hyperconverged Ceph (docs/ceph.md): hvd deploys Ceph's own daemons on the members of its hv
// cluster and keeps them running. Desired state is in the cluster store; each host's
// reconcile loop (triggered by a watch on /hv/ceph/, level-triggered, idempotent) makes its
// part true: ceph.conf and keyrings written, its monitor, manager and OSDs running, an hv
// storage pool (type rbd) for every Ceph pool hv made. Commands (init, mon/OSD/pool create)
// write the store with guarded transactions and do the host-local work as tasks.
//
// Store layout (/hv/ceph/):
//   config            {fsid, network, cluster_network, created, keys: {mon, admin, hv}}
//   mons/<node>       {name, host, address, state: creating|ready, created}
//   osds/<uuid>       {uuid, id (-1 until Ceph gave one), host, device, db_device, state, created}
//   pools/<name>      {name, size, min_size, pg_num, failure_domain, storage_pool, host, state, created}
//
// Invariants: a record in state "creating" belongs to a command running on its host; when no
// such command runs there (hvd was killed, the command failed), that host's reconcile undoes
// what it made (daemon stopped, Ceph's entry removed, local files removed) and deletes the
// record. Only "ready" records are run, listed and put into ceph.conf.
#pragma once

#include <memory>
#include <string>

#include "hv/api/ceph.hpp"
#include "hv/util/progress.hpp"

namespace hv::cluster {
class Cluster;
}
namespace hv::storage {
class PoolManager;
}

namespace hv::ceph {

struct CephOptions {
    std::string dir;    // <hvd state_dir>/ceph
    std::string node;   // this host's node name
    int osd_memory_target_mb = 1024;
    int mon_data_avail_warn = 30;  // percent
    int mon_timeout_s = 90;  // a new monitor reaches the quorum, an OSD comes up
};

class CephService {
public:
    CephService(CephOptions o, cluster::Cluster& cluster, storage::PoolManager& pools);
    ~CephService();
    CephService(const CephService&) = delete;
    CephService& operator=(const CephService&) = delete;

    // Starts the reconcile loop (it follows the membership: call membership_changed()).
    void start();
    void stop();
    void membership_changed();

    api::CephStatus init(const api::CephInit& in);
    // Fast 4xx before a task: the same checks the tasks start with.
    void precheck_mon() const;
    void precheck_osd(const api::CephOsdCreate& in) const;
    void precheck_pool(const api::CephPoolCreate& in) const;
    // Tasks (on this host).
    api::CephMon create_mon(util::Progress& p);
    api::CephOsd create_osd(const api::CephOsdCreate& in, util::Progress& p);
    api::CephPool create_pool(const api::CephPoolCreate& in, util::Progress& p);
    api::CephStatus status() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hv::ceph
