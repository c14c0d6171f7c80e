// hvd's view of libvirt: changes made behind its back, domains it did not create, disks it
// does not own, a libvirtd that is down when hvd starts, and SIGTERM during a running task.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

TEST_CASE("changes made with virsh show up in hvd", "[integration][state]") {
    Hvd hvd;
    auto name = hvd.vm("behind");
    REQUIRE(hvd.ctl({"vm", "create", name, "--memory", "64M"}).exit_code == 0);

    // Started, paused and destroyed behind hvd's back: the state cache follows libvirt's events.
    REQUIRE(virsh({"start", name}).exit_code == 0);
    CHECK(wait_until([&] { return hvd.show(name)["state"] == "running"; }, 10s));
    REQUIRE(virsh({"suspend", name}).exit_code == 0);
    CHECK(wait_until([&] { return hvd.show(name)["state"] == "paused"; }, 10s));
    REQUIRE(virsh({"destroy", name}).exit_code == 0);
    CHECK(wait_until([&] { return hvd.show(name)["state"] == "stopped"; }, 10s));
    // Undefined behind its back: gone from hvd too.
    REQUIRE(virsh({"undefine", name}).exit_code == 0);
    CHECK(wait_until([&] { return hvd.ctl({"vm", "show", name}).exit_code == 4; }, 10s));
    json list = hvd.ctl_json({"vm", "list"});
    for (const auto& v : list) CHECK(v["name"] != name);
}

TEST_CASE("a domain hv did not create is listed read-only", "[integration][state]") {
    Hvd hvd;
    auto name = hvd.vm("foreign");
    std::string xml_path = hvd.dir + "/foreign.xml";
    std::ofstream(xml_path) << "<domain type='qemu'><name>" << name
                            << "</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                               "<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>\n";
    auto d = virsh({"define", xml_path});
    INFO(d.describe());
    REQUIRE(d.exit_code == 0);

    bool listed = wait_until(
        [&] {
            auto r = hvd.ctl({"vm", "show", name, "-o", "json"});
            return r.exit_code == 0;
        },
        10s);
    REQUIRE(listed);
    json vm = hvd.show(name);
    CHECK(vm["managed"] == false);
    CHECK(vm["state"] == "stopped");
    CHECK(vm["memory"] == 64ULL << 20);
    CHECK(vm["cpus"] == 1);
    // hv does not change what it does not manage...
    auto r = hvd.ctl({"vm", "set", name, "--cpus", "2"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    // ...but power actions work on it.
    r = hvd.ctl({"vm", "start", name});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(domstate(name) == "running");
    CHECK(hvd.ctl({"vm", "stop", name}).exit_code == 0);
}

TEST_CASE("delete --purge never removes an image hv did not create", "[integration][state][cleanup]") {
    Hvd hvd;
    auto name = hvd.vm("extdisk");
    // An image made by hand in a directory that becomes a pool: attachable, never hv's to delete.
    std::string pool = hvd.dir + "/extpool";
    std::string ext = pool + "/images/external.qcow2";
    REQUIRE(run({"mkdir", "-p", pool + "/images"}).exit_code == 0);
    auto mk = run({"qemu-img", "create", "-q", "-f", "qcow2", ext, "16M"});
    INFO(mk.describe());
    REQUIRE(mk.exit_code == 0);
    // Not yet in a pool: refused (disks are pool volumes, not arbitrary host files).
    auto outside = hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "path=" + ext});
    INFO(outside.describe());
    CHECK(outside.exit_code == 3);
    CHECK_THAT(outside.err, Catch::Contains("not a volume of any storage pool"));
    CHECK_FALSE(domain_exists(name));
    REQUIRE(hvd.ctl({"storage", "pool", "add", "ext", "--path", pool}).exit_code == 0);

    auto r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "path=" + ext, "--disk", "size=16M"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    json vm = hvd.show(name);
    REQUIRE(vm["disks"].size() == 2);
    CHECK(vm["disks"][0]["path"] == ext);
    CHECK(vm["disks"][0]["owned"] == false);
    CHECK(vm["disks"][1]["owned"] == true);
    std::string own = vm["disks"][1]["path"];

    r = hvd.ctl({"vm", "delete", name, "--purge"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK(file_exists(ext));
    CHECK_FALSE(file_exists(own));
    CHECK_FALSE(domain_exists(name));

    // A path that does not exist is rejected up front.
    r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "path=" + pool + "/images/missing.qcow2"});
    INFO(r.describe());
    CHECK(r.exit_code == 3);  // invalid input, before anything is made
    CHECK_FALSE(domain_exists(name));
}

TEST_CASE("hvd started while libvirtd is down answers 503, then connects", "[integration][state][libvirtd]") {
    skip_unless_runnable();
    LibvirtdRestartGuard guard;
    guard.stop_libvirtd();
    Hvd hvd(/*wait_for_libvirt=*/false);  // starts (and serves its socket) without libvirt
    auto name = hvd.vm("late-libvirt");

    auto r = hvd.ctl({"vm", "list"}, 30s);
    INFO(r.describe());
    CHECK(r.exit_code == 6);
    r = hvd.ctl({"vm", "create", name, "--memory", "64M"}, 30s);
    INFO(r.describe());
    CHECK(r.exit_code == 6);
    auto host = hvd.http("GET", "/v1/host");
    CHECK(host.status == 200);
    CHECK(host.json()["libvirt_connected"] == false);

    guard.start_libvirtd();
    REQUIRE(wait_until([&] { return hvd.ctl({"vm", "list"}, 30s).exit_code == 0; }, 30s, 250ms));
    CHECK(hvd.http("GET", "/v1/host").json()["libvirt_connected"] == true);
    r = hvd.ctl({"vm", "create", name, "--memory", "64M"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(domain_exists(name));
    CHECK(hvd.ctl({"vm", "delete", name}).exit_code == 0);
}

TEST_CASE("SIGTERM while a shutdown task waits: hvd stops promptly, the VM is untouched",
          "[integration][state][shutdown]") {
    Hvd hvd;
    auto name = hvd.vm("termtask");
    REQUIRE(hvd.ctl({"vm", "create", name, "--memory", "64M"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "start", name}).exit_code == 0);
    auto r = hvd.ctl({"vm", "shutdown", name, "--timeout", "120", "--force", "--async", "-o", "json"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    std::string id = json::parse(r.out)["id"];
    // SIGTERM once the task is waiting for the guest (the ACPI request is out).
    json task;
    bool waiting = wait_until(
        [&] {
            task = hvd.ctl_json({"task", "show", id});
            return task["state"] == "running" &&
                   hvd.ctl({"task", "log", id}).out.find("ACPI shutdown requested") != std::string::npos;
        },
        20s, 100ms);
    INFO(task.dump());
    REQUIRE(waiting);

    auto t0 = Clock::now();
    int st = hvd.stop();
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    INFO("hvd exit status " << st << " after " << took.count() << " ms");
    CHECK(st == 0);
    CHECK(took < 10s);
    // The interrupted shutdown must not have turned into a forced power-off.
    CHECK(domstate(name) == "running");

    hvd.start();
    CHECK(hvd.show(name)["state"] == "running");
    CHECK(hvd.ctl({"vm", "stop", name}).exit_code == 0);
    CHECK(hvd.ctl({"vm", "delete", name}).exit_code == 0);
}

TEST_CASE("requests right after hvd's socket appears are served (no 503 while libvirtd is up)",
          "[integration][state][startup]") {
    // A client (or a unit ordered after hvd) that waits for the socket and then calls must not
    // get "libvirt is not reachable" from an hvd that simply has not connected yet.
    Hvd hvd(/*wait_for_libvirt=*/false);
    int spurious = 0;
    std::string last_err;
    for (int i = 0; i < 8; ++i) {
        if (i > 0) {
            hvd.stop();
            std::filesystem::remove(hvd.socket);
            hvd.start(/*wait_for_libvirt=*/false);  // returns as soon as the socket accepts
        }
        auto r = hvd.ctl({"vm", "list"});
        if (r.exit_code != 0) {
            ++spurious;
            last_err = r.describe();
        }
    }
    INFO("calls right after start that failed: " << spurious << " of 8; last:\n" << last_err);
    CHECK(spurious == 0);
}
