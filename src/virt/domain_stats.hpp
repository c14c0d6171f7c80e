// Per-domain statistics from libvirt's bulk call (virConnectGetAllDomainStats): one call for
// every domain of a connection, turned into plain records with libvirt's own field names and
// units, so the metrics renderer (src/daemon/metrics.cpp) knows nothing of libvirt and other
// domain kinds (containers on a second connection) can feed it the same records.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <libvirt/libvirt.h>

namespace hv::virt {

struct DomainStats {
    std::string name;
    // "running" | "blocked" | "paused" | "shutdown" | "shutoff" | "crashed" | "pmsuspended" | "nostate"
    std::string state;
    // Scalar fields present for this domain, by libvirt name and unit: "cpu.time" (ns),
    // "cpu.user", "cpu.system", "balloon.current" (KiB), "balloon.maximum", "balloon.rss",
    // "balloon.usable", "balloon.available", "balloon.unused", "vcpu.current", "vcpu.maximum".
    // A stopped domain has almost none; absent means unknown, not zero.
    std::map<std::string, std::uint64_t> values;
    struct Device {
        // net: the host-side interface ("vnet3"); block: the target ("vda").
        std::string name;
        // Without the "net.N." / "block.N." prefix: "rx.bytes", "rd.reqs", "capacity", ...
        std::map<std::string, std::uint64_t> values;
    };
    std::vector<Device> nics;
    std::vector<Device> disks;
};

// "running" for VIR_DOMAIN_RUNNING, ...
std::string domain_state_name(int state);

// One domain's record from its typed parameters (the part of virDomainStatsRecord libvirt
// fills). Unknown fields are ignored; numbers of any integer type are kept, others dropped.
DomainStats domain_stats_from_params(const std::string& name, const virTypedParameter* params, int nparams);

// The stats hv asks for: state, cpu-total, balloon, vcpu, interface, block.
unsigned default_domain_stats();

// One bulk call for every domain of `conn` (NOWAIT: a domain busy with a job reports what it
// can at once instead of stalling the scrape). Throws hv::Error on failure.
std::vector<DomainStats> bulk_domain_stats(virConnectPtr conn, unsigned stats = default_domain_stats());

}  // namespace hv::virt
