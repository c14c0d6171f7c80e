// hvd configuration: schema-driven TOML parsing (src/daemon/config.cpp).
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "config.hpp"
#include "hv/error.hpp"

using hv::daemon::parse_config;

namespace {
std::string error_of(const std::string& toml) {
    try {
        parse_config(toml, "test.toml");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::invalid_input);
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("config: empty file gives the defaults", "[config]") {
    auto c = parse_config("", "test.toml");
    CHECK(c.socket == "/run/hv/hvd.sock");
    CHECK(c.libvirt_uri == "qemu:///system");
    CHECK(c.state_dir == "/var/lib/hv");
    CHECK(c.effective_image_dir() == "/var/lib/hv/images");
    CHECK(c.accel == "auto");
    CHECK(c.workers == 8);
}

TEST_CASE("config: known keys are read", "[config]") {
    auto c = parse_config(R"(
[daemon]
socket = "/tmp/x.sock"
workers = 4
log_level = "debug"
[libvirt]
uri = "qemu:///session"
accel = "tcg"
[storage]
image_dir = "/srv/images"
)",
                          "test.toml");
    CHECK(c.socket == "/tmp/x.sock");
    CHECK(c.workers == 4);
    CHECK(c.log_level == "debug");
    CHECK(c.libvirt_uri == "qemu:///session");
    CHECK(c.accel == "tcg");
    CHECK(c.effective_image_dir() == "/srv/images");
}

TEST_CASE("config: unknown keys and sections are named", "[config]") {
    auto e = error_of("[daemon]\nsokcet = \"/x\"\n");
    CHECK_THAT(e, Catch::Contains("daemon.sokcet"));
    CHECK_THAT(e, Catch::Contains("test.toml:2"));
    CHECK_THAT(error_of("[networking]\nx = 1\n"), Catch::Contains("[networking]"));
}

TEST_CASE("config: types, ranges and enumerations are checked", "[config]") {
    CHECK_THAT(error_of("[daemon]\nworkers = 0\n"), Catch::Contains("daemon.workers") && Catch::Contains("out of range"));
    CHECK_THAT(error_of("[daemon]\nworkers = \"8\"\n"), Catch::Contains("must be an integer"));
    CHECK_THAT(error_of("[libvirt]\naccel = \"hvf\"\n"), Catch::Contains("libvirt.accel") && Catch::Contains("auto, kvm, tcg"));
    CHECK_THAT(error_of("[daemon]\nsocket = 5\n"), Catch::Contains("must be a string"));
    CHECK_THAT(error_of("[daemon]\nsocket = \"relative.sock\"\n"), Catch::Contains("absolute"));
    CHECK_THAT(error_of("[daemon\n"), Catch::Contains("test.toml:1"));
}

TEST_CASE("config: an external etcd needs its CA and a client certificate, and only it takes them", "[config]") {
    CHECK_THAT(error_of("[cluster]\nendpoints = \"https://10.0.0.5:2379\"\n"),
               Catch::Contains("cluster.etcd_ca") && Catch::Contains("client certificate"));
    CHECK_THAT(error_of("[cluster]\netcd_ca = \"/etc/etcd/ca.crt\"\n"), Catch::Contains("cluster.endpoints"));
    CHECK_THAT(error_of("[cluster]\nendpoints = \"https://e:2379\"\netcd_ca = \"ca.crt\"\netcd_cert = \"/c\"\netcd_key = \"/k\"\n"),
               Catch::Contains("absolute"));
    auto c = parse_config("[cluster]\nendpoints = \"https://e1:2379,https://e2:2379\"\netcd_ca = \"/ca\"\netcd_cert = \"/c\"\n"
                          "etcd_key = \"/k\"\n",
                          "test.toml");
    CHECK(c.cluster_etcd_ca == "/ca");
    CHECK(c.cluster_etcd_key == "/k");
}

TEST_CASE("config: the printed defaults parse back to the defaults", "[config]") {
    auto text = hv::daemon::default_config_toml();
    CHECK_THAT(text, Catch::Contains("[libvirt]"));
    auto c = parse_config(text, "defaults");
    CHECK(c.socket == hv::daemon::Config{}.socket);
}

TEST_CASE("config: etc/hvd.toml is the generated default", "[config]") {
    std::ifstream in(std::string(HV_TEST_DATA_DIR) + "/../../etc/hvd.toml");
    REQUIRE(in);
    std::stringstream ss;
    ss << in.rdbuf();
    // Regenerate with: hvd --print-default-config > etc/hvd.toml
    CHECK(ss.str() == hv::daemon::default_config_toml());
}
