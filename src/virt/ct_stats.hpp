// Per-container statistics for GET /v1/metrics. libvirt's LXC driver has no bulk call
// (virConnectGetAllDomainStats: "not supported by the connection driver" on libvirt 9.0), so
// this asks per container what the driver offers (state, CPU times, memory in use, block I/O
// of the cgroup, each veth's counters) and reads the rest from the container's cgroup files
// (cgroup_stats.hpp). The records are the DomainStats of domain_stats.hpp with field names of
// their own (docs/observability.md):
//   "cpu.time", "cpu.user", "cpu.system" (ns, virDomainGetCPUStats),
//   "memory.current" (bytes, virDomainGetInfo), "memory.max", "memory.anon", "memory.file",
//   "memory.swap" (bytes, cgroup files), "io.rd.bytes", "io.wr.bytes", "io.rd.reqs",
//   "io.wr.reqs" (virDomainBlockStats of the whole container),
//   nics: the host side of each veth with "rx.bytes", "tx.pkts", ... (virDomainInterfaceStats).
#pragma once

#include <vector>

#include "connection.hpp"
#include "domain_stats.hpp"

namespace hv::virt {

// Every container of the LXC connection (stopped ones with their state only). Throws hv::Error
// when the connection is down or the list fails; a container that stops or vanishes meanwhile
// reports what was read.
std::vector<DomainStats> container_stats(Connection& lxc);

}  // namespace hv::virt
