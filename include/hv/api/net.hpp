// Wire model for host networking: NICs (read-only), bridges, bonds, VLAN sub-interfaces and the
// kernel features they need. Same shapes as the other models: *Spec for what a client asks
// (strict JSON: unknown fields -> 400), *Info for what hvd reports (spec + live state + warnings).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::api {

// What a bridge or bond carries; vm and storage want 10GbE uplinks (warnings otherwise).
inline const std::vector<std::string> kNetPurposes{"vm", "storage", "management"};
inline const std::vector<std::string> kBondModes{"active-backup", "802.3ad", "balance-xor"};
inline const std::vector<std::string> kXmitHashPolicies{"layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4"};
// Uplinks slower than this get a warning on vm/storage bridges and bonds.
inline constexpr std::int64_t kUplinkMinSpeedMbps = 10000;
inline constexpr int kMaxMtu = 9000;
inline constexpr int kMinMtu = 68;

// A network interface as sysfs reports it.
struct NicInfo {
    // Example: "enp1s0f0".
    std::string name;
    // Example: "52:54:00:12:34:56".
    std::string mac;
    // Kernel driver of the device ("ixgbe", "virtio_net"); for virtual links their kind ("veth").
    std::string driver;
    // "physical" (has a device), or the link kind: "bridge", "bond", "vlan", "veth", "tun", ...
    std::string kind;
    // Link detected (sysfs carrier = 1). False also while the link is administratively down.
    bool carrier = false;
    // Mb/s; -1 when unknown (no link, or the driver does not say).
    std::int64_t speed = -1;
    // "full", "half" or "unknown".
    std::string duplex = "unknown";
    int mtu = 0;
    // "up", "down", "lowerlayerdown", ... (sysfs operstate).
    std::string operstate;
    // Bridge or bond this link is enslaved to ("" = none).
    std::string master;
    // True when hv created it (recorded in hvd's network state).
    bool managed = false;
};

struct BridgeSpec {
    // Example: "vmbr0" (kernel interface name rules, at most 15 characters).
    std::string name;
    // Uplinks and other ports. Example: ["bond0"].
    std::vector<std::string> ports;
    // VLAN filtering on the bridge (802.1Q aware): ports carry the VLAN ids in `vids` tagged.
    bool vlan_aware = false;
    // Allowed VLAN ids on the ports (and the bridge itself) when vlan_aware. Example: "2-4094",
    // "100,200-210".
    std::string vids = "2-4094";
    // 0 = leave the kernel's default. Example: 9000.
    int mtu = 0;
    // Optional host address on the bridge (management or storage network). Example: "10.0.0.5/24".
    std::optional<std::string> address;
    // Optional default gateway through this bridge (needs `address`). Example: "10.0.0.1".
    std::optional<std::string> gateway;
    // "vm" | "storage" | "management".
    std::string purpose = "vm";
};

struct BondSpec {
    // Example: "bond0".
    std::string name;
    // "active-backup" | "802.3ad" | "balance-xor".
    std::string mode = "active-backup";
    // Link monitoring interval in ms (0 disables it).
    int miimon = 100;
    // active-backup: the member used while it has link ("" = kernel's choice).
    std::string primary;
    // Example: ["enp1s0f0", "enp1s0f1"].
    std::vector<std::string> members;
    // 802.3ad / balance-xor: "layer2" | "layer2+3" | "layer3+4" | "encap2+3" | "encap3+4"; "" = layer2.
    std::string xmit_hash_policy;
    int mtu = 0;
    // "vm" | "storage" | "management".
    std::string purpose = "vm";
};

struct VlanSpec {
    // Example: "bond0.100".
    std::string name;
    // Example: "bond0".
    std::string parent;
    // 1..4094.
    int id = 0;
    int mtu = 0;
};

// `set` on existing objects (PATCH): only the fields present change. Lists change by
// add/remove, so a concurrent change to another port is not undone.
struct BridgePatch {
    std::vector<std::string> add_ports, remove_ports;
    std::optional<bool> vlan_aware;
    std::optional<std::string> vids;
    std::optional<int> mtu;
    std::optional<std::string> purpose;
};
struct BondPatch {
    std::vector<std::string> add_members, remove_members;
    std::optional<std::string> primary;  // "" = none
    std::optional<int> miimon;
    std::optional<int> mtu;
    std::optional<std::string> purpose;
};
struct VlanPatch {
    std::optional<int> mtu;
};

// A port or member as seen live.
struct PortState {
    std::string name;
    bool present = false;
    bool carrier = false;
    std::int64_t speed = -1;
    int mtu = 0;
    std::string master;
};

struct BridgeInfo {
    BridgeSpec spec;
    // False when the interface does not exist now (hvd re-creates it at start).
    bool present = false;
    std::string operstate;
    std::string mac;
    int mtu = 0;
    bool vlan_filtering = false;
    std::vector<PortState> ports;
    // Ports hv did not add as uplinks: VM taps, container veths. Example: ["vnet0"].
    std::vector<std::string> guest_ports;
    // True when the create was staged, not applied: it touches an interface that carries an
    // address (maybe hvd's own management connection); `hvctl net apply` applies it.
    bool pending = false;
    std::vector<std::string> warnings;
};

struct BondInfo {
    BondSpec spec;
    bool present = false;
    std::string operstate;
    std::string mac;
    int mtu = 0;
    std::int64_t speed = -1;
    // active-backup: the member carrying traffic now.
    std::string active_member;
    std::vector<PortState> members;
    std::vector<std::string> warnings;
};

struct VlanInfo {
    VlanSpec spec;
    bool present = false;
    std::string operstate;
    std::string mac;
    int mtu = 0;
    std::vector<std::string> warnings;
};

// One kernel capability hv needs. name: "bridge", "vlan_filtering", "8021q", "bonding", "veth",
// "dummy".
struct KernelFeature {
    std::string name;
    bool supported = false;
    // Why not (e.g. "bond: Operation not supported"), or how it was found.
    std::string detail;
};

struct KernelFeatures {
    std::vector<KernelFeature> items;
    // Unknown names count as unsupported.
    bool has(const std::string& name) const;
    const KernelFeature* find(const std::string& name) const;
};

// A staged change: it waits for `hvctl net apply --confirm-within N` because it touches an
// interface that carries an address.
struct NetChange {
    // "bridge.create"
    std::string action;
    BridgeSpec bridge;
    // What it will do to addressed interfaces. Example: "address 10.0.0.5/24 moves from eno1 to vmbr0".
    std::vector<std::string> effects;
};
// Safe apply (commit-confirmed): staged changes, or an applied one waiting for `net confirm`.
struct NetApplyState {
    // "idle" | "pending" (staged, not applied) | "awaiting_confirmation" (applied; rolled back at
    // rollback_at unless confirmed).
    std::string state = "idle";
    std::vector<NetChange> changes;
    // Unix time (s) of the automatic rollback while awaiting_confirmation, else 0.
    std::int64_t rollback_at = 0;
    // What the latest rollback did and why ("" = none since hvd started).
    std::string last_rollback;
};

// The desired network state hvd persists (<state_dir>/network.json) and re-applies at start.
struct NetState {
    std::vector<BondSpec> bonds;
    std::vector<VlanSpec> vlans;
    std::vector<BridgeSpec> bridges;
};

// Kernel interface names: 1-15 characters from [A-Za-z0-9._-], starting with a letter or digit,
// not "." or "..". Throws invalid_input naming `what`.
void validate_ifname(const std::string& name, const char* what);
// "2-4094", "100,200-210": sorted, merged ranges of 1..4094; throws invalid_input.
std::vector<std::pair<int, int>> parse_vids(const std::string& text);
// "10.0.0.5/24", "fd00::5/64"; throws invalid_input. Returns the address family (AF_INET/AF_INET6).
int validate_cidr(const std::string& text, const char* what);

void validate(const BridgeSpec& b);
void validate(const BondSpec& b);
void validate(const VlanSpec& v);

// Warnings for a bridge or bond of `purpose` over `ports` (uplinks) with MTU `mtu` (0 = not
// set): vm/storage uplinks without carrier or slower than 10000 Mb/s; MTU mismatches.
std::vector<std::string> uplink_warnings(const std::string& what, const std::string& purpose, int mtu,
                                         const std::vector<PortState>& ports);

void to_json(nlohmann::json& j, const NicInfo& v);
void to_json(nlohmann::json& j, const BridgeSpec& v);
void to_json(nlohmann::json& j, const BondSpec& v);
void to_json(nlohmann::json& j, const VlanSpec& v);
void to_json(nlohmann::json& j, const PortState& v);
void to_json(nlohmann::json& j, const BridgeInfo& v);
void to_json(nlohmann::json& j, const BondInfo& v);
void to_json(nlohmann::json& j, const VlanInfo& v);
void to_json(nlohmann::json& j, const KernelFeatures& v);
void to_json(nlohmann::json& j, const NetState& v);
void to_json(nlohmann::json& j, const NetChange& v);
void to_json(nlohmann::json& j, const NetApplyState& v);
NetApplyState net_apply_state_from_json(const nlohmann::json& j);

void to_json(nlohmann::json& j, const BridgePatch& v);
void to_json(nlohmann::json& j, const BondPatch& v);
void to_json(nlohmann::json& j, const VlanPatch& v);
// Apply a patch to a copy of a spec; the result is validated. Throws invalid_input.
BridgeSpec apply_patch(BridgeSpec s, const BridgePatch& p);
BondSpec apply_patch(BondSpec s, const BondPatch& p);
VlanSpec apply_patch(VlanSpec s, const VlanPatch& p);

// Input objects: strict.
BridgePatch bridge_patch_from_json(const nlohmann::json& j);
BondPatch bond_patch_from_json(const nlohmann::json& j);
VlanPatch vlan_patch_from_json(const nlohmann::json& j);
BridgeSpec bridge_spec_from_json(const nlohmann::json& j);
BondSpec bond_spec_from_json(const nlohmann::json& j);
VlanSpec vlan_spec_from_json(const nlohmann::json& j);
NetState net_state_from_json(const nlohmann::json& j);
// Output objects: lenient (unknown fields ignored), for clients.
NicInfo nic_info_from_json(const nlohmann::json& j);
BridgeInfo bridge_info_from_json(const nlohmann::json& j);
BondInfo bond_info_from_json(const nlohmann::json& j);
VlanInfo vlan_info_from_json(const nlohmann::json& j);
KernelFeatures kernel_features_from_json(const nlohmann::json& j);

}  // namespace hv::api
