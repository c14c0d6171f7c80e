// virt::VmManager against libvirt's test driver (test:///default, in process, no libvirtd):
// the cache built at connect, hv metadata read back, lifecycle actions and their events, and
// the error codes of wrong states and unknown names. The driver only runs domains of type
// "test", so `create` (QEMU domain XML, pool volumes) is left to the integration tests.
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <libvirt/libvirt.h>

#include "hv/error.hpp"
#include "hv/storage/pool_manager.hpp"
#include "hv/virt/domain_xml.hpp"
#include "vm_manager.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using hv::Errc;
using hv::api::VmState;
using nlohmann::json;

namespace {

struct Published {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::pair<std::string, json>> events;  // target, data (vm.lifecycle only)

    void add(const std::string& type, const std::string& target, const json& data) {
        if (type != "vm.lifecycle") return;
        std::lock_guard lk(mu);
        events.emplace_back(target, data);
        cv.notify_all();
    }
    bool wait_state(const std::string& target, const std::string& state, std::chrono::milliseconds limit = 10s) {
        std::unique_lock lk(mu);
        return cv.wait_for(lk, limit, [&] {
            for (const auto& [t, d] : events)
                if (t == target && d.value("state", "") == state) return true;
            return false;
        });
    }
};

Errc code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const hv::Error& e) {
        return e.code();
    }
    FAIL("no hv::Error thrown");
    return Errc::internal;
}

// Defines a "test" domain carrying hv's metadata for `spec` in the test driver. The driver's
// state lives while a connection to it is open: the caller keeps the returned one open.
virConnectPtr define_managed(const hv::api::VmSpec& spec) {
    virConnectPtr c = virConnectOpen("test:///default");
    REQUIRE(c != nullptr);
    std::string xml = "<domain type='test'><name>" + spec.name + "</name><memory unit='KiB'>" +
                      std::to_string(spec.memory / 1024) + "</memory><vcpu>" + std::to_string(spec.cpus) +
                      "</vcpu><os><type arch='x86_64'>hvm</type></os><metadata>" + hv::virt::metadata_xml(spec) +
                      "</metadata></domain>";
    virDomainPtr d = virDomainDefineXML(c, xml.c_str());
    INFO(xml);
    REQUIRE(d != nullptr);
    virDomainFree(d);
    return c;
}

struct ConnCloser {
    virConnectPtr c;
    ~ConnCloser() { virConnectClose(c); }
};

struct TempDir {
    std::string path;
    TempDir() {
        std::string t = (fs::temp_directory_path() / "hv-vmm-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

}  // namespace

TEST_CASE("vm manager: test driver domains in the cache, actions, events and error codes", "[virt][vm_manager]") {
    hv::api::VmSpec spec;
    spec.name = "it-unit-web01";
    spec.cpus = 2;
    spec.memory = 128ULL << 20;
    spec.description = "made by the unit test";
    ConnCloser keep{define_managed(spec)};  // test:///default is shared while a connection is open

    TempDir d;
    hv::api::PoolSpec local;
    local.name = "local";
    local.type = "dir";
    local.path = d.path + "/images";
    fs::create_directories(local.path);
    hv::storage::PoolManager pools(d.path + "/pools.json", local);
    Published pub;
    hv::virt::VmManager::Options o;
    o.connection.uri = "test:///default";
    o.connection.reconnect_interval_ms = 100;
    o.accel = "tcg";
    hv::virt::VmManager vms(o, pools, [&](const std::string& t, const std::string& tg, const json& j) { pub.add(t, tg, j); });
    vms.start();
    REQUIRE(vms.wait_ready(10s));

    // The cache: hv's VM (managed, spec from metadata) and the driver's own "test" (not hv's).
    auto list = vms.list();
    std::map<std::string, hv::api::VmInfo> by;
    for (const auto& v : list) by[v.spec.name] = v;
    REQUIRE(by.count(spec.name) == 1);
    CHECK(by[spec.name].managed);
    CHECK(by[spec.name].spec.cpus == 2);
    CHECK(by[spec.name].spec.description == "made by the unit test");
    CHECK(by[spec.name].state == VmState::stopped);
    REQUIRE(by.count("test") == 1);
    CHECK_FALSE(by["test"].managed);
    CHECK(by["test"].state == VmState::running);
    int running = -1;
    CHECK(vms.count(&running) == list.size());
    CHECK(running == 1);

    // Actions change libvirt and, through its events, the cache.
    auto info = vms.action(spec.name, "start");
    CHECK(info.state == VmState::running);
    CHECK(pub.wait_state("vm/" + spec.name, "running"));
    CHECK(vms.get(spec.name).state == VmState::running);
    CHECK(code_of([&] { vms.action(spec.name, "start"); }) == Errc::conflict);
    vms.action(spec.name, "suspend");
    CHECK(pub.wait_state("vm/" + spec.name, "paused"));
    CHECK(vms.get(spec.name).state == VmState::paused);
    vms.action(spec.name, "resume");
    vms.action(spec.name, "stop");
    CHECK(pub.wait_state("vm/" + spec.name, "stopped"));
    CHECK(vms.get(spec.name).state == VmState::stopped);
    CHECK(code_of([&] { vms.action(spec.name, "suspend"); }) == Errc::conflict);

    // Unknown names and actions.
    CHECK(code_of([&] { vms.get("it-no-such-vm"); }) == Errc::not_found);
    CHECK(code_of([&] { vms.action("it-no-such-vm", "start"); }) == Errc::not_found);
    CHECK(code_of([&] { vms.action(spec.name, "explode"); }) == Errc::invalid_input);
    // A VM hv did not make cannot be changed through hv.
    hv::api::VmPatch patch;
    patch.cpus = 3;
    CHECK(code_of([&] { vms.update("test", patch); }) == Errc::conflict);
}
