// ACPI shutdown (with the tiny test guest), forced shutdown after a timeout, and the event stream.
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

TEST_CASE("shutdown --timeout --force of a VM without an OS powers it off after the timeout",
          "[integration][shutdown]") {
    Hvd hvd;
    auto name = hvd.vm("noos");
    REQUIRE(hvd.ctl({"vm", "create", name, "--memory", "64M"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "start", name}).exit_code == 0);

    // Without --force the task fails with code timeout (exit 7) and the VM keeps running.
    auto t0 = Clock::now();
    auto r = hvd.ctl({"vm", "shutdown", name, "--timeout", "3"});
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    INFO(r.describe() << "\ntook " << took.count() << " ms");
    CHECK(r.exit_code == 7);
    CHECK(took >= 2500ms);
    CHECK(domstate(name) == "running");

    t0 = Clock::now();
    r = hvd.ctl({"vm", "shutdown", name, "--timeout", "5", "--force"});
    took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    INFO(r.describe() << "\ntook " << took.count() << " ms");
    CHECK(r.exit_code == 0);
    CHECK(took >= 4500ms);
    CHECK(took < 60s);
    CHECK(hvd.show(name)["state"] == "stopped");
    CHECK(domstate(name) == "shut off");

    // Shutting down a stopped VM is a conflict.
    CHECK(hvd.ctl({"vm", "shutdown", name, "--timeout", "1"}).exit_code == 5);
    REQUIRE(hvd.ctl({"vm", "delete", name}).exit_code == 0);
}

TEST_CASE("ACPI shutdown of the booted test guest stops it without force", "[integration][shutdown][guest]") {
    Hvd hvd;
    std::string guest = env("HV_TEST_GUEST_DIR");
    REQUIRE(file_exists(guest + "/vmlinuz"));
    REQUIRE(file_exists(guest + "/initrd.gz"));
    auto name = hvd.vm("acpi");
    auto r = hvd.ctl({"vm", "create", name, "--memory", "128M", "--kernel", guest + "/vmlinuz", "--initrd",
                      guest + "/initrd.gz", "--cmdline", "console=ttyS0 quiet panic=-1"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    json vm = hvd.show(name);
    CHECK(vm["kernel"] == guest + "/vmlinuz");
    CHECK(vm["cmdline"] == "console=ttyS0 quiet panic=-1");
    REQUIRE(hvd.ctl({"vm", "start", name}).exit_code == 0);

    // hvd logs each VM's serial console to <state-dir>/logs/<name>.serial.log.
    std::string serial = hvd.log_dir + "/" + name + ".serial.log";
    bool booted = wait_until([&] { return read_file(serial).find("HV-GUEST-BOOTED") != std::string::npos; }, 90s,
                             250ms);
    INFO("serial log " << serial << ":\n" << read_file(serial));
    REQUIRE(booted);

    auto t0 = Clock::now();
    r = hvd.ctl({"vm", "shutdown", name, "--timeout", "60"});
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    INFO(r.describe() << "\ntook " << took.count() << " ms");
    CHECK(r.exit_code == 0);
    CHECK(took < 30s);
    CHECK(hvd.show(name)["state"] == "stopped");
    CHECK(domstate(name) == "shut off");
    // The guest itself powered off (its acpid ran), it was not killed.
    CHECK(wait_until([&] { return read_file(serial).find("HV-GUEST-POWEROFF") != std::string::npos; }, 5s));
    REQUIRE(hvd.ctl({"vm", "delete", name}).exit_code == 0);
}

TEST_CASE("hvctl events -o json streams a lifecycle event when a VM starts", "[integration][events]") {
    Hvd hvd;
    auto name = hvd.vm("events");
    REQUIRE(hvd.ctl({"vm", "create", name, "--memory", "64M"}).exit_code == 0);

    Child events(hvd.ctl_argv({"events", "-o", "json"}));
    REQUIRE(hvd.await_event_stream(events));
    REQUIRE(hvd.ctl({"vm", "start", name}).exit_code == 0);

    std::uint64_t last_seq = 0;
    bool ordered = true;
    auto is_started = [&](const std::string& l) {
        auto j = json::parse(l, nullptr, false);
        INFO("event line: " << l);
        CHECK(j.is_object());
        if (!j.is_object()) return false;
        for (const char* k : {"seq", "time", "type", "target", "data"}) CHECK(j.contains(k));
        auto seq = j.value("seq", std::uint64_t{0});
        if (seq <= last_seq) ordered = false;
        last_seq = seq;
        return j.value("type", "") == "vm.lifecycle" && j.value("target", "") == "vm/" + name &&
               j["data"].value("state", "") == "running";
    };
    auto line = events.wait_line(is_started, 15s);
    INFO("event stream so far:\n" << events.out());
    CHECK(line.has_value());
    CHECK(ordered);

    // Stopping produces the matching event on the same stream.
    REQUIRE(hvd.ctl({"vm", "stop", name}).exit_code == 0);
    auto stopped = events.wait_line(
        [&](const std::string& l) {
            auto j = json::parse(l, nullptr, false);
            return j.is_object() && j.value("type", "") == "vm.lifecycle" && j.value("target", "") == "vm/" + name &&
                   j["data"].value("state", "") == "stopped";
        },
        15s);
    INFO("event stream so far:\n" << events.out());
    CHECK(stopped.has_value());

    // The stream ends cleanly when hvd stops: hvctl exits instead of hanging.
    REQUIRE(hvd.ctl({"vm", "delete", name}).exit_code == 0);
    auto t0 = Clock::now();
    CHECK(hvd.stop() == 0);  // an open event stream must not keep hvd from stopping
    CHECK(Clock::now() - t0 < 10s);
    Result r = events.finish(15s);
    INFO(r.describe());
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == 10);  // hvd unreachable: "hvd closed the event stream"
    hvd.start();  // for the destructor's cleanup
}
