// What VMs and containers share on the wire: their kind, their identity and their state.
// One name space holds both kinds (a VM and a container never share a name).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace hv::api {

// A QEMU VM or an LXC system container.
enum class GuestKind { vm, ct };

// The state of a guest of either kind, from libvirt's domain state.
enum class GuestState { stopped, running, paused, suspended, shutting_down, crashed, unknown };

// Which guest: its kind, libvirt uuid (empty while unknown) and name.
struct GuestRef {
    GuestKind kind = GuestKind::vm;
    std::string uuid;
    std::string name;
};

// "vm" | "ct": the URL noun (/v1/vms, /v1/cts), event targets ("vm/NAME", "ct/NAME") and the
// `kind` of guest.lifecycle events.
const char* kind_name(GuestKind k);
// "vm" | "container": the word in messages ("container 'c1' does not exist") and the "type"
// field of mixed lists (autostart reports).
const char* kind_noun(GuestKind k);
// "VM(s)" | "container(s)": counts in log lines ("2 VM(s), 1 container(s)").
const char* kind_counted(GuestKind k);
// "vm/NAME" | "ct/NAME": the target of the guest's events and tasks.
std::string guest_target(GuestKind k, const std::string& name);
// "vm" -> vm, "ct" or "container" -> ct; invalid_input otherwise.
GuestKind guest_kind_from_string(const std::string& s);

std::string to_string(GuestState s);
GuestState guest_state_from_string(const std::string& s);
void to_json(nlohmann::json& j, GuestState v);
void to_json(nlohmann::json& j, GuestKind k);
void to_json(nlohmann::json& j, const GuestRef& r);

}  // namespace hv::api
