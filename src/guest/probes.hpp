// Readiness probes of autostart's gates: a TCP connect with a timeout, from hvd's network
// namespace or from inside a container's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <libvirt/libvirt.h>

namespace hv::guest {

// Non-blocking connect with a timeout: true when something accepts on addr:port (IPv4).
bool tcp_open(const std::string& addr, int port, int timeout_ms);
// From inside the network namespace of the process `init_pid` (a container's init), to each
// IPv4 address it has there, 127.0.0.1 first: a listener on any of them or on 0.0.0.0
// counts, nothing outside the container does.
bool tcp_open_in_netns(std::int64_t init_pid, int port, int timeout_ms);
// IPv4 addresses of a VM: DHCP leases of libvirt networks, then the guest agent.
std::vector<std::string> vm_addresses(virDomainPtr d);

}  // namespace hv::guest
