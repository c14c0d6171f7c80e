// NetBackend: the one interface between hv's network logic (NetManager) and the kernel.
// Implementations: NetlinkBackend (libnl-route-3, the real one). Every call acts on the network
// namespace of the calling thread; none runs a command or a shell.
//
// Contract:
//  - Each call does one kernel change and either completes or throws hv::Error; nothing is
//    half-done by a single call. Multi-step operations (create a bridge, enslave its ports) are
//    composed by NetManager, which registers an undo in a util::Reverter after each step.
//  - Missing kernel support surfaces as Errc::unsupported with a message naming the feature
//    ("bonding", "8021q", "vlan_filtering"), never as a bare errno.
//  - Reads never change anything.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hv/api/net.hpp"
#include "hv/api/vm.hpp"

namespace hv::net {

// One link as the kernel reports it now.
struct LinkState {
    std::string name;
    int ifindex = 0;
    // rtnetlink kind: "bridge", "bond", "vlan", "veth", "tun", ...; "" for plain devices.
    std::string kind;
    std::string master;      // "" = none
    bool admin_up = false;   // IFF_UP
    std::string operstate;   // "up", "down", "lowerlayerdown", "unknown", ...
    int mtu = 0;
    std::string mac;
    std::string parent;      // vlan: the lower device
    int vlan_id = 0;         // vlan
    bool vlan_filtering = false;  // bridge
    std::string bond_active;      // bond (active-backup): the active member
};

class NetBackend {
public:
    virtual ~NetBackend() = default;

    // ---- reads
    virtual std::vector<LinkState> links() = 0;
    // sysfs facts of one interface (speed, duplex, carrier, driver, ...). not_found if absent.
    virtual api::NicInfo nic(const std::string& name) = 0;
    // Global-scope addresses of an interface as CIDR strings.
    virtual std::vector<std::string> addresses(const std::string& name) = 0;
    // VLANs of a bridge port (or, with self, of the bridge device) as the kernel reports them;
    // empty when the bridge does not filter VLANs.
    virtual std::vector<api::PortVlan> port_vlans(const std::string& dev) = 0;
    // Which of bridge, vlan_filtering, 8021q, bonding, veth, dummy this kernel supports.
    virtual api::KernelFeatures probe_features() = 0;

    // ---- changes (one kernel request each)
    virtual void create_bridge(const std::string& name, bool vlan_filtering, int mtu) = 0;
    virtual void create_bond(const api::BondSpec& spec) = 0;  // mode, miimon, xmit hash; no members
    virtual void create_vlan(const std::string& name, const std::string& parent, int id, int mtu) = 0;
    virtual void delete_link(const std::string& name) = 0;
    virtual void set_master(const std::string& name, const std::string& master) = 0;  // "" = release
    virtual void set_up(const std::string& name, bool up) = 0;
    virtual void set_mtu(const std::string& name, int mtu) = 0;
    virtual void set_vlan_filtering(const std::string& bridge, bool on) = 0;
    virtual void set_bond_primary(const std::string& bond, const std::string& member) = 0;  // "" = none
    virtual void set_bond_miimon(const std::string& bond, int miimon) = 0;
    // Adds VLAN ids (tagged) to a bridge port, or to the bridge device itself (self = true).
    virtual void add_bridge_vlans(const std::string& dev, const std::vector<std::pair<int, int>>& vids, bool self) = 0;
    // Makes `vid` the port's PVID, untagged (an access port); the previous PVID stays a member.
    virtual void set_port_pvid(const std::string& dev, int vid) = 0;
    // Removes VLAN ids from a bridge port, or from the bridge device itself (self = true).
    virtual void del_bridge_vlans(const std::string& dev, const std::vector<std::pair<int, int>>& vids, bool self) = 0;
    virtual void add_address(const std::string& dev, const std::string& cidr) = 0;  // replaces an equal one
    // Adds a default route; an existing default route is left alone (returns false then).
    virtual bool add_default_route(const std::string& dev, const std::string& gateway) = 0;
    virtual void del_address(const std::string& dev, const std::string& cidr) = 0;
    // The IPv4 default route of the main table: {device, gateway}; nullopt when there is none.
    virtual std::optional<std::pair<std::string, std::string>> default_route() = 0;
};

}  // namespace hv::net
