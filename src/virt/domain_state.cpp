#include "domain_state.hpp"

#include "connection.hpp"

#include <fmt/format.h>

namespace hv::virt {
using api::VmState;

VmState map_state(int s) {
    switch (s) {
        case VIR_DOMAIN_RUNNING:
        case VIR_DOMAIN_BLOCKED: return VmState::running;
        case VIR_DOMAIN_PAUSED: return VmState::paused;
        case VIR_DOMAIN_SHUTDOWN: return VmState::shutting_down;
        case VIR_DOMAIN_SHUTOFF: return VmState::stopped;
        case VIR_DOMAIN_CRASHED: return VmState::crashed;
        case VIR_DOMAIN_PMSUSPENDED: return VmState::suspended;
        default: return VmState::unknown;
    }
}

std::string map_reason(int state, int reason) {
    switch (state) {
        case VIR_DOMAIN_RUNNING:
            switch (reason) {
                case VIR_DOMAIN_RUNNING_BOOTED: return "booted";
                case VIR_DOMAIN_RUNNING_MIGRATED: return "migrated";
                case VIR_DOMAIN_RUNNING_RESTORED: return "restored";
                case VIR_DOMAIN_RUNNING_FROM_SNAPSHOT: return "from_snapshot";
                case VIR_DOMAIN_RUNNING_UNPAUSED: return "unpaused";
                case VIR_DOMAIN_RUNNING_WAKEUP: return "wakeup";
                case VIR_DOMAIN_RUNNING_CRASHED: return "crashed";
                default: return "";
            }
        case VIR_DOMAIN_PAUSED:
            switch (reason) {
                case VIR_DOMAIN_PAUSED_USER: return "user";
                case VIR_DOMAIN_PAUSED_IOERROR: return "io_error";
                case VIR_DOMAIN_PAUSED_SHUTTING_DOWN: return "shutting_down";
                case VIR_DOMAIN_PAUSED_CRASHED: return "crashed";
                case VIR_DOMAIN_PAUSED_STARTING_UP: return "starting_up";
                default: return "";
            }
        case VIR_DOMAIN_SHUTOFF:
            switch (reason) {
                case VIR_DOMAIN_SHUTOFF_SHUTDOWN: return "shutdown";
                case VIR_DOMAIN_SHUTOFF_DESTROYED: return "destroyed";
                case VIR_DOMAIN_SHUTOFF_CRASHED: return "crashed";
                case VIR_DOMAIN_SHUTOFF_FAILED: return "failed";
                case VIR_DOMAIN_SHUTOFF_SAVED: return "saved";
                case VIR_DOMAIN_SHUTOFF_MIGRATED: return "migrated";
                case VIR_DOMAIN_SHUTOFF_DAEMON: return "daemon";
                default: return "";
            }
        default: return "";
    }
}

const char* event_name(int e) {
    switch (e) {
        case VIR_DOMAIN_EVENT_DEFINED: return "defined";
        case VIR_DOMAIN_EVENT_UNDEFINED: return "undefined";
        case VIR_DOMAIN_EVENT_STARTED: return "started";
        case VIR_DOMAIN_EVENT_SUSPENDED: return "suspended";
        case VIR_DOMAIN_EVENT_RESUMED: return "resumed";
        case VIR_DOMAIN_EVENT_STOPPED: return "stopped";
        case VIR_DOMAIN_EVENT_SHUTDOWN: return "shutdown";
        case VIR_DOMAIN_EVENT_PMSUSPENDED: return "pmsuspended";
        case VIR_DOMAIN_EVENT_CRASHED: return "crashed";
        default: return "unknown";
    }
}

bool is_active(VmState s) {
    return s == VmState::running || s == VmState::paused || s == VmState::shutting_down || s == VmState::suspended;
}

std::pair<int, int> domain_state(virDomainPtr d) {
    int st = 0, reason = 0;
    if (virDomainGetState(d, &st, &reason, 0) < 0) throw_libvirt_error("cannot read state");
    return {st, reason};
}

api::GuestState require_state(virDomainPtr d, std::initializer_list<api::GuestState> ok, const char* verb,
                              const char* noun, const std::string& name) {
    auto s = map_state(domain_state(d).first);
    for (auto o : ok)
        if (s == o) return s;
    fail(Errc::conflict, "cannot {} {} '{}': it is {}", verb, noun, name, api::to_string(s));
}

bool domain_active(virDomainPtr d) {
    int a = virDomainIsActive(d);
    if (a < 0) throw_libvirt_error("cannot read the state of a domain");
    return a == 1;
}

bool domain_running(virDomainPtr d) { return is_active(map_state(domain_state(d).first)); }

bool destroy_if_active(virDomainPtr d, const std::string& what) {
    if (!domain_running(d)) return false;
    if (virDomainDestroy(d) < 0) throw_libvirt_error("cannot power off " + what);
    return true;
}

std::vector<std::string> undefine_made_domain(const Connection& conn, const std::string& name, const std::string& uuid,
                                              const char* noun, unsigned undefine_flags, const char* kept_hint,
                                              std::string* undefined) {
    auto found = conn.domain_by_uuid(uuid, name);
    if (!found) return {};
    auto& dom = *found;
    const char* now = virDomainGetName(dom.get());
    std::string current = now ? now : name;
    auto state = map_state(domain_state(dom.get()).first);
    if (is_active(state))
        return {fmt::format("kept {} {} (uuid {}): it is {}{}", noun, current, uuid, api::to_string(state), kept_hint)};
    if (virDomainUndefineFlags(dom.get(), undefine_flags) < 0)
        throw_libvirt_error(fmt::format("cannot undefine {} '{}'", noun, current));
    if (undefined) *undefined = current;
    return {fmt::format("undefined {} {} (uuid {})", noun, current, uuid)};
}

}  // namespace hv::virt
