#include "net_manager.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hv/error.hpp"
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
    auto tmp = state_file_ + ".tmp";
    fs::create_directories(fs::path(state_file_).parent_path());
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << json(state_).dump(2) << "\n";
        out.flush();
        if (!out) fail(Errc::internal, "cannot write {}", tmp);
    }
    if (::rename(tmp.c_str(), state_file_.c_str()) != 0)
        fail(Errc::internal, "cannot replace {}: {}", state_file_, std::strerror(errno));
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
                                        const std::vector<LinkState>& links) {
    const auto* l = find_link(links, port);
    if (!l) fail(Errc::not_found, "{}: interface '{}' does not exist", for_what, port);
    if (port == "lo") fail(Errc::invalid_input, "{}: the loopback interface cannot be a port", for_what);
    if (auto user = user_of_locked(port); !user.empty())
        fail(Errc::conflict, "{}: '{}' is already used by {}", for_what, port, user);
    if (!l->master.empty())
        fail(Errc::conflict, "{}: '{}' is already a port of '{}'", for_what, port, l->master);
    if (l->kind == "bridge")
        fail(Errc::invalid_input, "{}: '{}' is a bridge; bridges cannot be nested", for_what, port);
    auto addrs = backend_->addresses(port);
    if (!addrs.empty())
        fail(Errc::conflict,
             "{}: '{}' carries address {}; hv does not move addresses into a bridge or bond (that could cut "
             "the management connection): move the address yourself, or wait for confirmed apply",
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
    for (const auto& p : spec.ports) check_free_port_locked(p, what, links);
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
        fail(Errc::conflict, "bridge '{}' has ports hv did not add ({}): VMs attached? detach them or use --force",
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

}  // namespace hv::net
