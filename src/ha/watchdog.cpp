#include "watchdog.hpp"

#include <errno.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hv/error.hpp"
#include "hv/util/command.hpp"

namespace hv::ha {

Watchdog::~Watchdog() { disarm(); }

void Watchdog::arm() {
    if (fd_ >= 0) return;
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0 && path_ == "/dev/watchdog") {
        // No hardware watchdog driver loaded: Linux's software one (what Proxmox uses too).
        util::run_command({"modprobe", "softdog"}, std::chrono::seconds(10));
    }
    if (::stat(path_.c_str(), &st) != 0)
        fail(Errc::unavailable, "no watchdog at {}: {} (load a watchdog driver, e.g. modprobe softdog)", path_,
             ::strerror(errno));
    // O_NONBLOCK: a FIFO without its reader fails at once (ENXIO) instead of blocking.
    int fd = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail(Errc::unavailable, "cannot open the watchdog {}: {}", path_, ::strerror(errno));
    if (S_ISCHR(st.st_mode)) {
        int t = timeout_;
        if (::ioctl(fd, WDIOC_SETTIMEOUT, &t) != 0 || t != timeout_) {
            int err = errno;
            // Cannot promise the timeout the fencing rule needs: magic close, refuse.
            (void)!::write(fd, "V", 1);
            ::close(fd);
            fail(Errc::unavailable, "the watchdog {} does not take a {} s timeout ({})", path_, timeout_,
                 err ? ::strerror(err) : fmt::format("it set {} s", t).c_str());
        }
        watchdog_info info{};
        std::string ident = ::ioctl(fd, WDIOC_GETSUPPORT, &info) == 0 ? reinterpret_cast<const char*>(info.identity) : "";
        what_ = fmt::format("{} ({}{} s)", path_, ident.empty() ? "" : ident + ", ", timeout_);
    } else if (S_ISFIFO(st.st_mode)) {
        what_ = fmt::format("emulated (FIFO {}, {} s)", path_, timeout_);
    } else {
        ::close(fd);
        fail(Errc::unavailable, "{} is neither a watchdog device nor a FIFO", path_);
    }
    fd_ = fd;
    if (!pet()) {
        ::close(fd_);
        fd_ = -1;
        fail(Errc::unavailable, "cannot pet the watchdog {}: {}", path_, ::strerror(errno));
    }
    spdlog::info("ha: watchdog armed: {}", what_);
}

bool Watchdog::pet() {
    if (fd_ < 0) return false;
    return ::write(fd_, "1", 1) == 1;
}

void Watchdog::disarm() {
    if (fd_ < 0) return;
    (void)!::write(fd_, "V", 1);
    ::close(fd_);
    fd_ = -1;
    spdlog::info("ha: watchdog disarmed ({})", what_);
}

}  // namespace hv::ha
