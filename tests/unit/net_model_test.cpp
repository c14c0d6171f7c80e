// Host networking without a kernel: the wire model (strict JSON, names, VLAN ids, MTU, CIDR,
// bond rules), the uplink warnings, NIC facts read from a captured sysfs tree, and NetManager
// against a fake backend (ownership, persistence, re-apply, undo of a failed create,
// missing kernel features -> unsupported naming the feature).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "hv/api/net.hpp"
#include "hv/error.hpp"
#include "net_manager.hpp"
#include "sysfs_nics.hpp"

using hv::Errc;
using hv::Error;
using nlohmann::json;
namespace api = hv::api;
namespace fs = std::filesystem;

namespace {

template <typename F>
std::string error_of(Errc want, F&& f) {
    try {
        f();
    } catch (const Error& e) {
        CHECK(hv::errc_name(e.code()) == hv::errc_name(want));
        return e.what();
    }
    FAIL("expected hv::Error, nothing was thrown");
    return {};
}

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/hv-net-test.XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text << "\n";
}

// A kernel in memory: links by name; records every call; can be told to fail one call.
class FakeBackend : public hv::net::NetBackend {
public:
    std::map<std::string, hv::net::LinkState> links_;
    std::map<std::string, api::NicInfo> nics_;
    std::map<std::string, std::vector<std::string>> addrs_;
    api::KernelFeatures features_{{{"bridge", true, ""}, {"vlan_filtering", true, ""}, {"8021q", true, ""},
                                   {"bonding", true, ""}, {"veth", true, ""}, {"dummy", true, ""}}};
    std::vector<std::string> calls;
    std::string fail_on;  // "set_master:lo" fails that call

    void add_nic(const std::string& name, std::int64_t speed = 10000, bool carrier = true, int mtu = 1500) {
        links_[name] = {name, static_cast<int>(links_.size() + 1), "", "", true, "up", mtu, "52:54:00:00:00:01"};
        nics_[name] = {name, "52:54:00:00:00:01", "ixgbe", "physical", carrier, speed, "full", mtu, "up", "", false};
    }
    void maybe_fail(const std::string& call) {
        calls.push_back(call);
        if (call == fail_on) hv::fail(Errc::internal, "injected failure at {}", call);
    }

    std::vector<hv::net::LinkState> links() override {
        std::vector<hv::net::LinkState> out;
        for (const auto& [_, l] : links_) out.push_back(l);
        return out;
    }
    api::NicInfo nic(const std::string& name) override {
        if (!links_.count(name)) hv::fail(Errc::not_found, "no {}", name);
        auto it = nics_.find(name);
        api::NicInfo n = it != nics_.end() ? it->second : api::NicInfo{name};
        n.mtu = links_[name].mtu;
        return n;
    }
    std::vector<std::string> addresses(const std::string& name) override { return addrs_[name]; }
    api::KernelFeatures probe_features() override { return features_; }

    void create_bridge(const std::string& name, bool vf, int mtu) override {
        maybe_fail("create_bridge:" + name);
        links_[name] = {name, 100, "bridge", "", false, "down", mtu ? mtu : 1500, "", "", 0, vf};
    }
    void create_bond(const api::BondSpec& s) override {
        maybe_fail("create_bond:" + s.name);
        links_[s.name] = {s.name, 101, "bond", "", false, "down", 1500};
    }
    void create_vlan(const std::string& name, const std::string& parent, int id, int mtu) override {
        maybe_fail("create_vlan:" + name);
        links_[name] = {name, 102, "vlan", "", false, "down", 1500, "", parent, id};
    }
    void delete_link(const std::string& name) override {
        maybe_fail("delete_link:" + name);
        links_.erase(name);
        for (auto& [_, l] : links_)
            if (l.master == name) l.master.clear();
    }
    void set_master(const std::string& name, const std::string& master) override {
        maybe_fail("set_master:" + name + "=" + master);
        links_.at(name).master = master;
    }
    void set_up(const std::string& name, bool up) override { links_.at(name).admin_up = up; }
    void set_mtu(const std::string& name, int mtu) override {
        maybe_fail("set_mtu:" + name);
        links_.at(name).mtu = mtu;
    }
    void set_vlan_filtering(const std::string& b, bool on) override {
        maybe_fail("set_vlan_filtering:" + b);
        links_.at(b).vlan_filtering = on;
    }
    void set_bond_primary(const std::string& b, const std::string& m) override { maybe_fail("set_bond_primary:" + b); }
    void add_bridge_vlans(const std::string& dev, const std::vector<std::pair<int, int>>& v, bool self) override {
        maybe_fail("add_bridge_vlans:" + dev + (self ? ":self" : ""));
        for (auto [lo, hi] : v)
            for (int x = lo; x <= hi; ++x) {
                std::erase_if(vlans_[dev], [&](const api::PortVlan& p) { return p.vid == x; });
                vlans_[dev].push_back({x, false, false});
            }
        std::sort(vlans_[dev].begin(), vlans_[dev].end(), [](const auto& a, const auto& b) { return a.vid < b.vid; });
    }
    void add_address(const std::string& dev, const std::string& cidr) override {
        maybe_fail("add_address:" + dev);
        if (std::find(addrs_[dev].begin(), addrs_[dev].end(), cidr) == addrs_[dev].end()) addrs_[dev].push_back(cidr);
    }
    bool add_default_route(const std::string& dev, const std::string& gw) override {
        maybe_fail("add_default_route:" + dev);
        route_ = std::make_pair(dev, gw);
        return true;
    }
    void set_bond_miimon(const std::string& b, int) override { maybe_fail("set_bond_miimon:" + b); }
    std::map<std::string, std::vector<api::PortVlan>> vlans_;
    std::vector<api::PortVlan> port_vlans(const std::string& dev) override { return vlans_[dev]; }
    void set_port_pvid(const std::string& dev, int vid) override {
        maybe_fail("set_port_pvid:" + dev);
        for (auto& v : vlans_[dev]) v.pvid = false;
        std::erase_if(vlans_[dev], [&](const api::PortVlan& v) { return v.vid == vid; });
        vlans_[dev].push_back({vid, true, true});
    }
    void del_bridge_vlans(const std::string& dev, const std::vector<std::pair<int, int>>& v, bool) override {
        maybe_fail("del_bridge_vlans:" + dev);
        for (const auto& r : v)
            std::erase_if(vlans_[dev], [&](const api::PortVlan& x) { return x.vid >= r.first && x.vid <= r.second; });
    }
    std::optional<std::pair<std::string, std::string>> route_;
    void del_address(const std::string& dev, const std::string& cidr) override {
        maybe_fail("del_address:" + dev);
        std::erase(addrs_[dev], cidr);
        if (route_ && route_->first == dev) route_.reset();  // the kernel drops routes through it
    }
    std::optional<std::pair<std::string, std::string>> default_route() override { return route_; }
};

}  // namespace

TEST_CASE("net model: interface names follow the kernel's rules", "[net]") {
    api::validate_ifname("vmbr0", "bridge name");
    api::validate_ifname("bond0.100", "vlan name");
    api::validate_ifname("enp1s0f0-x_1", "port");
    api::validate_ifname("abcdefghijklmno", "x");  // 15
    CHECK_THAT(error_of(Errc::invalid_input, [] { api::validate_ifname("abcdefghijklmnop", "bridge name"); }),
               Catch::Contains("at most 15"));
    error_of(Errc::invalid_input, [] { api::validate_ifname("", "x"); });
    error_of(Errc::invalid_input, [] { api::validate_ifname("..", "x"); });
    error_of(Errc::invalid_input, [] { api::validate_ifname("a/b", "x"); });
    error_of(Errc::invalid_input, [] { api::validate_ifname("a b", "x"); });
    error_of(Errc::invalid_input, [] { api::validate_ifname("br:0", "x"); });
    error_of(Errc::invalid_input, [] { api::validate_ifname("-br", "x"); });
    // Messages stay valid UTF-8 (they go into JSON): the character is named whole.
    auto cafe = error_of(Errc::invalid_input, [] { api::validate_ifname("caf\xc3\xa9", "bond name"); });
    CHECK_THAT(cafe, Catch::Contains("contains '\xc3\xa9'"));
    CHECK_NOTHROW(nlohmann::json(cafe).dump());
    auto huge = error_of(Errc::invalid_input, [] { api::validate_ifname(std::string(3 << 20, 'a'), "bond name"); });
    CHECK(huge.size() < 200);
}

TEST_CASE("net model: VLAN id lists", "[net]") {
    using R = std::vector<std::pair<int, int>>;
    CHECK(api::parse_vids("2-4094") == R{{2, 4094}});
    CHECK(api::parse_vids("100") == R{{100, 100}});
    CHECK(api::parse_vids("300,100-200,150-250,251") == R{{100, 251}, {300, 300}});
    CHECK_THAT(error_of(Errc::invalid_input, [] { api::parse_vids("0"); }), Catch::Contains("reserved"));
    error_of(Errc::invalid_input, [] { api::parse_vids("4095"); });
    error_of(Errc::invalid_input, [] { api::parse_vids("1-4095"); });
    error_of(Errc::invalid_input, [] { api::parse_vids("200-100"); });
    error_of(Errc::invalid_input, [] { api::parse_vids("a"); });
    error_of(Errc::invalid_input, [] { api::parse_vids("1,,2"); });
    error_of(Errc::invalid_input, [] { api::parse_vids(""); });
}

TEST_CASE("net model: bridge spec JSON is strict and validated", "[net]") {
    auto b = api::bridge_spec_from_json(json::parse(
        R"({"name":"vmbr0","ports":["bond0"],"vlan_aware":true,"vids":"100-200","mtu":9000,
            "address":"10.0.0.5/24","gateway":"10.0.0.1","purpose":"storage"})"));
    CHECK(b.name == "vmbr0");
    CHECK(b.ports == std::vector<std::string>{"bond0"});
    CHECK(b.vlan_aware);
    CHECK(b.mtu == 9000);
    CHECK(b.address == "10.0.0.5/24");
    api::validate(b);
    // Round trip.
    auto again = api::bridge_spec_from_json(json(b));
    CHECK(json(again) == json(b));
    // Defaults.
    auto d = api::bridge_spec_from_json(json{{"name", "br1"}});
    CHECK(d.vids == "2-4094");
    CHECK(d.purpose == "vm");
    CHECK(!d.address);

    CHECK_THAT(error_of(Errc::invalid_input, [] { api::bridge_spec_from_json(json{{"name", "b"}, {"vlan", 1}}); }),
               Catch::Contains("unknown field 'vlan'"));
    CHECK_THAT(error_of(Errc::invalid_input, [] { api::bridge_spec_from_json(json{{"name", "b"}, {"mtu", "9000"}}); }),
               Catch::Contains("'mtu'"));
    error_of(Errc::invalid_input, [] { api::bridge_spec_from_json(json{{"ports", json::array()}}); });

    auto bad = [](json j) { return error_of(Errc::invalid_input, [&] { api::validate(api::bridge_spec_from_json(j)); }); };
    CHECK_THAT(bad(json{{"name", "b"}, {"mtu", 100000}}), Catch::Contains("mtu 100000"));
    bad(json{{"name", "b"}, {"mtu", 67}});
    CHECK_THAT(bad(json{{"name", "b"}, {"vlan_aware", true}, {"vids", "0-10"}}), Catch::Contains("reserved"));
    bad(json{{"name", "b"}, {"vlan_aware", true}, {"vids", "4095"}});
    bad(json{{"name", "b"}, {"purpose", "backup"}});
    bad(json{{"name", "b"}, {"ports", {"b"}}});
    bad(json{{"name", "b"}, {"ports", {"e0", "e0"}}});
    CHECK_THAT(bad(json{{"name", "b"}, {"gateway", "10.0.0.1"}}), Catch::Contains("needs an address"));
    bad(json{{"name", "b"}, {"address", "10.0.0.5"}});
    bad(json{{"name", "b"}, {"address", "10.0.0.5/33"}});
    bad(json{{"name", "b"}, {"address", "nonsense/24"}});
    bad(json{{"name", "b"}, {"address", "10.0.0.5/24"}, {"gateway", "fd00::1"}});
    api::validate(api::bridge_spec_from_json(json{{"name", "b"}, {"address", "fd00::5/64"}, {"gateway", "fd00::1"}}));
}

TEST_CASE("net model: bond and vlan specs", "[net]") {
    auto b = api::bond_spec_from_json(json::parse(
        R"({"name":"bond0","mode":"802.3ad","members":["e0","e1"],"xmit_hash_policy":"layer3+4","miimon":50})"));
    api::validate(b);
    CHECK(b.mode == "802.3ad");
    CHECK(json(api::bond_spec_from_json(json(b))) == json(b));
    auto bad = [](json j) { return error_of(Errc::invalid_input, [&] { api::validate(api::bond_spec_from_json(j)); }); };
    CHECK_THAT(bad(json{{"name", "bond0"}, {"members", json::array()}}), Catch::Contains("at least one member"));
    error_of(Errc::invalid_input, [] { api::bond_spec_from_json(json{{"name", "bond0"}}); });  // members required
    bad(json{{"name", "bond0"}, {"members", {"e0"}}, {"mode", "balance-rr"}});
    CHECK_THAT(bad(json{{"name", "bond0"}, {"members", {"e0"}}, {"primary", "e9"}}), Catch::Contains("not one of the members"));
    bad(json{{"name", "bond0"}, {"members", {"e0"}}, {"mode", "802.3ad"}, {"primary", "e0"}});
    bad(json{{"name", "bond0"}, {"members", {"e0"}}, {"xmit_hash_policy", "layer3+4"}});  // active-backup
    bad(json{{"name", "bond0"}, {"members", {"e0"}}, {"mode", "802.3ad"}, {"xmit_hash_policy", "layer9"}});
    bad(json{{"name", "bond0"}, {"members", {"e0"}}, {"miimon", -1}});
    bad(json{{"name", "bond0"}, {"members", {"bond0"}}});
    error_of(Errc::invalid_input, [] { api::bond_spec_from_json(json{{"name", "bond0"}, {"members", {"e0"}}, {"lacp", 1}}); });

    auto v = api::vlan_spec_from_json(json{{"name", "bond0.100"}, {"parent", "bond0"}, {"id", 100}});
    api::validate(v);
    auto vbad = [](json j) { return error_of(Errc::invalid_input, [&] { api::validate(api::vlan_spec_from_json(j)); }); };
    CHECK_THAT(vbad(json{{"name", "v0"}, {"parent", "e0"}, {"id", 0}}), Catch::Contains("reserved"));
    vbad(json{{"name", "v0"}, {"parent", "e0"}, {"id", 4095}});
    vbad(json{{"name", "v0"}, {"parent", "v0"}, {"id", 5}});
    vbad(json{{"name", "v0"}, {"parent", "e0"}, {"id", 5}, {"mtu", 100000}});
    CHECK_THAT(error_of(Errc::invalid_input, [] { api::vlan_spec_from_json(json{{"name", "v0"}, {"parent", "e0"}}); }),
               Catch::Contains("'id' is required"));
}

TEST_CASE("net model: uplink warnings for vm/storage purposes and MTU mismatches", "[net]") {
    api::PortState fast{"e0", true, true, 10000, 9000, "br0"};
    api::PortState slow{"e1", true, true, 1000, 9000, "br0"};
    api::PortState nolink{"e2", true, false, -1, 9000, "br0"};
    api::PortState smallmtu{"e3", true, true, 25000, 1500, "br0"};
    CHECK(api::uplink_warnings("bridge 'br0'", "vm", 9000, {fast}).empty());
    auto w = api::uplink_warnings("bridge 'br0'", "storage", 9000, {fast, slow, nolink, smallmtu});
    REQUIRE(w.size() == 3);
    CHECK_THAT(w[0], Catch::Contains("'e1' runs at 1000 Mb/s, less than 10000 Mb/s for storage"));
    CHECK_THAT(w[1], Catch::Contains("'e2' has no link"));
    CHECK_THAT(w[2], Catch::Contains("MTU mismatch: 'e3' has MTU 1500, the bridge has 9000"));
    // Management bridges may run on 1G; MTU is still checked.
    auto m = api::uplink_warnings("bridge 'br0'", "management", 9000, {slow, nolink, smallmtu});
    REQUIRE(m.size() == 1);
    CHECK_THAT(m[0], Catch::Contains("MTU mismatch"));
    // No MTU set: nothing to compare.
    CHECK(api::uplink_warnings("bond 'b'", "management", 0, {smallmtu}).empty());
    auto missing = api::uplink_warnings("bond 'b'", "vm", 0, {api::PortState{"gone"}});
    REQUIRE(missing.size() == 1);
    CHECK_THAT(missing[0], Catch::Contains("does not exist"));
}

TEST_CASE("net model: NIC facts from a captured sysfs tree", "[net]") {
    TempDir t;
    auto n = t.path / "enp1s0f0";
    write(n / "address", "3c:ec:ef:01:02:03");
    write(n / "mtu", "9000");
    write(n / "carrier", "1");
    write(n / "speed", "10000");
    write(n / "duplex", "full");
    write(n / "operstate", "up");
    fs::create_directories(t.path / "drivers" / "ixgbe");
    fs::create_directories(n / "device");
    fs::create_directory_symlink(t.path / "drivers" / "ixgbe", n / "device" / "driver");
    auto d = t.path / "eno1";  // down: speed reads -1, carrier unreadable
    write(d / "address", "3c:ec:ef:01:02:04");
    write(d / "mtu", "1500");
    write(d / "speed", "-1");
    write(d / "duplex", "unknown");
    write(d / "operstate", "down");
    fs::create_directories(d / "device");
    auto v = t.path / "veth0";
    write(v / "speed", "10000");
    write(v / "carrier", "1");

    hv::net::SysfsNics s(t.path.string());
    auto a = s.read("enp1s0f0");
    CHECK(a.mac == "3c:ec:ef:01:02:03");
    CHECK(a.mtu == 9000);
    CHECK(a.carrier);
    CHECK(a.speed == 10000);
    CHECK(a.duplex == "full");
    CHECK(a.driver == "ixgbe");
    CHECK(a.kind == "physical");
    auto b = s.read("eno1");
    CHECK(!b.carrier);
    CHECK(b.speed == -1);
    CHECK(b.duplex == "unknown");
    CHECK(b.driver.empty());
    CHECK(s.read("veth0").kind.empty());
    error_of(Errc::not_found, [&] { s.read("nope"); });
    error_of(Errc::not_found, [&] { s.read("../x"); });
}

TEST_CASE("net manager: create, ownership, persistence and re-apply (fake kernel)", "[net]") {
    TempDir t;
    auto state = (t.path / "network.json").string();
    auto fake = std::make_unique<FakeBackend>();
    auto* k = fake.get();
    k->add_nic("eth0");
    k->addrs_["eth0"] = {"192.168.1.10/24"};
    k->add_nic("e0");
    k->add_nic("e1", 1000);
    k->add_nic("e2");
    k->links_["foreign0"] = {"foreign0", 50, "bridge"};
    hv::net::NetManager m(state, std::move(fake));

    api::BondSpec bond{"bond0", "active-backup", 100, "e0", {"e0", "e1"}};
    auto bi = m.create_bond(bond);
    CHECK(bi.present);
    CHECK(k->links_.at("e0").master == "bond0");
    CHECK(k->links_.at("e1").master == "bond0");
    REQUIRE(bi.warnings.size() == 1);
    CHECK_THAT(bi.warnings[0], Catch::Contains("'e1' runs at 1000 Mb/s"));

    api::BridgeSpec br{"vmbr0", {"bond0"}, true, "2-4094", 9000};
    auto b = m.create_bridge(br);
    CHECK(b.present);
    CHECK(k->links_.at("bond0").master == "vmbr0");
    CHECK(k->links_.at("vmbr0").mtu == 9000);
    CHECK(std::count(k->calls.begin(), k->calls.end(), "add_bridge_vlans:bond0") == 1);
    CHECK(std::count(k->calls.begin(), k->calls.end(), "add_bridge_vlans:vmbr0:self") == 1);

    api::VlanSpec vl{"vmbr0.100", "vmbr0", 100};
    m.create_vlan(vl);
    CHECK(k->links_.at("vmbr0.100").vlan_id == 100);

    // Persisted as JSON the manager reads back.
    auto saved = json::parse(std::ifstream(state));
    CHECK(saved["bonds"][0]["name"] == "bond0");
    CHECK(saved["bridges"][0]["name"] == "vmbr0");
    CHECK(saved["vlans"][0]["name"] == "vmbr0.100");

    // Names taken, interfaces hv does not own, ports in use or carrying the management address.
    CHECK_THAT(error_of(Errc::conflict, [&] { m.create_bridge({"foreign0"}); }), Catch::Contains("not created by hv"));
    CHECK_THAT(error_of(Errc::conflict, [&] { m.create_bridge({"vmbr0"}); }), Catch::Contains("hv-managed"));
    CHECK_THAT(error_of(Errc::conflict, [&] { m.create_bridge({"br1", {"e0"}}); }), Catch::Contains("bond 'bond0'"));
    CHECK_THAT(error_of(Errc::conflict, [&] { m.create_bond({"bond1", "active-backup", 100, "", {"eth0"}}); }),
               Catch::Contains("carries address 192.168.1.10/24"));
    error_of(Errc::not_found, [&] { m.create_bridge({"br1", {"nope"}}); });
    error_of(Errc::invalid_input, [&] { m.create_bridge({"br1", {"foreign0"}}); });
    CHECK_THAT(error_of(Errc::not_found, [&] { m.delete_bridge("foreign0"); }), Catch::Contains("only interfaces it created"));
    CHECK(k->links_.count("foreign0"));
    CHECK_THAT(error_of(Errc::conflict, [&] { m.delete_bond("bond0"); }), Catch::Contains("used by bridge 'vmbr0'"));
    CHECK_THAT(error_of(Errc::conflict, [&] { m.delete_bridge("vmbr0"); }), Catch::Contains("used by vlan 'vmbr0.100'"));

    // A VM tap on the bridge blocks delete without force.
    k->links_["vnet0"] = {"vnet0", 60, "tun", "vmbr0"};
    m.delete_vlan("vmbr0.100");
    CHECK(!k->links_.count("vmbr0.100"));
    CHECK_THAT(error_of(Errc::conflict, [&] { m.delete_bridge("vmbr0"); }), Catch::Contains("vnet0"));
    CHECK(k->links_.count("vmbr0"));

    // Re-apply after a "reboot": everything gone from the kernel, the state file brings it back.
    k->links_.erase("vmbr0");
    k->links_.erase("bond0");
    k->links_.erase("vnet0");
    k->links_.at("e0").master.clear();
    k->links_.at("e1").master.clear();
    {
        auto fake2 = std::make_unique<FakeBackend>(*k);
        auto* k2 = fake2.get();
        hv::net::NetManager again(state, std::move(fake2));
        CHECK(again.apply_all().empty());
        CHECK(k2->links_.at("bond0").kind == "bond");
        CHECK(k2->links_.at("e0").master == "bond0");
        CHECK(k2->links_.at("bond0").master == "vmbr0");
        // Idempotent: a second run creates nothing.
        k2->calls.clear();
        CHECK(again.apply_all().empty());
        for (const auto& c : k2->calls) CHECK(c.rfind("create_", 0) != 0);
    }
    // Deleting what is gone from the kernel only forgets it.
    m.delete_bridge("vmbr0");
    m.delete_bond("bond0");
    CHECK(json::parse(std::ifstream(state)) == json::parse(R"({"bonds":[],"vlans":[],"bridges":[]})"));
}

TEST_CASE("net manager: a failed create removes what it made", "[net]") {
    TempDir t;
    auto fake = std::make_unique<FakeBackend>();
    auto* k = fake.get();
    k->add_nic("e0");
    k->add_nic("e1");
    hv::net::NetManager m((t.path / "network.json").string(), std::move(fake));
    k->fail_on = "set_master:e1=br0";  // second port fails after the bridge exists and e0 is in it
    error_of(Errc::internal, [&] { m.create_bridge({"br0", {"e0", "e1"}}); });
    CHECK(!k->links_.count("br0"));
    CHECK(k->links_.at("e0").master.empty());
    CHECK(m.state().bridges.empty());
    CHECK(!fs::exists(t.path / "network.json"));

    k->fail_on = "set_mtu:bond0";
    error_of(Errc::internal, [&] { m.create_bond({"bond0", "active-backup", 100, "", {"e0", "e1"}, "", 9000}); });
    CHECK(!k->links_.count("bond0"));
    CHECK(k->links_.at("e0").master.empty());
    CHECK(k->links_.at("e1").master.empty());
    CHECK(m.state().bonds.empty());
}

TEST_CASE("net manager: missing kernel features answer unsupported, naming the feature", "[net]") {
    TempDir t;
    auto fake = std::make_unique<FakeBackend>();
    auto* k = fake.get();
    k->add_nic("e0");
    k->features_ = {{{"bridge", true, ""}, {"vlan_filtering", false, "Operation not supported"},
                     {"8021q", false, "Operation not supported"}, {"bonding", false, "Operation not supported"}}};
    hv::net::NetManager m((t.path / "network.json").string(), std::move(fake));
    CHECK_THAT(error_of(Errc::unsupported, [&] { m.create_bond({"bond0", "active-backup", 100, "", {"e0"}}); }),
               Catch::Contains("does not support bonding"));
    CHECK_THAT(error_of(Errc::unsupported, [&] { m.create_vlan({"e0.5", "e0", 5}); }), Catch::Contains("8021q"));
    api::BridgeSpec vb{"br0"};
    vb.vlan_aware = true;
    CHECK_THAT(error_of(Errc::unsupported, [&] { m.create_bridge(vb); }), Catch::Contains("vlan_filtering"));
    CHECK(k->calls.empty());  // refused before any change
    m.create_bridge({"br0"});  // a plain bridge works
    CHECK(k->links_.count("br0"));
}
