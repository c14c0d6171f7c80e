// hvd's sd_notify protocol (src/daemon/systemd_notify.cpp) against a real notification socket,
// the way systemd runs it: $NOTIFY_SOCKET, $WATCHDOG_USEC, $WATCHDOG_PID.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "systemd_notify.hpp"

namespace {
struct NotifySocket {
    std::string path;
    int fd = -1;
    NotifySocket() {
        char tmpl[] = "/tmp/hv-notify-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = std::string(tmpl) + "/notify";
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        path.copy(a.sun_path, sizeof(a.sun_path) - 1);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
        ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
    }
    ~NotifySocket() {
        ::unsetenv("NOTIFY_SOCKET");
        ::unsetenv("WATCHDOG_USEC");
        ::unsetenv("WATCHDOG_PID");
        ::close(fd);
        std::filesystem::remove_all(std::filesystem::path(path).parent_path());
    }
    // Every datagram received so far.
    std::vector<std::string> drain() {
        std::vector<std::string> out;
        char buf[4096];
        for (;;) {
            auto n = ::recv(fd, buf, sizeof(buf), 0);
            if (n < 0) break;
            out.emplace_back(buf, static_cast<std::size_t>(n));
        }
        return out;
    }
};

std::size_t count_with(const std::vector<std::string>& msgs, const std::string& needle) {
    std::size_t n = 0;
    for (const auto& m : msgs) n += m.find(needle) != std::string::npos;
    return n;
}
}  // namespace

TEST_CASE("systemd notify: READY=1 only once ready, watchdog pings, STOPPING=1", "[systemd]") {
    NotifySocket sock;
    ::setenv("WATCHDOG_USEC", "200000", 1);  // WatchdogSec=200ms: pings every 100 ms
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    boost::asio::io_context io;
    bool ready = false;
    hv::daemon::SystemdNotifier n(io, [&ready] { return ready; }, std::chrono::milliseconds(20));
    CHECK(n.watchdog_interval() == std::chrono::microseconds(100000));
    n.start("serving /run/hv/hvd.sock");

    io.run_for(std::chrono::milliseconds(350));
    auto before = sock.drain();
    CHECK(count_with(before, "READY=1") == 0);
    CHECK(count_with(before, "STATUS=listening; waiting for libvirt") == 1);
    CHECK(count_with(before, "WATCHDOG=1") >= 3);
    CHECK_FALSE(n.ready_sent());

    ready = true;
    io.run_for(std::chrono::milliseconds(150));
    auto after = sock.drain();
    REQUIRE(count_with(after, "READY=1") == 1);
    CHECK(count_with(after, "STATUS=serving /run/hv/hvd.sock") == 1);
    CHECK(n.ready_sent());

    n.stopping();
    io.run_for(std::chrono::milliseconds(250));
    auto stopped = sock.drain();
    CHECK(count_with(stopped, "STOPPING=1") == 1);
    CHECK(count_with(stopped, "WATCHDOG=1") == 0);  // the timers stop with it
    CHECK(count_with(stopped, "READY=1") == 0);
}

TEST_CASE("systemd notify: no watchdog unless systemd asks for this process", "[systemd]") {
    NotifySocket sock;
    ::setenv("WATCHDOG_USEC", "200000", 1);
    ::setenv("WATCHDOG_PID", "1", 1);  // meant for another process
    boost::asio::io_context io;
    hv::daemon::SystemdNotifier n(io, [] { return true; });
    CHECK(n.watchdog_interval().count() == 0);
    n.start("serving");
    io.run_for(std::chrono::milliseconds(100));
    auto msgs = sock.drain();
    CHECK(count_with(msgs, "READY=1") == 1);
    CHECK(count_with(msgs, "WATCHDOG=1") == 0);
}
