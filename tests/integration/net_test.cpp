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
