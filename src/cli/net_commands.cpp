// hvctl net nic list | features | bridge|bond|vlan create|delete|list|show: host networking
// through /v1/net (hvd changes the kernel's links over netlink; hvctl only speaks the API).
#include <algorithm>
#include <ctime>
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "context.hpp"
#include "format.hpp"
#include "hv/api/net.hpp"
#include "output.hpp"

namespace hv::cli {
using nlohmann::json;

namespace {

std::string speed_text(std::int64_t s) {
    if (s < 0) return "-";
    if (s >= 1000 && s % 1000 == 0) return fmt::format("{}G", s / 1000);
    return fmt::format("{}M", s);
}
std::string mtu_text(int m) { return m > 0 ? std::to_string(m) : "-"; }
std::string join(const std::vector<std::string>& v) { return v.empty() ? "-" : fmt::format("{}", fmt::join(v, ",")); }

void print_warnings(const std::vector<std::string>& w) {
    for (const auto& s : w) std::cerr << "warning: " << s << "\n";
}

void print_ports(const Globals& g, const std::vector<api::PortState>& ports) {
    if (ports.empty()) return;
    std::vector<Row> rows;
    for (const auto& p : ports)
        rows.push_back({p.name, p.present ? "yes" : "no", p.carrier ? "yes" : "no", speed_text(p.speed), mtu_text(p.mtu),
                        p.master.empty() ? "-" : p.master});
    std::cout << "\n";
    print_table(g, {"PORT", "PRESENT", "LINK", "SPEED", "MTU", "MASTER"}, rows);
}

void show_bridge(const Globals& g, const api::BridgeInfo& b) {
    if (g.json()) return print_json(json(b));
    std::cout << render_kv({{"name", b.spec.name},
                            {"purpose", b.spec.purpose},
                            {"present", b.present ? "yes (" + b.operstate + ")" : "no"},
                            {"vlan aware", b.spec.vlan_aware ? "yes, vids " + b.spec.vids : "no"},
                            {"vlan filtering (live)", b.vlan_filtering ? "on" : "off"},
                            {"mtu", b.spec.mtu ? std::to_string(b.spec.mtu) + " (live " + mtu_text(b.mtu) + ")" : mtu_text(b.mtu)},
                            {"mac", b.mac.empty() ? "-" : b.mac},
                            {"address", b.spec.address.value_or("-")},
                            {"gateway", b.spec.gateway.value_or("-")},
                            {"ports", join(b.spec.ports)},
                            {"guest ports", b.guest_ports.empty() ? "-" : join(b.guest_ports)}});
    print_ports(g, b.ports);
    std::cout << std::flush;
    print_warnings(b.warnings);
}

void show_bond(const Globals& g, const api::BondInfo& b) {
    if (g.json()) return print_json(json(b));
    std::cout << render_kv({{"name", b.spec.name},
                            {"purpose", b.spec.purpose},
                            {"present", b.present ? "yes (" + b.operstate + ")" : "no"},
                            {"mode", b.spec.mode},
                            {"miimon", std::to_string(b.spec.miimon) + " ms"},
                            {"primary", b.spec.primary.empty() ? "-" : b.spec.primary},
                            {"active member", b.active_member.empty() ? "-" : b.active_member},
                            {"xmit hash policy", b.spec.xmit_hash_policy.empty() ? "-" : b.spec.xmit_hash_policy},
                            {"speed", speed_text(b.speed)},
                            {"mtu", mtu_text(b.mtu)},
                            {"members", join(b.spec.members)}});
    print_ports(g, b.members);
    std::cout << std::flush;
    print_warnings(b.warnings);
}

void show_vlan(const Globals& g, const api::VlanInfo& v) {
    if (g.json()) return print_json(json(v));
    std::cout << render_kv({{"name", v.spec.name},
                            {"parent", v.spec.parent},
                            {"id", std::to_string(v.spec.id)},
                            {"present", v.present ? "yes (" + v.operstate + ")" : "no"},
                            {"mtu", mtu_text(v.mtu)},
                            {"mac", v.mac.empty() ? "-" : v.mac}})
              << std::flush;
    print_warnings(v.warnings);
}

std::string state_text(bool present, const std::string& operstate) { return present ? operstate : "missing"; }

}  // namespace

void add_net_commands(CLI::App& app, Context& ctx) {
    auto* net = app.add_subcommand("net", "Host networking: NICs, bridges, bonds, VLANs");
    net->require_subcommand(1);

    // ---- nic
    auto* nic = net->add_subcommand("nic", "Network interfaces (read-only)");
    nic->require_subcommand(1);
    auto all = std::make_shared<bool>(false);
    auto* nic_list = nic->add_subcommand("list", "Physical NICs: MAC, driver, link, speed, duplex, MTU");
    nic_list->add_flag("--all", *all, "Every interface (bridges, bonds, veths, taps), not only physical NICs");
    nic_list->callback([&ctx, all] {
        ctx.action = [&g = ctx.g, all] {
            auto nics = g.client().list_nics(*all);
            if (g.json()) return print_json(json(nics)), 0;
            std::vector<Row> rows;
            for (const auto& n : nics)
                rows.push_back({n.name, n.kind, n.driver.empty() ? "-" : n.driver, n.mac.empty() ? "-" : n.mac,
                                n.carrier ? "yes" : "no", speed_text(n.speed), n.duplex, mtu_text(n.mtu),
                                n.master.empty() ? "-" : n.master, n.managed ? "hv" : "-"});
            print_table(g, {"NAME", "KIND", "DRIVER", "MAC", "LINK", "SPEED", "DUPLEX", "MTU", "MASTER", "OWNER"}, rows);
            return 0;
        };
    });

    net->add_subcommand("features", "What this host's kernel supports (bridge, vlan_filtering, 8021q, bonding, ...)")
        ->callback([&ctx] {
            ctx.action = [&g = ctx.g] {
                auto f = g.client().net_features();
                if (g.json()) return print_json(json(f)), 0;
                std::vector<Row> rows;
                for (const auto& i : f.items) rows.push_back({i.name, i.supported ? "yes" : "no", i.detail});
                print_table(g, {"FEATURE", "SUPPORTED", "DETAIL"}, rows);
                return 0;
            };
        });

    // ---- bridge
    auto* bridge = net->add_subcommand("bridge", "hv-managed Linux bridges");
    bridge->require_subcommand(1);
    auto bs = std::make_shared<api::BridgeSpec>();
    auto baddr = std::make_shared<std::string>();
    auto bgw = std::make_shared<std::string>();
    auto* bc = bridge->add_subcommand("create", "Create a bridge (applied at once, persisted, re-applied at hvd start)");
    bc->add_option("name", bs->name, "Bridge name, e.g. vmbr0 (at most 15 characters)")->required();
    bc->add_option("--port", bs->ports, "Port (uplink NIC, bond or VLAN); repeatable")->delimiter(',');
    bc->add_flag("--vlan-aware", bs->vlan_aware, "Enable VLAN filtering (802.1Q-aware bridge)");
    bc->add_option("--vids", bs->vids, "VLAN ids allowed on the ports when VLAN-aware, e.g. 2-4094 or 100,200-210")
        ->capture_default_str();
    bc->add_option("--mtu", bs->mtu, "MTU (68..9000; default: the kernel's)");
    bc->add_option("--address", *baddr, "Host address on the bridge, CIDR (e.g. 10.0.0.5/24)");
    bc->add_option("--gateway", *bgw, "Default gateway through the bridge (needs --address)");
    bc->add_option("--purpose", bs->purpose, "vm, storage or management (vm/storage want 10GbE uplinks)")
        ->check(CLI::IsMember(api::kNetPurposes))
        ->capture_default_str();
    bc->callback([&ctx, bs, baddr, bgw] {
        ctx.action = [&g = ctx.g, bs, baddr, bgw] {
            api::BridgeSpec s = *bs;
            if (!baddr->empty()) s.address = *baddr;
            if (!bgw->empty()) s.gateway = *bgw;
            auto info = g.client().create_bridge(s);
            show_bridge(g, info);
            if (info.pending && !g.json())
                std::cerr << "bridge " << s.name << " is staged, not applied: it touches addressed interfaces. Apply with "
                          << "`hvctl net apply --confirm-within 60`, then `hvctl net confirm`.\n";
            return 0;
        };
    });
    auto bname = std::make_shared<std::string>();
    auto bforce = std::make_shared<bool>(false);
    auto* bd = bridge->add_subcommand("delete", "Delete an hv-managed bridge (its ports are released)");
    bd->add_option("name", *bname, "Bridge name")->required();
    bd->add_flag("--force", *bforce, "Also when ports hv did not add (VM taps) are attached");
    bd->callback([&ctx, bname, bforce] {
        ctx.action = [&g = ctx.g, bname, bforce] {
            g.client().delete_bridge(*bname, *bforce);
            if (g.json()) print_json(json{{"name", *bname}, {"deleted", true}});
            else print_line("bridge " + *bname + " deleted");
            return 0;
        };
    });
    bridge->add_subcommand("list", "hv-managed bridges")->callback([&ctx] {
        ctx.action = [&g = ctx.g] {
            auto list = g.client().list_bridges();
            if (g.json()) return print_json(json(list)), 0;
            std::vector<Row> rows;
            for (const auto& b : list)
                rows.push_back({b.spec.name, state_text(b.present, b.operstate), b.spec.purpose,
                                b.spec.vlan_aware ? b.spec.vids : "no", mtu_text(b.mtu), join(b.spec.ports),
                                b.spec.address.value_or("-"), std::to_string(b.warnings.size())});
            print_table(g, {"NAME", "STATE", "PURPOSE", "VLANS", "MTU", "PORTS", "ADDRESS", "WARNINGS"}, rows);
            return 0;
        };
    });
    {
        struct SetOpts {
            std::string name, vids, purpose, vlan_aware;
            int mtu = 0;
            api::BridgePatch p;
        };
        auto o = std::make_shared<SetOpts>();
        auto* set = bridge->add_subcommand("set", "Change a bridge: ports, VLAN awareness, vids, MTU, purpose (applied at once)");
        set->add_option("name", o->name, "Bridge name")->required();
        set->add_option("--add-port", o->p.add_ports, "Enslave a free NIC, bond or VLAN; repeatable")->delimiter(',');
        set->add_option("--remove-port", o->p.remove_ports, "Release a port; repeatable")->delimiter(',');
        auto* va = set->add_option("--vlan-aware", o->vlan_aware, "yes or no")->check(CLI::IsMember({"yes", "no"}));
        auto* vi = set->add_option("--vids", o->vids, "VLAN ids allowed on the ports, e.g. 2-4094 or 100,200-210");
        auto* mt = set->add_option("--mtu", o->mtu, "MTU (68..9000)");
        auto* pu = set->add_option("--purpose", o->purpose, "vm, storage or management")->check(CLI::IsMember(api::kNetPurposes));
        set->callback([&ctx, o, va, vi, mt, pu] {
            ctx.action = [&g = ctx.g, o, va, vi, mt, pu] {
                auto p = o->p;
                if (va->count()) p.vlan_aware = o->vlan_aware == "yes";
                if (vi->count()) p.vids = o->vids;
                if (mt->count()) p.mtu = o->mtu;
                if (pu->count()) p.purpose = o->purpose;
                show_bridge(g, g.client().update_bridge(o->name, p));
                return 0;
            };
        });
    }
    auto bshow = std::make_shared<std::string>();
    auto* bsh = bridge->add_subcommand("show", "One bridge: spec, live state, ports, warnings");
    bsh->add_option("name", *bshow, "Bridge name")->required();
    bsh->callback([&ctx, bshow] {
        ctx.action = [&g = ctx.g, bshow] {
            show_bridge(g, g.client().get_bridge(*bshow));
            return 0;
        };
    });

    // ---- bond
    auto* bond = net->add_subcommand("bond", "hv-managed bonds (link aggregation / failover)");
    bond->require_subcommand(1);
    auto os = std::make_shared<api::BondSpec>();
    auto* oc = bond->add_subcommand("create", "Create a bond of NICs");
    oc->add_option("name", os->name, "Bond name, e.g. bond0")->required();
    oc->add_option("--member", os->members, "Member NIC; repeatable or comma-separated")->delimiter(',')->required();
    oc->add_option("--mode", os->mode, "active-backup, 802.3ad (LACP) or balance-xor")
        ->check(CLI::IsMember(api::kBondModes))
        ->capture_default_str();
    oc->add_option("--miimon", os->miimon, "Link check interval in ms")->capture_default_str();
    oc->add_option("--primary", os->primary, "active-backup: preferred member");
    oc->add_option("--xmit-hash-policy", os->xmit_hash_policy, "802.3ad/balance-xor: layer2, layer2+3, layer3+4, ...");
    oc->add_option("--mtu", os->mtu, "MTU (68..9000), passed to the members");
    oc->add_option("--purpose", os->purpose, "vm, storage or management")
        ->check(CLI::IsMember(api::kNetPurposes))
        ->capture_default_str();
    oc->callback([&ctx, os] {
        ctx.action = [&g = ctx.g, os] {
            show_bond(g, g.client().create_bond(*os));
            return 0;
        };
    });
    auto oname = std::make_shared<std::string>();
    auto* od = bond->add_subcommand("delete", "Delete an hv-managed bond (its members are released)");
    od->add_option("name", *oname, "Bond name")->required();
    od->callback([&ctx, oname] {
        ctx.action = [&g = ctx.g, oname] {
            g.client().delete_bond(*oname);
            if (g.json()) print_json(json{{"name", *oname}, {"deleted", true}});
            else print_line("bond " + *oname + " deleted");
            return 0;
        };
    });
    bond->add_subcommand("list", "hv-managed bonds")->callback([&ctx] {
        ctx.action = [&g = ctx.g] {
            auto list = g.client().list_bonds();
            if (g.json()) return print_json(json(list)), 0;
            std::vector<Row> rows;
            for (const auto& b : list)
                rows.push_back({b.spec.name, state_text(b.present, b.operstate), b.spec.mode, join(b.spec.members),
                                b.active_member.empty() ? "-" : b.active_member, speed_text(b.speed), mtu_text(b.mtu),
                                std::to_string(b.warnings.size())});
            print_table(g, {"NAME", "STATE", "MODE", "MEMBERS", "ACTIVE", "SPEED", "MTU", "WARNINGS"}, rows);
            return 0;
        };
    });
    {
        struct SetOpts {
            std::string name, primary, purpose;
            int miimon = 0, mtu = 0;
            api::BondPatch p;
        };
        auto o = std::make_shared<SetOpts>();
        auto* set = bond->add_subcommand("set", "Change a bond: members, primary, miimon, MTU, purpose (applied at once)");
        set->add_option("name", o->name, "Bond name")->required();
        set->add_option("--add-member", o->p.add_members, "Add a free NIC; repeatable")->delimiter(',');
        set->add_option("--remove-member", o->p.remove_members, "Release a member; repeatable")->delimiter(',');
        auto* pr = set->add_option("--primary", o->primary, "active-backup: preferred member (\"\" = none)");
        auto* mi = set->add_option("--miimon", o->miimon, "Link check interval in ms");
        auto* mt = set->add_option("--mtu", o->mtu, "MTU (68..9000)");
        auto* pu = set->add_option("--purpose", o->purpose, "vm, storage or management")->check(CLI::IsMember(api::kNetPurposes));
        set->callback([&ctx, o, pr, mi, mt, pu] {
            ctx.action = [&g = ctx.g, o, pr, mi, mt, pu] {
                auto p = o->p;
                if (pr->count()) p.primary = o->primary;
                if (mi->count()) p.miimon = o->miimon;
                if (mt->count()) p.mtu = o->mtu;
                if (pu->count()) p.purpose = o->purpose;
                show_bond(g, g.client().update_bond(o->name, p));
                return 0;
            };
        });
    }
    auto oshow = std::make_shared<std::string>();
    auto* osh = bond->add_subcommand("show", "One bond: spec, live state, members, warnings");
    osh->add_option("name", *oshow, "Bond name")->required();
    osh->callback([&ctx, oshow] {
        ctx.action = [&g = ctx.g, oshow] {
            show_bond(g, g.client().get_bond(*oshow));
            return 0;
        };
    });

    // ---- vlan
    auto* vlan = net->add_subcommand("vlan", "hv-managed VLAN sub-interfaces (e.g. bond0.100)");
    vlan->require_subcommand(1);
    auto vs = std::make_shared<api::VlanSpec>();
    auto* vc = vlan->add_subcommand("create", "Create a VLAN sub-interface");
    vc->add_option("name", vs->name, "Interface name, e.g. bond0.100")->required();
    vc->add_option("--parent", vs->parent, "Lower interface, e.g. bond0")->required();
    vc->add_option("--id", vs->id, "VLAN id 1..4094")->required();
    vc->add_option("--mtu", vs->mtu, "MTU (68..9000)");
    vc->callback([&ctx, vs] {
        ctx.action = [&g = ctx.g, vs] {
            show_vlan(g, g.client().create_vlan(*vs));
            return 0;
        };
    });
    {
        struct SetOpts {
            std::string name;
            int mtu = 0;
        };
        auto o = std::make_shared<SetOpts>();
        auto* set = vlan->add_subcommand("set", "Change a VLAN sub-interface's MTU");
        set->add_option("name", o->name, "Interface name")->required();
        set->add_option("--mtu", o->mtu, "MTU (68..9000)")->required();
        set->callback([&ctx, o] {
            ctx.action = [&g = ctx.g, o] {
                api::VlanPatch p;
                p.mtu = o->mtu;
                show_vlan(g, g.client().update_vlan(o->name, p));
                return 0;
            };
        });
    }
    auto vname = std::make_shared<std::string>();
    auto* vd = vlan->add_subcommand("delete", "Delete an hv-managed VLAN sub-interface");
    vd->add_option("name", *vname, "Interface name")->required();
    vd->callback([&ctx, vname] {
        ctx.action = [&g = ctx.g, vname] {
            g.client().delete_vlan(*vname);
            if (g.json()) print_json(json{{"name", *vname}, {"deleted", true}});
            else print_line("vlan " + *vname + " deleted");
            return 0;
        };
    });
    vlan->add_subcommand("list", "hv-managed VLAN sub-interfaces")->callback([&ctx] {
        ctx.action = [&g = ctx.g] {
            auto list = g.client().list_vlans();
            if (g.json()) return print_json(json(list)), 0;
            std::vector<Row> rows;
            for (const auto& v : list)
                rows.push_back({v.spec.name, state_text(v.present, v.operstate), v.spec.parent, std::to_string(v.spec.id),
                                mtu_text(v.mtu), std::to_string(v.warnings.size())});
            print_table(g, {"NAME", "STATE", "PARENT", "ID", "MTU", "WARNINGS"}, rows);
            return 0;
        };
    });
    auto vshow = std::make_shared<std::string>();
    auto* vsh = vlan->add_subcommand("show", "One VLAN sub-interface");
    vsh->add_option("name", *vshow, "Interface name")->required();
    vsh->callback([&ctx, vshow] {
        ctx.action = [&g = ctx.g, vshow] {
            show_vlan(g, g.client().get_vlan(*vshow));
            return 0;
        };
    });

    // ---- safe apply (commit-confirmed)
    auto print_apply = [](const Globals& g, const api::NetApplyState& st) {
        if (g.json()) return print_json(json(st));
        std::vector<std::pair<std::string, std::string>> kv{{"state", st.state}};
        if (st.rollback_at)
            kv.emplace_back("rollback at", fmt::format("{} (in {} s unless `hvctl net confirm`)", format_time_ms(st.rollback_at * 1000),
                                                       std::max<std::int64_t>(0, st.rollback_at - std::time(nullptr))));
        if (!st.last_rollback.empty()) kv.emplace_back("last rollback", st.last_rollback);
        std::cout << render_kv(kv);
        for (const auto& c : st.changes) {
            std::cout << c.action << " " << c.bridge.name << " (ports " << join(c.bridge.ports) << ")\n";
            for (const auto& e : c.effects) std::cout << "  " << e << "\n";
        }
        std::cout << std::flush;
    };
    net->add_subcommand("pending", "Staged changes (they touch addressed interfaces) and an apply awaiting confirmation")
        ->callback([&ctx, print_apply] {
            ctx.action = [&g = ctx.g, print_apply] {
                print_apply(g, g.client().net_pending());
                return 0;
            };
        });
    auto within = std::make_shared<int>(60);
    auto* apply = net->add_subcommand("apply", "Apply the staged changes; they roll back unless `hvctl net confirm` "
                                               "comes within --confirm-within seconds");
    apply->add_option("--confirm-within", *within, "Seconds until the automatic rollback (5..3600)")->capture_default_str();
    apply->callback([&ctx, within, print_apply] {
        ctx.action = [&g = ctx.g, within, print_apply] {
            print_apply(g, g.client().net_apply(*within));
            return 0;
        };
    });
    net->add_subcommand("confirm", "Keep the applied change (cancels the automatic rollback; persisted)")
        ->callback([&ctx, print_apply] {
            ctx.action = [&g = ctx.g, print_apply] {
                auto st = g.client().net_confirm();
                if (g.json()) print_json(json(st));
                else print_line("network change confirmed");
                return 0;
            };
        });
    net->add_subcommand("revert", "Drop the staged changes, or roll back an unconfirmed apply now")
        ->callback([&ctx, print_apply] {
            ctx.action = [&g = ctx.g, print_apply] {
                print_apply(g, g.client().net_revert());
                return 0;
            };
        });
}

}  // namespace hv::cli
