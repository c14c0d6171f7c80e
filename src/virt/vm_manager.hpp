// VM lifecycle on libvirt, plus the state cache that makes `list` free of libvirt calls.
// Libvirt is the source of truth: the cache is rebuilt on every (re)connection and kept
// current by lifecycle events and after each operation. Operations on one VM are
// serialized by a per-VM lock; different VMs proceed concurrently.
// All methods block (libvirt calls): hvd calls them from worker threads, never the I/O thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "accel.hpp"
#include "connection.hpp"
#include "domain_state.hpp"
#include "port_hooks.hpp"
#include "hv/api/host.hpp"
#include "hv/api/snapshot.hpp"
#include "hv/api/vm.hpp"
#include "hv/storage/pool_manager.hpp"
#include "hv/util/named_locks.hpp"
#include "hv/util/progress.hpp"
#include "hv/util/serial_queue.hpp"
#include "hv/virt/domain_xml.hpp"

namespace hv::virt {

class VmManager {
public:
    struct Options : GuestManagerOptions {
        std::string accel = "auto";  // "auto" | "kvm" | "tcg"; resolved on each connection
        std::string serial_log_dir;  // per-VM serial console logs
    };
    using Publisher = GuestPublisher;  // "vm.lifecycle" events and the libvirt connection's state

    VmManager(Options opts, storage::PoolManager& pools, Publisher publish);
    ~VmManager();

    void start();
    Connection& connection() { return *conn_; }
    // True once connected and the cache was rebuilt after the latest (re)connection.
    bool ready() const { return ready_; }
    // Waits until ready() or the timeout; returns ready().
    bool wait_ready(std::chrono::milliseconds timeout) const;

    std::vector<api::VmInfo> list() const;           // cache only
    api::VmInfo get(const std::string& name) const;  // cache only
    std::size_t count(int* running) const;
    AccelChoice accel() const;
    // libvirt's and the hypervisor's versions ("9.0.0", "7.2.0"); connected false when down.
    struct Versions {
        bool connected = false;
        std::string libvirt, hypervisor;
    };
    Versions versions() const;

    api::VmInfo create(api::VmSpec spec, util::Progress& progress);

    // CPU models (docs/migration.md "CPU model"). host_cpu: what this host's hypervisor can
    // give a guest (the host-model of its domain capabilities, for this host's accelerator),
    // read once; nullopt when libvirt offers none. baseline_cpu: libvirt's baseline of `cpus`
    // for this host's hypervisor (migratable features only); 409 when there is none (CPUs of
    // different vendors). cpu_incompatibility: "" when this host can run `cpu`, else libvirt's
    // reason (the features it lacks).
    std::optional<api::CpuSpec> host_cpu();
    api::CpuSpec baseline_cpu(const std::vector<api::CpuSpec>& cpus);
    std::string cpu_incompatibility(const api::CpuSpec& cpu);
    // 409 naming libvirt's reason when this host cannot run a named model (other modes pass).
    void require_runnable_cpu(const api::CpuSpec& cpu);
    // The members' CPUs (host_cpu of each) in a cluster, empty outside one: create() gives a VM
    // whose request names no cpu (or "cluster") their baseline.
    void set_cluster_cpus(std::function<std::vector<api::CpuSpec>()> f) { cluster_cpus_ = std::move(f); }
    void remove(const std::string& name, bool purge, util::Progress& progress);
    api::VmInfo update(const std::string& name, const api::VmPatch& patch);
    // action: start|stop|reboot|reset|suspend|resume
    api::VmInfo action(const std::string& name, const std::string& action);
    // The steps of a shutdown (the wait with its timeout and force is guest::shutdown's, the
    // same for containers): the ACPI request (409 unless running or shutting down), whether
    // the domain still runs (asks libvirt), power off when it does (true when power was cut),
    // and the VmInfo re-read from libvirt.
    void request_shutdown(const std::string& name, util::Progress& progress);
    bool active(const std::string& name);
    bool power_off(const std::string& name);
    api::VmInfo refreshed(const std::string& name);

    // Moves the VM to the libvirtd at `uri` (docs/migration.md). live: libvirt's peer-to-peer
    // tunnelled migration (persistent there, undefined here), progress from the job stats,
    // cancel = abort (the VM runs on here). !live: a stopped VM's definition is defined there
    // and undefined here. Returns {total_ms, downtime_ms, transferred}.
    struct MigrateParams {
        std::string uri;  // the destination's libvirtd (through the tunnel)
        bool live = true;
        std::uint64_t bandwidth_mib = 0;
        int max_downtime_ms = 300;
        // Empty: the data travels in libvirt's connection (TUNNELLED). Else QEMU's own
        // stream ("unix:///..."), and the NBD server of copied disks (disks_uri).
        std::string migrate_uri;
        std::string disks_uri;
        // Disks copied by NBD mirror (live), or copied before (offline: the definition is
        // relocated): source path here -> path of the new volume there.
        std::map<std::string, std::string> copy_disks;
        bool postcopy = false;  // may switch to post-copy when it does not converge
        // A disk stays on a file pool the admin declared shared (--shared: NFS, CephFS...):
        // libvirt cannot tell such a filesystem apart and calls it unsafe; hv vouches for it.
        bool shared_files = false;
        int timeout_s = 0;      // abort after this long (0: never)
    };
    nlohmann::json migrate(const std::string& name, const MigrateParams& mp, util::Progress& progress);
    // HA (docs/ha.md): the persistent definition (inactive, with secrets' references) that
    // another host restarts the VM from, and the define of such a definition here (the same
    // uuid; its disks are on shared pools). define_from refuses a name that exists here.
    std::string definition(const std::string& name);
    api::VmInfo define_from(const std::string& name, const std::string& xml);

    // Disks and CD/DVD on an existing VM. Stopped VM: the persistent definition changes.
    // Running VM: hot-plug/unplug where the bus allows it (virtio, scsi), else 409 naming the bus.
    // attach_disk creates a new volume (size given) or attaches an existing one (volume/path),
    // exactly like a disk of `vm create`; a failed attach removes a volume it created.
    api::VmInfo attach_disk(const std::string& vm, api::DiskSpec disk, util::Progress& progress);
    // Removes the disk from the VM; purge also deletes the volume if hv created it with the VM.
    api::VmInfo detach_disk(const std::string& vm, const std::string& disk_name, bool purge);
    // NICs of an existing VM (vm_nics.cpp). Running VM: hot-plug/unplug (and the tap is
    // plugged into its VLANs at once); stopped: the persistent definition changes.
    api::VmInfo attach_nic(const std::string& vm, api::NicSpec nic);
    // vlan / trunks apply live (re-plug); bridge/network live too (libvirt moves the tap);
    // model and mtu need the VM stopped (409 otherwise).
    api::VmInfo update_nic(const std::string& vm, const std::string& nic_name, const api::NicPatch& patch);
    api::VmInfo detach_nic(const std::string& vm, const std::string& nic_name);
    // Inserts an ISO ("POOL:iso/NAME" or a pool ISO path) into the CD/DVD drive, or ejects with "".
    api::VmInfo set_cdrom(const std::string& vm, const std::string& iso);

    // Snapshots (vm_snapshots.cpp, docs/snapshots.md): libvirt internal snapshots of qcow2
    // disks, under the VM's operation lock. A VM with a disk that cannot (raw, rbd) is refused
    // with 501 naming the disk; a failed or cancelled create leaves no snapshot.
    std::vector<api::SnapshotInfo> snapshots(const std::string& vm);  // tree order
    api::SnapshotInfo snapshot(const std::string& vm, const std::string& snap);
    // The checks of create that need no lock (404 vm, 409 name taken / wrong state, 501 disks),
    // for a fast answer before a task exists; create_snapshot makes them again under the lock.
    void check_snapshot(const std::string& vm, const api::SnapshotCreate& rq);
    api::SnapshotInfo create_snapshot(const std::string& vm, const api::SnapshotCreate& rq, util::Progress& progress);
    // Memory snapshot: the VM resumes as it was (running, or paused unless `start`). Without
    // memory: the disks go back and the VM is stopped, or booted from them with `start`.
    api::VmInfo revert_snapshot(const std::string& vm, const std::string& snap, bool start, util::Progress& progress);
    // Deletes one snapshot (its children are kept, reparented to its parent), or with
    // `children` it and everything under it. Returns the names deleted.
    std::vector<std::string> delete_snapshot(const std::string& vm, const std::string& snap, bool children,
                                             util::Progress& progress);

    // Clone of a stopped hv VM or template (vm_clone.cpp): a new domain `dst` with a new uuid
    // and new MACs, every disk copied by its pool's clone operation into "<dst>-<disk>" (same
    // format and mode), or with `linked` (templates only) a linked clone of it
    // (StoragePool::link_volume). `pool` "" = each disk's own pool; another pool is refused
    // (501) for now. Nothing half-made: a failed or cancelled clone deletes the volumes it
    // made, an interrupted one is undone at the next start (one intent record).
    api::VmInfo clone(const std::string& src, const std::string& dst, const std::string& pool, bool linked,
                      util::Progress& progress);
    // Makes a stopped hv VM without snapshots a template (vm_clone.cpp): it is never started
    // again (409), its disks do not change (disk edits, snapshots: 409) and may be the base of
    // linked clones. One way, as Proxmox's `qm template`.
    api::VmInfo make_template(const std::string& name);
    // 409 when `spec` is a template's: `what` names the refused action.
    static void refuse_template(const api::VmSpec& spec, const char* what);

    // Image path -> VMs whose definition uses it (disks and CD/DVD), from the cache.
    // With `live`, also what running domains really have open (libvirt calls).
    std::map<std::string, std::vector<std::string>> image_users(bool live = false) const;

    // Throws unless the VM exists and is in one of the given states (for fast 409s before a task).
    void expect_state(const std::string& name, std::initializer_list<api::VmState> states, const char* verb) const;

private:
    api::VolumeRef volume_ref(const api::DiskSpec& d) const;
    class OpLock;
    // The "vm-domain" undo of interrupted creates (PoolManager::intents()).
    void register_undo();
    void on_lifecycle(const LifecycleEvent& ev);
    void on_connection(bool up);
    void rebuild_cache();
    // Re-reads one domain into the cache (erases it when gone). Returns the fresh entry if any.
    std::optional<api::VmInfo> refresh(const std::string& name);
    api::VmInfo read_domain(virDomainPtr d, const api::VmInfo* previous);
    void require_ready() const;
    void reconnected();
    void record_start(virDomainPtr d, std::int64_t when);
    // Plugs every bridge NIC of a running domain into its VLANs (ports.plug); throws the first
    // failure after trying all.
    void plug_nics(virDomainPtr d, const api::VmSpec& spec);
    DomainXmlOptions xml_options() const;
    // For vm_disks.cpp (defined in vm_manager.cpp): the per-VM operation lock as an opaque
    // guard, and the hv metadata writer (flags: VIR_DOMAIN_AFFECT_*).
    std::shared_ptr<void> op_lock(const std::string& name);
    // A device change of one hv-made VM: its lock held, the domain, its spec, whether it runs.
    struct DeviceEdit {
        std::shared_ptr<void> lock;
        DomainHandle dom;
        api::VmSpec spec;
        bool active = false;
    };
    DeviceEdit begin_edit(const std::string& vm);
    void write_spec(virDomainPtr d, const api::VmSpec& spec, unsigned flags);

    Options opts_;
    storage::PoolManager& pools_;
    Publisher publish_;
    std::unique_ptr<Connection> conn_;
    std::atomic<bool> ready_{false};
    mutable std::mutex ready_mu_;
    mutable std::condition_variable ready_cv_;
    void set_ready(bool r);
    mutable std::mutex accel_mu_;
    AccelChoice accel_;
    std::optional<std::optional<api::CpuSpec>> host_cpu_;  // under accel_mu_; outer: read yet
    std::function<std::vector<api::CpuSpec>()> cluster_cpus_;
    void resolve_cpu(api::VmSpec& spec, util::Progress& progress);

    mutable std::mutex cache_mu_;
    std::map<std::string, api::VmInfo> cache_;

    util::NamedLocks own_locks_;
    util::NamedLocks& locks_;

    // Lifecycle events are handed to one worker thread, in order.
    util::SerialQueue<LifecycleEvent> events_;
};

}  // namespace hv::virt
