// Autostart in hvd: per-guest settings in domain metadata (VMs on the QEMU connection,
// containers on the LXC one, the same namespace), host settings, the start-all and stop-all
// tasks over both kinds, the boot-id check at hvd start, and the /v1 routes (docs/api.md).
#pragma once

#include <atomic>
#include <mutex>

#include "api_routes.hpp"
#include "autostart.hpp"
#include "event_bus.hpp"

namespace hv::daemon {

// Every guest autostart sees: VMs and containers (one name space), by name.
struct AutostartGuests {
    std::map<std::string, autostart::Settings> settings;  // disabled defaults without metadata
    std::map<std::string, autostart::Kind> kind;
    std::map<std::string, api::VmState> state;
    // Why a kind is missing (the LXC connection is down: containers), for logs and reports.
    std::vector<std::string> warnings;
    bool cts_missing = false;
};

class AutostartService {
public:
    // `defaults`: the [autostart] keys of the config; <state_dir>/autostart-host.json overrides them.
    AutostartService(ApiContext& c, EventBus& bus, autostart::HostSettings defaults);

    autostart::HostSettings host() const;
    autostart::HostSettings set_host(const nlohmann::json& patch);
    // 404 unless a guest of that kind has the name.
    autostart::Settings get(autostart::Kind kind, const std::string& name);
    // PATCH-like: only the fields present change. Refuses cycles (409) and unknown dependencies.
    autostart::Settings set(autostart::Kind kind, const std::string& name, const nlohmann::json& patch);
    // Every guest's settings (guests without autostart metadata get the defaults, disabled).
    // Without the LXC connection: the VMs only, with a warning (VM autostart keeps working).
    AutostartGuests guests();

    nlohmann::json plan();
    api::TaskInfo run(bool boot_delay);
    api::TaskInfo stop_all();
    nlohmann::json status() const;

    // At hvd start: runs autostart (with the boot delay) when the host booted since the boot id
    // saved in the state dir; records the current boot id.
    void at_daemon_start();

private:
    // Publishes (and logs to the run's task, when given) each guest whose state changed.
    void publish_changes(const autostart::RunReport& r, const std::map<std::string, autostart::Kind>& kinds,
                         util::Progress* log = nullptr);

    ApiContext& c_;
    EventBus& bus_;
    autostart::HostSettings defaults_;
    std::string host_file_;
    mutable std::mutex mu_;  // host settings; serializes per-guest settings changes (held across libvirt calls)
    autostart::HostSettings host_;
    std::atomic<bool> busy_{false};
    // status_ and last_state_: read by a fast route on the I/O thread, so never held across libvirt calls.
    mutable std::mutex status_mu_;
    nlohmann::json status_ = nlohmann::json::object();
    std::map<std::string, std::string> last_state_;
};

void register_autostart_routes(Router& r, AutostartService& s);

}  // namespace hv::daemon
