#include "netlink_backend.hpp"

// System headers before the kernel's uapi ones (linux/in6.h defers to glibc's netinet/in.h).
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>

#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/vlan.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <thread>

#include "hv/error.hpp"

namespace hv::net {
namespace {

[[noreturn]] void nl_fail(int err, const std::string& what, const char* feature = nullptr) {
    int e = err < 0 ? -err : err;
    std::string why = nl_geterror(e);
    switch (e) {
        case NLE_OPNOTSUPP:
            if (feature)
                fail(Errc::unsupported, "{}: this kernel does not support {} ({})", what, feature, why);
            fail(Errc::unsupported, "{}: not supported by this kernel ({})", what, why);
        case NLE_EXIST: fail(Errc::conflict, "{}: already exists ({})", what, why);
        case NLE_NODEV:
        case NLE_OBJ_NOTFOUND: fail(Errc::not_found, "{}: no such interface ({})", what, why);
        case NLE_BUSY: fail(Errc::conflict, "{}: busy ({})", what, why);
        case NLE_PERM:
        case NLE_NOACCESS: fail(Errc::internal, "{}: permission denied (hvd needs CAP_NET_ADMIN)", what);
        case NLE_INVAL:
        case NLE_RANGE: fail(Errc::invalid_input, "{}: the kernel refused it ({})", what, why);
        default: fail(Errc::internal, "{}: {}", what, why);
    }
}

struct Sock {
    nl_sock* s = nullptr;
    Sock() {
        s = nl_socket_alloc();
        if (!s) fail(Errc::internal, "cannot allocate a netlink socket");
        if (int e = nl_connect(s, NETLINK_ROUTE); e < 0) {
            nl_socket_free(s);
            nl_fail(e, "cannot open an rtnetlink socket");
        }
    }
    ~Sock() { nl_socket_free(s); }
    Sock(const Sock&) = delete;
    Sock& operator=(const Sock&) = delete;
};

// An RTM_* link message with its ifinfomsg header.
struct LinkMsg {
    nl_msg* m = nullptr;
    LinkMsg(int type, int flags, unsigned char family, int ifindex, unsigned ifi_flags = 0, unsigned ifi_change = 0) {
        m = nlmsg_alloc_simple(type, NLM_F_REQUEST | NLM_F_ACK | flags);
        if (!m) throw std::bad_alloc();
        ifinfomsg ifi{};
        ifi.ifi_family = family;
        ifi.ifi_index = ifindex;
        ifi.ifi_flags = ifi_flags;
        ifi.ifi_change = ifi_change;
        if (nlmsg_append(m, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0) throw std::bad_alloc();
    }
    ~LinkMsg() { nlmsg_free(m); }
    LinkMsg(const LinkMsg&) = delete;
    LinkMsg& operator=(const LinkMsg&) = delete;
    // Returns 0 or a negative NLE code.
    int send(Sock& s) {
        int e = nl_send_auto(s.s, m);
        if (e < 0) return e;
        return nl_wait_for_ack(s.s);
    }
};

void check_put(int e) {
    if (e < 0) fail(Errc::internal, "building a netlink message: {}", nl_geterror(e));
}

// Builds RTM_NEWLINK (create) for `kind` with optional IFLA_INFO_DATA filled by `data`.
template <typename Fill>
int new_link(Sock& s, const std::string& name, const std::string& kind, int mtu, int parent_ifindex, Fill data) {
    LinkMsg msg(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, AF_UNSPEC, 0);
    check_put(nla_put_string(msg.m, IFLA_IFNAME, name.c_str()));
    if (mtu > 0) check_put(nla_put_u32(msg.m, IFLA_MTU, static_cast<uint32_t>(mtu)));
    if (parent_ifindex > 0) check_put(nla_put_u32(msg.m, IFLA_LINK, static_cast<uint32_t>(parent_ifindex)));
    nlattr* info = nla_nest_start(msg.m, IFLA_LINKINFO);
    if (!info) throw std::bad_alloc();
    check_put(nla_put_string(msg.m, IFLA_INFO_KIND, kind.c_str()));
    nlattr* d = nla_nest_start(msg.m, IFLA_INFO_DATA);
    if (!d) throw std::bad_alloc();
    data(msg.m);
    nla_nest_end(msg.m, d);
    nla_nest_end(msg.m, info);
    return msg.send(s);
}

int ifindex_of(Sock& s, const std::string& name) {
    rtnl_link* l = nullptr;
    int e = rtnl_link_get_kernel(s.s, 0, name.c_str(), &l);
    if (e < 0 || !l) fail(Errc::not_found, "interface '{}' does not exist", name);
    int idx = rtnl_link_get_ifindex(l);
    rtnl_link_put(l);
    return idx;
}

uint8_t bond_mode(const std::string& m) {
    if (m == "active-backup") return 1;
    if (m == "balance-xor") return 2;
    if (m == "802.3ad") return 4;
    fail(Errc::invalid_input, "bond mode '{}' is not one of active-backup, 802.3ad, balance-xor", m);
}
uint8_t xmit_policy(const std::string& p) {
    if (p.empty() || p == "layer2") return 0;
    if (p == "layer3+4") return 1;
    if (p == "layer2+3") return 2;
    if (p == "encap2+3") return 3;
    if (p == "encap3+4") return 4;
    fail(Errc::invalid_input, "xmit_hash_policy '{}' is not known", p);
}

std::string addr_text(nl_addr* a) {
    if (!a) return "";
    char buf[128];
    return nl_addr2str(a, buf, sizeof(buf));
}

}  // namespace

std::vector<LinkState> NetlinkBackend::links() {
    Sock s;
    nl_cache* cache = nullptr;
    if (int e = rtnl_link_alloc_cache(s.s, AF_UNSPEC, &cache); e < 0) nl_fail(e, "reading links");
    std::unique_ptr<nl_cache, void (*)(nl_cache*)> guard(cache, nl_cache_free);
    std::map<int, std::string> names;
    for (auto* o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
        auto* l = reinterpret_cast<rtnl_link*>(o);
        names[rtnl_link_get_ifindex(l)] = rtnl_link_get_name(l) ? rtnl_link_get_name(l) : "";
    }
    std::vector<LinkState> out;
    for (auto* o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
        auto* l = reinterpret_cast<rtnl_link*>(o);
        LinkState st;
        st.name = rtnl_link_get_name(l) ? rtnl_link_get_name(l) : "";
        st.ifindex = rtnl_link_get_ifindex(l);
        if (const char* k = rtnl_link_get_type(l)) st.kind = k;
        if (int m = rtnl_link_get_master(l); m > 0 && names.count(m)) st.master = names[m];
        st.admin_up = (rtnl_link_get_flags(l) & IFF_UP) != 0;
        char buf[64];
        st.operstate = rtnl_link_operstate2str(rtnl_link_get_operstate(l), buf, sizeof(buf));
        st.mtu = static_cast<int>(rtnl_link_get_mtu(l));
        st.mac = addr_text(rtnl_link_get_addr(l));
        if (st.kind == "vlan") {
            if (int p = rtnl_link_get_link(l); p > 0 && names.count(p)) st.parent = names[p];
            st.vlan_id = rtnl_link_vlan_get_id(l);
        }
        if (st.kind == "bridge") st.vlan_filtering = sysfs_.attr(st.name, "bridge/vlan_filtering") == "1";
        if (st.kind == "bond") st.bond_active = sysfs_.attr(st.name, "bonding/active_slave");
        out.push_back(std::move(st));
    }
    return out;
}

api::NicInfo NetlinkBackend::nic(const std::string& name) { return sysfs_.read(name); }

std::vector<std::string> NetlinkBackend::addresses(const std::string& name) {
    Sock s;
    int idx = ifindex_of(s, name);
    nl_cache* cache = nullptr;
    if (int e = rtnl_addr_alloc_cache(s.s, &cache); e < 0) nl_fail(e, "reading addresses");
    std::unique_ptr<nl_cache, void (*)(nl_cache*)> guard(cache, nl_cache_free);
    std::vector<std::string> out;
    for (auto* o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
        auto* a = reinterpret_cast<rtnl_addr*>(o);
        if (rtnl_addr_get_ifindex(a) != idx || rtnl_addr_get_scope(a) != RT_SCOPE_UNIVERSE) continue;
        out.push_back(addr_text(rtnl_addr_get_local(a)));
    }
    return out;
}

api::KernelFeatures NetlinkBackend::probe_features() {
    api::KernelFeatures out;
    std::string ns_error;
    std::thread t([&] {
        // This thread alone moves to a fresh network namespace; it (and every probe link)
        // vanishes when the socket is closed and the thread ends.
        if (::unshare(CLONE_NEWNET) != 0) {
            ns_error = std::strerror(errno);
            return;
        }
        try {
            Sock s;
            auto probe = [&](const std::string& feature, const std::string& link, const std::string& kind, int parent,
                             auto data) {
                int e = new_link(s, link, kind, 0, parent, data);
                out.items.push_back({feature, e >= 0,
                                     e >= 0 ? "probed: created a '" + kind + "' link in a private namespace"
                                            : "creating a '" + kind + "' link: " + nl_geterror(-e < 0 ? e : -e)});
                return e >= 0;
            };
            auto none = [](nl_msg*) {};
            bool br = probe("bridge", "hvprobe-br", "bridge", 0, none);
            probe("vlan_filtering", "hvprobe-vf", "bridge", 0,
                  [](nl_msg* m) { check_put(nla_put_u8(m, IFLA_BR_VLAN_FILTERING, 1)); });
            bool veth = probe("veth", "hvprobe-veth", "veth", 0, none);
            std::string parent = br ? "hvprobe-br" : veth ? "hvprobe-veth" : "";
            if (!parent.empty()) {
                int pidx = ifindex_of(s, parent);
                probe("8021q", "hvprobe-vlan", "vlan", pidx,
                      [](nl_msg* m) { check_put(nla_put_u16(m, IFLA_VLAN_ID, 10)); });
            } else {
                out.items.push_back({"8021q", false, "not probed: no bridge or veth to put a VLAN on"});
            }
            probe("bonding", "hvprobe-bond", "bond", 0, none);
            probe("dummy", "hvprobe-dummy", "dummy", 0, none);
        } catch (const std::exception& e) {
            ns_error = e.what();
            out.items.clear();
        }
    });
    t.join();
    if (ns_error.empty()) return out;
    // No private namespace (not root?): loaded modules are the best guess.
    auto mod = [](const char* m) { return std::filesystem::exists(std::string("/sys/module/") + m); };
    std::string why = "not probed (" + ns_error + "); from /sys/module";
    out.items = {{"bridge", mod("bridge"), why},
                 {"vlan_filtering", false, "not probed (" + ns_error + ")"},
                 {"veth", mod("veth"), why},
                 {"8021q", mod("8021q"), why},
                 {"bonding", mod("bonding"), why},
                 {"dummy", mod("dummy"), why}};
    return out;
}

void NetlinkBackend::create_bridge(const std::string& name, bool vlan_filtering, int mtu) {
    Sock s;
    int e = new_link(s, name, "bridge", mtu, 0, [&](nl_msg* m) {
        if (vlan_filtering) check_put(nla_put_u8(m, IFLA_BR_VLAN_FILTERING, 1));
    });
    if (e < 0) nl_fail(e, "create bridge '" + name + "'", vlan_filtering ? "vlan_filtering" : "bridge");
}

void NetlinkBackend::create_bond(const api::BondSpec& spec) {
    Sock s;
    int e = new_link(s, spec.name, "bond", spec.mtu, 0, [&](nl_msg* m) {
        check_put(nla_put_u8(m, IFLA_BOND_MODE, bond_mode(spec.mode)));
        check_put(nla_put_u32(m, IFLA_BOND_MIIMON, static_cast<uint32_t>(spec.miimon)));
        if (!spec.xmit_hash_policy.empty())
            check_put(nla_put_u8(m, IFLA_BOND_XMIT_HASH_POLICY, xmit_policy(spec.xmit_hash_policy)));
    });
    if (e < 0) nl_fail(e, "create bond '" + spec.name + "'", "bonding");
}

void NetlinkBackend::create_vlan(const std::string& name, const std::string& parent, int id, int mtu) {
    Sock s;
    int pidx = ifindex_of(s, parent);
    int e = new_link(s, name, "vlan", mtu, pidx,
                     [&](nl_msg* m) { check_put(nla_put_u16(m, IFLA_VLAN_ID, static_cast<uint16_t>(id))); });
    if (e < 0) nl_fail(e, "create vlan '" + name + "' on '" + parent + "'", "8021q");
}

void NetlinkBackend::delete_link(const std::string& name) {
    Sock s;
    int idx = ifindex_of(s, name);
    LinkMsg msg(RTM_DELLINK, 0, AF_UNSPEC, idx);
    if (int e = msg.send(s); e < 0) nl_fail(e, "delete '" + name + "'");
}

void NetlinkBackend::set_master(const std::string& name, const std::string& master) {
    Sock s;
    int idx = ifindex_of(s, name);
    int midx = master.empty() ? 0 : ifindex_of(s, master);
    LinkMsg msg(RTM_SETLINK, 0, AF_UNSPEC, idx);
    check_put(nla_put_u32(msg.m, IFLA_MASTER, static_cast<uint32_t>(midx)));
    if (int e = msg.send(s); e < 0)
        nl_fail(e, master.empty() ? "release '" + name + "' from its master" : "enslave '" + name + "' to '" + master + "'");
}

void NetlinkBackend::set_up(const std::string& name, bool up) {
    Sock s;
    int idx = ifindex_of(s, name);
    LinkMsg msg(RTM_SETLINK, 0, AF_UNSPEC, idx, up ? IFF_UP : 0, IFF_UP);
    if (int e = msg.send(s); e < 0) nl_fail(e, std::string("set '") + name + "' " + (up ? "up" : "down"));
}

void NetlinkBackend::set_mtu(const std::string& name, int mtu) {
    Sock s;
    int idx = ifindex_of(s, name);
    LinkMsg msg(RTM_SETLINK, 0, AF_UNSPEC, idx);
    check_put(nla_put_u32(msg.m, IFLA_MTU, static_cast<uint32_t>(mtu)));
    if (int e = msg.send(s); e < 0) nl_fail(e, "set mtu " + std::to_string(mtu) + " on '" + name + "'");
}

namespace {
// RTM_NEWLINK without NLM_F_CREATE on an existing link: the kind's changelink.
template <typename Fill>
int change_link_data(Sock& s, int idx, const char* kind, Fill data) {
    LinkMsg msg(RTM_NEWLINK, 0, AF_UNSPEC, idx);
    nlattr* info = nla_nest_start(msg.m, IFLA_LINKINFO);
    if (!info) throw std::bad_alloc();
    check_put(nla_put_string(msg.m, IFLA_INFO_KIND, kind));
    nlattr* d = nla_nest_start(msg.m, IFLA_INFO_DATA);
    if (!d) throw std::bad_alloc();
    data(msg.m);
    nla_nest_end(msg.m, d);
    nla_nest_end(msg.m, info);
    return msg.send(s);
}
}  // namespace

void NetlinkBackend::set_vlan_filtering(const std::string& bridge, bool on) {
    Sock s;
    int idx = ifindex_of(s, bridge);
    int e = change_link_data(s, idx, "bridge",
                             [&](nl_msg* m) { check_put(nla_put_u8(m, IFLA_BR_VLAN_FILTERING, on ? 1 : 0)); });
    if (e < 0) nl_fail(e, "set vlan_filtering on bridge '" + bridge + "'", "vlan_filtering");
}

void NetlinkBackend::set_bond_primary(const std::string& bond, const std::string& member) {
    Sock s;
    int idx = ifindex_of(s, bond);
    int midx = member.empty() ? 0 : ifindex_of(s, member);
    int e = change_link_data(s, idx, "bond",
                             [&](nl_msg* m) { check_put(nla_put_u32(m, IFLA_BOND_PRIMARY, static_cast<uint32_t>(midx))); });
    if (e < 0) nl_fail(e, "set primary '" + member + "' on bond '" + bond + "'", "bonding");
}

void NetlinkBackend::set_bond_miimon(const std::string& bond, int miimon) {
    Sock s;
    int idx = ifindex_of(s, bond);
    int e = change_link_data(s, idx, "bond",
                             [&](nl_msg* m) { check_put(nla_put_u32(m, IFLA_BOND_MIIMON, static_cast<uint32_t>(miimon))); });
    if (e < 0) nl_fail(e, "set miimon on bond '" + bond + "'", "bonding");
}

namespace {
// RTM_SETLINK / RTM_DELLINK of family AF_BRIDGE with VLAN entries (ranges as BEGIN/END pairs).
void bridge_vlans(int type, const std::string& dev, const std::vector<std::pair<int, int>>& vids, bool self,
                  uint16_t flags, const char* what) {
    Sock s;
    int idx = ifindex_of(s, dev);
    LinkMsg msg(type, 0, AF_BRIDGE, idx);
    nlattr* af = nla_nest_start(msg.m, IFLA_AF_SPEC);
    if (!af) throw std::bad_alloc();
    if (self) check_put(nla_put_u16(msg.m, IFLA_BRIDGE_FLAGS, BRIDGE_FLAGS_SELF));
    for (auto [lo, hi] : vids) {
        bridge_vlan_info vi{};
        if (lo == hi) {
            vi.flags = flags;
            vi.vid = static_cast<uint16_t>(lo);
            check_put(nla_put(msg.m, IFLA_BRIDGE_VLAN_INFO, sizeof(vi), &vi));
            continue;
        }
        vi.flags = flags | BRIDGE_VLAN_INFO_RANGE_BEGIN;
        vi.vid = static_cast<uint16_t>(lo);
        check_put(nla_put(msg.m, IFLA_BRIDGE_VLAN_INFO, sizeof(vi), &vi));
        vi.flags = flags | BRIDGE_VLAN_INFO_RANGE_END;
        vi.vid = static_cast<uint16_t>(hi);
        check_put(nla_put(msg.m, IFLA_BRIDGE_VLAN_INFO, sizeof(vi), &vi));
    }
    nla_nest_end(msg.m, af);
    if (int e = msg.send(s); e < 0) nl_fail(e, what + (" '" + dev + "'"), "vlan_filtering");
}

struct VlanDump {
    int ifindex = 0;
    std::vector<api::PortVlan> out;
};

int on_bridge_link(nl_msg* m, void* arg) {
    auto* d = static_cast<VlanDump*>(arg);
    nlmsghdr* h = nlmsg_hdr(m);
    if (h->nlmsg_type != RTM_NEWLINK) return NL_OK;
    auto* ifi = static_cast<ifinfomsg*>(nlmsg_data(h));
    if (ifi->ifi_index != d->ifindex) return NL_OK;
    nlattr* tb[IFLA_MAX + 1] = {};
    if (nlmsg_parse(h, sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0 || !tb[IFLA_AF_SPEC]) return NL_OK;
    nlattr* a = nullptr;
    int rem = 0;
    int range_lo = 0;
    nla_for_each_nested(a, tb[IFLA_AF_SPEC], rem) {
        if (nla_type(a) != IFLA_BRIDGE_VLAN_INFO || nla_len(a) < static_cast<int>(sizeof(bridge_vlan_info))) continue;
        auto* vi = static_cast<bridge_vlan_info*>(nla_data(a));
        bool pvid = vi->flags & BRIDGE_VLAN_INFO_PVID, untagged = vi->flags & BRIDGE_VLAN_INFO_UNTAGGED;
        if (vi->flags & BRIDGE_VLAN_INFO_RANGE_BEGIN) {
            range_lo = vi->vid;
            continue;
        }
        int lo = (vi->flags & BRIDGE_VLAN_INFO_RANGE_END) && range_lo ? range_lo : vi->vid;
        for (int v = lo; v <= vi->vid; ++v) d->out.push_back({v, pvid && v == vi->vid, untagged});
        range_lo = 0;
    }
    return NL_OK;
}
}  // namespace

void NetlinkBackend::add_bridge_vlans(const std::string& dev, const std::vector<std::pair<int, int>>& vids, bool self) {
    bridge_vlans(RTM_SETLINK, dev, vids, self, 0, "add VLANs to");
}

void NetlinkBackend::set_port_pvid(const std::string& dev, int vid) {
    bridge_vlans(RTM_SETLINK, dev, {{vid, vid}}, false, BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED,
                 "set the PVID of");
}

void NetlinkBackend::del_bridge_vlans(const std::string& dev, const std::vector<std::pair<int, int>>& vids, bool self) {
    if (vids.empty()) return;
    bridge_vlans(RTM_DELLINK, dev, vids, self, 0, "remove VLANs from");
}

std::vector<api::PortVlan> NetlinkBackend::port_vlans(const std::string& dev) {
    Sock s;
    VlanDump d;
    d.ifindex = ifindex_of(s, dev);
    nl_msg* m = nlmsg_alloc_simple(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP);
    if (!m) throw std::bad_alloc();
    std::unique_ptr<nl_msg, void (*)(nl_msg*)> guard(m, nlmsg_free);
    ifinfomsg ifi{};
    ifi.ifi_family = AF_BRIDGE;
    if (nlmsg_append(m, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0) throw std::bad_alloc();
    check_put(nla_put_u32(m, IFLA_EXT_MASK, RTEXT_FILTER_BRVLAN));
    nl_socket_modify_cb(s.s, NL_CB_VALID, NL_CB_CUSTOM, on_bridge_link, &d);
    if (int e = nl_send_auto(s.s, m); e < 0) nl_fail(e, "reading VLANs of '" + dev + "'");
    if (int e = nl_recvmsgs_default(s.s); e < 0) nl_fail(e, "reading VLANs of '" + dev + "'");
    return d.out;
}

void NetlinkBackend::add_address(const std::string& dev, const std::string& cidr) {
    Sock s;
    int idx = ifindex_of(s, dev);
    nl_addr* local = nullptr;
    if (int e = nl_addr_parse(cidr.c_str(), AF_UNSPEC, &local); e < 0)
        fail(Errc::invalid_input, "address '{}': {}", cidr, nl_geterror(-e < 0 ? e : -e));
    std::unique_ptr<nl_addr, void (*)(nl_addr*)> lg(local, nl_addr_put);
    rtnl_addr* a = rtnl_addr_alloc();
    std::unique_ptr<rtnl_addr, void (*)(rtnl_addr*)> ag(a, rtnl_addr_put);
    rtnl_addr_set_ifindex(a, idx);
    rtnl_addr_set_family(a, nl_addr_get_family(local));
    if (int e = rtnl_addr_set_local(a, local); e < 0) nl_fail(e, "address '" + cidr + "'");
    if (int e = rtnl_addr_add(s.s, a, NLM_F_REPLACE); e < 0) nl_fail(e, "add address " + cidr + " to '" + dev + "'");
}

bool NetlinkBackend::add_default_route(const std::string& dev, const std::string& gateway) {
    Sock s;
    int idx = ifindex_of(s, dev);
    nl_addr* gw = nullptr;
    if (int e = nl_addr_parse(gateway.c_str(), AF_UNSPEC, &gw); e < 0)
        fail(Errc::invalid_input, "gateway '{}' is not an address", gateway);
    std::unique_ptr<nl_addr, void (*)(nl_addr*)> gg(gw, nl_addr_put);
    int family = nl_addr_get_family(gw);
    nl_addr* dst = nullptr;
    if (int e = nl_addr_parse("default", family, &dst); e < 0) nl_fail(e, "default route");
    std::unique_ptr<nl_addr, void (*)(nl_addr*)> dg(dst, nl_addr_put);
    rtnl_route* r = rtnl_route_alloc();
    std::unique_ptr<rtnl_route, void (*)(rtnl_route*)> rg(r, rtnl_route_put);
    rtnl_route_set_family(r, static_cast<uint8_t>(family));
    rtnl_route_set_table(r, RT_TABLE_MAIN);
    rtnl_route_set_protocol(r, RTPROT_STATIC);
    rtnl_route_set_dst(r, dst);
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    rtnl_route_nh_set_ifindex(nh, idx);
    rtnl_route_nh_set_gateway(nh, gw);
    rtnl_route_add_nexthop(r, nh);  // owned by the route now
    int e = rtnl_route_add(s.s, r, NLM_F_EXCL);
    if (e == -NLE_EXIST) return false;
    if (e < 0) nl_fail(e, "add default route via " + gateway + " on '" + dev + "'");
    return true;
}

void NetlinkBackend::del_address(const std::string& dev, const std::string& cidr) {
    Sock s;
    int idx = ifindex_of(s, dev);
    nl_addr* local = nullptr;
    if (int e = nl_addr_parse(cidr.c_str(), AF_UNSPEC, &local); e < 0)
        fail(Errc::invalid_input, "address '{}': {}", cidr, nl_geterror(e < 0 ? -e : e));
    std::unique_ptr<nl_addr, void (*)(nl_addr*)> lg(local, nl_addr_put);
    rtnl_addr* a = rtnl_addr_alloc();
    std::unique_ptr<rtnl_addr, void (*)(rtnl_addr*)> ag(a, rtnl_addr_put);
    rtnl_addr_set_ifindex(a, idx);
    rtnl_addr_set_family(a, nl_addr_get_family(local));
    if (int e = rtnl_addr_set_local(a, local); e < 0) nl_fail(e, "address '" + cidr + "'");
    int e = rtnl_addr_delete(s.s, a, 0);
    if (e == -NLE_NOADDR || e == -NLE_OBJ_NOTFOUND) return;
    if (e < 0) nl_fail(e, "remove address " + cidr + " from '" + dev + "'");
}

std::optional<std::pair<std::string, std::string>> NetlinkBackend::default_route() {
    Sock s;
    nl_cache* cache = nullptr;
    if (int e = rtnl_route_alloc_cache(s.s, AF_INET, 0, &cache); e < 0) nl_fail(e, "reading routes");
    std::unique_ptr<nl_cache, void (*)(nl_cache*)> guard(cache, nl_cache_free);
    for (auto* o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
        auto* r = reinterpret_cast<rtnl_route*>(o);
        if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_type(r) != RTN_UNICAST) continue;
        nl_addr* dst = rtnl_route_get_dst(r);
        if (dst && nl_addr_get_prefixlen(dst) != 0) continue;
        if (rtnl_route_get_nnexthops(r) < 1) continue;
        rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
        char name[IF_NAMESIZE] = {};
        if (!if_indextoname(static_cast<unsigned>(rtnl_route_nh_get_ifindex(nh)), name)) continue;
        nl_addr* gw = rtnl_route_nh_get_gateway(nh);
        char buf[64] = {};
        std::string g = gw ? nl_addr2str(gw, buf, sizeof buf) : "";
        return std::make_pair(std::string(name), g);
    }
    return std::nullopt;
}

}  // namespace hv::net
