// System containers on libvirt's LXC driver (docs/containers.md): a second libvirt connection
// (lxc:///system) next to VmManager's, the same states, tasks and errors as VMs.
// Libvirt is the source of truth: the whole CtSpec lives in the domain's metadata
// (kCtMetadataNs). Unlike VmManager there is no state cache: `list` asks libvirt (LXC hosts
// carry few containers and libvirt answers an LXC list in about a millisecond).
// Operations on one container are serialized by a per-container lock (409 busy after 5 s).
// All methods block (libvirt calls): hvd calls them from worker threads, never the I/O thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "connection.hpp"
#include "domain_state.hpp"
#include "console.hpp"
#include "port_hooks.hpp"
#include "hv/api/ct.hpp"
#include "hv/storage/pool_manager.hpp"
#include "hv/util/named_locks.hpp"
#include "hv/util/progress.hpp"
#include "hv/util/serial_queue.hpp"

namespace hv::storage {
class TemplateStore;
}

namespace hv::virt {

class CtManager {
public:
    // connection.kind is set to "container"; bridge NICs: the host side of each veth gets
    // exactly the NIC's VLANs, as VM taps do.
    using Options = GuestManagerOptions;
    // "ct.lifecycle" events ("ct/<name>": event, state and reason as a VM's).
    using Publisher = GuestPublisher;

    CtManager(Options opts, storage::PoolManager& pools, storage::TemplateStore& templates, Publisher publish);
    ~CtManager();

    void start();
    Connection& connection() { return *conn_; }

    std::vector<api::CtInfo> list() const;
    api::CtInfo get(const std::string& name) const;
    // True when a container of that name exists (throws unavailable when libvirt is down).
    bool exists(const std::string& name) const;

    // Unpacks the template into <pool>/images/<name>.rootfs and defines the domain; a failure
    // removes what was made.
    api::CtInfo create(api::CtSpec spec, util::Progress& progress);
    // Refused (409) while running. Removes the root filesystem with the domain.
    void remove(const std::string& name, util::Progress& progress);
    // cpus/memory apply to the definition and, while running, to the live cgroup limits.
    api::CtInfo update(const std::string& name, const api::CtPatch& patch);
    // action: start|stop|reboot
    api::CtInfo action(const std::string& name, const std::string& action);
    // The steps of a shutdown (guest::shutdown waits, with the timeout and force): init asked
    // to stop (SIGTERM / initctl; 409 unless running), whether it still runs, a hard stop
    // when it does (true when it did).
    void request_shutdown(const std::string& name, util::Progress& progress);
    bool active(const std::string& name);
    bool power_off(const std::string& name);
    // Runs argv inside the running container (its namespaces and cgroups, as root of the
    // container) and returns its exit code and output (each capped at 4 MiB).
    api::ExecResult exec(const std::string& name, const std::vector<std::string>& argv, int timeout_s);

    // The console of a running container (its /dev/console), ready to be attached to a
    // client's socket. 409 when not running, or when another session holds it and !force.
    std::shared_ptr<ConsoleStream> open_console(const std::string& name, bool force);

    // Restart migration (docs/migration.md). The stopped container's definition (with hv's
    // metadata), for another host; `rootfs_to`: the path of its root filesystem there (""
    // keeps it: a shared pool), put in the <source> and the metadata.
    std::string definition_for(const std::string& name, const std::string& rootfs_to) const;
    // Once it is defined elsewhere: the domain goes, the root filesystem stays (a shared pool).
    void forget(const std::string& name);
    // Defines / undefines a container on the libvirtd at `uri` (another host's, through hvd's
    // tunnel).
    static void define_remote(const std::string& uri, const std::string& xml);
    static void undefine_remote(const std::string& uri, const std::string& name);

    // Throws unless the container exists and is in one of the given states (fast 409s).
    void expect_state(const std::string& name, std::initializer_list<api::GuestState> states, const char* verb) const;

private:
    class OpLock;
    // The "ct-domain" undo of interrupted creates (PoolManager::intents()).
    void register_undo();
    api::CtInfo read_domain(virDomainPtr d) const;
    // Plugs the bridge NICs of a running container (ports.plug); throws the first failure.
    void plug_nics(virDomainPtr d, const api::CtSpec& spec);
    // Starts the domain and plugs its NICs; a plug failure stops it again and throws.
    void start_and_plug(virDomainPtr d, const std::string& name);
    // Lifecycle events are handled on the events_ worker (never on libvirt's event thread):
    // a started container's NICs are plugged (every running one after a (re)connection, an
    // event with an empty name), then the event is published with the state libvirt reports.
    void on_events(const std::vector<LifecycleEvent>& batch);

    Options opts_;
    storage::PoolManager& pools_;
    storage::TemplateStore& templates_;
    Publisher publish_;
    std::unique_ptr<Connection> conn_;
    util::NamedLocks own_locks_;
    util::NamedLocks& locks_;

    util::SerialQueue<LifecycleEvent> events_;
};

// PID of the container's init, given the LXC domain id (libvirt's controller process): the
// controller's only child. 0 when not found. `proc` is the procfs root (tests use fixtures).
std::int64_t lxc_init_pid(std::int64_t domain_id, const std::string& proc = "/proc");

}  // namespace hv::virt
