// rbd pools without a Ceph cluster: the spec's checks (monitors, names, keyring path), the
// keyring parser, the secret's uuid. The pool against a real Ceph cluster:
// tests/integration/rbd_pool_test.cpp.
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "ceph_keyring.hpp"
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
