#include "hv/util/guard.hpp"
#include "net_manager.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hv/error.hpp"
#include "hv/util/atomic_file.hpp"
#include "hv/util/reverter.hpp"

namespace hv::net {
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const LinkState* find_link(const std::vector<LinkState>& links, const std::string& name) {
    for (const auto& l : links)
        if (l.name == name) return &l;
    return nullptr;
}

template <typename T>
const T* find_spec(const std::vector<T>& v, const std::string& name) {
    for (const auto& s : v)
        if (s.name == name) return &s;
    return nullptr;
}

template <typename T>
void erase_spec(std::vector<T>& v, const std::string& name) {
    std::erase_if(v, [&](const T& s) { return s.name == name; });
}

}  // namespace

NetManager::NetManager(std::string state_file, std::unique_ptr<NetBackend> backend)
    : state_file_(std::move(state_file)), backend_(std::move(backend)) {
    std::ifstream in(state_file_);
    if (!in) return;
    json j;
    try {
        in >> j;
    } catch (const json::exception& e) {
        fail(Errc::invalid_input, "{}: not valid JSON: {}", state_file_, e.what());
    }
    try {
        state_ = api::net_state_from_json(j);
    } catch (const Error& e) {
        fail(Errc::invalid_input, "{}: {}", state_file_, e.what());
    }
}

api::NetState NetManager::state() const {
    std::lock_guard lk(mu_);
    return state_;
}

void NetManager::save_locked() const {
    fs::create_directories(fs::path(state_file_).parent_path());
    // An applied but unconfirmed change is not persisted until confirm().
    auto st = state_;
    if (awaiting_)
        for (const auto& b : awaiting_->bridges) erase_spec(st.bridges, b);
    util::write_file_atomic(state_file_, json(st).dump(2) + "\n");
}

api::KernelFeatures NetManager::features_locked() {
    if (!features_) features_ = backend_->probe_features();
    return *features_;
}

api::KernelFeatures NetManager::features() {
    std::lock_guard lk(mu_);
    return features_locked();
}

void NetManager::require_feature_locked(const std::string& feature, const std::string& what) {
    auto f = features_locked();
    if (f.has(feature)) return;
    const auto* item = f.find(feature);
    fail(Errc::unsupported, "{}: this host's kernel does not support {} ({}); see `hvctl net features`", what, feature,
         item ? item->detail : "not probed");
}

bool NetManager::owned_locked(const std::string& name) const {
    return find_spec(state_.bridges, name) || find_spec(state_.bonds, name) || find_spec(state_.vlans, name);
}

std::string NetManager::user_of_locked(const std::string& name) const {
    for (const auto& b : state_.bridges)
        for (const auto& p : b.ports)
            if (p == name) return "bridge '" + b.name + "'";
    for (const auto& b : state_.bonds)
        for (const auto& m : b.members)
            if (m == name) return "bond '" + b.name + "'";
    for (const auto& v : state_.vlans)
        if (v.parent == name) return "vlan '" + v.name + "'";
    return "";
}

void NetManager::check_new_name_locked(const std::string& name, const std::vector<LinkState>& links) const {
    if (owned_locked(name)) fail(Errc::conflict, "'{}' already exists (an hv-managed interface)", name);
    if (find_link(links, name))
        fail(Errc::conflict,
             "interface '{}' already exists and was not created by hv; hv does not touch interfaces it does not own",
             name);
}

void NetManager::check_free_port_locked(const std::string& port, const std::string& for_what,
                                        const std::vector<LinkState>& links, bool allow_addresses) {
    const auto* l = find_link(links, port);
    if (!l) fail(Errc::not_found, "{}: interface '{}' does not exist", for_what, port);
    if (port == "lo") fail(Errc::invalid_input, "{}: the loopback interface cannot be a port", for_what);
    if (auto user = user_of_locked(port); !user.empty())
        fail(Errc::conflict, "{}: '{}' is already used by {}", for_what, port, user);
    if (!l->master.empty())
        fail(Errc::conflict, "{}: '{}' is already a port of '{}'", for_what, port, l->master);
    if (l->kind == "bridge")
        fail(Errc::invalid_input, "{}: '{}' is a bridge; bridges cannot be nested", for_what, port);
    if (allow_addresses) return;
    auto addrs = backend_->addresses(port);
    if (!addrs.empty())
        fail(Errc::conflict,
             "{}: '{}' carries address {}; hv does not move addresses into a bond (that could cut the "
             "management connection): put the NIC in a bridge (staged, then `hvctl net apply --confirm-within 60`) "
             "or move the address yourself",
             for_what, port, fmt::join(addrs, ", "));
}

// ---- apply (idempotent): create what is missing, correct what differs. Undo steps go to rv.

void NetManager::apply_bridge(const api::BridgeSpec& spec, util::Reverter& rv) {
    auto links = backend_->links();
    const auto* l = find_link(links, spec.name);
    if (!l) {
        backend_->create_bridge(spec.name, spec.vlan_aware, spec.mtu);
        rv.add([this, n = spec.name] { backend_->delete_link(n); });
    } else {
        if (l->kind != "bridge")
            fail(Errc::conflict, "'{}' exists but is a {} link, not a bridge", spec.name, l->kind.empty() ? "plain" : l->kind);
        if (l->vlan_filtering != spec.vlan_aware) backend_->set_vlan_filtering(spec.name, spec.vlan_aware);
    }
    auto vids = spec.vlan_aware ? api::parse_vids(spec.vids) : std::vector<std::pair<int, int>>{};
    for (const auto& p : spec.ports) {
        const auto* pl = find_link(links, p);
        if (!pl) fail(Errc::not_found, "bridge '{}': port '{}' does not exist", spec.name, p);
        if (pl->master != spec.name) {
            if (!pl->master.empty())
                fail(Errc::conflict, "bridge '{}': port '{}' is a port of '{}' now", spec.name, p, pl->master);
            backend_->set_master(p, spec.name);
            rv.add([this, p] { backend_->set_master(p, ""); });
        }
        backend_->set_up(p, true);
        if (spec.vlan_aware) backend_->add_bridge_vlans(p, vids, false);
    }
    if (spec.vlan_aware) backend_->add_bridge_vlans(spec.name, vids, true);
    // After the ports: enslaving a port lowers the bridge's MTU unless it was set explicitly.
    if (spec.mtu > 0) backend_->set_mtu(spec.name, spec.mtu);
    backend_->set_up(spec.name, true);
    if (spec.address) backend_->add_address(spec.name, *spec.address);
    if (spec.gateway && !backend_->add_default_route(spec.name, *spec.gateway))
        spdlog::warn("bridge {}: a default route exists already; gateway {} not added", spec.name, *spec.gateway);
}

void NetManager::apply_bond(const api::BondSpec& spec, util::Reverter& rv) {
    auto links = backend_->links();
    const auto* l = find_link(links, spec.name);
    if (!l) {
        backend_->create_bond(spec);
        rv.add([this, n = spec.name] { backend_->delete_link(n); });
    } else if (l->kind != "bond") {
        fail(Errc::conflict, "'{}' exists but is a {} link, not a bond", spec.name, l->kind.empty() ? "plain" : l->kind);
    }
    for (const auto& m : spec.members) {
        const auto* ml = find_link(links, m);
        if (!ml) fail(Errc::not_found, "bond '{}': member '{}' does not exist", spec.name, m);
        if (ml->master == spec.name) continue;
        if (!ml->master.empty())
            fail(Errc::conflict, "bond '{}': member '{}' is a port of '{}' now", spec.name, m, ml->master);
        // The bonding driver wants members down while it takes them.
        backend_->set_up(m, false);
        backend_->set_master(m, spec.name);
        rv.add([this, m] { backend_->set_master(m, ""); });
        backend_->set_up(m, true);
    }
    if (!spec.primary.empty()) backend_->set_bond_primary(spec.name, spec.primary);
    if (spec.mtu > 0) backend_->set_mtu(spec.name, spec.mtu);  // the bond passes it to its members
    backend_->set_up(spec.name, true);
}

void NetManager::apply_vlan(const api::VlanSpec& spec, util::Reverter& rv) {
    auto links = backend_->links();
    const auto* l = find_link(links, spec.name);
    if (!find_link(links, spec.parent))
        fail(Errc::not_found, "vlan '{}': parent '{}' does not exist", spec.name, spec.parent);
    if (!l) {
        backend_->create_vlan(spec.name, spec.parent, spec.id, spec.mtu);
        rv.add([this, n = spec.name] { backend_->delete_link(n); });
    } else {
        if (l->kind != "vlan")
            fail(Errc::conflict, "'{}' exists but is a {} link, not a VLAN", spec.name, l->kind.empty() ? "plain" : l->kind);
        if (l->parent != spec.parent || l->vlan_id != spec.id)
            fail(Errc::conflict, "'{}' exists as VLAN {} on '{}', not VLAN {} on '{}'", spec.name, l->vlan_id, l->parent,
                 spec.id, spec.parent);
        if (spec.mtu > 0 && l->mtu != spec.mtu) backend_->set_mtu(spec.name, spec.mtu);
    }
    // A VLAN on a VLAN-aware hv bridge needs its id on the bridge itself.
    if (const auto* br = find_spec(state_.bridges, spec.parent); br && br->vlan_aware) {
        bool covered = false;
        for (auto [lo, hi] : api::parse_vids(br->vids)) covered |= spec.id >= lo && spec.id <= hi;
        if (!covered) backend_->add_bridge_vlans(spec.parent, {{spec.id, spec.id}}, true);
    }
    backend_->set_up(spec.name, true);
}

std::vector<std::string> NetManager::apply_all() {
    std::lock_guard lk(mu_);
    std::vector<std::string> errors;
    auto run = [&](const std::string& what, auto&& f) {
        try {
            util::Reverter rv;  // at start, a partly re-applied object is rolled back, not left half-done
            f(rv);
            rv.release();
            spdlog::info("network: {} applied", what);
        } catch (const std::exception& e) {
            spdlog::error("network: {} not applied: {}", what, e.what());
            errors.push_back(what + ": " + e.what());
        }
    };
    auto on_bridge = [&](const api::VlanSpec& v) { return find_spec(state_.bridges, v.parent) != nullptr; };
    for (const auto& b : state_.bonds) run("bond " + b.name, [&](util::Reverter& rv) { apply_bond(b, rv); });
    for (const auto& v : state_.vlans)
        if (!on_bridge(v)) run("vlan " + v.name, [&](util::Reverter& rv) { apply_vlan(v, rv); });
    for (const auto& b : state_.bridges) run("bridge " + b.name, [&](util::Reverter& rv) { apply_bridge(b, rv); });
    for (const auto& v : state_.vlans)
        if (on_bridge(v)) run("vlan " + v.name, [&](util::Reverter& rv) { apply_vlan(v, rv); });
    return errors;
}

// ---- create / delete

api::BridgeInfo NetManager::create_bridge(const api::BridgeSpec& spec) {
    api::validate(spec);
    std::lock_guard lk(mu_);
    auto links = backend_->links();
    check_new_name_locked(spec.name, links);
    std::string what = "bridge '" + spec.name + "'";
    require_feature_locked("bridge", what);
    if (spec.vlan_aware) require_feature_locked("vlan_filtering", what + " (vlan_aware)");
    // Ports that carry addresses (maybe hvd's own management connection): staged for a
    // confirmed apply instead of applied now. The bridge takes over the first port address
    // and the default route through a port (both recorded in its spec, so they come back
    // after a reboot).
    std::vector<std::string> effects;
    auto staged = spec;
    auto route = backend_->default_route();
    for (const auto& p : spec.ports) {
        check_free_port_locked(p, what, links, /*allow_addresses=*/true);
        for (const auto& a : backend_->addresses(p)) {
            if (!staged.address) {
                staged.address = a;
                effects.push_back(fmt::format("address {} moves from {} to {}", a, p, spec.name));
            } else {
                effects.push_back(fmt::format("address {} is removed from {} (the bridge has {})", a, p, *staged.address));
            }
        }
        if (route && route->first == p && !route->second.empty()) {
            if (!staged.gateway && staged.address) staged.gateway = route->second;
            effects.push_back(fmt::format("the default route via {} moves from {} to {}", route->second, p, spec.name));
        }
    }
    if (!effects.empty()) {
        api::validate(staged);
        if (awaiting_) fail(Errc::conflict, "an applied network change awaits confirmation; confirm or revert it first");
        for (const auto& c : staged_) {
            if (c.bridge.name == spec.name) fail(Errc::conflict, "bridge '{}' is already staged", spec.name);
            for (const auto& p : spec.ports)
                if (std::find(c.bridge.ports.begin(), c.bridge.ports.end(), p) != c.bridge.ports.end())
                    fail(Errc::conflict, "{}: port '{}' is already in the staged bridge '{}'", what, p, c.bridge.name);
        }
        staged_.push_back({"bridge.create", staged, effects});
        spdlog::warn("{} staged (touches addressed interfaces): {}", what, fmt::join(effects, "; "));
        auto info = bridge_info(staged, links);
        info.pending = true;
        info.present = false;
        info.warnings = effects;
        info.warnings.push_back("staged, not applied: run `hvctl net apply --confirm-within 60`, then `hvctl net confirm`");
        return info;
    }
    util::Reverter rv;
    apply_bridge(spec, rv);
    state_.bridges.push_back(spec);
    rv.add([this, n = spec.name] { erase_spec(state_.bridges, n); });
    save_locked();
    rv.release();
    return bridge_info(spec, backend_->links());
}

api::BondInfo NetManager::create_bond(const api::BondSpec& spec) {
    api::validate(spec);
    std::lock_guard lk(mu_);
    auto links = backend_->links();
    check_new_name_locked(spec.name, links);
    std::string what = "bond '" + spec.name + "'";
    require_feature_locked("bonding", what);
    for (const auto& m : spec.members) check_free_port_locked(m, what, links);
    util::Reverter rv;
    apply_bond(spec, rv);
    state_.bonds.push_back(spec);
    rv.add([this, n = spec.name] { erase_spec(state_.bonds, n); });
    save_locked();
    rv.release();
    return bond_info(spec, backend_->links());
}

api::VlanInfo NetManager::create_vlan(const api::VlanSpec& spec) {
    api::validate(spec);
    std::lock_guard lk(mu_);
    auto links = backend_->links();
    check_new_name_locked(spec.name, links);
    std::string what = "vlan '" + spec.name + "'";
    require_feature_locked("8021q", what);
    if (!find_link(links, spec.parent)) fail(Errc::not_found, "{}: parent '{}' does not exist", what, spec.parent);
    if (find_spec(state_.bridges, spec.parent) == nullptr)
        for (const auto& l : links)
            if (l.name == spec.parent && !l.master.empty())
                fail(Errc::conflict, "{}: parent '{}' is a port of '{}'; put the VLAN on '{}' instead", what,
                     spec.parent, l.master, l.master);
    for (const auto& l : links)
        if (l.kind == "vlan" && l.parent == spec.parent && l.vlan_id == spec.id)
            fail(Errc::conflict, "{}: '{}' already is VLAN {} on '{}'", what, l.name, spec.id, spec.parent);
    util::Reverter rv;
    apply_vlan(spec, rv);
    state_.vlans.push_back(spec);
    rv.add([this, n = spec.name] { erase_spec(state_.vlans, n); });
    save_locked();
    rv.release();
    return vlan_info(spec, backend_->links());
}

void NetManager::delete_bridge(const std::string& name, bool force) {
    std::lock_guard lk(mu_);
    const auto* spec = find_spec(state_.bridges, name);
    if (!spec)
        fail(Errc::not_found, "no hv-managed bridge '{}' (hv deletes only interfaces it created)", name);
    if (auto user = user_of_locked(name); !user.empty())
        fail(Errc::conflict, "bridge '{}' is used by {}; delete that first", name, user);
    auto links = backend_->links();
    std::vector<std::string> foreign;
    for (const auto& l : links)
        if (l.master == name && std::find(spec->ports.begin(), spec->ports.end(), l.name) == spec->ports.end())
            foreign.push_back(l.name);
    if (!foreign.empty() && !force)
        fail(Errc::conflict, "bridge '{}' has ports hv did not add ({}): guests (VMs, containers) attached? detach them or use --force",
             name, fmt::join(foreign, ", "));
    if (find_link(links, name)) {
        for (const auto& l : links)
            if (l.master == name) backend_->set_master(l.name, "");
        backend_->delete_link(name);
    }
    erase_spec(state_.bridges, name);
    save_locked();
}

void NetManager::delete_bond(const std::string& name) {
    std::lock_guard lk(mu_);
    if (!find_spec(state_.bonds, name))
        fail(Errc::not_found, "no hv-managed bond '{}' (hv deletes only interfaces it created)", name);
    if (auto user = user_of_locked(name); !user.empty())
        fail(Errc::conflict, "bond '{}' is used by {}; delete that first", name, user);
    auto links = backend_->links();
    if (find_link(links, name)) backend_->delete_link(name);  // the kernel releases the members
    erase_spec(state_.bonds, name);
    save_locked();
}

void NetManager::delete_vlan(const std::string& name) {
    std::lock_guard lk(mu_);
    if (!find_spec(state_.vlans, name))
        fail(Errc::not_found, "no hv-managed vlan '{}' (hv deletes only interfaces it created)", name);
    if (auto user = user_of_locked(name); !user.empty())
        fail(Errc::conflict, "vlan '{}' is used by {}; delete that first", name, user);
    auto links = backend_->links();
    if (find_link(links, name)) backend_->delete_link(name);
    erase_spec(state_.vlans, name);
    save_locked();
}

// ---- reads

std::vector<api::NicInfo> NetManager::nics(bool all) {
    std::lock_guard lk(mu_);
    auto links = backend_->links();
    std::vector<api::NicInfo> out;
    for (const auto& l : links) {
        if (l.name == "lo") continue;
        api::NicInfo n;
        try {
            n = backend_->nic(l.name);
        } catch (const Error&) {
            continue;  // vanished meanwhile, or not visible in this sysfs
        }
        if (n.kind != "physical") {
            if (!all) continue;
            n.kind = l.kind.empty() ? "virtual" : l.kind;
            if (n.driver.empty()) n.driver = l.kind;
        }
        n.master = l.master;
        n.managed = owned_locked(l.name);
        out.push_back(std::move(n));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

api::PortState NetManager::port_state(const std::string& name, const std::vector<LinkState>& links) {
    api::PortState p;
    p.name = name;
    const auto* l = find_link(links, name);
    if (!l) return p;
    p.present = true;
    p.mtu = l->mtu;
    p.master = l->master;
    try {
        auto n = backend_->nic(name);
        p.carrier = n.carrier;
        p.speed = n.speed;
    } catch (const Error&) {
    }
    return p;
}

api::BridgeInfo NetManager::bridge_info(const api::BridgeSpec& spec, const std::vector<LinkState>& links) {
    api::BridgeInfo i;
    i.spec = spec;
    std::string what = "bridge '" + spec.name + "'";
    for (const auto& p : spec.ports) i.ports.push_back(port_state(p, links));
    if (const auto* l = find_link(links, spec.name)) {
        i.present = true;
        i.operstate = l->operstate;
        i.mac = l->mac;
        i.mtu = l->mtu;
        i.vlan_filtering = l->vlan_filtering;
        for (const auto& o : links)
            if (o.master == spec.name && std::find(spec.ports.begin(), spec.ports.end(), o.name) == spec.ports.end())
                i.guest_ports.push_back(o.name);
        if (spec.vlan_aware && !l->vlan_filtering) i.warnings.push_back(what + ": VLAN filtering is off in the kernel");
        for (const auto& p : i.ports)
            if (p.present && p.master != spec.name)
                i.warnings.push_back(fmt::format("{}: '{}' is not a port of it now", what, p.name));
    } else {
        i.warnings.push_back(what + ": does not exist now (hvd re-creates it at start)");
    }
    auto w = api::uplink_warnings(what, spec.purpose, spec.mtu > 0 ? spec.mtu : i.mtu, i.ports);
    i.warnings.insert(i.warnings.end(), w.begin(), w.end());
    return i;
}

api::BondInfo NetManager::bond_info(const api::BondSpec& spec, const std::vector<LinkState>& links) {
    api::BondInfo i;
    i.spec = spec;
    std::string what = "bond '" + spec.name + "'";
    for (const auto& m : spec.members) i.members.push_back(port_state(m, links));
    if (const auto* l = find_link(links, spec.name)) {
        i.present = true;
        i.operstate = l->operstate;
        i.mac = l->mac;
        i.mtu = l->mtu;
        i.active_member = l->bond_active;
        try {
            i.speed = backend_->nic(spec.name).speed;
        } catch (const Error&) {
        }
        for (const auto& m : i.members)
            if (m.present && m.master != spec.name)
                i.warnings.push_back(fmt::format("{}: '{}' is not a member of it now", what, m.name));
    } else {
        i.warnings.push_back(what + ": does not exist now (hvd re-creates it at start)");
    }
    auto w = api::uplink_warnings(what, spec.purpose, spec.mtu > 0 ? spec.mtu : i.mtu, i.members);
    i.warnings.insert(i.warnings.end(), w.begin(), w.end());
    return i;
}

api::VlanInfo NetManager::vlan_info(const api::VlanSpec& spec, const std::vector<LinkState>& links) {
    api::VlanInfo i;
    i.spec = spec;
    std::string what = "vlan '" + spec.name + "'";
    if (const auto* l = find_link(links, spec.name)) {
        i.present = true;
        i.operstate = l->operstate;
        i.mac = l->mac;
        i.mtu = l->mtu;
    } else {
        i.warnings.push_back(what + ": does not exist now (hvd re-creates it at start)");
    }
    const auto* p = find_link(links, spec.parent);
    if (!p) i.warnings.push_back(fmt::format("{}: parent '{}' does not exist", what, spec.parent));
    else if (i.present && i.mtu > p->mtu)
        i.warnings.push_back(fmt::format("{}: MTU {} is larger than its parent's ({})", what, i.mtu, p->mtu));
    return i;
}

std::vector<api::BridgeInfo> NetManager::bridges() {
    std::lock_guard lk(mu_);
    auto links = backend_->links();
    std::vector<api::BridgeInfo> out;
    for (const auto& s : state_.bridges) out.push_back(bridge_info(s, links));
    return out;
}
api::BridgeInfo NetManager::bridge(const std::string& name) {
    std::lock_guard lk(mu_);
    const auto* s = find_spec(state_.bridges, name);
    if (!s) fail(Errc::not_found, "no hv-managed bridge '{}'", name);
    return bridge_info(*s, backend_->links());
}
std::vector<api::BondInfo> NetManager::bonds() {
    std::lock_guard lk(mu_);
    auto links = backend_->links();
    std::vector<api::BondInfo> out;
    for (const auto& s : state_.bonds) out.push_back(bond_info(s, links));
    return out;
}
api::BondInfo NetManager::bond(const std::string& name) {
    std::lock_guard lk(mu_);
    const auto* s = find_spec(state_.bonds, name);
    if (!s) fail(Errc::not_found, "no hv-managed bond '{}'", name);
    return bond_info(*s, backend_->links());
}
std::vector<api::VlanInfo> NetManager::vlans() {
    std::lock_guard lk(mu_);
    auto links = backend_->links();
    std::vector<api::VlanInfo> out;
    for (const auto& s : state_.vlans) out.push_back(vlan_info(s, links));
    return out;
}
api::VlanInfo NetManager::vlan(const std::string& name) {
    std::lock_guard lk(mu_);
    const auto* s = find_spec(state_.vlans, name);
    if (!s) fail(Errc::not_found, "no hv-managed vlan '{}'", name);
    return vlan_info(*s, backend_->links());
}

// ---- set ---------------------------------------------------------------------------------------

namespace {
template <typename T>
T* find_spec_mut(std::vector<T>& v, const std::string& name) {
    for (auto& s : v)
        if (s.name == name) return &s;
    return nullptr;
}
std::vector<std::pair<int, int>> vids_minus(const std::string& from, const std::string& minus) {
    std::vector<bool> keep(4095, false);
    for (auto [lo, hi] : api::parse_vids(minus))
        for (int v = lo; v <= hi; ++v) keep[v] = true;
    std::vector<std::pair<int, int>> out;
    for (auto [lo, hi] : api::parse_vids(from))
        for (int v = lo; v <= hi; ++v) {
            if (keep[v]) continue;
            if (!out.empty() && out.back().second + 1 == v) out.back().second = v;
            else out.emplace_back(v, v);
        }
    return out;
}
}  // namespace

api::BridgeInfo NetManager::update_bridge(const std::string& name, const api::BridgePatch& patch) {
    std::lock_guard lk(mu_);
    auto* cur = find_spec_mut(state_.bridges, name);
    if (!cur) fail(Errc::not_found, "no hv-managed bridge '{}' (hv changes only interfaces it created)", name);
    if (awaiting_ && std::find(awaiting_->bridges.begin(), awaiting_->bridges.end(), name) != awaiting_->bridges.end())
        fail(Errc::conflict, "bridge '{}' awaits confirmation (hvctl net confirm or revert) before it can change", name);
    auto next = api::apply_patch(*cur, patch);
    std::string what = "bridge '" + name + "'";
    if (next.vlan_aware && !cur->vlan_aware) require_feature_locked("vlan_filtering", what + " (vlan_aware)");
    auto links = backend_->links();
    for (const auto& p : patch.add_ports) check_free_port_locked(p, what, links);
    util::Reverter rv;
    for (const auto& p : patch.remove_ports) {
        const auto* l = find_link(links, p);
        if (l && l->master == name) {
            backend_->set_master(p, "");
            rv.add([this, p, name] { backend_->set_master(p, name); });
        }
    }
    if (cur->vlan_aware != next.vlan_aware) {
        backend_->set_vlan_filtering(name, next.vlan_aware);
        rv.add([this, name, on = cur->vlan_aware] { backend_->set_vlan_filtering(name, on); });
    } else if (next.vlan_aware && next.vids != cur->vids) {
        // Ids no longer allowed leave every port and the bridge itself (new ones are added by
        // apply_bridge below). Guest ports keep what hv plugged into them.
        auto gone = vids_minus(cur->vids, next.vids);
        if (!gone.empty()) {
            for (const auto& p : next.ports) backend_->del_bridge_vlans(p, gone, false);
            backend_->del_bridge_vlans(name, gone, true);
        }
    }
    apply_bridge(next, rv);
    *cur = next;
    save_locked();
    rv.release();
    return bridge_info(next, backend_->links());
}

api::BondInfo NetManager::update_bond(const std::string& name, const api::BondPatch& patch) {
    std::lock_guard lk(mu_);
    auto* cur = find_spec_mut(state_.bonds, name);
    if (!cur) fail(Errc::not_found, "no hv-managed bond '{}' (hv changes only interfaces it created)", name);
    auto next = api::apply_patch(*cur, patch);
    std::string what = "bond '" + name + "'";
    auto links = backend_->links();
    for (const auto& m : patch.add_members) check_free_port_locked(m, what, links);
    util::Reverter rv;
    for (const auto& m : patch.remove_members) {
        const auto* l = find_link(links, m);
        if (l && l->master == name) {
            backend_->set_master(m, "");
            rv.add([this, m, name] {
                backend_->set_up(m, false);
                backend_->set_master(m, name);
                backend_->set_up(m, true);
            });
        }
    }
    if (next.miimon != cur->miimon) backend_->set_bond_miimon(name, next.miimon);
    if (next.primary != cur->primary && next.primary.empty()) backend_->set_bond_primary(name, "");
    apply_bond(next, rv);
    *cur = next;
    save_locked();
    rv.release();
    return bond_info(next, backend_->links());
}

api::VlanInfo NetManager::update_vlan(const std::string& name, const api::VlanPatch& patch) {
    std::lock_guard lk(mu_);
    auto* cur = find_spec_mut(state_.vlans, name);
    if (!cur) fail(Errc::not_found, "no hv-managed VLAN interface '{}' (hv changes only interfaces it created)", name);
    auto next = api::apply_patch(*cur, patch);
    util::Reverter rv;
    apply_vlan(next, rv);
    *cur = next;
    save_locked();
    rv.release();
    return vlan_info(next, backend_->links());
}

// ---- guest ports -------------------------------------------------------------------------------

void NetManager::check_port(const std::string& bridge, int vlan, const std::string& trunks) {
    std::lock_guard lk(mu_);
    auto links = backend_->links();
    const auto* br = find_link(links, bridge);
    if (!br) fail(Errc::invalid_input, "bridge '{}' does not exist on this host (hvctl net bridge create {})", bridge, bridge);
    if (br->kind != "bridge") fail(Errc::invalid_input, "'{}' is not a bridge", bridge);
    if (vlan == 0 && trunks.empty()) return;
    std::string what = vlan ? fmt::format("VLAN {}", vlan) : fmt::format("trunks {}", trunks);
    if (br->vlan_filtering) {
        // Uplink check: on an hv bridge, the uplink ports carry only `vids` tagged, so a guest
        // VLAN outside them would be cut off from the wire.
        const auto* spec = find_spec(state_.bridges, bridge);
        if (!spec || !spec->vlan_aware) return;
        auto carried = api::parse_vids(spec->vids);
        auto in_vids = [&](int v) {
            for (auto [lo, hi] : carried)
                if (v >= lo && v <= hi) return true;
            return false;
        };
        std::vector<int> missing;
        if (vlan && !in_vids(vlan)) missing.push_back(vlan);
        if (!trunks.empty()) {
            std::string t = trunks;
            std::replace(t.begin(), t.end(), ';', ',');
            for (auto [lo, hi] : api::parse_vids(t))
                for (int v = lo; v <= hi && missing.size() < 8; ++v)
                    if (!in_vids(v)) missing.push_back(v);
        }
        if (!missing.empty())
            fail(Errc::conflict,
                 "bridge '{}' does not carry VLAN {} on its uplinks (its vids are {}): add it with hvctl net bridge "
                 "set {} --vids ...",
                 bridge, fmt::join(missing, ","), spec->vids, bridge);
        return;
    }
    auto f = features_locked();
    if (!f.has("vlan_filtering"))
        fail(Errc::conflict,
             "bridge '{}' is not VLAN-aware, so it cannot carry {}: this host's kernel does not support bridge VLAN "
             "filtering (vlan_filtering: {}); use an untagged NIC here",
             bridge, what, f.find("vlan_filtering") ? f.find("vlan_filtering")->detail : "not probed");
    fail(Errc::conflict,
         "bridge '{}' is not VLAN-aware, so it cannot carry {}; make it VLAN-aware (hvctl net bridge create {} "
         "--vlan-aware) or drop the tag",
         bridge, what, bridge);
}

std::vector<api::PortVlan> NetManager::plug_port(const std::string& port, const std::string& bridge, int vlan,
                                                 const std::string& trunks) {
    check_port(bridge, vlan, trunks);
    std::lock_guard lk(mu_);
    auto links = backend_->links();
    const auto* br = find_link(links, bridge);
    const auto* p = find_link(links, port);
    if (!p) fail(Errc::not_found, "port '{}' does not exist", port);
    if (!br || p->master != bridge)
        fail(Errc::conflict, "'{}' is not a port of bridge '{}' (its master is '{}')", port, bridge, p->master);
    if (!br->vlan_filtering) return {};

    // Desired: vid -> untagged (the PVID is `pvid`).
    std::map<int, bool> want;
    int pvid = vlan;
    if (!trunks.empty()) {
        std::string t = trunks;
        std::replace(t.begin(), t.end(), ';', ',');
        for (auto [lo, hi] : api::parse_vids(t))
            for (int v = lo; v <= hi; ++v) want[v] = false;
    }
    if (vlan == 0 && trunks.empty()) pvid = 1;
    if (pvid) want[pvid] = true;

    auto have = backend_->port_vlans(port);
    // Add what is wanted first (so a re-plug never drops a VLAN it keeps), then remove the rest.
    std::vector<std::pair<int, int>> tagged;
    for (auto [v, untagged] : want) {
        if (untagged) continue;
        if (!tagged.empty() && tagged.back().second + 1 == v) tagged.back().second = v;
        else tagged.emplace_back(v, v);
    }
    auto find_have = [&](int v) -> const api::PortVlan* {
        for (const auto& h : have)
            if (h.vid == v) return &h;
        return nullptr;
    };
    bool need_tagged = false;
    for (auto [v, untagged] : want) {
        if (untagged) continue;
        const auto* h = find_have(v);
        need_tagged |= !h || h->untagged || h->pvid;
    }
    if (need_tagged) backend_->add_bridge_vlans(port, tagged, false);
    if (pvid) {
        bool ok = false;
        for (const auto& h : have) ok |= h.vid == pvid && h.pvid && h.untagged;
        if (!ok) backend_->set_port_pvid(port, pvid);
    }
    std::vector<std::pair<int, int>> drop;
    for (const auto& h : have)
        if (!want.count(h.vid)) drop.emplace_back(h.vid, h.vid);
    backend_->del_bridge_vlans(port, drop, false);
    auto now = backend_->port_vlans(port);
    spdlog::info("port {} on {}: {}{}", port, bridge,
                 vlan ? fmt::format("PVID {} untagged", vlan) : (trunks.empty() ? "native VLAN 1" : "trunk only"),
                 trunks.empty() ? "" : " + trunks " + trunks);
    return now;
}

api::NicState NetManager::port_state(const std::string& port) {
    api::NicState st;
    st.tap = port;
    auto links = backend_->links();
    const auto* p = find_link(links, port);
    if (!p) {
        st.error = "no such interface";
        return st;
    }
    st.bridge = p->master;
    const auto* br = p->master.empty() ? nullptr : find_link(links, p->master);
    st.vlan_aware = br && br->vlan_filtering;
    if (st.vlan_aware) st.vlans = backend_->port_vlans(port);
    return st;
}

// ---- safe apply ----------------------------------------------------------------------------------

namespace {
std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

NetManager::~NetManager() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
        if (awaiting_) {
            try {
                rollback_locked("hvd stopped before the change was confirmed");
            } catch (const std::exception& e) {
                spdlog::error("network rollback at stop failed: {} (the undo record stays for the next start)", e.what());
            }
        }
    }
    cv_.notify_all();
    std::lock_guard tl(timer_mu_);
    if (timer_.joinable()) timer_.join();
}

api::NetApplyState NetManager::apply_state() const {
    std::lock_guard lk(mu_);
    api::NetApplyState st;
    st.last_rollback = last_rollback_;
    if (awaiting_) {
        st.state = "awaiting_confirmation";
        st.changes = awaiting_->changes;
        st.rollback_at = rollback_at_;
    } else if (!staged_.empty()) {
        st.state = "pending";
        st.changes = staged_;
    }
    return st;
}

void NetManager::write_rollback_locked(const Rollback& r) const {
    json j{{"bridges", r.bridges}, {"changes", r.changes}};
    j["port_addresses"] = json::array();
    for (const auto& [port, addrs] : r.port_addresses) j["port_addresses"].push_back({{"port", port}, {"addresses", addrs}});
    if (r.default_route) j["default_route"] = {{"dev", r.default_route->first}, {"gateway", r.default_route->second}};
    util::write_file_atomic(rollback_file(), j.dump(2) + "\n");
}

api::NetApplyState NetManager::apply(int confirm_within_s) {
    if (confirm_within_s < 5 || confirm_within_s > 3600)
        fail(Errc::invalid_input, "confirm_within must be 5..3600 seconds (got {})", confirm_within_s);
    {
        // A previous timer has finished (nothing awaits); join it outside mu_.
        std::lock_guard tl(timer_mu_);
        bool idle;
        {
            std::lock_guard lk(mu_);
            idle = !awaiting_;
        }
        if (idle && timer_.joinable()) timer_.join();
    }
    std::lock_guard lk(mu_);
    if (awaiting_) fail(Errc::conflict, "an applied network change already awaits confirmation (hvctl net confirm)");
    if (staged_.empty()) fail(Errc::conflict, "nothing to apply: no staged network change (hvctl net pending)");

    // The undo record first, on disk, before any change.
    Rollback rb;
    auto links = backend_->links();
    for (const auto& c : staged_) {
        check_new_name_locked(c.bridge.name, links);
        rb.bridges.push_back(c.bridge.name);
        for (const auto& p : c.bridge.ports) {
            check_free_port_locked(p, "bridge '" + c.bridge.name + "'", links, true);
            rb.port_addresses.emplace_back(p, backend_->addresses(p));
        }
    }
    rb.default_route = backend_->default_route();
    rb.changes = staged_;
    write_rollback_locked(rb);
    awaiting_ = rb;
    rollback_at_ = unix_now() + confirm_within_s;
    try {
        for (const auto& c : staged_) {
            const auto& spec = c.bridge;
            // Addresses off the ports first (their routes go with them), then the bridge with
            // its address and default route, then any further port addresses on the bridge.
            std::vector<std::string> extra;
            for (const auto& [port, addrs] : rb.port_addresses) {
                if (std::find(spec.ports.begin(), spec.ports.end(), port) == spec.ports.end()) continue;
                for (const auto& a : addrs) {
                    backend_->del_address(port, a);
                    if (!spec.address || a != *spec.address) extra.push_back(a);
                }
            }
            util::Reverter rv;  // released: a failure rolls back everything instead
            apply_bridge(spec, rv);
            rv.release();
            state_.bridges.push_back(spec);
            for (const auto& a : extra) backend_->add_address(spec.name, a);
        }
    } catch (const std::exception& e) {
        std::string why = fmt::format("applying failed: {}", e.what());
        rollback_locked(why);
        fail(Errc::conflict, "network change not applied, everything rolled back: {}", e.what());
    }
    staged_.clear();
    spdlog::warn("network change applied; rolled back in {} s unless confirmed (hvctl net confirm)", confirm_within_s);
    {
        std::lock_guard tl(timer_mu_);
        if (timer_.joinable()) {
            // Cannot happen (joined above while idle), but never leak a thread.
            timer_.detach();
        }
        timer_ = std::thread([this, d = rollback_at_] { util::guarded("network rollback timer", [&] { timer_main(d); }); });
    }
    api::NetApplyState st;
    st.state = "awaiting_confirmation";
    st.changes = awaiting_->changes;
    st.rollback_at = rollback_at_;
    st.last_rollback = last_rollback_;
    return st;
}

void NetManager::timer_main(std::int64_t deadline) {
    std::unique_lock lk(mu_);
    auto until = std::chrono::system_clock::time_point(std::chrono::seconds(deadline));
    cv_.wait_until(lk, until, [&] { return stopping_ || !awaiting_ || rollback_at_ != deadline; });
    if (stopping_ || !awaiting_ || rollback_at_ != deadline) return;
    try {
        rollback_locked(fmt::format("not confirmed within the time given (hvctl net confirm)"));
    } catch (const std::exception& e) {
        spdlog::error("automatic network rollback failed: {}", e.what());
    }
}

api::NetApplyState NetManager::confirm() {
    {
        std::lock_guard lk(mu_);
        if (!awaiting_) fail(Errc::conflict, "no applied network change awaits confirmation");
        auto done = std::move(*awaiting_);
        awaiting_.reset();
        rollback_at_ = 0;
        save_locked();
        std::error_code ec;
        fs::remove(rollback_file(), ec);
        spdlog::info("network change confirmed: {}", fmt::join(done.bridges, ", "));
    }
    cv_.notify_all();
    return apply_state();
}

api::NetApplyState NetManager::revert() {
    {
        std::lock_guard lk(mu_);
        if (awaiting_) {
            rollback_locked("reverted (hvctl net revert)");
        } else if (!staged_.empty()) {
            staged_.clear();
        } else {
            fail(Errc::conflict, "nothing to revert: no staged or unconfirmed network change");
        }
    }
    cv_.notify_all();
    return apply_state();
}

void NetManager::rollback_locked(const std::string& why) {
    if (!awaiting_) return;
    const Rollback rb = std::move(*awaiting_);
    awaiting_.reset();
    std::vector<std::string> errors;
    auto attempt = [&](const std::string& what, const std::function<void()>& f) {
        try {
            f();
        } catch (const std::exception& e) {
            errors.push_back(what + ": " + e.what());
        }
    };
    auto links = backend_->links();
    for (const auto& b : rb.bridges) {
        if (find_link(links, b))
            attempt("delete bridge " + b, [&] {
                for (const auto& l : links)
                    if (l.master == b) backend_->set_master(l.name, "");
                backend_->delete_link(b);
            });
        erase_spec(state_.bridges, b);
    }
    for (const auto& [port_name, addrs] : rb.port_addresses) {
        const std::string& port = port_name;  // clang 14 cannot capture a structured binding
        attempt("bring " + port + " up", [&] { backend_->set_up(port, true); });
        for (const auto& a : addrs) attempt("restore " + a + " on " + port, [&] { backend_->add_address(port, a); });
    }
    if (rb.default_route && !rb.default_route->second.empty()) {
        auto now = backend_->default_route();
        if (!now)
            attempt("restore the default route", [&] { backend_->add_default_route(rb.default_route->first, rb.default_route->second); });
    }
    // The changes are staged again: fix and re-apply, or drop them with net revert.
    staged_ = rb.changes;
    rollback_at_ = 0;
    std::error_code ec;
    if (errors.empty()) fs::remove(rollback_file(), ec);
    last_rollback_ = fmt::format("rolled back {}: {}{}", fmt::join(rb.bridges, ", "), why,
                                 errors.empty() ? "" : fmt::format(" (errors: {})", fmt::join(errors, "; ")));
    spdlog::error("network: {}", last_rollback_);
}

void NetManager::recover() {
    std::lock_guard lk(mu_);
    std::ifstream in(rollback_file());
    if (!in) return;
    try {
        json j;
        in >> j;
        Rollback rb;
        rb.bridges = j.value("bridges", std::vector<std::string>{});
        for (const auto& pa : j.value("port_addresses", json::array()))
            rb.port_addresses.emplace_back(pa.value("port", ""), pa.value("addresses", std::vector<std::string>{}));
        if (j.contains("default_route"))
            rb.default_route = std::make_pair(j["default_route"].value("dev", ""), j["default_route"].value("gateway", ""));
        for (const auto& c : j.value("changes", json::array())) {
            api::NetChange ch;
            ch.action = c.value("action", "");
            ch.bridge = api::bridge_spec_from_json(c.at("bridge"));
            ch.effects = c.value("effects", std::vector<std::string>{});
            rb.changes.push_back(std::move(ch));
        }
        awaiting_ = rb;
        rollback_locked("hvd restarted before the change was confirmed");
    } catch (const std::exception& e) {
        spdlog::error("cannot read the network undo record {}: {}", rollback_file(), e.what());
    }
}

}  // namespace hv::net
