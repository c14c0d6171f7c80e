#include "ct_stats.hpp"

#include <cstdlib>
#include <memory>

#include <libvirt/virterror.h>

#include "cgroup_stats.hpp"
#include "ct_manager.hpp"
#include "hv/virt/domain_xml.hpp"

namespace hv::virt {
namespace {

// libvirt's -1 (unknown) is left out.
void put(std::map<std::string, std::uint64_t>& m, const char* key, long long v) {
    if (v >= 0) m[key] = static_cast<std::uint64_t>(v);
}

// virDomainGetCPUStats for the whole domain: cpu_time, user_time, system_time (ns).
void cpu_stats(virDomainPtr d, DomainStats& s) {
    int n = virDomainGetCPUStats(d, nullptr, 0, -1, 1, 0);
    if (n <= 0) {
        virResetLastError();
        return;
    }
    std::vector<virTypedParameter> params(static_cast<std::size_t>(n));
    n = virDomainGetCPUStats(d, params.data(), n, -1, 1, 0);
    if (n < 0) {
        virResetLastError();
        return;
    }
    for (int i = 0; i < n; ++i) {
        std::string_view f(params[static_cast<std::size_t>(i)].field);
        const char* key = f == VIR_DOMAIN_CPU_STATS_CPUTIME  ? "cpu.time"
                          : f == VIR_DOMAIN_CPU_STATS_USERTIME ? "cpu.user"
                          : f == VIR_DOMAIN_CPU_STATS_SYSTEMTIME ? "cpu.system"
                                                                 : nullptr;
        if (key && params[static_cast<std::size_t>(i)].type == VIR_TYPED_PARAM_ULLONG)
            s.values[key] = params[static_cast<std::size_t>(i)].value.ul;
    }
    virTypedParamsClear(params.data(), n);
}

void nic_stats(virDomainPtr d, DomainStats& s) {
    char* xml = virDomainGetXMLDesc(d, 0);
    if (!xml) {
        virResetLastError();
        return;
    }
    std::string text(xml);
    std::free(xml);
    for (const auto& nic : parse_live_xml(text).nics) {
        if (nic.tap.empty()) continue;
        virDomainInterfaceStatsStruct st{};
        if (virDomainInterfaceStats(d, nic.tap.c_str(), &st, sizeof st) < 0) {
            virResetLastError();
            continue;
        }
        DomainStats::Device dev{nic.tap, {}};
        put(dev.values, "rx.bytes", st.rx_bytes);
        put(dev.values, "rx.pkts", st.rx_packets);
        put(dev.values, "rx.errs", st.rx_errs);
        put(dev.values, "rx.drop", st.rx_drop);
        put(dev.values, "tx.bytes", st.tx_bytes);
        put(dev.values, "tx.pkts", st.tx_packets);
        put(dev.values, "tx.errs", st.tx_errs);
        put(dev.values, "tx.drop", st.tx_drop);
        s.nics.push_back(std::move(dev));
    }
}

DomainStats one_container(virDomainPtr d) {
    DomainStats s;
    const char* name = virDomainGetName(d);
    s.name = name ? name : "";
    int state = 0, reason = 0;
    if (virDomainGetState(d, &state, &reason, 0) < 0) {
        virResetLastError();
        s.state = "nostate";
        return s;
    }
    s.state = domain_state_name(state);
    if (virDomainIsActive(d) != 1) {
        virResetLastError();
        return s;
    }
    virDomainInfo info{};
    if (virDomainGetInfo(d, &info) == 0) {
        s.values["cpu.time"] = info.cpuTime;
        s.values["memory.current"] = static_cast<std::uint64_t>(info.memory) * 1024;
    } else {
        virResetLastError();
    }
    cpu_stats(d, s);
    // "" = the whole container (its blkio / io cgroup counters).
    virDomainBlockStatsStruct bs{};
    if (virDomainBlockStats(d, "", &bs, sizeof bs) == 0) {
        put(s.values, "io.rd.bytes", bs.rd_bytes);
        put(s.values, "io.wr.bytes", bs.wr_bytes);
        put(s.values, "io.rd.reqs", bs.rd_req);
        put(s.values, "io.wr.reqs", bs.wr_req);
    } else {
        virResetLastError();
    }
    nic_stats(d, s);
    for (auto& [k, v] : cgroup_memory_values(lxc_init_pid(static_cast<std::int64_t>(virDomainGetID(d)))))
        s.values[k] = v;
    return s;
}

}  // namespace

std::vector<DomainStats> container_stats(Connection& lxc) {
    auto conn = lxc.get();
    virDomainPtr* raw = nullptr;
    int n = virConnectListAllDomains(conn.get(), &raw, 0);
    if (n < 0) throw_libvirt_error("cannot list containers");
    std::vector<DomainHandle> doms;
    doms.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) doms.emplace_back(raw[i]);
    std::free(raw);
    std::vector<DomainStats> out;
    out.reserve(doms.size());
    for (const auto& d : doms) out.push_back(one_container(d.get()));
    return out;
}

}  // namespace hv::virt
