// Libvirt domain states and lifecycle events in hv's terms, for VMs and containers alike.
#pragma once

#include <chrono>
#include <string>
#include <utility>

#include <libvirt/libvirt.h>

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
// Whether the domain's process exists now (asks libvirt).
bool domain_active(virDomainPtr d);
// Powers the domain off when it runs; true when it did. `what` names it in errors ("vm 'web01'").
bool destroy_if_active(virDomainPtr d, const std::string& what);

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

// A PATCH (cpus, memory, description, tags) applied to a guest spec (VmSpec, CtSpec), validated.
template <class Spec>
Spec apply_patch(Spec spec, const api::VmPatch& patch) {
    if (patch.cpus) spec.cpus = *patch.cpus;
    if (patch.memory) spec.memory = *patch.memory;
    if (patch.description) spec.description = *patch.description;
    if (patch.tags) spec.tags = *patch.tags;
    api::validate(spec);
    return spec;
}

}  // namespace hv::virt
