// hvd's side of systemd's Type=notify protocol (sd_notify(3)): READY=1 once the socket is
// listening, the I/O loop runs and libvirt is connected; WATCHDOG=1 from the I/O thread at half
// of WatchdogSec (so a stuck I/O loop gets hvd restarted); STATUS= lines; STOPPING=1.
// Without systemd (no $NOTIFY_SOCKET) every call is a no-op.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <string>

namespace hv::daemon {

class SystemdNotifier {
public:
    // ready: polled on the I/O thread (every poll interval) until it returns true.
    SystemdNotifier(boost::asio::io_context& io, std::function<bool()> ready,
                    std::chrono::milliseconds poll = std::chrono::milliseconds(500));

    // Call after the socket listens; the checks run on io's thread once io.run() starts, so
    // READY=1 also means the I/O loop serves the socket. `ready_status` is the STATUS= text.
    void start(std::string ready_status);
    void status(const std::string& text);
    void stopping();

    // The watchdog ping interval (half of WatchdogSec), zero when systemd asked for none.
    std::chrono::microseconds watchdog_interval() const { return watchdog_; }
    bool ready_sent() const { return ready_sent_; }

private:
    void check_ready();
    void ping();

    boost::asio::io_context& io_;
    std::function<bool()> ready_;
    std::chrono::milliseconds poll_;
    std::string ready_status_;
    std::chrono::microseconds watchdog_{0};
    boost::asio::steady_timer ready_timer_, watchdog_timer_;
    bool ready_sent_ = false, waiting_logged_ = false;
};

// Socket activation (sd_listen_fds(3)): the listening Unix stream socket systemd passed
// (hvd.socket), and its path in *path; -1 when none was passed. Throws internal when systemd
// passed something else (several sockets, not a Unix stream socket).
int systemd_listen_fd(std::string* path);

}  // namespace hv::daemon
