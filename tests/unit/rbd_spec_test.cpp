// rbd pools without a Ceph cluster: the spec's checks (monitors, names, keyring path), the
// keyring parser, the secret's uuid. The pool against a real Ceph cluster:
// tests/integration/rbd_pool_test.cpp.
#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>

#include <catch2/catch.hpp>

#include "ceph_keyring.hpp"
#include "ceph_status.hpp"
#include "hv/api/storage.hpp"
#include "hv/error.hpp"
#include "hv/storage/pool.hpp"
#include "temp_dir.hpp"

using hv::api::PoolSpec;

namespace {
PoolSpec rbd_spec() {
    PoolSpec s;
    s.name = "vmpool";
    s.type = "rbd";
    s.monitors = {"10.0.0.5", "10.0.0.6:6789", "[fd00::7]:3300"};
    s.rbd_pool = "rbd";
    s.user = "hv";
    s.keyring = "/etc/ceph/ceph.client.hv.keyring";
    return s;
}
std::string error_of(const PoolSpec& s) {
    try {
        hv::api::validate(s);
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::invalid_input);
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("rbd pool spec: monitors, Ceph names and the keyring are checked, and there is no path", "[storage][rbd]") {
    CHECK(error_of(rbd_spec()).empty());
    auto s = rbd_spec();
    s.monitors.clear();
    CHECK_THAT(error_of(s), Catch::Contains("monitors"));
    s = rbd_spec();
    s.monitors = {"10.0.0.5:notaport"};
    CHECK_THAT(error_of(s), Catch::Contains("port must be a number"));
    s.monitors = {"fd00::7"};
    CHECK_THAT(error_of(s), Catch::Contains("brackets"));
    s.monitors = {"mon1;rm -rf"};
    CHECK_THAT(error_of(s), Catch::Contains("not a host name"));
    s = rbd_spec();
    s.rbd_pool = "a/b";
    CHECK_THAT(error_of(s), Catch::Contains("Ceph pool name"));
    s = rbd_spec();
    s.user = "client.hv\n[x]";
    CHECK_THAT(error_of(s), Catch::Contains("cephx user"));
    s = rbd_spec();
    s.keyring = "relative.keyring";
    CHECK_THAT(error_of(s), Catch::Contains("absolute"));
    s = rbd_spec();
    s.path = "/srv";
    CHECK_THAT(error_of(s), Catch::Contains("no path"));
    s = rbd_spec();
    s.content = {"iso"};
    CHECK_THAT(error_of(s), Catch::Contains("images only"));
    // rbd fields on a dir pool.
    PoolSpec d;
    d.name = "local2";
    d.path = "/srv/images";
    d.user = "hv";
    CHECK_THAT(error_of(d), Catch::Contains("type rbd"));

    auto h = hv::api::parse_monitor("[fd00::7]:3300");
    CHECK(h.name == "fd00::7");
    CHECK(h.port == 3300);
    CHECK(hv::api::parse_monitor("mon1").port == 0);
}

TEST_CASE("ceph keyring: the key of one entity, clear errors otherwise", "[storage][rbd]") {
    const std::string two = "[client.admin]\n\tkey = AQBaGhNrp8WHMxAAgauKPkT1vJYpl5hAvaKDLQ==\n\tcaps mon = \"allow *\"\n"
                            "# a comment\n[client.hv]\nkey=AQBeGhNrsAftAhAAJwEsxhjMni3poUEk/TZryg==\n";
    CHECK(hv::storage::keyring_key(two, "client.hv") == "AQBeGhNrsAftAhAAJwEsxhjMni3poUEk/TZryg==");
    CHECK(hv::storage::keyring_key(two, "client.admin") == "AQBaGhNrp8WHMxAAgauKPkT1vJYpl5hAvaKDLQ==");
    CHECK_THROWS_WITH(hv::storage::keyring_key(two, "client.other"), Catch::Contains("no section [client.other]"));
    CHECK_THROWS_WITH(hv::storage::keyring_key("[client.hv]\ncaps osd = x\n", "client.hv"), Catch::Contains("has no key"));
    CHECK_THROWS_WITH(hv::storage::keyring_key("[client.hv]\nkey = not base64!\n", "client.hv"),
                      Catch::Contains("not base64"));
    CHECK_THROWS_WITH(hv::storage::keyring_key("[client.hv\nkey = x\n", "client.hv"), Catch::Contains("without ']'"));
    CHECK_THROWS_WITH(hv::storage::keyring_key(std::string(70000, 'a'), "client.hv"), Catch::Contains("64 KiB"));
}

TEST_CASE("rbd secret: one uuid per pool name on every host, the raw key as its value", "[storage][rbd]") {
    auto u = hv::storage::rbd_secret_uuid("vmpool");
    CHECK(u == hv::storage::rbd_secret_uuid("vmpool"));
    CHECK(u != hv::storage::rbd_secret_uuid("vmpool2"));
    REQUIRE(u.size() == 36);
    CHECK(u[14] == '8');  // version 8 (name-based, SHA-256)

    hv::test::TempDir d("hv-rbd");
    auto s = rbd_spec();
    s.keyring = d.path + "/hv.keyring";
    std::ofstream(s.keyring) << "[client.hv]\n\tkey = AQBpGhNrRZKEORAA8RIwxBkFqqK1N3/hMJDJOQ==\n";
    auto sec = hv::storage::rbd_secret(s);
    CHECK(sec.uuid == u);
    CHECK(sec.usage == "hv pool vmpool");
    CHECK(sec.value.size() == 28);  // a cephx key: 28 bytes, 40 in base64
    s.user = "other";
    CHECK_THROWS_WITH(hv::storage::rbd_secret(s), Catch::Contains("no section [client.other]"));
}

TEST_CASE("ceph status: degraded data, blocked I/O and down OSDs in plain words, nothing when all is well", "[storage][rbd]") {
    auto file = [](const std::string& n) {
        std::ifstream f(std::string(HV_TEST_DATA_DIR) + "/../fuzz/corpus/ceph_status/" + n);
        return std::string(std::istreambuf_iterator<char>(f), {});
    };
    auto degraded = hv::storage::parse_ceph_status(file("degraded"));
    CHECK(degraded.status == "HEALTH_WARN");
    CHECK(degraded.osds == 3);
    CHECK(degraded.osds_up == 2);
    CHECK(degraded.pgs_inactive == 0);
    auto w = hv::storage::health_words(degraded);
    REQUIRE_FALSE(w.empty());
    CHECK_THAT(w[0], Catch::StartsWith("degraded: 5 of 15 object copies missing (33.3%)"));
    CHECK(std::find(w.begin(), w.end(), "1 of 3 OSDs down") != w.end());

    auto blocked = hv::storage::health_words(hv::storage::parse_ceph_status(file("blocked")));
    REQUIRE_FALSE(blocked.empty());
    CHECK_THAT(blocked[0], Catch::StartsWith("I/O blocked: 32 of 32 placement groups are not active"));

    const std::string ok = R"({"health":{"status":"HEALTH_OK","checks":{}},"osdmap":{"num_osds":3,"num_up_osds":3,)"
                           R"("num_in_osds":3},"pgmap":{"num_pgs":33,"pgs_by_state":[{"state_name":"active+clean","count":33}]}})";
    CHECK(hv::storage::health_words(hv::storage::parse_ceph_status(ok)).empty());
    CHECK_THROWS_AS(hv::storage::parse_ceph_status("[1,2]"), hv::Error);
    CHECK_THROWS_AS(hv::storage::parse_ceph_status("not json"), hv::Error);
    // Nonsense numbers read as 0, never as a crash or a huge count.
    auto odd = hv::storage::parse_ceph_status(R"({"osdmap":{"num_osds":-5,"num_up_osds":1e300},"pgmap":{"pgs_by_state":)"
                                              R"([{"state_name":"peering","count":2147483647},{"state_name":"peering","count":2147483647}]}})");
    CHECK(odd.osds == 0);
    CHECK(odd.pgs_inactive == 1 << 30);
}

TEST_CASE("shared dir pools: the flag maps to JSON and back, only dir pools take it", "[storage]") {
    PoolSpec s;
    s.name = "nfs";
    s.type = "dir";
    s.path = "/mnt/nfs";
    s.shared = true;
    CHECK(error_of(s).empty());
    nlohmann::json j = s;
    CHECK(j.at("shared") == true);
    CHECK(hv::api::pool_spec_from_json(j).shared);
    CHECK_FALSE(nlohmann::json(PoolSpec{}).contains("shared"));  // false is left out
    s.type = "btrfs";
    CHECK(error_of(s).find("--shared is for dir pools") != std::string::npos);
    auto r = rbd_spec();
    r.shared = true;
    CHECK(error_of(r).find("shared anyway") != std::string::npos);
}
