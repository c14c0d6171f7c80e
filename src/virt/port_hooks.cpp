#include "port_hooks.hpp"

#include <algorithm>

#include <libvirt/libvirt.h>

#include "connection.hpp"
#include "hv/virt/domain_xml.hpp"

namespace hv::virt {

namespace {
std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}
}  // namespace

void name_nics(std::vector<api::NicSpec>& nics) {
    auto taken = [&](const std::string& n) {
        for (const auto& o : nics)
            if (o.name == n) return true;
        return false;
    };
    for (auto& n : nics) {
        if (n.name.empty()) {
            int k = 0;
            while (taken("net" + std::to_string(k))) ++k;
            n.name = "net" + std::to_string(k);
        }
        // MACs are part of the guest's identity (they must survive a move to another host), so hv
        // picks them rather than leaving it to libvirt's define-time choice.
        if (n.mac.empty()) n.mac = random_mac();
    }
}

void check_nics(const PortHooks& hooks, const std::vector<api::NicSpec>& nics) {
    if (!hooks.check) return;
    for (std::size_t i = 0; i < nics.size(); ++i) {
        try {
            hooks.check(nics[i]);
        } catch (const Error& e) {
            fail(e.code(), "nics[{}]: {}", i, e.what());
        }
    }
}

void fill_port_states(const PortHooks& hooks, std::vector<api::NicState>& nics) {
    if (!hooks.state) return;
    for (auto& i : nics) {
        if (i.tap.empty()) continue;
        try {
            auto st = hooks.state(i.tap);
            i.bridge = st.bridge;
            i.vlan_aware = st.vlan_aware;
            i.vlans = std::move(st.vlans);
            i.error = st.error;
        } catch (const std::exception& e) {
            i.error = e.what();
        }
    }
}

std::vector<api::NicState> live_nic_states(const LiveFacts& live, const std::vector<api::NicSpec>& nics) {
    std::vector<api::NicState> out;
    for (const auto& x : live.nics) {
        api::NicState st;
        st.mac = x.mac;
        st.tap = x.tap;
        st.bridge = x.bridge;
        for (const auto& n : nics)
            if (lower(n.mac) == x.mac) st.name = n.name;
        out.push_back(std::move(st));
    }
    return out;
}

void plug_domain_nics(const PortHooks& hooks, virDomainPtr d, const std::vector<api::NicSpec>& nics,
                      const std::string& what) {
    if (!hooks.plug) return;
    bool any = false;
    for (const auto& n : nics) any |= !n.bridge.empty();
    if (!any) return;
    char* xml = virDomainGetXMLDesc(d, 0);
    if (!xml) throw_libvirt_error(fmt::format("cannot read the live XML of {}", what));
    auto live = parse_live_xml(xml);
    free(xml);
    std::string first_error;
    for (const auto& n : nics) {
        if (n.bridge.empty()) continue;
        const XmlNic* x = nullptr;
        for (const auto& l : live.nics)
            if (l.mac == lower(n.mac)) x = &l;
        try {
            if (!x || x->tap.empty())
                fail(Errc::internal, "{}: NIC {} ({}) has no host device in the running domain", what, n.name, n.mac);
            hooks.plug(x->tap, n);
        } catch (const std::exception& e) {
            if (first_error.empty()) first_error = fmt::format("NIC {}: {}", n.name, e.what());
        }
    }
    if (!first_error.empty()) fail(Errc::conflict, "{}: {}", what, first_error);
}

}  // namespace hv::virt
