// Autostart: per-guest settings, host settings, dependency checks and the scheduler that starts
// guests (VMs and containers) in order after a host boot (and stops them in reverse at host
// shutdown). VMs and containers share one name space, so the scheduler is keyed by name alone;
// only the driver tells the kinds apart.
//
// Everything here is pure: time and guests are reached only through AutostartDriver, so unit
// tests run the scheduler on a fake clock and `hvctl autostart plan` runs it on a simulated
// driver. The driver over the guest layer lives in autostart_service.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hv/api/guest.hpp"

namespace hv::guest::autostart {

// What a guest is: a QEMU VM or an LXC container (the guest layer's kind).
using Kind = api::GuestKind;
// Log label: "vm NAME" | "ct NAME".
std::string label(Kind k, const std::string& name);

// Stored per guest in the domain's metadata (namespace kNs, the same for VMs and containers),
// set by PUT /v1/vms/{name}/autostart or PUT /v1/cts/{name}/autostart.
struct Settings {
    bool enabled = false;
    // Start group, ascending; 0 = unordered (started after every ordered group). Example: 2.
    int order = 0;
    // Seconds after this VM is ready before the next order group starts. Example: 30.
    int up = 0;
    // Seconds the guest gets to shut down through ACPI before it is powered off. Example: 120.
    int down = 120;
    // Readiness gate: "none" | "running" | "guest-agent" | "tcp:PORT". Example: "tcp:22".
    // Containers: no "guest-agent" (no QEMU agent); "tcp:PORT" connects inside the container's
    // network namespace.
    std::string wait_for = "running";
    // Seconds to wait for the gate before the VM counts as failed. Example: 300.
    int wait_timeout = 300;
    // Guests (VMs or containers) that must be ready before this one starts (any order group).
    // Example: ["db01"].
    std::vector<std::string> after;
};

inline constexpr const char* kNs = "http://hv.dev/xmlns/autostart/1";
inline constexpr const char* kPrefix = "hvautostart";

// Host-wide settings: config file [autostart] keys, overridden by PUT /v1/autostart/host
// (persisted in <state_dir>/autostart-host.json).
struct HostSettings {
    int boot_delay = 10;    // seconds after hvd starts (at host boot) before the first start
    int max_parallel = 4;   // VMs starting (not yet ready) at the same time
    int retries = 2;        // extra start attempts after a failed start
    int retry_delay = 10;   // seconds between attempts
};

void to_json(nlohmann::json& j, const Settings& s);
void to_json(nlohmann::json& j, const HostSettings& s);
// Strict (unknown fields -> invalid_input); `base` fills the fields that are absent (PATCH-like).
Settings settings_from_json(const nlohmann::json& j, const Settings& base = {});
HostSettings host_settings_from_json(const nlohmann::json& j, const HostSettings& base = {});
// `kind`: a container refuses the guest-agent gate.
void validate(const Settings& s, const std::string& name, Kind kind = Kind::vm);
void validate(const HostSettings& h);

// Port of "tcp:PORT", 0 for other gates.
int tcp_port(const std::string& wait_for);

// Throws conflict naming the cycle ("a -> b -> a") when the `after` graph of the enabled guests
// has one; dependencies on unknown or disabled guests -> invalid_input. allow_missing: names that
// are not in `vms` at all are let through (containers while the LXC connection is down);
// run_start fails the guests that depend on them.
void check_dependencies(const std::map<std::string, Settings>& vms, bool allow_missing = false);

// What the scheduler needs from the world. All times are seconds on the driver's clock.
class AutostartDriver {
public:
    virtual ~AutostartDriver() = default;
    virtual double now() = 0;
    // Sleeps until `t` (or less: the scheduler re-checks).
    virtual void sleep_until(double t) = 0;
    // True when the VM is running already (it then counts as ready at once).
    virtual bool running(const std::string& vm) = 0;
    // Starts the VM; throws (message used as the error) when it cannot.
    virtual void start(const std::string& vm) = 0;
    // Issues a start without waiting for it; its outcome comes back from finished_starts().
    // The scheduler calls it for several VMs of a group (bounded by max_parallel), so a driver
    // whose start() blocks runs it on worker threads. Default: start() inline (synchronous).
    virtual void begin_start(const std::string& vm);
    struct StartResult {
        std::string vm;
        std::string error;      // empty: started
        double duration = 0;    // seconds the start call took
    };
    // The starts that completed since the last call. sleep_until() may return early when one does.
    virtual std::vector<StartResult> finished_starts();
    // Polls the readiness gate once.
    virtual bool ready(const std::string& vm, const Settings& s) = 0;
    // True when the run should stop (task cancelled).
    virtual bool cancelled() { return false; }

private:
    std::vector<StartResult> done_;  // results of the default, synchronous begin_start()
};

struct VmRun {
    std::string name;
    int group = 0;               // index into the run's groups
    std::string state = "pending";  // pending|starting|waiting|ready|already-running|failed
    std::string waiting_on;      // what keeps it from starting/being ready, for status
    int attempts = 0;
    double started_at = -1;      // when the first successful start call was issued (driver clock)
    double start_duration = -1;  // seconds that start call took
    double ready_at = -1;
    std::string error;
};

struct RunReport {
    std::vector<std::string> groups;  // labels: "order 1", ..., "unordered"
    std::vector<VmRun> vms;           // in planned order
    double began = 0, finished = 0;
};
void to_json(nlohmann::json& j, const VmRun& v);
void to_json(nlohmann::json& j, const RunReport& r);

struct RunOptions {
    HostSettings host;
    bool apply_boot_delay = true;
    double poll_interval = 0.2;  // seconds between readiness polls
};

// Starts the enabled guests. Called after check_dependencies() passed. A guest whose `after`
// names a guest that is not in `vms` (unreachable) fails without a start call. on_change(report)
// runs after every state change (for task progress and status).
RunReport run_start(const std::map<std::string, Settings>& vms, const RunOptions& opt, AutostartDriver& d,
                    const std::function<void(const RunReport&)>& on_change = {});

// The plan: run_start on a simulated clock where every start succeeds and every gate answers at
// once, so times are the earliest possible ones.
RunReport plan(const std::map<std::string, Settings>& vms, const RunOptions& opt);

// Stop waves for stop-all: reverse of the start order (later groups first; within a group a VM
// stops only after the VMs that depend on it). Each wave may stop in parallel.
std::vector<std::vector<std::string>> stop_waves(const std::map<std::string, Settings>& vms);

}  // namespace hv::guest::autostart
