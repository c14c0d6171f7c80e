// Migration's wire model and the libvirt socket the tunnel reaches (the migration itself runs
// on the rig: tests/integration/ceph_test.cpp).
#include <catch2/catch.hpp>

#include "hv/api/migrate.hpp"
#include "hv/error.hpp"
#include "migrate_routes.hpp"
#include "migrator.hpp"
#include "volume_stream.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

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

TEST_CASE("volume stream: data at its offsets, holes skipped, bad streams refused", "[migrate]") {
    int fd = ::memfd_create("vol", MFD_CLOEXEC);
    REQUIRE(fd >= 0);
    auto frame = [](std::uint32_t len, const std::string& data = "") {
        std::string h{static_cast<char>(len >> 24), static_cast<char>(len >> 16), static_cast<char>(len >> 8), static_cast<char>(len)};
        return h + data;
    };
    auto feed = [](const std::string& s) {
        return [s, at = std::size_t{0}](char* out, std::size_t n) mutable {
            if (s.size() - at < n) return false;
            std::memcpy(out, s.data() + at, n);
            at += n;
            return true;
        };
    };
    const std::string good = frame(3, "abc") + frame(migrate::kFrameHoleBit | 5) + frame(2, "de") + frame(0);
    CHECK(migrate::receive_frames(feed(good), fd, 1 << 20) == 10);
    char buf[10] = {};
    REQUIRE(::pread(fd, buf, 10, 0) == 10);
    CHECK(std::string(buf, 3) == "abc");
    CHECK(std::string(buf + 3, 5) == std::string(5, '\0'));
    CHECK(std::string(buf + 8, 2) == "de");
    auto code = [&](const std::string& s, std::uint64_t limit = 1 << 20) {
        try {
            migrate::receive_frames(feed(s), fd, limit);
        } catch (const Error& e) {
            return e.code();
        }
        return Errc::internal;  // accepted: not what these expect
    };
    CHECK(code(frame(3, "abc")) == Errc::unavailable);                       // no end frame
    CHECK(code(frame(3, "ab")) == Errc::unavailable);                        // cut in a frame
    CHECK(code(frame(migrate::kMaxDataFrame + 1)) == Errc::invalid_input);   // too big a frame
    CHECK(code(frame(migrate::kFrameHoleBit)) == Errc::invalid_input);       // an empty hole
    CHECK(code(frame(migrate::kFrameHoleBit | 100) + frame(0), 99) == Errc::invalid_input);  // past the limit
    ::close(fd);
}
