// hv's netlink code on a kernel that has bonding, 802.1Q and bridge VLAN filtering: runs only
// inside scripts/kernel-run.sh (HV_KERNEL_RUN=1; registered in tests/kernel/CMakeLists.txt),
// elsewhere it skips with a warning. The guest is a throwaway VM with only `lo`: hv's objects
// are made in its root namespace by NetManager + NetlinkBackend (no `ip` involved); the test
// itself makes veth pairs with `ip` whose far ends live in namespaces it creates (hosts on
// VLANs, and an "upstream switch" for the bond), then proves the result with `bridge -j vlan
// show`, sysfs and pings across namespaces.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "hv/error.hpp"
#include "net_manager.hpp"
#include "netlink_backend.hpp"

using nlohmann::json;
namespace api = hv::api;
namespace fs = std::filesystem;

namespace {

bool in_kernel_harness() {
    const char* v = std::getenv("HV_KERNEL_RUN");
    return v && std::string(v) == "1";
}

// Test-only topology commands (fixed strings, no user input).
int sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }
void must(const std::string& cmd) {
    INFO(cmd);
    REQUIRE(std::system(cmd.c_str()) == 0);
}
std::string capture(const std::string& cmd) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    ::pclose(p);
    return out;
}
std::string sysfs(const std::string& rel) {
    std::ifstream in("/sys/class/net/" + rel);
    std::string s;
    std::getline(in, s);
    return s;
}

std::string ping_cmd() { return sh("command -v ping") == 0 ? "ping" : "busybox ping"; }

// Reaches: retries (TCG is slow, STP-less bridges forward at once but ARP takes a moment).
bool reaches(const std::string& ns, const std::string& ip) {
    for (int i = 0; i < 15; ++i) {
        if (sh("ip netns exec " + ns + " " + ping_cmd() + " -c 1 -W 1 " + ip) == 0) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    return false;
}
bool blocked(const std::string& ns, const std::string& ip) {
    return sh("ip netns exec " + ns + " " + ping_cmd() + " -c 2 -W 1 " + ip) != 0;
}

// `bridge -j vlan show dev DEV` lists every id in [lo, hi] (one entry per id, or ranges).
bool has_vlans(const std::string& dev, int lo, int hi) {
    auto j = json::parse(capture("bridge -j vlan show dev " + dev), nullptr, false);
    if (!j.is_array()) return false;
    std::vector<bool> seen(4096, false);
    for (const auto& d : j) {
        if (d.value("ifname", "") != dev) continue;
        for (const auto& v : d.value("vlans", json::array())) {
            int a = v.value("vlan", 0), b = v.value("vlanEnd", a);
            for (int x = a; x <= b && x < 4096; ++x) seen[x] = true;
        }
    }
    for (int x = lo; x <= hi; ++x)
        if (!seen[x]) return false;
    return true;
}

struct StateDir {
    fs::path path;
    StateDir() {
        char tmpl[] = "/tmp/hv-netlink-test.XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~StateDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string file() const { return (path / "network.json").string(); }
};

}  // namespace

TEST_CASE("netlink: VLAN-aware bridge over a bond of two veths, VLAN sub-interface, failover, re-apply",
          "[netlink]") {
    if (!in_kernel_harness()) {
        WARN("skipped: needs bonding/802.1Q/VLAN filtering; runs inside scripts/kernel-run.sh (ctest -L kernel)");
        SUCCEED();
        return;
    }
    StateDir st;
    hv::net::NetManager m(st.file(), std::make_unique<hv::net::NetlinkBackend>());

    auto f = m.features();
    for (const char* name : {"bridge", "vlan_filtering", "8021q", "bonding", "veth"}) {
        INFO(name << ": " << (f.find(name) ? f.find(name)->detail : "missing"));
        CHECK(f.has(name));
    }
    // The probe left nothing behind in this namespace.
    CHECK_FALSE(fs::exists("/sys/class/net/hvprobe-br"));

    // Far ends: three hosts (h1, h2 on VLAN 100, h3 on VLAN 200) and an upstream switch (upl)
    // that reaches the bridge through the bond.
    for (const char* ns : {"h1", "h2", "h3", "upl"}) must(std::string("ip netns add ") + ns);
    for (int i = 1; i <= 3; ++i)
        must("ip link add p" + std::to_string(i) + " type veth peer name c" + std::to_string(i) + " netns h" +
             std::to_string(i));
    must("ip link add a0 type veth peer name a1 netns upl");
    must("ip link add b0 type veth peer name b1 netns upl");
    CHECK(m.nics(true).size() >= 5);

    // hv: bond, VLAN-aware bridge, VLAN sub-interface on the bridge.
    auto bond = m.create_bond({"hvbond0", "active-backup", 100, "a0", {"a0", "b0"}});
    CHECK(bond.present);
    CHECK(sysfs("hvbond0/bonding/mode") == "active-backup 1");
    CHECK(sysfs("hvbond0/bonding/miimon") == "100");
    CHECK(sysfs("hvbond0/bonding/primary") == "a0");
    CHECK(fs::read_symlink("/sys/class/net/a0/master").filename() == "hvbond0");
    CHECK(fs::read_symlink("/sys/class/net/b0/master").filename() == "hvbond0");
    for (const auto& n : m.nics(true)) {
        if (n.name == "a0") CHECK(n.speed == 10000);  // veths report 10G once up
        if (n.name == "hvbond0") CHECK(n.managed);
    }

    api::BridgeSpec br{"hvbr0", {"hvbond0", "p1", "p2", "p3"}, true, "2-4094"};
    auto bi = m.create_bridge(br);
    CHECK(bi.present);
    CHECK(bi.vlan_filtering);
    CHECK(sysfs("hvbr0/bridge/vlan_filtering") == "1");
    for (const char* p : {"hvbond0", "p1", "p2", "p3"}) {
        INFO(p);
        CHECK(has_vlans(p, 2, 4094));
    }
    CHECK(has_vlans("hvbr0", 2, 4094));  // self: the bridge device carries them too

    auto vl = m.create_vlan({"hvbr0.100", "hvbr0", 100});
    CHECK(vl.present);
    must("ip addr add 10.0.100.254/24 dev hvbr0.100");

    // Hosts tag their own traffic: h1, h2 on VLAN 100, h3 on VLAN 200 (same subnet: only the
    // VLAN keeps it apart).
    auto host = [](int i, int vid) {
        std::string ns = "h" + std::to_string(i), c = "c" + std::to_string(i);
        must("ip -n " + ns + " link set " + c + " up");
        must("ip -n " + ns + " link add link " + c + " name v type vlan id " + std::to_string(vid));
        must("ip -n " + ns + " addr add 10.0.100." + std::to_string(i) + "/24 dev v");
        must("ip -n " + ns + " link set v up");
    };
    host(1, 100);
    host(2, 100);
    host(3, 200);
    must("ip -n upl link add sw type bridge");
    must("ip -n upl link set a1 master sw");
    must("ip -n upl link set b1 master sw");
    for (const char* d : {"a1", "b1", "sw"}) must(std::string("ip -n upl link set ") + d + " up");
    must("ip -n upl link add link sw name sw.100 type vlan id 100");
    must("ip -n upl addr add 10.0.100.9/24 dev sw.100");
    must("ip -n upl link set sw.100 up");

    CHECK(reaches("h1", "10.0.100.2"));    // same VLAN through the bridge
    CHECK(reaches("h1", "10.0.100.254"));  // hv's VLAN sub-interface on the bridge
    CHECK(reaches("upl", "10.0.100.1"));   // through the bond
    CHECK(blocked("h1", "10.0.100.3"));    // VLAN 200: not reachable

    // Failover: the active member loses its link; traffic moves to the other one.
    CHECK(sysfs("hvbond0/bonding/active_slave") == "a0");
    must("ip -n upl link set a1 down");
    for (int i = 0; i < 50 && sysfs("hvbond0/bonding/active_slave") != "b0"; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(sysfs("hvbond0/bonding/active_slave") == "b0");
    CHECK(reaches("upl", "10.0.100.1"));
    auto bshow = m.bond("hvbond0");
    CHECK(bshow.active_member == "b0");
    bool warned = false;
    for (const auto& w : bshow.warnings) warned |= w.find("'a0' has no link") != std::string::npos;
    CHECK(warned);
    must("ip -n upl link set a1 up");

    // Re-apply (what hvd does at start) repairs drift and changes nothing else.
    must("ip link set p2 nomaster");
    {
        hv::net::NetManager again(st.file(), std::make_unique<hv::net::NetlinkBackend>());
        auto errors = again.apply_all();
        INFO((errors.empty() ? "" : errors.front()));
        CHECK(errors.empty());
        CHECK(again.apply_all().empty());
    }
    CHECK(fs::read_symlink("/sys/class/net/p2/master").filename() == "hvbr0");
    CHECK(has_vlans("p2", 2, 4094));
    CHECK(reaches("h1", "10.0.100.2"));

    // set: vids shrink on every port and the bridge; a bond member leaves and comes back;
    // primary and miimon change live.
    {
        api::BridgePatch bp;
        bp.vids = "100-200";
        auto nb = m.update_bridge("hvbr0", bp);
        CHECK(nb.spec.vids == "100-200");
        CHECK(has_vlans("p1", 100, 200));
        CHECK_FALSE(has_vlans("p1", 2, 2));
        CHECK_FALSE(has_vlans("p1", 300, 300));
        CHECK_FALSE(has_vlans("hvbr0", 4094, 4094));
        CHECK(reaches("h1", "10.0.100.2"));  // VLAN 100 still allowed
        api::BondPatch op;
        op.remove_members = {"b0"};
        op.miimon = 200;
        auto ob = m.update_bond("hvbond0", op);
        CHECK(ob.spec.members == std::vector<std::string>{"a0"});
        CHECK_FALSE(fs::exists("/sys/class/net/b0/master"));
        CHECK(sysfs("hvbond0/bonding/miimon") == "200");
        api::BondPatch back;
        back.add_members = {"b0"};
        back.primary = "b0";
        m.update_bond("hvbond0", back);
        CHECK(fs::read_symlink("/sys/class/net/b0/master").filename() == "hvbond0");
        CHECK(sysfs("hvbond0/bonding/primary") == "b0");
        api::BridgePatch all;
        all.vids = "2-4094";
        m.update_bridge("hvbr0", all);
        CHECK(has_vlans("p2", 2, 4094));
        api::VlanPatch vp;
        vp.mtu = 1400;
        CHECK(m.update_vlan("hvbr0.100", vp).mtu == 1400);
    }

    // Ownership: a bridge made outside hv is neither taken over nor deleted.
    must("ip link add fbr0 type bridge");
    try {
        m.create_bridge({"fbr0"});
        FAIL("create over a foreign bridge succeeded");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::conflict);
    }
    try {
        m.delete_bridge("fbr0");
        FAIL("delete of a foreign bridge succeeded");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::not_found);
    }
    CHECK(fs::exists("/sys/class/net/fbr0"));
    // A NIC already in a bridge cannot join a bond.
    try {
        m.create_bond({"hvbond1", "active-backup", 100, "", {"p1"}});
        FAIL("bond of a bridge port succeeded");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::conflict);
    }
    CHECK_FALSE(fs::exists("/sys/class/net/hvbond1"));

    // Delete in dependency order; ports and members are released.
    m.delete_vlan("hvbr0.100");
    m.delete_bridge("hvbr0");
    m.delete_bond("hvbond0");
    for (const char* gone : {"hvbr0.100", "hvbr0", "hvbond0"}) CHECK_FALSE(fs::exists(std::string("/sys/class/net/") + gone));
    for (const char* p : {"p1", "p2", "p3", "a0", "b0"}) CHECK_FALSE(fs::exists(std::string("/sys/class/net/") + p + "/master"));
    CHECK(m.state().bridges.empty());
}

namespace {
// `bridge -j vlan show dev DEV` -> "100:PVID,Egress Untagged 200:" (sorted by id; one entry per id).
std::string vlan_summary(const std::string& dev) {
    auto j = json::parse(capture("bridge -j vlan show dev " + dev), nullptr, false);
    std::map<int, std::string> ids;
    if (j.is_array())
        for (const auto& d : j) {
            if (d.value("ifname", "") != dev) continue;
            for (const auto& v : d.value("vlans", json::array())) {
                int a = v.value("vlan", 0), b = v.value("vlanEnd", a);
                std::string flags;
                for (const auto& f : v.value("flags", json::array())) flags += (flags.empty() ? "" : ",") + f.get<std::string>();
                for (int x = a; x <= b; ++x) ids[x] = flags;
            }
        }
    std::string out;
    for (const auto& [id, flags] : ids) out += (out.empty() ? "" : " ") + std::to_string(id) + ":" + flags;
    return out;
}
}  // namespace

TEST_CASE("netlink: guest ports (VM taps, container veths) carry exactly their VLAN, trunks, uplink VLANs checked",
          "[netlink]") {
    if (!in_kernel_harness()) {
        WARN("skipped: needs bridge VLAN filtering; runs inside scripts/kernel-run.sh (ctest -L kernel)");
        SUCCEED();
        return;
    }
    StateDir st;
    auto m = std::make_unique<hv::net::NetManager>(st.file(), std::make_unique<hv::net::NetlinkBackend>());
    REQUIRE(m->create_bridge({"hvbr5", {}, true, "2-4094"}).vlan_filtering);
    REQUIRE(m->create_bridge({"hvbr6"}).present);  // plain, not VLAN-aware

    // Taps as libvirt makes them for VMs: enslaved to the bridge, before hv plugs them.
    for (const char* t : {"tapa", "tapb", "tapc", "tapd"}) {
        must(std::string("ip tuntap add dev ") + t + " mode tap");
        must(std::string("ip link set ") + t + (std::string(t) == "tapd" ? " master hvbr6" : " master hvbr5"));
        must(std::string("ip link set ") + t + " up");
    }
    CHECK(vlan_summary("tapa") == "1:PVID,Egress Untagged");  // the kernel's default before hv

    // Access port: VLAN 100 as PVID, untagged, and nothing else.
    auto a = m->plug_port("tapa", "hvbr5", 100, "");
    CHECK(vlan_summary("tapa") == "100:PVID,Egress Untagged");
    REQUIRE(a.size() == 1);
    CHECK(a[0].vid == 100);
    CHECK(a[0].pvid);
    CHECK(a[0].untagged);
    // Trunk port: only the listed VLANs, tagged; no untagged VLAN at all.
    m->plug_port("tapb", "hvbr5", 0, "10,20-23");
    CHECK(vlan_summary("tapb") == "10: 20: 21: 22: 23:");
    // Both: 100 untagged + 200 tagged.
    m->plug_port("tapc", "hvbr5", 100, "200");
    CHECK(vlan_summary("tapc") == "100:PVID,Egress Untagged 200:");
    // A live change (vm nic set vlan=200): exactly the new VLAN.
    m->plug_port("tapa", "hvbr5", 200, "");
    CHECK(vlan_summary("tapa") == "200:PVID,Egress Untagged");
    // port_state reads what vm show prints.
    auto ps = m->port_state("tapc");
    CHECK(ps.bridge == "hvbr5");
    CHECK(ps.vlan_aware);
    CHECK(ps.vlans.size() == 2);

    // hvd restart: a new NetManager re-plugs with the same specs -> the same state, no change.
    std::string before = vlan_summary("tapa") + "|" + vlan_summary("tapb") + "|" + vlan_summary("tapc");
    m = std::make_unique<hv::net::NetManager>(st.file(), std::make_unique<hv::net::NetlinkBackend>());
    m->plug_port("tapa", "hvbr5", 200, "");
    m->plug_port("tapb", "hvbr5", 0, "10,20-23");
    m->plug_port("tapc", "hvbr5", 100, "200");
    CHECK(vlan_summary("tapa") + "|" + vlan_summary("tapb") + "|" + vlan_summary("tapc") == before);
    // Drift (someone added VLAN 999 by hand) is repaired by the re-plug.
    must("bridge vlan add dev tapc vid 999");
    m->plug_port("tapc", "hvbr5", 100, "200");
    CHECK(vlan_summary("tapc") == "100:PVID,Egress Untagged 200:");

    // A tag on a bridge that is not VLAN-aware: 409, the port untouched.
    try {
        m->plug_port("tapd", "hvbr6", 100, "");
        FAIL("tag on a plain bridge accepted");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::conflict);
        CHECK_THAT(e.what(), Catch::Contains("not VLAN-aware"));
    }
    CHECK(m->plug_port("tapd", "hvbr6", 0, "").empty());  // untagged there: nothing to do
    // A port of another bridge is refused.
    CHECK_THROWS_AS(m->plug_port("tapd", "hvbr5", 100, ""), hv::Error);

    // Traffic: access ports on VLAN 100 reach each other, VLAN 200 does not (untagged guests).
    // These ports are veths whose peer lives in a network namespace: exactly what libvirt
    // makes for a container's NIC (hv plugs the host side as it plugs a VM's tap).
    for (int i = 5; i <= 7; ++i) {
        std::string n = std::to_string(i);
        must("ip netns add g" + n);
        must("ip link add q" + n + " type veth peer name e" + n + " netns g" + n);
        must("ip link set q" + n + " master hvbr5");
        must("ip link set q" + n + " up");
        must("ip -n g" + n + " link set e" + n + " up");
        must("ip -n g" + n + " addr add 10.5.0." + n + "/24 dev e" + n);
    }
    m->plug_port("q5", "hvbr5", 100, "");
    m->plug_port("q6", "hvbr5", 100, "");
    m->plug_port("q7", "hvbr5", 200, "");
    CHECK(reaches("g5", "10.5.0.6"));
    CHECK(blocked("g5", "10.5.0.7"));
    // Move q7 to VLAN 100 live: now it is reachable.
    m->plug_port("q7", "hvbr5", 100, "");
    CHECK(reaches("g5", "10.5.0.7"));

    // Uplink check: a bridge whose uplinks carry only VLANs 100-199 refuses guests on others.
    REQUIRE(m->create_bridge({"hvbr7", {}, true, "100-199"}).vlan_filtering);
    CHECK_NOTHROW(m->check_port("hvbr7", 150, ""));
    CHECK_NOTHROW(m->check_port("hvbr7", 0, "100;120-130"));
    CHECK_NOTHROW(m->check_port("hvbr7", 0, ""));
    for (auto [vlan, trunks] : {std::pair<int, const char*>{300, ""}, {150, "190-210"}}) {
        try {
            m->check_port("hvbr7", vlan, trunks);
            FAIL("VLAN outside the uplink's vids accepted");
        } catch (const hv::Error& e) {
            CHECK(e.code() == hv::Errc::conflict);
            CHECK_THAT(e.what(), Catch::Contains("does not carry VLAN") && Catch::Contains("100-199"));
        }
    }
    try {
        m->check_port("no-such-br", 0, "");
        FAIL("missing bridge accepted");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::invalid_input);
    }

    for (const char* t : {"tapa", "tapb", "tapc", "tapd"}) sh(std::string("ip link del ") + t);
    m->delete_bridge("hvbr5", true);
    m->delete_bridge("hvbr6", true);
    m->delete_bridge("hvbr7", true);
}
