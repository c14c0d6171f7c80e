#include "console.hpp"

#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <optional>

namespace hv::cli {

namespace {
constexpr char kEscape = 0x1d;  // Ctrl+]

bool write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

// Puts the terminal in raw mode for the session and restores it on every exit path.
class RawTerminal {
public:
    RawTerminal() {
        if (::tcgetattr(0, &saved_) != 0) return;
        termios raw = saved_;
        ::cfmakeraw(&raw);
        if (::tcsetattr(0, TCSAFLUSH, &raw) == 0) active_ = true;
    }
    ~RawTerminal() {
        if (active_) ::tcsetattr(0, TCSAFLUSH, &saved_);
    }

private:
    termios saved_{};
    bool active_ = false;
};
}  // namespace

bool run_console(int fd, std::string pending, const std::string& what, double idle_s) {
    const bool tty = ::isatty(0) == 1;
    if (int fl = ::fcntl(fd, F_GETFL); fl >= 0) ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (tty) std::cerr << "Connected to the console of " << what << " (detach: Ctrl+])\r\n" << std::flush;
    bool closed_by_guest = false;
    {
        std::optional<RawTerminal> raw;
        if (tty) raw.emplace();
        if (!pending.empty()) write_all(1, pending.data(), pending.size());
        bool input_open = true;
        auto last_output = std::chrono::steady_clock::now();
        char buf[16384];
        for (;;) {
            pollfd pf[2] = {{fd, POLLIN, 0}, {input_open ? 0 : -1, POLLIN, 0}};
            int r = ::poll(pf, 2, 100);
            if (r < 0 && errno != EINTR) break;
            if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t n = ::read(fd, buf, sizeof buf);
                if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
                if (n <= 0) {
                    closed_by_guest = true;
                    break;
                }
                write_all(1, buf, static_cast<std::size_t>(n));
                last_output = std::chrono::steady_clock::now();
            }
            if (input_open && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t n = ::read(0, buf, sizeof buf);
                if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
                if (n <= 0) {
                    if (tty) break;
                    input_open = false;  // scripted: keep printing until the console is quiet
                    last_output = std::chrono::steady_clock::now();
                    continue;
                }
                std::size_t len = static_cast<std::size_t>(n);
                bool detach = false;
                if (tty)
                    if (const void* e = std::memchr(buf, kEscape, len)) {
                        len = static_cast<std::size_t>(static_cast<const char*>(e) - buf);
                        detach = true;
                    }
                if (len && !write_all(fd, buf, len)) {
                    closed_by_guest = true;
                    break;
                }
                if (detach) break;
            }
            if (!input_open &&
                std::chrono::steady_clock::now() - last_output >= std::chrono::duration<double>(idle_s))
                break;
        }
    }
    ::close(fd);
    if (tty) std::cerr << (closed_by_guest ? "\nconsole closed by " + what + "\n" : "\ndetached\n") << std::flush;
    return closed_by_guest;
}

}  // namespace hv::cli
