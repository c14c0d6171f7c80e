// Libvirt domain states and lifecycle events in hv's terms, for VMs and containers alike.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>
#include <utility>

#include <libvirt/libvirt.h>

#include "connection.hpp"
#include "port_hooks.hpp"
#include "hv/api/vm.hpp"
#include "hv/util/log_context.hpp"
#include "hv/util/named_locks.hpp"

namespace hv::virt {

api::VmState map_state(int libvirt_state);
// "booted", "destroyed", ... ("" when hv has no name for the reason).
std::string map_reason(int libvirt_state, int reason);
// "started", "stopped", ... for a VIR_DOMAIN_EVENT_*.
const char* event_name(int libvirt_event);
// Running, paused, shutting down or suspended: a process exists.
bool is_active(api::VmState s);
// (state, reason) of a domain straight from libvirt; throws on failure.
std::pair<int, int> domain_state(virDomainPtr d);
// Whether the domain's process exists now (virDomainIsActive: also a crashed domain kept for
// inspection); the device changes of vm_disks decide hot or cold by it.
bool domain_active(virDomainPtr d);
// Whether its state is an active one (running, paused, shutting down, suspended: is_active);
// what a shutdown waits on.
bool domain_running(virDomainPtr d);
// The domain's state when it is one of `ok`; else 409 "cannot <verb> <noun> '<name>': it is <state>".
api::GuestState require_state(virDomainPtr d, std::initializer_list<api::GuestState> ok, const char* verb,
                              const char* noun, const std::string& name);
// Powers the domain off when domain_running; true when it did. `what` names it in errors ("vm 'web01'").
bool destroy_if_active(virDomainPtr d, const std::string& what);

// The undo of a create that was interrupted after it defined a domain (its intent record
// {name, uuid}): the domain is undefined (with `undefine_flags`) when it is still the one that
// create made (the same uuid) and does not run; returns what was done ("undefined vm web01
// (uuid ...)", "kept ... : it is running<kept_hint>"), and the domain's current name in
// *undefined when it undefined one. `noun`: "vm" | "container".
std::vector<std::string> undefine_made_domain(const Connection& conn, const std::string& name, const std::string& uuid,
                                              const char* noun, unsigned undefine_flags, const char* kept_hint,
                                              std::string* undefined);

// What both guest managers (VmManager, CtManager) are configured with and publish through.
struct GuestManagerOptions {
    Connection::Options connection;
    // A second caller of one guest waits this long for its operation lock, then gets 409 busy.
    std::chrono::milliseconds lock_wait{5000};
    // How guest NICs on bridges (VM taps, container veths) get exactly their VLANs (hvd:
    // NetManager). Unset = nothing done.
    PortHooks ports;
    // The per-name operation locks, shared across kinds (guest::Guests). Unset: the manager's own.
    util::NamedLocks* locks = nullptr;
};
// publish(type, target, data): how lifecycle changes leave a manager ("vm.lifecycle",
// "ct.lifecycle"; guest::Guests::publisher adds "guest.lifecycle").
using GuestPublisher = std::function<void(const std::string&, const std::string&, const nlohmann::json&)>;

// The operation lock of one guest (VmManager, CtManager: one per name across kinds) and the
// log field of the kind (VM=, CT=) on this thread's records while it is held.
class GuestOpLock {
public:
    GuestOpLock(util::NamedLocks& locks, const std::string& name, std::chrono::milliseconds wait, const char* noun,
                const char* log_field)
        : guard_(locks.lock(name, wait, noun)), scope_({{log_field, name}}) {}

private:
    util::NamedLocks::Guard guard_;
    util::LogScope scope_;
};

// What every kind reads the same way from its domain: name, uuid, state and reason, and the
// spec from hv's metadata under `ns` (`parse` makes the kind's spec of it). A domain without
// that metadata (not made by hv) gets cpus and memory from libvirt and managed = false.
template <class Info, class Parse>
void read_guest_domain(virDomainPtr d, const char* ns, Info& info, Parse parse) {
    const char* name = virDomainGetName(d);
    if (!name) throw_libvirt_error("cannot read a domain name");
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    if (virDomainGetUUIDString(d, uuid) == 0) info.uuid = uuid;
    auto [st, reason] = domain_state(d);
    info.state = map_state(st);
    info.reason = map_reason(st, reason);
    std::optional<decltype(info.spec)> spec;
    if (virDomainIsPersistent(d) == 1)
        if (auto md = get_metadata(d, ns, VIR_DOMAIN_AFFECT_CONFIG)) spec = parse(*md);
    info.managed = spec.has_value();
    if (spec) {
        info.spec = std::move(*spec);
    } else {
        virDomainInfo di{};
        if (virDomainGetInfo(d, &di) < 0) throw_libvirt_error("cannot read domain info");
        info.spec.cpus = static_cast<int>(di.nrVirtCpu);
        info.spec.memory = static_cast<std::uint64_t>(di.maxMem) * 1024;
    }
    info.spec.name = name;
}

// A PATCH (cpus, memory, description, tags; a VM's cpu) applied to a guest spec (VmSpec,
// CtSpec), validated.
template <class Spec>
Spec apply_patch(Spec spec, const api::VmPatch& patch) {
    if constexpr (requires { spec.cpu; })
        if (patch.cpu) spec.cpu = *patch.cpu;
    if (patch.cpus) spec.cpus = *patch.cpus;
    if (patch.memory) spec.memory = *patch.memory;
    if (patch.description) spec.description = *patch.description;
    if (patch.tags) spec.tags = *patch.tags;
    validate(spec);  // found by ADL in hv::api (VmSpec, CtSpec)
    return spec;
}

}  // namespace hv::virt
