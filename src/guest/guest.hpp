// The guest layer: VMs and containers behind one interface (docs/architecture.md).
//
// `GuestDriver` is what every kind offers (state, info, start/stop/reboot, the steps of a
// shutdown, update, delete, metadata, the readiness gates of autostart); `virt::VmManager`
// and `virt::CtManager` stand behind it through VmDriver and CtDriver (vm_driver.cpp,
// ct_driver.cpp). `Guests` holds the drivers, the one name space (a create claims its name
// across kinds, so a VM and a container of one name can never both be made), the one
// operation lock per name across kinds, the lifecycle engine (`shutdown`: request, wait with
// timeout, force) and the lifecycle events (`guest.lifecycle`, with kind, state and reason).
// Kind-specific features (VM disks, NICs, CD-ROM, VNC; container exec, console, templates)
// stay with their managers. Autostart (autostart_service.hpp) and the routes reach guests
// only through this layer; HA restart and placement plug in here next.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hv/api/guest.hpp"
#include "hv/api/vm.hpp"
#include "hv/util/named_locks.hpp"
#include "hv/util/progress.hpp"

namespace hv::guest {

using api::GuestKind;
using api::GuestRef;
using api::GuestState;

struct GuestStatus {
    GuestRef ref;
    GuestState state = GuestState::unknown;
    std::string reason;
    bool managed = true;
};

// How a kind words the steps of a shutdown in task logs and errors.
struct ShutdownWords {
    const char* requested;  // "ACPI shutdown requested"
    const char* waiting;    // "waiting for the guest to power off"
    const char* force;      // "power it off" (the --force hint)
    const char* forcing;    // "powering off"
    const char* forced;     // "powered off after timeout"
    const char* done;       // "guest powered off"
};

class GuestDriver {
public:
    virtual ~GuestDriver() = default;
    virtual GuestKind kind() const = 0;
    // Waits up to `timeout` for the kind's libvirt connection; true when it is up.
    virtual bool wait_connected(std::chrono::milliseconds timeout) = 0;

    // Every guest of this kind; throws unavailable when its libvirt connection is down.
    virtual std::vector<GuestStatus> list() = 0;
    // nullopt when there is no guest of this kind with that name (unavailable when down).
    virtual std::optional<GuestStatus> find(const std::string& name) = 0;
    // The wire objects (VmInfo, CtInfo) of GET /v1/{vms,cts} and GET /v1/{vms,cts}/{name}.
    virtual nlohmann::json list_json() = 0;
    virtual nlohmann::json info(const std::string& name) = 0;

    // The actions of POST /v1/{vms,cts}/{name}/{action}: start, stop, reboot and the kind's own.
    virtual const std::vector<std::string>& actions() const = 0;
    virtual nlohmann::json action(const std::string& name, const std::string& action) = 0;
    // cpus, memory, description, tags.
    virtual nlohmann::json update(const std::string& name, const api::VmPatch& patch) = 0;
    // Deletes the guest (stopped); purge: also volumes hv made with it (containers: the
    // root filesystem always goes). Returns the task result.
    virtual nlohmann::json remove(const std::string& name, bool purge, util::Progress& p) = 0;

    // The steps of a shutdown, for the lifecycle engine (guest::shutdown).
    virtual void request_shutdown(const std::string& name, util::Progress& p) = 0;
    virtual bool active(const std::string& name) = 0;
    virtual bool power_off(const std::string& name) = 0;
    virtual nlohmann::json settled_info(const std::string& name) = 0;  // after a state change
    virtual ShutdownWords shutdown_words() const = 0;

    // hv's metadata elements in the domain (autostart settings): the element text of
    // namespace `ns`, nullopt when absent; set_metadata writes the element (config, and live
    // while running).
    virtual std::optional<std::string> metadata(const std::string& name, const std::string& ns) = 0;
    virtual void set_metadata(const std::string& name, const std::string& ns, const std::string& prefix,
                              const std::string& element) = 0;
    // One poll of a readiness gate ("running", "guest-agent", "tcp:PORT"); false when not
    // (yet) ready or the kind has no such gate.
    virtual bool ready(const std::string& name, const std::string& wait_for) = 0;
    // Whether a create of another kind must wait for this kind's libvirt: a name this kind
    // may hold cannot be checked while it is down (VMs: yes; containers: no, VMs never wait
    // on the LXC driver).
    virtual bool required_for_claims() const = 0;

    // Images of the pools this kind's guests use: path -> users as the pools name them in
    // messages ("web01" for a VM, "container c1"). With `live`, also what running guests
    // really have open.
    virtual std::map<std::string, std::vector<std::string>> image_users(bool live) = 0;
    // The guest's name when `user` is one of this kind's image_users() labels.
    virtual std::optional<std::string> user_name(const std::string& user) const = 0;
    // Lets go of the image (`volume delete --force`): a VM ejects it or detaches the disk;
    // a container cannot let go of its root filesystem (409).
    virtual void release_image(const std::string& name, const std::string& path) = 0;
};

// publish(type, target, data): the event bus.
using Publisher = std::function<void(const std::string&, const std::string&, const nlohmann::json&)>;

class Guests {
public:
    explicit Guests(Publisher publish) : publish_(std::move(publish)) {}

    // Drivers are added once at start (VMs first), before any request.
    void add(GuestDriver& d);
    // 503 when the kind is not served by this hvd.
    GuestDriver& driver(GuestKind k) const;
    const std::vector<GuestDriver*>& drivers() const { return drivers_; }

    // The operation locks (one per name across kinds), for the managers' Options::locks.
    util::NamedLocks& locks() { return locks_; }

    // A create's hold on its name, from before its task is queued until it ends: refused (409)
    // while the name is held by another create or used by a guest of any kind. A kind whose
    // libvirt connection is down cannot be asked: the claim is refused (503) for that kind
    // itself and let through for the other (VMs never wait on the LXC driver); that kind's
    // own create then checks its libvirt again.
    class Claim {
    public:
        Claim(Guests& g, std::string name) : g_(g), name_(std::move(name)) {}
        ~Claim();
        Claim(const Claim&) = delete;
        Claim& operator=(const Claim&) = delete;
        const std::string& name() const { return name_; }

    private:
        friend class Guests;
        Guests& g_;
        std::string name_;
        bool directory_ = false;
    };
    std::shared_ptr<Claim> claim(GuestKind kind, const std::string& name);

    // The cluster's guest directory (src/cluster): names are unique across hosts, and lists
    // show the guests of every host. Absent (a host in no cluster): everything is local.
    class Directory {
    public:
        virtual ~Directory() = default;
        // Claims the name in the whole cluster (409 naming the host that has it; 503 without
        // quorum); end_claim when the create ended either way. No-ops outside a cluster.
        virtual void claim(GuestKind kind, const std::string& name) = 0;
        virtual void end_claim(const std::string& name) = 0;
        // This host's node name ("" outside a cluster) and the wire objects of the guests of
        // this kind on the other hosts, each with "host" (and "stale" when that host is offline).
        virtual std::string self() const = 0;
        virtual nlohmann::json others(GuestKind kind) const = 0;
        // A create or a move of the name runs on this host (a migration: the guest is on
        // neither host, or on both).
        virtual bool held(const std::string& name) const = 0;
    };
    // Set once at start, before any request.
    void set_directory(Directory* d) { directory_ = d; }
    // What an admin asks of a guest through the API (an action: start, stop, reboot, ...; or
    // "shutdown"), told before it is done: HA records a requested stop, so its agent does not
    // start the guest again, and a requested start; and "deleted", told after a delete: HA
    // lets the guest go. Set once at start.
    using RequestHook = std::function<void(GuestKind, const std::string& name, const std::string& action)>;
    void set_request_hook(RequestHook h) { request_hook_ = std::move(h); }
    // Every request but "deleted" is refused (409) while the guest moves to another host
    // (expect_not_moving), before the hook hears of it.
    void requested(GuestKind k, const std::string& name, const std::string& action) const {
        if (action != "deleted") expect_not_moving(k, name);
        if (request_hook_) request_hook_(k, name, action);
    }
    // 409 while a migration of the guest runs here: a `ct start` during a container's move
    // would make a second copy; a change or a delete would be lost on the way.
    void expect_not_moving(GuestKind k, const std::string& name) const;
    // GET /v1/{vms,cts}: this host's guests of the kind, and in a cluster the other hosts' too.
    nlohmann::json list_json(GuestDriver& d) const;

    // The publisher a manager gets: its events pass unchanged, and each "<kind>.lifecycle"
    // event is also published as "guest.lifecycle" with the kind and name added.
    Publisher publisher(GuestKind k);

    // Every kind's image users (PoolManager::set_users); a kind that cannot be asked is
    // left out with a warning.
    std::map<std::string, std::vector<std::string>> image_users(bool live) const;
    // Each user (an image_users() label) lets go of the image; returns the users' names.
    std::vector<std::string> release_image(const std::vector<std::string>& users, const std::string& path) const;

    // 409 unless the guest is in one of `states` (fast answers before a task is queued).
    void expect_state(GuestKind k, const std::string& name, std::initializer_list<GuestState> states,
                      const char* verb) const;

private:
    friend class Claim;
    Publisher publish_;
    Directory* directory_ = nullptr;
    RequestHook request_hook_;
    std::vector<GuestDriver*> drivers_;
    util::NamedLocks locks_;
    std::mutex claims_mu_;
    std::map<std::string, GuestKind> claims_;  // name -> the kind being created
};

// The lifecycle engine's shutdown, the same for every kind: the guest is asked to stop
// (ACPI, init), then polled up to timeout_s; at the timeout it is powered off when `force`,
// else the task fails with timeout. The wait holds no lock, so a stop can cut in; a cancel
// ends the wait and leaves the guest running. Returns the guest's info; *forced tells
// whether power was cut.
nlohmann::json shutdown(GuestDriver& d, const std::string& name, int timeout_s, bool force, util::Progress& p,
                        bool* forced);

}  // namespace hv::guest
