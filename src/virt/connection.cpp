#include "connection.hpp"

#include "hv/util/guard.hpp"

#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

namespace hv::virt {

Errc errc_from_libvirt(int code) {
    switch (code) {
        case VIR_ERR_NO_DOMAIN:
        case VIR_ERR_NO_NETWORK:
        case VIR_ERR_NO_STORAGE_POOL:
        case VIR_ERR_NO_STORAGE_VOL:
            return Errc::not_found;
        case VIR_ERR_OPERATION_INVALID:
        case VIR_ERR_DOM_EXIST:
        case VIR_ERR_OPERATION_DENIED:
            return Errc::conflict;
        case VIR_ERR_INVALID_ARG:
        case VIR_ERR_XML_ERROR:
        case VIR_ERR_XML_DETAIL:
        case VIR_ERR_CONFIG_UNSUPPORTED:
            return Errc::invalid_input;
        case VIR_ERR_NO_SUPPORT:
        case VIR_ERR_OPERATION_UNSUPPORTED:
            return Errc::unsupported;
        case VIR_ERR_OPERATION_TIMEOUT:
        case VIR_ERR_AGENT_UNRESPONSIVE:
            return Errc::timeout;
        case VIR_ERR_NO_CONNECT:
        case VIR_ERR_INVALID_CONN:
        case VIR_ERR_RPC:
            return Errc::unavailable;
        default:
            return Errc::internal;
    }
}

void throw_libvirt_error(const std::string& what) {
    virErrorPtr e = virGetLastError();
    if (!e) throw Error(Errc::internal, what + ": unknown libvirt error");
    Errc code = errc_from_libvirt(e->code);
    std::string msg = e->message ? e->message : "unknown libvirt error";
    // Errors of the RPC layer mean the connection to libvirtd failed (EOF, closed socket,
    // keepalive timeout): the caller may retry once hvd has reconnected.
    if (e->domain == VIR_FROM_RPC) code = Errc::unavailable;
    throw Error(code, what + ": " + msg);
}

std::optional<std::string> get_metadata(virDomainPtr d, const char* ns, unsigned flags) {
    char* s = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, ns, flags);
    if (!s) {
        virErrorPtr e = virGetLastError();
        if (!e || e->code == VIR_ERR_NO_DOMAIN_METADATA) return std::nullopt;
        throw_libvirt_error("cannot read metadata");
    }
    std::string out(s);
    free(s);
    return out;
}

namespace {
void silence(void*, virErrorPtr) {}

int event_loop_init() {
    static const int rc = [] {
        virSetErrorFunc(nullptr, silence);
        return virEventRegisterDefaultImpl();
    }();
    return rc;
}

// libvirt's default event loop is process-wide: one thread runs it for every Connection (the
// qemu and the lxc one), started by the first and joined when the last is destroyed.
struct EventLoop {
    std::mutex mu;
    int users = 0;
    std::atomic<bool> stop{false};
    std::thread thread;
};
EventLoop& event_loop() {
    static EventLoop loop;
    return loop;
}

void event_loop_acquire() {
    auto& l = event_loop();
    std::lock_guard lk(l.mu);
    if (l.users++ > 0) return;
    if (l.thread.joinable()) l.thread.join();
    l.stop = false;
    // A periodic timer wakes the loop so the thread notices `stop`.
    static const int timer = virEventAddTimeout(250, [](int, void*) {}, nullptr, nullptr);
    (void)timer;
    l.thread = std::thread([&l] {
        while (!l.stop) {
            if (virEventRunDefaultImpl() < 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    });
}

void event_loop_release() {
    auto& l = event_loop();
    std::lock_guard lk(l.mu);
    if (--l.users > 0) return;
    l.stop = true;
    if (l.thread.joinable()) l.thread.join();
}
}  // namespace

Connection::Connection(Options opts, std::function<void(const LifecycleEvent&)> on_event,
                       std::function<void(bool)> on_change)
    : opts_(std::move(opts)), on_event_(std::move(on_event)), on_change_(std::move(on_change)) {}

Connection::~Connection() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (reconnect_thread_.joinable()) reconnect_thread_.join();
    {
        std::lock_guard lk(mu_);
        if (conn_ && callback_id_ >= 0) virConnectDomainEventDeregisterAny(conn_.get(), callback_id_);
        if (conn_) virConnectUnregisterCloseCallback(conn_.get(), close_cb);
        conn_.reset();
        dead_.reset();
    }
    if (loop_started_) event_loop_release();
}

void Connection::start() {
    if (event_loop_init() < 0) throw_libvirt_error("cannot start the libvirt event loop");
    event_loop_acquire();
    loop_started_ = true;
    reconnect_thread_ = std::thread([this] {
        // A throw in one round (a callback of on_change_) is logged; the loop goes on after a pause.
        while (!stop_ && !util::guarded("libvirt reconnect thread", [this] { reconnect_loop(); })) {
            std::unique_lock lk(mu_);
            need_reconnect_ = need_reconnect_ || !conn_;
            cv_.wait_for(lk, std::chrono::milliseconds(opts_.reconnect_interval_ms), [&] { return stop_.load(); });
        }
    });
}

bool Connection::wait_connected(std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return conn_ != nullptr || stop_; }) && conn_ != nullptr;
}

ConnHandle Connection::get() const {
    std::lock_guard lk(mu_);
    if (!conn_) throw Error(Errc::unavailable, "libvirt at " + opts_.uri + " is not reachable (hvd is reconnecting)");
    return conn_;
}

bool Connection::connected() const {
    std::lock_guard lk(mu_);
    return conn_ != nullptr;
}

DomainHandle Connection::domain(const std::string& name) const {
    auto c = get();
    virDomainPtr d = virDomainLookupByName(c.get(), name.c_str());
    if (!d) {
        virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_DOMAIN) throw Error(Errc::not_found, opts_.kind + " '" + name + "' does not exist");
        throw_libvirt_error(opts_.kind + " '" + name + "'");
    }
    return DomainHandle(d);
}

std::optional<DomainHandle> Connection::domain_by_uuid(const std::string& uuid, const std::string& name) const {
    auto c = get();
    virDomainPtr d = virDomainLookupByUUIDString(c.get(), uuid.c_str());
    if (d) return DomainHandle(d);
    virErrorPtr e = virGetLastError();
    if (e && e->code == VIR_ERR_NO_DOMAIN) return std::nullopt;
    throw_libvirt_error(opts_.kind + " '" + name + "'");
}

std::optional<DomainHandle> Connection::find_domain(const std::string& name) const {
    auto c = get();
    virDomainPtr d = virDomainLookupByName(c.get(), name.c_str());
    if (d) return DomainHandle(d);
    virErrorPtr e = virGetLastError();
    if (e && e->code == VIR_ERR_NO_DOMAIN) return std::nullopt;
    throw_libvirt_error(opts_.kind + " '" + name + "'");
}

std::vector<DomainHandle> Connection::list_domains() const {
    auto c = get();
    virDomainPtr* doms = nullptr;
    int n = virConnectListAllDomains(c.get(), &doms, 0);
    if (n < 0) throw_libvirt_error("cannot list " + opts_.kind + "s");
    std::vector<DomainHandle> out;
    out.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) out.emplace_back(doms[i]);
    free(doms);
    return out;
}

DomainHandle Connection::define(const std::string& xml, const std::string& name) const {
    auto c = get();
    virDomainPtr d = virDomainDefineXML(c.get(), xml.c_str());
    if (!d) throw_libvirt_error("cannot define " + opts_.kind + " '" + name + "'");
    return DomainHandle(d);
}

void Connection::close_cb(virConnectPtr c, int reason, void* opaque) {
    // C callbacks from libvirt's event loop: nothing may unwind through libvirt.
    util::guarded("libvirt close callback", [&] { static_cast<Connection*>(opaque)->on_closed(c, reason); });
}

void Connection::drop(const std::string& why) {
    {
        std::lock_guard lk(mu_);
        if (!conn_) return;
        spdlog::warn("dropping the libvirt connection: {}", why);
        dead_ = std::move(conn_);
        dead_callback_id_ = callback_id_;
        callback_id_ = -1;
        need_reconnect_ = true;
    }
    cv_.notify_all();
}

void Connection::on_closed(virConnectPtr c, int reason) {
    {
        std::lock_guard lk(mu_);
        if (!conn_ || conn_.get() != c) return;
        spdlog::warn("libvirt connection to {} closed (reason {}); reconnecting", opts_.uri, reason);
        dead_ = std::move(conn_);
        dead_callback_id_ = callback_id_;
        callback_id_ = -1;
        need_reconnect_ = true;
    }
    cv_.notify_all();
}

int Connection::lifecycle_cb(virConnectPtr, virDomainPtr d, int event, int detail, void* opaque) {
    util::guarded("libvirt lifecycle callback", [&] {
        auto* self = static_cast<Connection*>(opaque);
        const char* name = virDomainGetName(d);
        if (name && self->on_event_) self->on_event_(LifecycleEvent{name, event, detail});
    });
    return 0;
}

void Connection::reconnect_loop() {
    bool announced_down = false;
    while (!stop_) {
        ConnHandle dead;
        int dead_cb = -1;
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] { return need_reconnect_ || stop_; });
            if (stop_) return;
            dead = std::move(dead_);
            dead_cb = dead_callback_id_;
            dead_callback_id_ = -1;
        }
        if (dead) {
            // Release libvirt's references to the old connection (fails harmlessly when it is gone).
            if (dead_cb >= 0) virConnectDomainEventDeregisterAny(dead.get(), dead_cb);
            virConnectUnregisterCloseCallback(dead.get(), close_cb);
            // Dropping the last reference closes it; off the event thread, outside our lock.
            dead.reset();
            if (on_change_) on_change_(false);
        }
        virConnectPtr raw = virConnectOpen(opts_.uri.c_str());
        if (!raw) {
            virErrorPtr e = virGetLastError();
            if (!announced_down) {
                spdlog::error("cannot connect to libvirt at {}: {}; retrying every {} ms", opts_.uri,
                              e && e->message ? e->message : "unknown error", opts_.reconnect_interval_ms);
                announced_down = true;
            }
            std::unique_lock lk(mu_);
            cv_.wait_for(lk, std::chrono::milliseconds(opts_.reconnect_interval_ms), [&] { return stop_.load(); });
            continue;
        }
        ConnHandle c(raw, ConnDeleter{});
        virConnectSetKeepAlive(raw, opts_.keepalive_interval_s, opts_.keepalive_count);
        // Publish first, so a close reported while we register is matched by on_closed.
        {
            std::lock_guard lk(mu_);
            conn_ = c;
            callback_id_ = -1;
            need_reconnect_ = false;
        }
        virConnectRegisterCloseCallback(raw, close_cb, this, nullptr);
        int id = virConnectDomainEventRegisterAny(raw, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                  VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), this, nullptr);
        if (id < 0 || virConnectIsAlive(raw) != 1) {
            virErrorPtr e = virGetLastError();
            spdlog::error("libvirt connection unusable after connecting: {}", e && e->message ? e->message : "not alive");
            drop("event registration failed");
            c.reset();
            std::unique_lock lk(mu_);
            cv_.wait_for(lk, std::chrono::milliseconds(opts_.reconnect_interval_ms), [&] { return stop_.load(); });
            continue;
        }
        {
            std::lock_guard lk(mu_);
            if (conn_ == c) callback_id_ = id;
        }
        c.reset();
        spdlog::info("connected to libvirt at {}", opts_.uri);
        announced_down = false;
        cv_.notify_all();
        if (on_change_) on_change_(true);
    }
}

}  // namespace hv::virt
