#include "domain_stats.hpp"

#include <charconv>
#include <memory>
#include <optional>
#include <string_view>

#include "connection.hpp"

namespace hv::virt {
namespace {

std::optional<std::uint64_t> as_u64(const virTypedParameter& p) {
    switch (p.type) {
    case VIR_TYPED_PARAM_INT: return p.value.i < 0 ? std::nullopt : std::optional<std::uint64_t>(p.value.i);
    case VIR_TYPED_PARAM_UINT: return p.value.ui;
    case VIR_TYPED_PARAM_LLONG: return p.value.l < 0 ? std::nullopt : std::optional<std::uint64_t>(p.value.l);
    case VIR_TYPED_PARAM_ULLONG: return p.value.ul;
    default: return std::nullopt;
    }
}

// "net.3.rx.bytes" with prefix "net." -> index 3, rest "rx.bytes".
bool device_field(std::string_view field, std::string_view prefix, std::size_t& index, std::string_view& rest) {
    if (!field.starts_with(prefix)) return false;
    field.remove_prefix(prefix.size());
    auto dot = field.find('.');
    if (dot == std::string_view::npos || dot == 0) return false;
    auto [ptr, ec] = std::from_chars(field.data(), field.data() + dot, index);
    if (ec != std::errc() || ptr != field.data() + dot || index > 4096) return false;
    rest = field.substr(dot + 1);
    return true;
}

struct StatsFree {
    void operator()(virDomainStatsRecordPtr* r) const noexcept { virDomainStatsRecordListFree(r); }
};

}  // namespace

std::string domain_state_name(int state) {
    switch (state) {
    case VIR_DOMAIN_RUNNING: return "running";
    case VIR_DOMAIN_BLOCKED: return "blocked";
    case VIR_DOMAIN_PAUSED: return "paused";
    case VIR_DOMAIN_SHUTDOWN: return "shutdown";
    case VIR_DOMAIN_SHUTOFF: return "shutoff";
    case VIR_DOMAIN_CRASHED: return "crashed";
    case VIR_DOMAIN_PMSUSPENDED: return "pmsuspended";
    default: return "nostate";
    }
}

DomainStats domain_stats_from_params(const std::string& name, const virTypedParameter* params, int nparams) {
    DomainStats s;
    s.name = name;
    s.state = "nostate";
    auto device = [](std::vector<DomainStats::Device>& v, std::size_t i) -> DomainStats::Device& {
        if (v.size() <= i) v.resize(i + 1);
        return v[i];
    };
    for (int i = 0; i < nparams; ++i) {
        const auto& p = params[i];
        std::string_view field(p.field);
        std::size_t index = 0;
        std::string_view rest;
        if (field == "state.state") {
            if (p.type == VIR_TYPED_PARAM_INT) s.state = domain_state_name(p.value.i);
            continue;
        }
        bool is_device = false;
        for (auto [prefix, list] : {std::pair{"net.", &s.nics}, std::pair{"block.", &s.disks}}) {
            if (!device_field(field, prefix, index, rest)) continue;
            is_device = true;
            auto& d = device(*list, index);
            if (rest == "name") {
                if (p.type == VIR_TYPED_PARAM_STRING && p.value.s) d.name = p.value.s;
            } else if (auto v = as_u64(p)) {
                d.values[std::string(rest)] = *v;
            }
        }
        if (is_device) continue;
        if (field.starts_with("cpu.") || field.starts_with("balloon.") || field == "vcpu.current" ||
            field == "vcpu.maximum") {
            if (auto v = as_u64(p)) s.values[std::string(field)] = *v;
        }
    }
    // Devices libvirt did not name (should not happen) cannot be labelled: drop them.
    std::erase_if(s.nics, [](const DomainStats::Device& d) { return d.name.empty(); });
    std::erase_if(s.disks, [](const DomainStats::Device& d) { return d.name.empty(); });
    return s;
}

unsigned default_domain_stats() {
    return VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL | VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_VCPU |
           VIR_DOMAIN_STATS_INTERFACE | VIR_DOMAIN_STATS_BLOCK;
}

std::vector<DomainStats> bulk_domain_stats(virConnectPtr conn, unsigned stats) {
    virDomainStatsRecordPtr* raw = nullptr;
    int n = virConnectGetAllDomainStats(conn, stats, &raw, VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT);
    if (n < 0) throw_libvirt_error("cannot read domain statistics");
    std::unique_ptr<virDomainStatsRecordPtr, StatsFree> guard(raw);
    std::vector<DomainStats> out;
    out.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        const char* name = virDomainGetName(raw[i]->dom);
        out.push_back(domain_stats_from_params(name ? name : "", raw[i]->params, raw[i]->nparams));
    }
    return out;
}

}  // namespace hv::virt
