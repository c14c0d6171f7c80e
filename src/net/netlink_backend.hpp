// NetBackend over rtnetlink with libnl-route-3: link cache and address/route objects from
// libnl-route, link creation and bridge VLAN requests as rtnetlink messages built with libnl's
// message API (libnl 3.7 has no setters for bond mode, bridge vlan_filtering or port VLANs).
// Each call opens its own socket, so it acts in the network namespace of the calling thread.
#pragma once

#include "net_backend.hpp"
#include "sysfs_nics.hpp"

namespace hv::net {

class NetlinkBackend : public NetBackend {
public:
    explicit NetlinkBackend(std::string sysfs_root = "/sys/class/net") : sysfs_(std::move(sysfs_root)) {}

    std::vector<LinkState> links() override;
    api::NicInfo nic(const std::string& name) override;
    std::vector<std::string> addresses(const std::string& name) override;
    // Creates one throwaway link of each kind in a private network namespace of a short-lived
    // thread (nothing appears in hvd's namespace); falls back to /sys/module when that fails.
    api::KernelFeatures probe_features() override;

    void create_bridge(const std::string& name, bool vlan_filtering, int mtu) override;
    void create_bond(const api::BondSpec& spec) override;
    void create_vlan(const std::string& name, const std::string& parent, int id, int mtu) override;
    void delete_link(const std::string& name) override;
    void set_master(const std::string& name, const std::string& master) override;
    void set_up(const std::string& name, bool up) override;
    void set_mtu(const std::string& name, int mtu) override;
    void set_vlan_filtering(const std::string& bridge, bool on) override;
    void set_bond_primary(const std::string& bond, const std::string& member) override;
    void set_bond_miimon(const std::string& bond, int miimon) override;
    void add_bridge_vlans(const std::string& dev, const std::vector<std::pair<int, int>>& vids, bool self) override;
    void set_port_pvid(const std::string& dev, int vid) override;
    void del_bridge_vlans(const std::string& dev, const std::vector<std::pair<int, int>>& vids, bool self) override;
    std::vector<api::PortVlan> port_vlans(const std::string& dev) override;
    void add_address(const std::string& dev, const std::string& cidr) override;
    bool add_default_route(const std::string& dev, const std::string& gateway) override;
    void del_address(const std::string& dev, const std::string& cidr) override;
    std::optional<std::pair<std::string, std::string>> default_route() override;

private:
    SysfsNics sysfs_;
};

}  // namespace hv::net
