#include "hv/api/net.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <set>

#include <fmt/format.h>

#include "hv/api/json_reader.hpp"
#include "hv/api/vm.hpp"
#include "hv/error.hpp"
#include "hv/util/utf8.hpp"

namespace hv::api {
using nlohmann::json;

namespace {

bool member_of(const std::vector<std::string>& list, const std::string& s) {
    return std::find(list.begin(), list.end(), s) != list.end();
}

void validate_mtu(int mtu, const std::string& what) {
    if (mtu == 0) return;
    if (mtu < kMinMtu || mtu > kMaxMtu)
        fail(Errc::invalid_input, "{}: mtu {} is out of range ({}..{}, or 0 for the kernel's default)", what, mtu,
             kMinMtu, kMaxMtu);
}

void validate_purpose(const std::string& p, const std::string& what) {
    if (!member_of(kNetPurposes, p))
        fail(Errc::invalid_input, "{}: purpose '{}' is not one of vm, storage, management", what, p);
}

int parse_int(const std::string& s, const std::string& text) {
    if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        fail(Errc::invalid_input, "vids '{}': '{}' is not a VLAN id", text, s);
    return std::stoi(s);
}

template <typename T>
T val(const json& j, const char* k, T d) {
    if (!j.is_object() || !j.contains(k) || j.at(k).is_null()) return d;
    return j.at(k).get<T>();
}

}  // namespace

bool KernelFeatures::has(const std::string& name) const {
    const auto* f = find(name);
    return f && f->supported;
}
const KernelFeature* KernelFeatures::find(const std::string& name) const {
    for (const auto& f : items)
        if (f.name == name) return &f;
    return nullptr;
}

void validate_ifname(const std::string& name, const char* what) {
    if (name.empty()) fail(Errc::invalid_input, "{} must not be empty", what);
    if (name.size() > 15)
        fail(Errc::invalid_input, "{} '{}' is too long ({} bytes, at most 15: a kernel interface name)", what,
             util::sanitize_utf8(name_excerpt(name)), name.size());
    if (name == "." || name == "..") fail(Errc::invalid_input, "{} must not be '{}'", what, name);
    check_name_chars(name, what);
}

std::vector<std::pair<int, int>> parse_vids(const std::string& text) {
    if (text.empty()) fail(Errc::invalid_input, "vids must not be empty (e.g. \"2-4094\" or \"100,200-210\")");
    std::vector<std::pair<int, int>> out;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        auto comma = text.find(',', pos);
        std::string part = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        auto dash = part.find('-');
        int lo = parse_int(dash == std::string::npos ? part : part.substr(0, dash), text);
        int hi = dash == std::string::npos ? lo : parse_int(part.substr(dash + 1), text);
        if (lo < 1 || hi > 4094 || lo > 4094 || hi < 1)
            fail(Errc::invalid_input, "vids '{}': VLAN ids are 1..4094 (0 and 4095 are reserved)", text);
        if (lo > hi) fail(Errc::invalid_input, "vids '{}': range {}-{} is backwards", text, lo, hi);
        out.emplace_back(lo, hi);
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    std::sort(out.begin(), out.end());
    std::vector<std::pair<int, int>> merged;
    for (auto r : out) {
        if (!merged.empty() && r.first <= merged.back().second + 1)
            merged.back().second = std::max(merged.back().second, r.second);
        else
            merged.push_back(r);
    }
    return merged;
}

int validate_cidr(const std::string& text, const char* what) {
    auto slash = text.find('/');
    if (slash == std::string::npos)
        fail(Errc::invalid_input, "{} '{}' must be ADDRESS/PREFIX (e.g. 10.0.0.5/24)", what, text);
    std::string addr = text.substr(0, slash), plen = text.substr(slash + 1);
    unsigned char buf[16];
    int family = 0, max = 0;
    if (::inet_pton(AF_INET, addr.c_str(), buf) == 1) family = AF_INET, max = 32;
    else if (::inet_pton(AF_INET6, addr.c_str(), buf) == 1) family = AF_INET6, max = 128;
    else fail(Errc::invalid_input, "{} '{}': '{}' is not an IPv4 or IPv6 address", what, text, addr);
    if (plen.empty() || plen.size() > 3 || !std::all_of(plen.begin(), plen.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoi(plen) > max || std::stoi(plen) < 1)
        fail(Errc::invalid_input, "{} '{}': prefix length must be 1..{}", what, text, max);
    return family;
}

void validate(const BridgeSpec& b) {
    validate_ifname(b.name, "bridge name");
    std::string what = "bridge '" + b.name + "'";
    std::set<std::string> seen;
    for (const auto& p : b.ports) {
        validate_ifname(p, "port name");
        if (p == b.name) fail(Errc::invalid_input, "{}: a bridge cannot be its own port", what);
        if (!seen.insert(p).second) fail(Errc::invalid_input, "{}: port '{}' is listed twice", what, p);
    }
    if (b.vlan_aware) parse_vids(b.vids);
    else if (b.vids != "2-4094") parse_vids(b.vids);  // still checked, used once vlan_aware is set
    validate_mtu(b.mtu, what);
    validate_purpose(b.purpose, what);
    if (b.address) {
        int fam = validate_cidr(*b.address, "address");
        if (b.gateway) {
            unsigned char buf[16];
            int gfam = ::inet_pton(AF_INET, b.gateway->c_str(), buf) == 1    ? AF_INET
                       : ::inet_pton(AF_INET6, b.gateway->c_str(), buf) == 1 ? AF_INET6
                                                                              : 0;
            if (!gfam) fail(Errc::invalid_input, "{}: gateway '{}' is not an IP address", what, *b.gateway);
            if (gfam != fam)
                fail(Errc::invalid_input, "{}: gateway '{}' and address '{}' are of different families", what,
                     *b.gateway, *b.address);
        }
    } else if (b.gateway) {
        fail(Errc::invalid_input, "{}: a gateway needs an address on the bridge", what);
    }
}

void validate(const BondSpec& b) {
    validate_ifname(b.name, "bond name");
    std::string what = "bond '" + b.name + "'";
    if (!member_of(kBondModes, b.mode))
        fail(Errc::invalid_input, "{}: mode '{}' is not one of active-backup, 802.3ad, balance-xor", what, b.mode);
    if (b.miimon < 0 || b.miimon > 60000) fail(Errc::invalid_input, "{}: miimon {} is out of range (0..60000 ms)", what, b.miimon);
    if (b.members.empty()) fail(Errc::invalid_input, "{}: at least one member is required", what);
    std::set<std::string> seen;
    for (const auto& m : b.members) {
        validate_ifname(m, "member name");
        if (m == b.name) fail(Errc::invalid_input, "{}: a bond cannot be its own member", what);
        if (!seen.insert(m).second) fail(Errc::invalid_input, "{}: member '{}' is listed twice", what, m);
    }
    if (!b.primary.empty()) {
        if (b.mode != "active-backup")
            fail(Errc::invalid_input, "{}: primary is only meaningful in mode active-backup", what);
        if (!seen.count(b.primary))
            fail(Errc::invalid_input, "{}: primary '{}' is not one of the members", what, b.primary);
    }
    if (!b.xmit_hash_policy.empty()) {
        if (b.mode == "active-backup")
            fail(Errc::invalid_input, "{}: xmit_hash_policy is only meaningful in modes 802.3ad and balance-xor", what);
        if (!member_of(kXmitHashPolicies, b.xmit_hash_policy))
            fail(Errc::invalid_input, "{}: xmit_hash_policy '{}' is not one of layer2, layer2+3, layer3+4, encap2+3, encap3+4",
                 what, b.xmit_hash_policy);
    }
    validate_mtu(b.mtu, what);
    validate_purpose(b.purpose, what);
}

void validate(const VlanSpec& v) {
    validate_ifname(v.name, "vlan name");
    validate_ifname(v.parent, "vlan parent");
    std::string what = "vlan '" + v.name + "'";
    if (v.parent == v.name) fail(Errc::invalid_input, "{}: parent must be another interface", what);
    if (v.id < 1 || v.id > 4094)
        fail(Errc::invalid_input, "{}: VLAN id {} is out of range (1..4094; 0 and 4095 are reserved)", what, v.id);
    validate_mtu(v.mtu, what);
}

std::vector<std::string> uplink_warnings(const std::string& what, const std::string& purpose, int mtu,
                                         const std::vector<PortState>& ports) {
    std::vector<std::string> w;
    bool fast_needed = purpose == "vm" || purpose == "storage";
    for (const auto& p : ports) {
        if (!p.present) {
            w.push_back(fmt::format("{}: port '{}' does not exist", what, p.name));
            continue;
        }
        if (fast_needed) {
            if (!p.carrier)
                w.push_back(fmt::format("{}: uplink '{}' has no link (no carrier) for {} traffic", what, p.name, purpose));
            else if (p.speed >= 0 && p.speed < kUplinkMinSpeedMbps)
                w.push_back(fmt::format("{}: uplink '{}' runs at {} Mb/s, less than {} Mb/s for {} traffic", what,
                                        p.name, p.speed, kUplinkMinSpeedMbps, purpose));
            else if (p.speed < 0)
                w.push_back(fmt::format("{}: uplink '{}' does not report its speed", what, p.name));
        }
        if (mtu > 0 && p.mtu > 0 && p.mtu != mtu)
            w.push_back(fmt::format("{}: MTU mismatch: '{}' has MTU {}, the {} has {}", what, p.name, p.mtu,
                                    what.substr(0, what.find(' ')), mtu));
    }
    return w;
}

// ---- JSON out

void to_json(json& j, const NicInfo& v) {
    j = json{{"name", v.name},       {"mac", v.mac},           {"driver", v.driver}, {"kind", v.kind},
             {"carrier", v.carrier}, {"speed", v.speed},       {"duplex", v.duplex}, {"mtu", v.mtu},
             {"operstate", v.operstate}, {"master", v.master}, {"managed", v.managed}};
}
void to_json(json& j, const BridgeSpec& v) {
    j = json{{"name", v.name}, {"ports", v.ports}, {"vlan_aware", v.vlan_aware}, {"vids", v.vids},
             {"mtu", v.mtu},   {"purpose", v.purpose}};
    if (v.address) j["address"] = *v.address;
    if (v.gateway) j["gateway"] = *v.gateway;
}
void to_json(json& j, const BondSpec& v) {
    j = json{{"name", v.name},         {"mode", v.mode}, {"miimon", v.miimon},
             {"primary", v.primary},   {"members", v.members},
             {"xmit_hash_policy", v.xmit_hash_policy}, {"mtu", v.mtu}, {"purpose", v.purpose}};
}
void to_json(json& j, const VlanSpec& v) {
    j = json{{"name", v.name}, {"parent", v.parent}, {"id", v.id}, {"mtu", v.mtu}};
}
void to_json(json& j, const PortState& v) {
    j = json{{"name", v.name}, {"present", v.present}, {"carrier", v.carrier},
             {"speed", v.speed}, {"mtu", v.mtu},       {"master", v.master}};
}
void to_json(json& j, const BridgeInfo& v) {
    to_json(j, v.spec);
    j["present"] = v.present;
    j["operstate"] = v.operstate;
    j["mac"] = v.mac;
    j["live_mtu"] = v.mtu;
    j["vlan_filtering"] = v.vlan_filtering;
    j["port_state"] = v.ports;
    j["guest_ports"] = v.guest_ports;
    j["pending"] = v.pending;
    j["warnings"] = v.warnings;
}
void to_json(json& j, const BondInfo& v) {
    to_json(j, v.spec);
    j["present"] = v.present;
    j["operstate"] = v.operstate;
    j["mac"] = v.mac;
    j["live_mtu"] = v.mtu;
    j["speed"] = v.speed;
    j["active_member"] = v.active_member;
    j["member_state"] = v.members;
    j["warnings"] = v.warnings;
}
void to_json(json& j, const VlanInfo& v) {
    to_json(j, v.spec);
    j["present"] = v.present;
    j["operstate"] = v.operstate;
    j["mac"] = v.mac;
    j["live_mtu"] = v.mtu;
    j["warnings"] = v.warnings;
}
void to_json(json& j, const KernelFeatures& v) {
    j = json::array();
    for (const auto& f : v.items) j.push_back(json{{"name", f.name}, {"supported", f.supported}, {"detail", f.detail}});
}
void to_json(json& j, const NetState& v) {
    j = json{{"bonds", v.bonds}, {"vlans", v.vlans}, {"bridges", v.bridges}};
}

// ---- JSON in (strict)

BridgeSpec bridge_spec_from_json(const json& j) {
    ObjectReader r(j, "");
    BridgeSpec b;
    b.name = r.req<std::string>("name");
    b.ports = r.opt<std::vector<std::string>>("ports").value_or(std::vector<std::string>{});
    b.vlan_aware = r.opt<bool>("vlan_aware").value_or(false);
    b.vids = r.opt<std::string>("vids").value_or(b.vids);
    b.mtu = read_int(r, "mtu", 0);
    b.address = r.opt<std::string>("address");
    b.gateway = r.opt<std::string>("gateway");
    b.purpose = r.opt<std::string>("purpose").value_or(b.purpose);
    r.finish();
    return b;
}

BondSpec bond_spec_from_json(const json& j) {
    ObjectReader r(j, "");
    BondSpec b;
    b.name = r.req<std::string>("name");
    b.mode = r.opt<std::string>("mode").value_or(b.mode);
    b.miimon = read_int(r, "miimon", b.miimon);
    b.primary = r.opt<std::string>("primary").value_or("");
    b.members = r.req<std::vector<std::string>>("members");
    b.xmit_hash_policy = r.opt<std::string>("xmit_hash_policy").value_or("");
    b.mtu = read_int(r, "mtu", 0);
    b.purpose = r.opt<std::string>("purpose").value_or(b.purpose);
    r.finish();
    return b;
}

VlanSpec vlan_spec_from_json(const json& j) {
    ObjectReader r(j, "");
    VlanSpec v;
    v.name = r.req<std::string>("name");
    v.parent = r.req<std::string>("parent");
    v.id = read_int(r, "id", 0);
    if (!r.has("id")) fail(Errc::invalid_input, "field 'id' is required");
    v.mtu = read_int(r, "mtu", 0);
    r.finish();
    return v;
}

NetState net_state_from_json(const json& j) {
    ObjectReader r(j, "");
    NetState s;
    auto list = [&](const char* key, auto parse, auto& out) {
        const auto* v = r.raw(key);
        if (!v) return;
        if (!v->is_array()) fail(Errc::invalid_input, "field '{}' must be an array", key);
        for (const auto& e : *v) out.push_back(parse(e));
    };
    list("bonds", bond_spec_from_json, s.bonds);
    list("vlans", vlan_spec_from_json, s.vlans);
    list("bridges", bridge_spec_from_json, s.bridges);
    r.finish();
    return s;
}

// ---- JSON in (lenient, client side)

NicInfo nic_info_from_json(const json& j) {
    NicInfo n;
    n.name = val<std::string>(j, "name", "");
    n.mac = val<std::string>(j, "mac", "");
    n.driver = val<std::string>(j, "driver", "");
    n.kind = val<std::string>(j, "kind", "");
    n.carrier = val<bool>(j, "carrier", false);
    n.speed = val<std::int64_t>(j, "speed", -1);
    n.duplex = val<std::string>(j, "duplex", "unknown");
    n.mtu = val<int>(j, "mtu", 0);
    n.operstate = val<std::string>(j, "operstate", "");
    n.master = val<std::string>(j, "master", "");
    n.managed = val<bool>(j, "managed", false);
    return n;
}

namespace {
std::vector<PortState> ports_from_json(const json& j, const char* key) {
    std::vector<PortState> out;
    if (!j.contains(key) || !j.at(key).is_array()) return out;
    for (const auto& p : j.at(key)) {
        PortState s;
        s.name = val<std::string>(p, "name", "");
        s.present = val<bool>(p, "present", false);
        s.carrier = val<bool>(p, "carrier", false);
        s.speed = val<std::int64_t>(p, "speed", -1);
        s.mtu = val<int>(p, "mtu", 0);
        s.master = val<std::string>(p, "master", "");
        out.push_back(s);
    }
    return out;
}
}  // namespace

BridgeInfo bridge_info_from_json(const json& j) {
    BridgeInfo b;
    b.spec.name = val<std::string>(j, "name", "");
    b.spec.ports = val<std::vector<std::string>>(j, "ports", {});
    b.spec.vlan_aware = val<bool>(j, "vlan_aware", false);
    b.spec.vids = val<std::string>(j, "vids", "");
    b.spec.mtu = val<int>(j, "mtu", 0);
    if (j.contains("address") && j.at("address").is_string()) b.spec.address = j.at("address").get<std::string>();
    if (j.contains("gateway") && j.at("gateway").is_string()) b.spec.gateway = j.at("gateway").get<std::string>();
    b.spec.purpose = val<std::string>(j, "purpose", "");
    b.present = val<bool>(j, "present", false);
    b.operstate = val<std::string>(j, "operstate", "");
    b.mac = val<std::string>(j, "mac", "");
    b.mtu = val<int>(j, "live_mtu", 0);
    b.vlan_filtering = val<bool>(j, "vlan_filtering", false);
    b.ports = ports_from_json(j, "port_state");
    b.guest_ports = val<std::vector<std::string>>(j, "guest_ports", {});
    b.pending = val<bool>(j, "pending", false);
    b.warnings = val<std::vector<std::string>>(j, "warnings", {});
    return b;
}

BondInfo bond_info_from_json(const json& j) {
    BondInfo b;
    b.spec.name = val<std::string>(j, "name", "");
    b.spec.mode = val<std::string>(j, "mode", "");
    b.spec.miimon = val<int>(j, "miimon", 0);
    b.spec.primary = val<std::string>(j, "primary", "");
    b.spec.members = val<std::vector<std::string>>(j, "members", {});
    b.spec.xmit_hash_policy = val<std::string>(j, "xmit_hash_policy", "");
    b.spec.mtu = val<int>(j, "mtu", 0);
    b.spec.purpose = val<std::string>(j, "purpose", "");
    b.present = val<bool>(j, "present", false);
    b.operstate = val<std::string>(j, "operstate", "");
    b.mac = val<std::string>(j, "mac", "");
    b.mtu = val<int>(j, "live_mtu", 0);
    b.speed = val<std::int64_t>(j, "speed", -1);
    b.active_member = val<std::string>(j, "active_member", "");
    b.members = ports_from_json(j, "member_state");
    b.warnings = val<std::vector<std::string>>(j, "warnings", {});
    return b;
}

VlanInfo vlan_info_from_json(const json& j) {
    VlanInfo v;
    v.spec.name = val<std::string>(j, "name", "");
    v.spec.parent = val<std::string>(j, "parent", "");
    v.spec.id = val<int>(j, "id", 0);
    v.spec.mtu = val<int>(j, "mtu", 0);
    v.present = val<bool>(j, "present", false);
    v.operstate = val<std::string>(j, "operstate", "");
    v.mac = val<std::string>(j, "mac", "");
    v.mtu = val<int>(j, "live_mtu", 0);
    v.warnings = val<std::vector<std::string>>(j, "warnings", {});
    return v;
}

KernelFeatures kernel_features_from_json(const json& j) {
    KernelFeatures f;
    if (!j.is_array()) return f;
    for (const auto& e : j)
        f.items.push_back({val<std::string>(e, "name", ""), val<bool>(e, "supported", false),
                           val<std::string>(e, "detail", "")});
    return f;
}

void to_json(json& j, const NetChange& v) {
    j = json{{"action", v.action}, {"bridge", v.bridge}, {"effects", v.effects}};
}
void to_json(json& j, const NetApplyState& v) {
    j = json{{"state", v.state},
             {"changes", v.changes},
             {"rollback_at", v.rollback_at},
             {"last_rollback", v.last_rollback}};
}
NetApplyState net_apply_state_from_json(const json& j) {
    NetApplyState s;
    s.state = val<std::string>(j, "state", "idle");
    s.rollback_at = val<std::int64_t>(j, "rollback_at", 0);
    s.last_rollback = val<std::string>(j, "last_rollback", "");
    if (j.contains("changes") && j.at("changes").is_array())
        for (const auto& c : j.at("changes")) {
            NetChange ch;
            ch.action = val<std::string>(c, "action", "");
            if (c.contains("bridge")) ch.bridge = bridge_spec_from_json(c.at("bridge"));
            ch.effects = val<std::vector<std::string>>(c, "effects", {});
            s.changes.push_back(std::move(ch));
        }
    return s;
}

// ---- patches ---------------------------------------------------------------------------------

namespace {
void add_remove(std::vector<std::string>& list, const std::vector<std::string>& add, const std::vector<std::string>& remove,
                const std::string& what, const char* noun) {
    for (const auto& r : remove) {
        auto it = std::find(list.begin(), list.end(), r);
        if (it == list.end()) fail(Errc::invalid_input, "{}: '{}' is not a {} of it", what, r, noun);
        list.erase(it);
    }
    for (const auto& a : add) {
        validate_ifname(a, noun);
        if (member_of(list, a)) fail(Errc::invalid_input, "{}: '{}' is already a {} of it", what, a, noun);
        list.push_back(a);
    }
}
template <typename P>
void require_change(const P& p, bool any) {
    if (!any) fail(Errc::invalid_input, "nothing to change");
}
}  // namespace

BridgeSpec apply_patch(BridgeSpec s, const BridgePatch& p) {
    add_remove(s.ports, p.add_ports, p.remove_ports, "bridge '" + s.name + "'", "port");
    if (p.vlan_aware) s.vlan_aware = *p.vlan_aware;
    if (p.vids) s.vids = *p.vids;
    if (p.mtu) s.mtu = *p.mtu;
    if (p.purpose) s.purpose = *p.purpose;
    validate(s);
    return s;
}
BondSpec apply_patch(BondSpec s, const BondPatch& p) {
    add_remove(s.members, p.add_members, p.remove_members, "bond '" + s.name + "'", "member");
    if (p.primary) s.primary = *p.primary;
    if (!s.primary.empty() && !member_of(s.members, s.primary)) s.primary.clear();
    if (p.miimon) s.miimon = *p.miimon;
    if (p.mtu) s.mtu = *p.mtu;
    if (p.purpose) s.purpose = *p.purpose;
    validate(s);
    return s;
}
VlanSpec apply_patch(VlanSpec s, const VlanPatch& p) {
    if (p.mtu) s.mtu = *p.mtu;
    validate(s);
    return s;
}

BridgePatch bridge_patch_from_json(const json& j) {
    ObjectReader r(j, "");
    BridgePatch p;
    p.add_ports = r.opt<std::vector<std::string>>("add_ports").value_or(std::vector<std::string>{});
    p.remove_ports = r.opt<std::vector<std::string>>("remove_ports").value_or(std::vector<std::string>{});
    p.vlan_aware = r.opt<bool>("vlan_aware");
    p.vids = r.opt<std::string>("vids");
    if (r.has("mtu")) p.mtu = read_int(r, "mtu", 0);
    p.purpose = r.opt<std::string>("purpose");
    if (r.has("address") || r.has("gateway"))
        fail(Errc::invalid_input, "address and gateway cannot be changed with set: delete and re-create the bridge "
                                  "(a bridge over an addressed NIC is staged and applied with confirmation)");
    r.finish();
    require_change(p, !p.add_ports.empty() || !p.remove_ports.empty() || p.vlan_aware || p.vids || p.mtu || p.purpose);
    return p;
}
BondPatch bond_patch_from_json(const json& j) {
    ObjectReader r(j, "");
    BondPatch p;
    p.add_members = r.opt<std::vector<std::string>>("add_members").value_or(std::vector<std::string>{});
    p.remove_members = r.opt<std::vector<std::string>>("remove_members").value_or(std::vector<std::string>{});
    p.primary = r.opt<std::string>("primary");
    if (r.has("miimon")) p.miimon = read_int(r, "miimon", 0);
    if (r.has("mtu")) p.mtu = read_int(r, "mtu", 0);
    p.purpose = r.opt<std::string>("purpose");
    if (r.has("mode") || r.has("xmit_hash_policy"))
        fail(Errc::invalid_input, "mode and xmit_hash_policy cannot be changed with set (the bonding driver takes "
                                  "them only without members): delete and re-create the bond");
    r.finish();
    require_change(p, !p.add_members.empty() || !p.remove_members.empty() || p.primary || p.miimon || p.mtu || p.purpose);
    return p;
}
VlanPatch vlan_patch_from_json(const json& j) {
    ObjectReader r(j, "");
    VlanPatch p;
    if (r.has("mtu")) p.mtu = read_int(r, "mtu", 0);
    if (r.has("id") || r.has("parent"))
        fail(Errc::invalid_input, "a VLAN's id and parent cannot change: delete and re-create it");
    r.finish();
    require_change(p, p.mtu.has_value());
    return p;
}

void to_json(json& j, const BridgePatch& v) {
    j = json::object();
    if (!v.add_ports.empty()) j["add_ports"] = v.add_ports;
    if (!v.remove_ports.empty()) j["remove_ports"] = v.remove_ports;
    if (v.vlan_aware) j["vlan_aware"] = *v.vlan_aware;
    if (v.vids) j["vids"] = *v.vids;
    if (v.mtu) j["mtu"] = *v.mtu;
    if (v.purpose) j["purpose"] = *v.purpose;
}
void to_json(json& j, const BondPatch& v) {
    j = json::object();
    if (!v.add_members.empty()) j["add_members"] = v.add_members;
    if (!v.remove_members.empty()) j["remove_members"] = v.remove_members;
    if (v.primary) j["primary"] = *v.primary;
    if (v.miimon) j["miimon"] = *v.miimon;
    if (v.mtu) j["mtu"] = *v.mtu;
    if (v.purpose) j["purpose"] = *v.purpose;
}
void to_json(json& j, const VlanPatch& v) {
    j = json::object();
    if (v.mtu) j["mtu"] = *v.mtu;
}

}  // namespace hv::api
