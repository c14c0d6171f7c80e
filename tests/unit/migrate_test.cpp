// Migration's wire model and the libvirt socket the tunnel reaches (the migration itself runs
// on the rig: tests/integration/ceph_test.cpp).
#include <catch2/catch.hpp>

#include "hv/api/migrate.hpp"
#include "hv/error.hpp"
#include "migrate_routes.hpp"
#include "migrator.hpp"

using namespace hv;
using nlohmann::json;

TEST_CASE("migrate request: defaults and refusals", "[migrate][api]") {
    auto r = api::migrate_request_from_json(json{{"to", "h2"}});
    CHECK(r.to == "h2");
    CHECK_FALSE(r.offline);
    CHECK_FALSE(r.dry_run);
    CHECK(r.bandwidth == 0);
    CHECK(r.max_downtime == 300);
    CHECK_FALSE(r.with_local_disks);
    CHECK_FALSE(r.postcopy);
    CHECK(api::migrate_request_from_json(api::to_json(r)).to == "h2");
    auto l = api::migrate_request_from_json(json{{"to", "h2"}, {"with_local_disks", true}, {"postcopy", true}});
    CHECK(l.with_local_disks);
    CHECK(l.postcopy);
    auto back = api::migrate_request_from_json(api::to_json(l));
    CHECK((back.with_local_disks && back.postcopy));
    for (const json& bad : {json::object(), json{{"to", "H2!"}}, json{{"to", "h2"}, {"max_downtime", 5}},
                            json{{"to", "h2"}, {"bandwidth", -1}}, json{{"to", "h2"}, {"live", true}},
                            json{{"to", "h2"}, {"bandwidth", 1000000}},
                            json{{"to", "h2"}, {"offline", true}, {"postcopy", true}},
                            json{{"to", "h2"}, {"with_local_disks", "yes"}}}) {
        INFO(bad.dump());
        CHECK_THROWS_AS(api::migrate_request_from_json(bad), Error);
    }
}

TEST_CASE("the libvirt socket of a URI", "[migrate]") {
    CHECK(daemon::libvirt_socket_of("qemu:///system") == "/var/run/libvirt/libvirt-sock");
    CHECK(daemon::libvirt_socket_of("qemu:///system?socket=/tmp/r/h1/libvirt/run/libvirt-sock") ==
          "/tmp/r/h1/libvirt/run/libvirt-sock");
    CHECK(daemon::libvirt_socket_of("qemu:///system?mode=direct&socket=/s.sock&x=1") == "/s.sock");
}

TEST_CASE("migration stream sockets: only the names a migration makes", "[migrate]") {
    CHECK(migrate::is_stream_socket_name("hvm-0123456789abcdef-mem.sock"));
    CHECK(migrate::is_stream_socket_name("hvm-0123456789abcdef-nbd.sock"));
    for (const char* bad : {"", "hvm-0123456789abcdef-xyz.sock", "hvm-0123456789ABCDEF-mem.sock", "hvm-0123456789abcde-mem.sock",
                            "../../run/libvirt/libvirt-sock", "hvm-0123456789abcdef-mem.sock/..", "hvm-/123456789abcdef-mem.sock",
                            "libvirt-sock"}) {
        INFO(bad);
        CHECK_FALSE(migrate::is_stream_socket_name(bad));
    }
}
