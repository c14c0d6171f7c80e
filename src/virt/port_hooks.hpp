// How guest NICs on Linux bridges get their bridge-port VLANs (hvd wires these to
// net::NetManager). Shared by VMs (taps) and containers (host side of the veth): libvirt does
// not tag ports of a Linux bridge, hv does. Unset hooks = nothing done (unit tests, test:///).
#pragma once

#include <functional>
#include <string>

#include <libvirt/libvirt.h>

#include "hv/api/vm.hpp"
#include "hv/virt/domain_xml.hpp"

namespace hv::virt {

struct PortHooks {
    // Throws when the NIC cannot be plugged as asked (a tag on a bridge that is not
    // VLAN-aware, a VLAN the bridge does not carry, ...): called before anything is made.
    std::function<void(const api::NicSpec&)> check;
    // Gives the port (tap or veth) exactly the NIC's VLANs on its bridge (idempotent).
    std::function<void(const std::string& port, const api::NicSpec&)> plug;
    // The port's bridge and live VLANs (for show).
    std::function<api::NicState(const std::string& port)> state;
};

// Names ("net0", ...) for NICs without one, and a MAC for those without.
void name_nics(std::vector<api::NicSpec>& nics);

// hooks.check on each NIC; the error names the NIC ("nics[1]: ...").
void check_nics(const PortHooks& hooks, const std::vector<api::NicSpec>& nics);

// Fills bridge / vlan_aware / vlans / error of live NIC states from hooks.state (netlink
// reads, no libvirt call).
void fill_port_states(const PortHooks& hooks, std::vector<api::NicState>& nics);

// The NICs of a live domain XML (tap/veth, bridge, MAC), named after the spec's NIC of that MAC.
std::vector<api::NicState> live_nic_states(const LiveFacts& live, const std::vector<api::NicSpec>& nics);

// Plugs every bridge NIC of a running domain (VM or container) into its VLANs (hooks.plug);
// tries all, then throws conflict naming the first failure. `what`: "vm 'web01'".
void plug_domain_nics(const PortHooks& hooks, virDomainPtr d, const std::vector<api::NicSpec>& nics,
                      const std::string& what);

}  // namespace hv::virt
