#include "systemd_notify.hpp"
#include "hv/error.hpp"

#include <cstring>

#include <sys/un.h>

#include <sys/socket.h>

#include <systemd/sd-daemon.h>

#include <boost/asio/post.hpp>
#include <cstdint>
#include <spdlog/spdlog.h>

namespace hv::daemon {

SystemdNotifier::SystemdNotifier(boost::asio::io_context& io, std::function<bool()> ready,
                                 std::chrono::milliseconds poll)
    : io_(io), ready_(std::move(ready)), poll_(poll), ready_timer_(io), watchdog_timer_(io) {
    std::uint64_t usec = 0;
    // > 0 only when systemd set WATCHDOG_USEC (and WATCHDOG_PID is this process).
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_ = std::chrono::microseconds(usec / 2);
}

void SystemdNotifier::start(std::string ready_status) {
    ready_status_ = std::move(ready_status);
    boost::asio::post(io_, [this] { check_ready(); });
    if (watchdog_.count() > 0) {
        spdlog::info("systemd watchdog: pinging every {} ms", watchdog_.count() / 1000);
        boost::asio::post(io_, [this] { ping(); });
    }
}

void SystemdNotifier::check_ready() {
    if (ready_()) {
        ready_sent_ = true;
        sd_notifyf(0, "READY=1\nSTATUS=%s", ready_status_.c_str());
        return;
    }
    if (!waiting_logged_) {
        waiting_logged_ = true;
        status("listening; waiting for libvirt before reporting ready");
    }
    ready_timer_.expires_after(poll_);
    ready_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) check_ready();
    });
}

void SystemdNotifier::ping() {
    sd_notify(0, "WATCHDOG=1");
    watchdog_timer_.expires_after(watchdog_);
    watchdog_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) ping();
    });
}

void SystemdNotifier::status(const std::string& text) { sd_notifyf(0, "STATUS=%s", text.c_str()); }

void SystemdNotifier::stopping() {
    ready_timer_.cancel();
    watchdog_timer_.cancel();
    sd_notify(0, "STOPPING=1\nSTATUS=stopping (running VMs are not touched)");
}

int systemd_listen_fd(std::string* path) {
    int n = sd_listen_fds(1);  // 1: unset LISTEN_* so children never see them
    if (n <= 0) return -1;
    if (n > 1) fail(Errc::internal, "systemd passed {} sockets; hvd.socket must have one ListenStream=", n);
    int fd = SD_LISTEN_FDS_START;
    if (sd_is_socket_unix(fd, SOCK_STREAM, 1, nullptr, 0) <= 0)
        fail(Errc::internal, "the socket systemd passed is not a listening Unix stream socket");
    sockaddr_un addr{};
    socklen_t len = sizeof addr;
    if (path && ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 && len > sizeof(sa_family_t))
        *path = std::string(addr.sun_path, strnlen(addr.sun_path, len - sizeof(sa_family_t)));
    return fd;
}

}  // namespace hv::daemon
