// Autostart in hvd, on the guest layer: per-guest settings in the guests' metadata (one
// namespace for every kind), host settings, the start-all and stop-all tasks, the boot-id
// check at hvd start. It sees guests only through guest::Guests and its drivers: no branch
// per kind. The routes are src/daemon/autostart_routes.cpp (docs/api.md).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autostart.hpp"
#include "guest.hpp"
#include "hv/api/task.hpp"

namespace hv::guest {

// How the service queues its tasks (hvd: TaskManager::submit).
using SubmitTask = std::function<api::TaskInfo(const std::string& kind, const std::string& target,
                                               std::function<nlohmann::json(util::Progress&)> work)>;

// Every guest autostart sees, of every kind (one name space), by name.
struct AutostartGuests {
    std::map<std::string, autostart::Settings> settings;  // disabled defaults without metadata
    std::map<std::string, GuestKind> kind;
    std::map<std::string, GuestState> state;
    // Why a kind is missing (its libvirt connection is down), for logs and reports.
    std::vector<std::string> warnings;
    bool missing = false;
};

class AutostartService {
public:
    // `defaults`: the [autostart] keys of the config; <state_dir>/autostart-host.json overrides them.
    AutostartService(Guests& guests, SubmitTask submit, Publisher publish, std::string state_dir,
                     autostart::HostSettings defaults);

    autostart::HostSettings host() const;
    autostart::HostSettings set_host(const nlohmann::json& patch);
    // 404 unless a guest of that kind has the name.
    autostart::Settings get(GuestKind kind, const std::string& name);
    // PATCH-like: only the fields present change. Refuses cycles (409) and unknown dependencies.
    autostart::Settings set(GuestKind kind, const std::string& name, const nlohmann::json& patch);
    // Every guest's settings (guests without autostart metadata get the defaults, disabled).
    // A kind whose libvirt connection is down is left out with a warning (the others keep
    // working); unavailable when no kind can be asked. HA's guests are left out (HA starts them)
    // unless with_ha (stop-all after HA's shutdown policy froze this host's agent).
    AutostartGuests guests(bool with_ha = false);

    nlohmann::json plan();
    api::TaskInfo run(bool boot_delay);
    api::TaskInfo stop_all();
    nlohmann::json status() const;

    // At hvd start: runs autostart (with the boot delay) when the host booted since the boot id
    // saved in the state dir; records the current boot id.
    // True when the host booted since the last hvd start (what started autostart).
    bool at_daemon_start();
    // Guests another module starts (HA: its agent, after checking who owns them): autostart
    // leaves them out. Set once at start.
    void set_left_out(std::function<bool(const std::string& name)> f) { left_out_ = std::move(f); }
    // Runs in the stop-all task before any guest is stopped (HA's host shutdown policy); its
    // answer is the result's "ha". The guests still running after it are stopped.
    void set_before_stop_all(std::function<nlohmann::json(util::Progress&)> f) { before_stop_all_ = std::move(f); }

private:
    // Publishes (and logs to the run's task, when given) each guest whose state changed.
    void publish_changes(const autostart::RunReport& r, const std::map<std::string, GuestKind>& kinds,
                         util::Progress* log = nullptr);

    Guests& guests_;
    std::function<bool(const std::string&)> left_out_;
    std::function<nlohmann::json(util::Progress&)> before_stop_all_;
    SubmitTask submit_;
    Publisher publish_;
    std::string state_dir_;
    autostart::HostSettings defaults_;
    std::string host_file_;
    mutable std::mutex mu_;  // host settings; serializes per-guest settings changes (held across libvirt calls)
    autostart::HostSettings host_;
    std::atomic<bool> busy_{false};
    // status_: read by a fast route on the I/O thread, so held only to copy or swap it.
    mutable std::mutex status_mu_;
    nlohmann::json status_ = nlohmann::json::object();
    // The run's thread only (one run at a time: busy_).
    std::map<std::string, std::string> last_state_;
};

}  // namespace hv::guest
