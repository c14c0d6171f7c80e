// The libvirt connection: RAII handles, the event loop thread, lifecycle event delivery and
// reconnection. Everything else in hvd reaches libvirt through this class.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <libvirt/libvirt.h>

#include "hv/error.hpp"

namespace hv::virt {

struct ConnDeleter {
    void operator()(virConnectPtr c) const noexcept { virConnectClose(c); }
};
struct DomainDeleter {
    void operator()(virDomainPtr d) const noexcept { virDomainFree(d); }
};
struct NetworkDeleter {
    void operator()(virNetworkPtr n) const noexcept { virNetworkFree(n); }
};
using ConnHandle = std::shared_ptr<virConnect>;
using DomainHandle = std::unique_ptr<virDomain, DomainDeleter>;
using NetworkHandle = std::unique_ptr<virNetwork, NetworkDeleter>;

// Throws hv::Error for the calling thread's last libvirt error; `what` prefixes the message.
[[noreturn]] void throw_libvirt_error(const std::string& what);
// A domain's metadata element in namespace `ns` (virDomainGetMetadata, ELEMENT). nullopt when
// the domain has none; other failures (a dead connection) throw, so a missing read is never
// mistaken for missing metadata.
std::optional<std::string> get_metadata(virDomainPtr d, const char* ns, unsigned flags);

// Maps a libvirt error number to an hv code (VIR_ERR_NO_DOMAIN -> not_found, ...).
Errc errc_from_libvirt(int vir_error_code);

// Domain lifecycle event as libvirt reports it (event/detail are virDomainEventType values).
struct LifecycleEvent {
    std::string name;
    int event = 0;
    int detail = 0;
};

class Connection {
public:
    struct Options {
        std::string uri = "qemu:///system";
        int reconnect_interval_ms = 1000;
        int keepalive_interval_s = 5;
        int keepalive_count = 3;
        // What the domains of this connection are called in messages ("vm", "container").
        std::string kind = "vm";
    };
    // on_event runs on libvirt's event thread: it must only hand the event off.
    // on_change(true) runs on the reconnect thread after every (re)connection, once get()
    // works; on_change(false) when the connection is lost. Callers rebuild caches there.
    Connection(Options opts, std::function<void(const LifecycleEvent&)> on_event,
               std::function<void(bool connected)> on_change);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Starts the event loop and the first connection attempt; returns at once.
    void start();
    // Blocks until connected or the timeout passes; returns whether connected.
    bool wait_connected(std::chrono::milliseconds timeout);

    // The live connection, or throws hv::Error(unavailable).
    ConnHandle get() const;
    bool connected() const;
    const std::string& uri() const { return opts_.uri; }

    // Declares the current connection broken and reconnects (e.g. when a rebuild failed).
    void drop(const std::string& why);

    // Looks a domain up by name; throws not_found with "<kind> '<name>' does not exist".
    DomainHandle domain(const std::string& name) const;
    // Looks a domain up by uuid; nullopt when there is none (`name` only for errors).
    std::optional<DomainHandle> domain_by_uuid(const std::string& uuid, const std::string& name) const;
    // The same by name: nullopt when there is none.
    std::optional<DomainHandle> find_domain(const std::string& name) const;
    // Every domain of this connection.
    std::vector<DomainHandle> list_domains() const;
    // Defines (or redefines) a domain from its XML; `name` only for errors.
    DomainHandle define(const std::string& xml, const std::string& name) const;

private:
    void reconnect_loop();
    void on_closed(virConnectPtr c, int reason);
    static void close_cb(virConnectPtr c, int reason, void* opaque);
    static int lifecycle_cb(virConnectPtr c, virDomainPtr d, int event, int detail, void* opaque);

    Options opts_;
    std::function<void(const LifecycleEvent&)> on_event_;
    std::function<void(bool)> on_change_;
    ConnHandle dead_;        // closed by libvirt; released on the reconnect thread
    mutable std::mutex mu_;
    std::condition_variable cv_;
    ConnHandle conn_;        // null while disconnected
    int callback_id_ = -1;
    int dead_callback_id_ = -1;
    bool need_reconnect_ = true;
    std::atomic<bool> stop_{false};
    bool loop_started_ = false;  // holds a reference on the process-wide event loop thread
    std::thread reconnect_thread_;
};

}  // namespace hv::virt
