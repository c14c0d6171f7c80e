// virt::Connection (src/virt/connection.cpp) against libvirt's built-in test driver
// (test:///default: an in-process fake host with one running domain "test"; no libvirtd).
// What the fake cannot do (a libvirtd that goes away, keepalive, QEMU domains for VmManager's
// create path) is covered by the integration tests against the private libvirtd.
#include <chrono>
#include <functional>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "connection.hpp"
#include "hv/error.hpp"

using namespace std::chrono_literals;
using hv::Errc;
using hv::virt::Connection;
using hv::virt::LifecycleEvent;

namespace {

// What the callbacks saw, with waits for them.
struct Recorder {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<LifecycleEvent> events;
    std::vector<bool> changes;

    void event(const LifecycleEvent& e) {
        std::lock_guard lk(mu);
        events.push_back(e);
        cv.notify_all();
    }
    void change(bool up) {
        std::lock_guard lk(mu);
        changes.push_back(up);
        cv.notify_all();
    }
    bool wait_event(const std::string& name, int type, std::chrono::milliseconds limit = 10s) {
        std::unique_lock lk(mu);
        return cv.wait_for(lk, limit, [&] {
            for (const auto& e : events)
                if (e.name == name && e.event == type) return true;
            return false;
        });
    }
    bool wait_changes(std::size_t n, std::chrono::milliseconds limit = 10s) {
        std::unique_lock lk(mu);
        return cv.wait_for(lk, limit, [&] { return changes.size() >= n; });
    }
};

Connection::Options test_options(const std::string& uri = "test:///default") {
    Connection::Options o;
    o.uri = uri;
    o.reconnect_interval_ms = 100;
    return o;
}

hv::Error caught(const std::function<void()>& f) {
    try {
        f();
    } catch (const hv::Error& e) {
        return e;
    }
    FAIL("no hv::Error thrown");
    return hv::Error(Errc::internal, "unreachable");
}

}  // namespace

TEST_CASE("virt: libvirt error numbers map to hv codes", "[virt]") {
    using hv::virt::errc_from_libvirt;
    CHECK(errc_from_libvirt(VIR_ERR_NO_DOMAIN) == Errc::not_found);
    CHECK(errc_from_libvirt(VIR_ERR_NO_NETWORK) == Errc::not_found);
    CHECK(errc_from_libvirt(VIR_ERR_NO_STORAGE_POOL) == Errc::not_found);
    CHECK(errc_from_libvirt(VIR_ERR_NO_STORAGE_VOL) == Errc::not_found);
    CHECK(errc_from_libvirt(VIR_ERR_OPERATION_INVALID) == Errc::conflict);
    CHECK(errc_from_libvirt(VIR_ERR_DOM_EXIST) == Errc::conflict);
    CHECK(errc_from_libvirt(VIR_ERR_OPERATION_DENIED) == Errc::conflict);
    CHECK(errc_from_libvirt(VIR_ERR_INVALID_ARG) == Errc::invalid_input);
    CHECK(errc_from_libvirt(VIR_ERR_XML_ERROR) == Errc::invalid_input);
    CHECK(errc_from_libvirt(VIR_ERR_XML_DETAIL) == Errc::invalid_input);
    CHECK(errc_from_libvirt(VIR_ERR_CONFIG_UNSUPPORTED) == Errc::invalid_input);
    CHECK(errc_from_libvirt(VIR_ERR_NO_SUPPORT) == Errc::unsupported);
    CHECK(errc_from_libvirt(VIR_ERR_OPERATION_UNSUPPORTED) == Errc::unsupported);
    CHECK(errc_from_libvirt(VIR_ERR_OPERATION_TIMEOUT) == Errc::timeout);
    CHECK(errc_from_libvirt(VIR_ERR_AGENT_UNRESPONSIVE) == Errc::timeout);
    CHECK(errc_from_libvirt(VIR_ERR_NO_CONNECT) == Errc::unavailable);
    CHECK(errc_from_libvirt(VIR_ERR_INVALID_CONN) == Errc::unavailable);
    CHECK(errc_from_libvirt(VIR_ERR_RPC) == Errc::unavailable);
    CHECK(errc_from_libvirt(VIR_ERR_INTERNAL_ERROR) == Errc::internal);
    CHECK(errc_from_libvirt(-12345) == Errc::internal);
}

TEST_CASE("virt: a connection to the test driver looks domains up, maps real libvirt errors", "[virt]") {
    Recorder rec;
    Connection c(test_options(), [&](const LifecycleEvent& e) { rec.event(e); }, [&](bool up) { rec.change(up); });
    c.start();
    REQUIRE(c.wait_connected(10s));
    CHECK(c.connected());
    REQUIRE(rec.wait_changes(1));
    {
        std::lock_guard lk(rec.mu);
        CHECK(rec.changes.front() == true);
    }
    auto conn = c.get();
    REQUIRE(conn != nullptr);
    CHECK(c.uri() == "test:///default");

    auto dom = c.domain("test");
    REQUIRE(dom != nullptr);
    CHECK(std::string(virDomainGetName(dom.get())) == "test");

    auto nf = caught([&] { c.domain("it-no-such-domain"); });
    CHECK(nf.code() == Errc::not_found);
    CHECK(std::string(nf.what()) == "vm 'it-no-such-domain' does not exist");

    // Errors raised by libvirt itself, through throw_libvirt_error.
    auto xml = caught([&] {
        if (!virDomainDefineXML(conn.get(), "<domain type='test'><name>broken"))
            hv::virt::throw_libvirt_error("cannot define");
    });
    CHECK(xml.code() == Errc::invalid_input);
    CHECK_THAT(xml.what(), Catch::StartsWith("cannot define: "));

    REQUIRE(virDomainIsActive(dom.get()) == 1);
    auto twice = caught([&] {
        if (virDomainCreate(dom.get()) < 0) hv::virt::throw_libvirt_error("cannot start");
    });
    // The test driver reports this one as VIR_ERR_INTERNAL_ERROR (QEMU's says OPERATION_INVALID):
    // codes without a mapping are internal, with libvirt's message kept.
    CHECK(twice.code() == Errc::internal);
    CHECK(std::string(twice.what()) == "cannot start: internal error: Domain 'test' is already running");
    auto net = caught([&] {
        if (!virNetworkLookupByName(conn.get(), "it-no-such-net")) hv::virt::throw_libvirt_error("cannot find network");
    });
    CHECK(net.code() == Errc::not_found);  // VIR_ERR_NO_NETWORK

    // No metadata in hv's namespace is "none", not an error.
    CHECK_FALSE(hv::virt::get_metadata(dom.get(), "http://hv.dev/xmlns/vm/1", VIR_DOMAIN_AFFECT_CURRENT).has_value());
}

TEST_CASE("virt: lifecycle events of the test driver reach on_event on libvirt's event thread", "[virt]") {
    Recorder rec;
    Connection c(test_options(), [&](const LifecycleEvent& e) { rec.event(e); }, [&](bool up) { rec.change(up); });
    c.start();
    REQUIRE(c.wait_connected(10s));
    // The lifecycle callback is registered on the reconnect thread right after connecting;
    // on_change(true) comes after it.
    REQUIRE(rec.wait_changes(1));
    auto dom = c.domain("test");
    REQUIRE(virDomainSuspend(dom.get()) == 0);
    CHECK(rec.wait_event("test", VIR_DOMAIN_EVENT_SUSPENDED));
    REQUIRE(virDomainResume(dom.get()) == 0);
    CHECK(rec.wait_event("test", VIR_DOMAIN_EVENT_RESUMED));
}

TEST_CASE("virt: drop() reconnects and reports down then up", "[virt]") {
    Recorder rec;
    Connection c(test_options(), [&](const LifecycleEvent& e) { rec.event(e); }, [&](bool up) { rec.change(up); });
    c.start();
    REQUIRE(c.wait_connected(10s));
    REQUIRE(rec.wait_changes(1));
    c.drop("test of the reconnect path");
    REQUIRE(rec.wait_changes(3));
    {
        std::lock_guard lk(rec.mu);
        CHECK(rec.changes == std::vector<bool>{true, false, true});
    }
    REQUIRE(c.wait_connected(10s));
    CHECK(c.domain("test") != nullptr);
}

TEST_CASE("virt: an unreachable URI leaves the connection down: get() is unavailable, not a crash", "[virt]") {
    Recorder rec;
    Connection c(test_options("test:///nonexistent/hv-no-such-file.xml"), [&](const LifecycleEvent& e) { rec.event(e); },
                 [&](bool up) { rec.change(up); });
    c.start();
    CHECK_FALSE(c.wait_connected(500ms));
    CHECK_FALSE(c.connected());
    auto e = caught([&] { c.get(); });
    CHECK(e.code() == Errc::unavailable);
    auto d = caught([&] { c.domain("test"); });
    CHECK(d.code() == Errc::unavailable);
    std::lock_guard lk(rec.mu);
    CHECK(rec.changes.empty());
}
