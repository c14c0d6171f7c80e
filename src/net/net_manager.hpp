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
#include <condition_variable>
#include <mutex>
#include <thread>
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
    // An apply still awaiting confirmation is rolled back (hvd stopping = no confirmation).
    ~NetManager();

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
    // `set`: only what the patch names changes (ports released/enslaved, VLAN filtering, vids
    // on every port and the bridge, MTU, purpose); undone on failure; persisted.
    api::BridgeInfo update_bridge(const std::string& name, const api::BridgePatch& patch);
    api::BondInfo update_bond(const std::string& name, const api::BondPatch& patch);
    api::VlanInfo update_vlan(const std::string& name, const api::VlanPatch& patch);

    std::vector<api::BondInfo> bonds();
    api::BondInfo bond(const std::string& name);
    api::BondInfo create_bond(const api::BondSpec& spec);
    void delete_bond(const std::string& name);

    std::vector<api::VlanInfo> vlans();
    api::VlanInfo vlan(const std::string& name);
    api::VlanInfo create_vlan(const api::VlanSpec& spec);
    void delete_vlan(const std::string& name);

    // ---- guest ports (VM taps, container veths) on bridges
    // Whether a guest NIC with this VLAN setup can go on `bridge`: a VLAN tag or trunks need
    // an existing VLAN-aware bridge (409 naming vlan_filtering when the kernel lacks it).
    void check_port(const std::string& bridge, int vlan, const std::string& trunks);
    // Makes `port` (already a port of `bridge`) carry exactly: `vlan` as PVID untagged, plus
    // `trunks` tagged; no vlan and no trunks = the native VLAN 1 untagged; trunks alone = a
    // trunk port with no untagged VLAN. Every other VLAN is removed. Idempotent; nothing to do
    // on a bridge that does not filter VLANs unless a tag is asked (then 409). Returns the
    // live VLANs.
    std::vector<api::PortVlan> plug_port(const std::string& port, const std::string& bridge, int vlan,
                                         const std::string& trunks);
    // What a port is now: its bridge, whether that filters VLANs, and its VLANs (no lock taken).
    api::NicState port_state(const std::string& port);

    // ---- safe apply (commit-confirmed) for changes that touch addressed interfaces
    // create_bridge() with a port that carries an address does not apply it: it is staged
    // (BridgeInfo.pending) with what it will do (the port's addresses and the default route
    // through it move to the bridge).
    api::NetApplyState apply_state() const;
    // Applies the staged changes; unless confirm() comes within `confirm_within_s` seconds,
    // everything is rolled back (addresses and default route back on the ports). The undo
    // record is written to <state>.rollback.json before any change, so a crash in the window
    // is rolled back by recover() at the next start.
    api::NetApplyState apply(int confirm_within_s);
    api::NetApplyState confirm();
    // Drops staged changes; while awaiting confirmation, rolls back now.
    api::NetApplyState revert();
    // At hvd start, before apply_all(): rolls back an apply that was never confirmed.
    void recover();

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
    // allow_addresses: a port carrying addresses is fine (staged bridge creates).
    void check_free_port_locked(const std::string& port, const std::string& for_what,
                                const std::vector<LinkState>& links, bool allow_addresses = false);
    void require_feature_locked(const std::string& feature, const std::string& what);

    void apply_bridge(const api::BridgeSpec& spec, util::Reverter& rv);
    void apply_bond(const api::BondSpec& spec, util::Reverter& rv);
    void apply_vlan(const api::VlanSpec& spec, util::Reverter& rv);

    api::BridgeInfo bridge_info(const api::BridgeSpec& spec, const std::vector<LinkState>& links);
    api::BondInfo bond_info(const api::BondSpec& spec, const std::vector<LinkState>& links);
    api::VlanInfo vlan_info(const api::VlanSpec& spec, const std::vector<LinkState>& links);
    api::PortState port_state(const std::string& name, const std::vector<LinkState>& links);

    // The undo record of an unconfirmed apply: per bridge, its ports' addresses; the default route.
    struct Rollback {
        std::vector<std::string> bridges;
        std::vector<std::pair<std::string, std::vector<std::string>>> port_addresses;
        std::optional<std::pair<std::string, std::string>> default_route;  // {dev, gateway}
        std::vector<api::NetChange> changes;
    };
    void rollback_locked(const std::string& why);
    void write_rollback_locked(const Rollback& r) const;
    std::string rollback_file() const { return state_file_ + ".rollback.json"; }
    void timer_main(std::int64_t deadline);

    std::string state_file_;
    std::unique_ptr<NetBackend> backend_;
    std::vector<api::NetChange> staged_;
    std::optional<Rollback> awaiting_;
    std::int64_t rollback_at_ = 0;
    std::string last_rollback_;
    std::condition_variable cv_;  // wakes the rollback timer (with mu_)
    bool stopping_ = false;
    std::mutex timer_mu_;         // guards timer_ (joined outside mu_)
    std::thread timer_;
    mutable std::mutex mu_;  // one network change at a time; held across kernel calls
    api::NetState state_;
    std::optional<api::KernelFeatures> features_;
};

}  // namespace hv::net
