// The host network objects hv owns: bridges, bonds and VLAN sub-interfaces. The desired state
// is persisted in <state_dir>/network.json (atomically rewritten) and re-applied idempotently
// when hvd starts (before autostart), so the host comes back the same after a reboot.
//
// Ownership: an interface is hv's when it is recorded in the state file (hv created it).
// hv never changes, deletes or re-addresses an interface it does not own; the only change made
// to other interfaces is enslaving a free NIC as a port or bond member (and releasing it
// again on delete). NICs that carry a global address are refused as ports (they may carry the
// management connection; hv refuses such ports until confirmed apply with rollback exists).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "hv/api/net.hpp"
#include "net_backend.hpp"

namespace hv::util {
class Reverter;
}

namespace hv::net {

class NetManager {
public:
    NetManager(std::string state_file, std::unique_ptr<NetBackend> backend);

    // Probed once (first call), then cached.
    api::KernelFeatures features();
    // Physical NICs (all links but lo with all = true).
    std::vector<api::NicInfo> nics(bool all);

    std::vector<api::BridgeInfo> bridges();
    api::BridgeInfo bridge(const std::string& name);
    // Validates, checks ownership and ports, applies, persists; on failure removes what it made.
    api::BridgeInfo create_bridge(const api::BridgeSpec& spec);
    // force = also when ports hv did not add (VM taps) are attached.
    void delete_bridge(const std::string& name, bool force = false);

    std::vector<api::BondInfo> bonds();
    api::BondInfo bond(const std::string& name);
    api::BondInfo create_bond(const api::BondSpec& spec);
    void delete_bond(const std::string& name);

    std::vector<api::VlanInfo> vlans();
    api::VlanInfo vlan(const std::string& name);
    api::VlanInfo create_vlan(const api::VlanSpec& spec);
    void delete_vlan(const std::string& name);

    // Re-applies every persisted object (bonds, VLANs on them, bridges, VLANs on bridges).
    // Never throws: a failure is logged and returned as one line per object.
    std::vector<std::string> apply_all();

    api::NetState state() const;

private:
    void save_locked() const;
    api::KernelFeatures features_locked();
    bool owned_locked(const std::string& name) const;
    // Who (an hv object) uses `name` as port, member or parent: "" = nobody.
    std::string user_of_locked(const std::string& name) const;
    void check_new_name_locked(const std::string& name, const std::vector<LinkState>& links) const;
    void check_free_port_locked(const std::string& port, const std::string& for_what,
                                const std::vector<LinkState>& links);
    void require_feature_locked(const std::string& feature, const std::string& what);

    void apply_bridge(const api::BridgeSpec& spec, util::Reverter& rv);
    void apply_bond(const api::BondSpec& spec, util::Reverter& rv);
    void apply_vlan(const api::VlanSpec& spec, util::Reverter& rv);

    api::BridgeInfo bridge_info(const api::BridgeSpec& spec, const std::vector<LinkState>& links);
    api::BondInfo bond_info(const api::BondSpec& spec, const std::vector<LinkState>& links);
    api::VlanInfo vlan_info(const api::VlanSpec& spec, const std::vector<LinkState>& links);
    api::PortState port_state(const std::string& name, const std::vector<LinkState>& links);

    std::string state_file_;
    std::unique_ptr<NetBackend> backend_;
    mutable std::mutex mu_;  // one network change at a time; held across kernel calls
    api::NetState state_;
    std::optional<api::KernelFeatures> features_;
};

}  // namespace hv::net
