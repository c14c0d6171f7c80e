// Autostart in hvd: per-VM settings in domain metadata, host settings, the start-all and
// stop-all tasks, the boot-id check at hvd start, and the /v1 routes (docs/api.md).
#pragma once

#include <atomic>
#include <mutex>

#include "api_routes.hpp"
#include "autostart.hpp"
#include "event_bus.hpp"

namespace hv::daemon {

class AutostartService {
public:
    // `defaults`: the [autostart] keys of the config; <state_dir>/autostart-host.json overrides them.
    AutostartService(ApiContext& c, EventBus& bus, autostart::HostSettings defaults);

    autostart::HostSettings host() const;
    autostart::HostSettings set_host(const nlohmann::json& patch);
    autostart::Settings get(const std::string& vm);
    // PATCH-like: only the fields present change. Refuses cycles (409) and unknown dependencies.
    autostart::Settings set(const std::string& vm, const nlohmann::json& patch);
    // Every VM's settings (VMs without autostart metadata get the defaults, disabled).
    std::map<std::string, autostart::Settings> all();

    nlohmann::json plan();
    api::TaskInfo run(bool boot_delay);
    api::TaskInfo stop_all();
    nlohmann::json status() const;

    // At hvd start: runs autostart (with the boot delay) when the host booted since the boot id
    // saved in the state dir; records the current boot id.
    void at_daemon_start();

private:
    // Publishes (and logs to the run's task, when given) each VM whose state changed.
    void publish_changes(const autostart::RunReport& r, util::Progress* log = nullptr);

    ApiContext& c_;
    EventBus& bus_;
    autostart::HostSettings defaults_;
    std::string host_file_;
    mutable std::mutex mu_;  // host settings; serializes per-VM settings changes (held across libvirt calls)
    autostart::HostSettings host_;
    std::atomic<bool> busy_{false};
    // status_ and last_state_: read by a fast route on the I/O thread, so never held across libvirt calls.
    mutable std::mutex status_mu_;
    nlohmann::json status_ = nlohmann::json::object();
    std::map<std::string, std::string> last_state_;
};

void register_autostart_routes(Router& r, AutostartService& s);

}  // namespace hv::daemon
