#include "probes.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hv/util/guard.hpp"

namespace hv::guest {

bool tcp_open(const std::string& addr, int port, int timeout_ms) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) return false;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool ok = false;
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    if (rc == 0) {
        ok = true;
    } else if (errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, timeout_ms) == 1) {
            int err = 0;
            socklen_t len = sizeof err;
            ok = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
        }
    }
    ::close(fd);
    return ok;
}

// setns() changes only the calling thread's namespace, so a short-lived thread does it; a
// socket keeps the namespace it was made in.
bool tcp_open_in_netns(std::int64_t init_pid, int port, int timeout_ms) {
    if (init_pid <= 0) return false;
    int ns = ::open(fmt::format("/proc/{}/ns/net", init_pid).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) return false;
    bool ok = false;
    std::thread([&] { util::guarded("tcp gate thread", [&] {
        if (::setns(ns, CLONE_NEWNET) != 0) {
            spdlog::debug("autostart: cannot enter the network namespace of pid {}: {}", init_pid, std::strerror(errno));
            return;
        }
        std::vector<std::string> addrs{"127.0.0.1"};
        ifaddrs* ifs = nullptr;
        if (::getifaddrs(&ifs) == 0) {
            char buf[INET_ADDRSTRLEN];
            for (auto* i = ifs; i; i = i->ifa_next)
                if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
                    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf) &&
                    std::find(addrs.begin(), addrs.end(), buf) == addrs.end())
                    addrs.emplace_back(buf);
            ::freeifaddrs(ifs);
        }
        for (const auto& a : addrs)
            if ((ok = tcp_open(a, port, timeout_ms))) return;
    }); }).join();
    ::close(ns);
    return ok;
}

std::vector<std::string> vm_addresses(virDomainPtr d) {
    std::vector<std::string> out;
    for (unsigned src : {VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT}) {
        virDomainInterfacePtr* ifs = nullptr;
        int n = virDomainInterfaceAddresses(d, &ifs, src, 0);
        for (int i = 0; i < n; ++i) {
            for (unsigned k = 0; k < ifs[i]->naddrs; ++k)
                if (ifs[i]->addrs[k].type == VIR_IP_ADDR_TYPE_IPV4 && ifs[i]->addrs[k].addr &&
                    std::string(ifs[i]->addrs[k].addr) != "127.0.0.1")
                    out.emplace_back(ifs[i]->addrs[k].addr);
            virDomainInterfaceFree(ifs[i]);
        }
        free(ifs);
        if (!out.empty()) break;
    }
    return out;
}

}  // namespace hv::guest
