#include "hv/api/guest.hpp"

#include "hv/error.hpp"

namespace hv::api {

const char* kind_name(GuestKind k) { return k == GuestKind::ct ? "ct" : "vm"; }
const char* kind_noun(GuestKind k) { return k == GuestKind::ct ? "container" : "vm"; }
const char* kind_counted(GuestKind k) { return k == GuestKind::ct ? "container(s)" : "VM(s)"; }
std::string guest_target(GuestKind k, const std::string& name) { return std::string(kind_name(k)) + "/" + name; }

GuestKind guest_kind_from_string(const std::string& s) {
    if (s == "vm") return GuestKind::vm;
    if (s == "ct" || s == "container") return GuestKind::ct;
    fail(Errc::invalid_input, "guest kind '{}' is not one of vm, ct", s);
}

std::string to_string(GuestState s) {
    switch (s) {
        case GuestState::stopped: return "stopped";
        case GuestState::running: return "running";
        case GuestState::paused: return "paused";
        case GuestState::suspended: return "suspended";
        case GuestState::shutting_down: return "shutting_down";
        case GuestState::crashed: return "crashed";
        case GuestState::unknown: break;
    }
    return "unknown";
}

GuestState guest_state_from_string(const std::string& s) {
    for (auto v : {GuestState::stopped, GuestState::running, GuestState::paused, GuestState::suspended,
                   GuestState::shutting_down, GuestState::crashed})
        if (to_string(v) == s) return v;
    return GuestState::unknown;
}

void to_json(nlohmann::json& j, GuestState v) { j = to_string(v); }
void to_json(nlohmann::json& j, GuestKind k) { j = kind_name(k); }
void to_json(nlohmann::json& j, const GuestRef& r) { j = {{"kind", kind_name(r.kind)}, {"uuid", r.uuid}, {"name", r.name}}; }

}  // namespace hv::api
