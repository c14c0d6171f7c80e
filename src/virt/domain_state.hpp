// Libvirt domain states and lifecycle events in hv's terms, for VMs and containers alike.
#pragma once

#include <string>
#include <utility>

#include <libvirt/libvirt.h>

#include "hv/api/vm.hpp"

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

}  // namespace hv::virt
