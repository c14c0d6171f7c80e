// Host networking through hvctl on this machine's kernel, which has bridges but lacks bonding,
// 802.1Q and bridge VLAN filtering (TESTBED "Kernel"). hvd runs in the private libvirtd's
// network namespace (Hvd in_libvirt_netns), so every link it makes is in that namespace, never
// next to eth0. The features themselves are tested inside Debian's kernel: tests/kernel
// (netlink_test.cpp under kernel-run.sh).
#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {

bool feature(const json& list, const std::string& name) {
    for (const auto& f : list)
        if (f.value("name", "") == name) return f.value("supported", false);
    FAIL("feature " << name << " missing from " << list.dump());
    return false;
}

}  // namespace

TEST_CASE("net: features, nic list, plain bridge CRUD, and missing kernel features exit 8 naming them",
          "[integration][net]") {
    Hvd hvd(true, "", /*in_libvirt_netns=*/true);

    auto features = hvd.ctl_json({"net", "features"});
    REQUIRE(features.is_array());
    CHECK(feature(features, "bridge"));
    CHECK(feature(features, "veth"));
    // This host's kernel (see TESTBED): no VLAN filtering, no bonding, no 802.1Q.
    CHECK_FALSE(feature(features, "vlan_filtering"));
    CHECK_FALSE(feature(features, "bonding"));
    CHECK_FALSE(feature(features, "8021q"));
    auto table = hvd.ctl({"net", "features"});
    REQUIRE(table.exit_code == 0);
    CHECK_THAT(table.out, Catch::Contains("FEATURE") && Catch::Contains("bonding"));

    auto nics = hvd.ctl_json({"net", "nic", "list", "--all"});
    REQUIRE(nics.is_array());
    REQUIRE(hvd.ctl({"net", "nic", "list"}).exit_code == 0);

    // Missing features: exit 8 (unsupported) with the feature's name, nothing created.
    auto bond = hvd.ctl({"net", "bond", "create", "hvtbond0", "--member", "lo"});
    INFO(bond.describe());
    CHECK(bond.exit_code == 8);
    CHECK_THAT(bond.err, Catch::Contains("bonding"));
    auto vlan = hvd.ctl({"net", "vlan", "create", "hvtv.100", "--parent", "lo", "--id", "100"});
    INFO(vlan.describe());
    CHECK(vlan.exit_code == 8);
    CHECK_THAT(vlan.err, Catch::Contains("8021q"));
    auto vab = hvd.ctl({"net", "bridge", "create", "hvtbr9", "--vlan-aware"});
    INFO(vab.describe());
    CHECK(vab.exit_code == 8);
    CHECK_THAT(vab.err, Catch::Contains("vlan_filtering"));
    CHECK(hvd.ctl_json({"net", "bridge", "list"}).empty());

    // Bad input: 4xx (exit 3) before anything is touched.
    CHECK(hvd.ctl({"net", "vlan", "create", "v0", "--parent", "lo", "--id", "0"}).exit_code == 3);
    CHECK(hvd.ctl({"net", "vlan", "create", "v0", "--parent", "lo", "--id", "4095"}).exit_code == 3);
    CHECK(hvd.ctl({"net", "bridge", "create", "hvtbr0", "--mtu", "100000"}).exit_code == 3);
    CHECK(hvd.ctl({"net", "bridge", "create", "this-name-is-too-long"}).exit_code == 3);

    // A plain bridge works here, end to end through netlink (in the private namespace).
    auto made = hvd.ctl_json({"net", "bridge", "create", "hvtbr0", "--mtu", "1400", "--purpose", "management"});
    CHECK(made.value("present", false));
    CHECK(made.value("live_mtu", 0) == 1400);
    auto list = hvd.ctl_json({"net", "bridge", "list"});
    REQUIRE(list.size() == 1);
    CHECK(list[0]["name"] == "hvtbr0");
    CHECK(hvd.ctl({"net", "bridge", "show", "hvtbr0"}).exit_code == 0);
    // Owned now: a second create is a conflict (exit 5).
    CHECK(hvd.ctl({"net", "bridge", "create", "hvtbr0"}).exit_code == 5);
    // Interfaces hv did not create are not deleted (exit 4) — lo stays.
    auto lo = hvd.ctl({"net", "bridge", "delete", "lo"});
    CHECK(lo.exit_code == 4);
    CHECK_THAT(lo.err, Catch::Contains("only interfaces it created"));

    // Persisted and re-applied at start: remove hvd, the bridge is still recorded; delete it.
    hvd.stop();
    hvd.start();
    CHECK(hvd.ctl_json({"net", "bridge", "show", "hvtbr0"}).value("present", false));
    REQUIRE(hvd.ctl({"net", "bridge", "delete", "hvtbr0"}).exit_code == 0);
    CHECK(hvd.ctl_json({"net", "bridge", "list"}).empty());
    CHECK(hvd.ctl({"net", "bridge", "show", "hvtbr0"}).exit_code == 4);
}

// VM NICs on a bridge, on this kernel (no VLAN filtering): hv finds each running VM's tap,
// shows it with its bridge, hot-plugs and unplugs NICs, and refuses VLAN tags clearly. The
// VLAN membership itself is proven inside Debian's kernel (tests/unit/netlink_test.cpp
// "guest ports", under kernel-run.sh) on a tap made there, through the same plug code.
TEST_CASE("net: VM NICs on a plain bridge, taps shown, hot-plug, and VLAN tags refused on this kernel",
          "[integration][net][vm]") {
    Hvd hvd(true, "", /*in_libvirt_netns=*/true);
    REQUIRE(hvd.ctl({"net", "bridge", "create", "hvtbr1", "--purpose", "management"}).exit_code == 0);
    auto vm = hvd.vm("it-nic");

    // Bad NIC input: 400 (exit 3) before anything is made.
    for (const char* bad : {"bridge=hvtbr1,vlan=0", "bridge=hvtbr1,vlan=4095", "bridge=hvtbr1,mtu=100000",
                            "network=default,vlan=10", "bridge=hvtbr1,trunks=0-5"}) {
        auto r = hvd.ctl({"vm", "create", vm, "--memory", "64M", "--net", bad});
        INFO(bad << ": " << r.describe());
        CHECK(r.exit_code == 3);
        CHECK_FALSE(domain_exists(vm));
    }
    // A VLAN tag on a bridge that is not VLAN-aware: 409 (exit 5) naming the missing feature.
    auto tagged = hvd.ctl({"vm", "create", vm, "--memory", "64M", "--net", "bridge=hvtbr1,vlan=100"});
    INFO(tagged.describe());
    CHECK(tagged.exit_code == 5);
    CHECK_THAT(tagged.err, Catch::Contains("not VLAN-aware") && Catch::Contains("vlan_filtering"));
    CHECK_FALSE(domain_exists(vm));

    // Untagged NIC: created, started; the tap is found and is a port of the bridge.
    REQUIRE(hvd.ctl({"vm", "create", vm, "--memory", "64M", "--net", "bridge=hvtbr1,mtu=1400"}).exit_code == 0);
    auto spec = hvd.show(vm);
    REQUIRE(spec["nics"].size() == 1);
    CHECK(spec["nics"][0]["name"] == "net0");
    CHECK(spec["nics"][0]["mtu"] == 1400);
    REQUIRE(hvd.ctl({"vm", "start", vm}).exit_code == 0);
    auto info = hvd.show(vm);
    REQUIRE(info["interfaces"].size() == 1);
    auto nic0 = info["interfaces"][0];
    INFO(nic0.dump());
    CHECK(nic0["name"] == "net0");
    CHECK(nic0["mac"] == spec["nics"][0]["mac"]);
    std::string tap = nic0.value("tap", "");
    CHECK_FALSE(tap.empty());
    CHECK(nic0["bridge"] == "hvtbr1");
    CHECK(nic0["vlan_aware"] == false);
    CHECK(nic0["vlans"].empty());
    // The kernel agrees: the tap is enslaved to the bridge (the bridge lists it as a port).
    auto br = hvd.ctl_json({"net", "bridge", "show", "hvtbr1"});
    INFO(br.dump());
    bool listed = false;
    for (const auto& p : br.value("guest_ports", json::array())) listed |= p == tap;
    CHECK(listed);
    auto table = hvd.ctl({"vm", "show", vm});
    CHECK_THAT(table.out, Catch::Contains("tap=" + tap + " on hvtbr1"));

    // The bridge cannot be deleted while the VM's tap is on it (409, bridge kept).
    CHECK(hvd.ctl({"net", "bridge", "delete", "hvtbr1"}).exit_code == 5);
    CHECK(hvd.ctl_json({"net", "bridge", "show", "hvtbr1"}).value("present", false));

    // Live changes: a tag is refused (409) and nothing changes; hot-plug a second NIC.
    auto set = hvd.ctl({"vm", "nic", "set", vm, "net0", "vlan=200"});
    INFO(set.describe());
    CHECK(set.exit_code == 5);
    CHECK(hvd.show(vm)["nics"][0].value("vlan", 0) == 0);
    auto add_tagged = hvd.ctl({"vm", "nic", "add", vm, "--net", "bridge=hvtbr1,vlan=7"});
    CHECK(add_tagged.exit_code == 5);
    CHECK(hvd.show(vm)["nics"].size() == 1);
    REQUIRE(hvd.ctl({"vm", "nic", "add", vm, "--net", "bridge=hvtbr1"}).exit_code == 0);
    bool two = wait_until([&] { return hvd.show(vm)["interfaces"].size() == 2; }, 10s);
    REQUIRE(two);
    auto after = hvd.show(vm);
    CHECK(after["nics"][1]["name"] == "net1");
    CHECK(after["interfaces"][1]["bridge"] == "hvtbr1");
    CHECK(after["interfaces"][1].value("tap", "") != tap);
    // hvd restart: the taps are found again.
    hvd.stop();
    hvd.start();
    CHECK(hvd.show(vm)["interfaces"].size() == 2);
    // Model changes need a stopped VM (409); remove the hot-plugged NIC; unknown NIC 404.
    CHECK(hvd.ctl({"vm", "nic", "set", vm, "net1", "model=e1000"}).exit_code == 5);
    CHECK(hvd.ctl({"vm", "nic", "remove", vm, "net9"}).exit_code == 4);
    REQUIRE(hvd.ctl({"vm", "stop", vm}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "nic", "set", vm, "net1", "model=e1000"}).exit_code == 0);
    CHECK(hvd.show(vm)["nics"][1]["model"] == "e1000");
    REQUIRE(hvd.ctl({"vm", "nic", "remove", vm, "net1"}).exit_code == 0);
    CHECK(hvd.show(vm)["nics"].size() == 1);
    auto xml = virsh({"dumpxml", vm, "--inactive"});
    CHECK(xml.out.find("<interface") == xml.out.rfind("<interface"));  // exactly one left
    REQUIRE(hvd.ctl({"vm", "delete", vm}).exit_code == 0);
    REQUIRE(hvd.ctl({"net", "bridge", "delete", "hvtbr1"}).exit_code == 0);
}

namespace {
// `ip -j addr show dev DEV` -> "10.77.0.2/24" entries (global scope).
std::vector<std::string> addrs_of(const std::string& dev) {
    auto r = in_libvirt_netns({"ip", "-j", "addr", "show", "dev", dev});
    std::vector<std::string> out;
    auto j = json::parse(r.out, nullptr, false);
    if (!j.is_array()) return out;
    for (const auto& l : j)
        for (const auto& a : l.value("addr_info", json::array()))
            if (a.value("scope", "") == "global")
                out.push_back(a.value("local", "") + "/" + std::to_string(a.value("prefixlen", 0)));
    return out;
}
std::string default_dev() {
    auto j = json::parse(in_libvirt_netns({"ip", "-j", "route", "show", "default"}).out, nullptr, false);
    return j.is_array() && !j.empty() ? j[0].value("dev", "") : "";
}
bool link_exists(const std::string& dev) {
    return in_libvirt_netns({"ip", "link", "show", "dev", dev}).exit_code == 0;
}
bool pings(const std::string& ip) {
    return in_libvirt_netns({"busybox", "ping", "-c", "1", "-W", "2", ip}).exit_code == 0;
}
}  // namespace

// Safe apply (commit-confirmed) on a veth "uplink" carrying the management address and the
// default route, in the private libvirtd's namespace: bridging it is staged; apply without
// confirm rolls back by itself; apply + confirm keeps it, also across an hvd restart.
TEST_CASE("net: bridging the management NIC is staged, rolled back without confirm, kept with confirm",
          "[integration][net]") {
    Hvd hvd(true, "", /*in_libvirt_netns=*/true);
    if (!default_dev().empty()) {
        WARN("the private libvirtd's namespace already has a default route; the route move is not checked");
    }
    const bool check_route = default_dev().empty();
    // Uplink hvtsa0 (10.77.0.2/24, default route via 10.77.0.1) to a "switch" namespace.
    in_libvirt_netns({"ip", "netns", "delete", "hvt-sapeer"});
    in_libvirt_netns({"ip", "link", "delete", "hvtsa0"});
    REQUIRE(in_libvirt_netns({"ip", "netns", "add", "hvt-sapeer"}).exit_code == 0);
    REQUIRE(in_libvirt_netns({"ip", "link", "add", "hvtsa0", "type", "veth", "peer", "name", "hvtsa1"}).exit_code == 0);
    REQUIRE(in_libvirt_netns({"ip", "link", "set", "hvtsa1", "netns", "hvt-sapeer"}).exit_code == 0);
    REQUIRE(in_libvirt_netns({"ip", "-n", "hvt-sapeer", "addr", "add", "10.77.0.1/24", "dev", "hvtsa1"}).exit_code == 0);
    REQUIRE(in_libvirt_netns({"ip", "-n", "hvt-sapeer", "link", "set", "hvtsa1", "up"}).exit_code == 0);
    REQUIRE(in_libvirt_netns({"ip", "addr", "add", "10.77.0.2/24", "dev", "hvtsa0"}).exit_code == 0);
    REQUIRE(in_libvirt_netns({"ip", "link", "set", "hvtsa0", "up"}).exit_code == 0);
    if (check_route) REQUIRE(in_libvirt_netns({"ip", "route", "add", "default", "via", "10.77.0.1"}).exit_code == 0);
    CHECK(wait_until([] { return pings("10.77.0.1"); }, 10s));

    // Staged, not applied: 202, nothing changed.
    auto staged = hvd.http("POST", "/v1/net/bridges", R"({"name":"hvtmg0","ports":["hvtsa0"],"purpose":"management"})");
    INFO(staged.body);
    CHECK(staged.status == 202);
    CHECK(staged.json().value("pending", false));
    CHECK(hvd.ctl_json({"net", "bridge", "list"}).empty());
    CHECK_FALSE(link_exists("hvtmg0"));
    CHECK(addrs_of("hvtsa0") == std::vector<std::string>{"10.77.0.2/24"});
    auto pend = hvd.ctl_json({"net", "pending"});
    INFO(pend.dump());
    CHECK(pend["state"] == "pending");
    REQUIRE(pend["changes"].size() == 1);
    CHECK(pend["changes"][0]["effects"].dump().find("10.77.0.2/24 moves from hvtsa0 to hvtmg0") != std::string::npos);
    CHECK(pend["changes"][0]["bridge"]["address"] == "10.77.0.2/24");
    // Out-of-range timer: 400.
    CHECK(hvd.ctl({"net", "apply", "--confirm-within", "1"}).exit_code == 3);

    // Apply, no confirm: applied at once, rolled back by itself.
    auto applied = hvd.ctl_json({"net", "apply", "--confirm-within", "5"});
    CHECK(applied["state"] == "awaiting_confirmation");
    CHECK(applied["rollback_at"].get<std::int64_t>() > 0);
    CHECK(link_exists("hvtmg0"));
    CHECK(addrs_of("hvtmg0") == std::vector<std::string>{"10.77.0.2/24"});
    CHECK(addrs_of("hvtsa0").empty());
    if (check_route) CHECK(default_dev() == "hvtmg0");
    CHECK(wait_until([] { return pings("10.77.0.1"); }, 10s));  // reachable through the bridge
    CHECK(hvd.ctl({"net", "apply", "--confirm-within", "5"}).exit_code == 5);  // one at a time
    bool rolled = wait_until([&] { return hvd.ctl_json({"net", "pending"})["state"] == "pending"; }, 15s, 500ms);
    REQUIRE(rolled);
    CHECK_THAT(hvd.ctl_json({"net", "pending"})["last_rollback"].get<std::string>(), Catch::Contains("not confirmed"));
    CHECK_FALSE(link_exists("hvtmg0"));
    CHECK(addrs_of("hvtsa0") == std::vector<std::string>{"10.77.0.2/24"});
    if (check_route) CHECK(default_dev() == "hvtsa0");
    CHECK(wait_until([] { return pings("10.77.0.1"); }, 10s));
    CHECK(hvd.ctl_json({"net", "bridge", "list"}).empty());

    // Apply + confirm: kept and persisted (back after an hvd restart); nothing pending.
    REQUIRE(hvd.ctl({"net", "apply", "--confirm-within", "60"}).exit_code == 0);
    REQUIRE(hvd.ctl({"net", "confirm"}).exit_code == 0);
    CHECK(hvd.ctl_json({"net", "pending"})["state"] == "idle");
    CHECK(hvd.ctl({"net", "confirm"}).exit_code == 5);  // nothing awaits
    hvd.stop();
    hvd.start();
    auto br = hvd.ctl_json({"net", "bridge", "show", "hvtmg0"});
    CHECK(br.value("present", false));
    CHECK(br.value("address", "") == "10.77.0.2/24");
    CHECK(addrs_of("hvtmg0") == std::vector<std::string>{"10.77.0.2/24"});
    CHECK(wait_until([] { return pings("10.77.0.1"); }, 10s));

    // A crash inside the window: the undo record rolls it back at the next start. (Stage a
    // second bridge over a fresh addressed veth, apply, SIGKILL hvd, start it again.)
    REQUIRE(in_libvirt_netns({"ip", "link", "add", "hvtsb0", "type", "veth", "peer", "name", "hvtsb1"}).exit_code == 0);
    REQUIRE(in_libvirt_netns({"ip", "addr", "add", "10.78.0.2/24", "dev", "hvtsb0"}).exit_code == 0);
    REQUIRE(in_libvirt_netns({"ip", "link", "set", "hvtsb0", "up"}).exit_code == 0);
    REQUIRE(hvd.ctl({"net", "bridge", "create", "hvtmg1", "--port", "hvtsb0"}).exit_code == 0);
    REQUIRE(hvd.ctl({"net", "apply", "--confirm-within", "600"}).exit_code == 0);
    CHECK(link_exists("hvtmg1"));
    hvd.kill_hard();
    hvd.start();
    CHECK_FALSE(link_exists("hvtmg1"));
    CHECK(addrs_of("hvtsb0") == std::vector<std::string>{"10.78.0.2/24"});
    CHECK(hvd.ctl_json({"net", "pending"})["state"] == "pending");
    REQUIRE(hvd.ctl({"net", "revert"}).exit_code == 0);
    CHECK(hvd.ctl_json({"net", "pending"})["state"] == "idle");

    REQUIRE(hvd.ctl({"net", "bridge", "delete", "hvtmg0"}).exit_code == 0);
    if (check_route) in_libvirt_netns({"ip", "route", "del", "default"});
    in_libvirt_netns({"ip", "link", "delete", "hvtsa0"});
    in_libvirt_netns({"ip", "link", "delete", "hvtsb0"});
    in_libvirt_netns({"ip", "netns", "delete", "hvt-sapeer"});
}

TEST_CASE("net: bridge set changes ports, MTU and purpose in place, refuses what it cannot", "[integration][net]") {
    Hvd hvd(true, "", /*in_libvirt_netns=*/true);
    in_libvirt_netns({"ip", "link", "delete", "hvtst0"});
    REQUIRE(in_libvirt_netns({"ip", "link", "add", "hvtst0", "type", "veth", "peer", "name", "hvtst1"}).exit_code == 0);
    REQUIRE(hvd.ctl({"net", "bridge", "create", "hvtbr2"}).exit_code == 0);

    auto set = hvd.ctl_json({"net", "bridge", "set", "hvtbr2", "--add-port", "hvtst0", "--mtu", "1450", "--purpose", "storage"});
    INFO(set.dump());
    CHECK(set["ports"] == json::array({"hvtst0"}));
    CHECK(set["purpose"] == "storage");
    CHECK(set.value("live_mtu", 0) == 1450);
    auto link = json::parse(in_libvirt_netns({"ip", "-j", "link", "show", "dev", "hvtst0"}).out, nullptr, false);
    REQUIRE(link.is_array());
    CHECK(link[0].value("master", "") == "hvtbr2");
    // A storage bridge over a veth without link: the uplink warning says so.
    CHECK(set["warnings"].dump().find("hvtst0") != std::string::npos);

    // Refusals, nothing changed: unknown bridge 404, lo as port 400, VLAN-aware without the
    // kernel feature 501 (exit 8), address via set 400, a port it does not have 400.
    CHECK(hvd.ctl({"net", "bridge", "set", "nope0", "--mtu", "1500"}).exit_code == 4);
    CHECK(hvd.ctl({"net", "bridge", "set", "hvtbr2", "--add-port", "lo"}).exit_code == 3);
    auto va = hvd.ctl({"net", "bridge", "set", "hvtbr2", "--vlan-aware", "yes"});
    CHECK(va.exit_code == 8);
    CHECK_THAT(va.err, Catch::Contains("vlan_filtering"));
    CHECK(hvd.http("PATCH", "/v1/net/bridges/hvtbr2", R"({"address":"10.1.1.1/24"})").status == 400);
    CHECK(hvd.ctl({"net", "bridge", "set", "hvtbr2", "--remove-port", "eth9"}).exit_code == 3);
    CHECK(hvd.ctl({"net", "bridge", "set", "hvtbr2", "--mtu", "100000"}).exit_code == 3);
    auto still = hvd.ctl_json({"net", "bridge", "show", "hvtbr2"});
    CHECK(still["ports"] == json::array({"hvtst0"}));
    CHECK(still["purpose"] == "storage");

    // Persisted: after an hvd restart the spec is the changed one; then release the port.
    hvd.stop();
    hvd.start();
    CHECK(hvd.ctl_json({"net", "bridge", "show", "hvtbr2"})["mtu"] == 1450);
    auto rel = hvd.ctl_json({"net", "bridge", "set", "hvtbr2", "--remove-port", "hvtst0"});
    CHECK(rel["ports"].empty());
    link = json::parse(in_libvirt_netns({"ip", "-j", "link", "show", "dev", "hvtst0"}).out, nullptr, false);
    CHECK(link[0].value("master", "") == "");
    REQUIRE(hvd.ctl({"net", "bridge", "delete", "hvtbr2"}).exit_code == 0);
    in_libvirt_netns({"ip", "link", "delete", "hvtst0"});
}
