#include "libvirt_tunnel.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hv/error.hpp"
#include "hv/util/guard.hpp"
#include "tls_relay.hpp"

namespace hv::cluster {

namespace {

int unix_socket(const std::string& path, bool listen_on) {
    sockaddr_un sa{};
    if (path.size() >= sizeof sa.sun_path) fail(Errc::internal, "socket path {} is too long", path);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(Errc::internal, "socket: {}", std::strerror(errno));
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    int rc;
    if (listen_on) {
        ::unlink(path.c_str());
        rc = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
        if (rc == 0) ::chmod(path.c_str(), 0600);
        if (rc == 0) rc = ::listen(fd, 16);
    } else {
        rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    }
    if (rc != 0) {
        int e = errno;
        ::close(fd);
        fail(listen_on ? Errc::internal : Errc::unavailable, "{} {}: {}", listen_on ? "listening on" : "connecting to", path,
             std::strerror(e));
    }
    return fd;
}

}  // namespace

bool write_fully(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        auto w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

LibvirtTunnel::LibvirtTunnel(TlsIdentity id, std::string host, int port, std::string path, std::string target,
                             std::string protocol)
    : id_(std::move(id)), host_(std::move(host)), port_(port), path_(std::move(path)), target_(std::move(target)),
      protocol_(std::move(protocol)) {
    listen_fd_ = unix_socket(path_, true);
    acceptor_ = std::thread([this] { util::guarded("libvirt tunnel", [this] { accept_loop(); }); });
}

LibvirtTunnel::~LibvirtTunnel() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    ::close(listen_fd_);
    std::vector<std::thread> relays;
    {
        std::lock_guard lk(mu_);
        relays.swap(relays_);
    }
    for (auto& t : relays)
        if (t.joinable()) t.join();
    ::unlink(path_.c_str());
}

void LibvirtTunnel::allow(unsigned uid, unsigned gid) {
    if (::chown(path_.c_str(), uid, gid) != 0)
        spdlog::warn("migration socket {}: chown {}:{}: {}", path_, uid, gid, std::strerror(errno));
}

std::string LibvirtTunnel::uri() const { return "qemu+unix:///system?socket=" + path_; }

void LibvirtTunnel::accept_loop() {
    while (!stop_) {
        pollfd p{listen_fd_, POLLIN, 0};
        int r = ::poll(&p, 1, 250);
        if (r <= 0) continue;
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::lock_guard lk(mu_);
        relays_.emplace_back([this, fd] {
            util::guarded("libvirt tunnel relay", [&] { serve(fd); });
            ::close(fd);
        });
    }
}

void LibvirtTunnel::serve(int fd) {
    try {
        TlsConnection c(id_, host_, port_, std::chrono::seconds(10));
        std::string rest;
        auto head = c.upgrade(host_, port_, target_, protocol_, rest);
        if (head.rfind("HTTP/1.1 101", 0) != 0) {
            spdlog::warn("tunnel to {} ({}): {}", host_, target_, head.substr(0, head.find('\r')));
            return;
        }
        if (!rest.empty() && !write_fully(fd, rest.data(), rest.size())) return;
        c.relay(fd, &stop_);
    } catch (const Error& e) {
        spdlog::warn("libvirt tunnel to {}:{}: {}", host_, port_, e.what());
    }
}

void relay_to_unix(int fd, const std::string& pending, const std::string& socket_path, int wait_ms) {
    int lv = -1;
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (lv < 0) {
        try {
            lv = unix_socket(socket_path, false);
        } catch (const Error& e) {
            if (std::chrono::steady_clock::now() < until) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                continue;
            }
            spdlog::warn("relay: {}", e.what());
            ::close(fd);
            return;
        }
    }
    bool ok = pending.empty() || write_fully(lv, pending.data(), pending.size());
    char buf[65536];
    while (ok) {
        pollfd p[2] = {{fd, POLLIN, 0}, {lv, POLLIN, 0}};
        int r = ::poll(p, 2, 1000);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        for (int i = 0; i < 2 && ok; ++i) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int from = i == 0 ? fd : lv, to = i == 0 ? lv : fd;
            auto n = ::read(from, buf, sizeof buf);
            if (n <= 0 || !write_fully(to, buf, static_cast<std::size_t>(n))) ok = false;
        }
    }
    ::close(lv);
    ::close(fd);
}

}  // namespace hv::cluster
