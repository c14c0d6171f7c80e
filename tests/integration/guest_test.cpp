// The guest layer against a real hvd: VMs and containers share one name space also when they
// are created at the same moment, and container lifecycle events carry state and reason as
// VM events do (guest.lifecycle for both kinds).
#include <filesystem>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Polls the task until it is no longer queued or running; returns it.
json finished_task(const Hvd& h, const std::string& id) {
    json t;
    for (int i = 0; i < 3000; ++i) {
        auto r = h.ctl({"task", "show", id, "-o", "json"});
        if (r.exit_code == 0) {
            t = json::parse(r.out, nullptr, false);
            auto st = t.value("state", "");
            if (st != "running" && st != "queued" && st != "pending") return t;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL("task " << id << " did not finish: " << t.dump());
    return t;
}

}  // namespace

TEST_CASE("guests: a VM and a container of one name created at the same time: exactly one is made", "[guest][ct]") {
    skip_unless_runnable();
    Hvd h;
    CtCleanup cleanup;
    fs::permissions(h.dir, fs::perms::others_exec, fs::perm_options::add);
    auto r = h.ctl({"ct", "template", "build", "busybox"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);

    // Several rounds, each started from two threads at once; which one wins varies.
    int vm_won = 0, ct_won = 0;
    for (int round = 0; round < 6; ++round) {
        const std::string name = h.vm("it-race" + std::to_string(round));
        cleanup.names.push_back(name);
        HttpResponse vm_resp, ct_resp;
        std::thread a([&] { vm_resp = h.http("POST", "/v1/vms", json{{"name", name}, {"memory", 64 << 20}}.dump()); });
        std::thread b([&] { ct_resp = h.http("POST", "/v1/cts", json{{"name", name}, {"template", "busybox"}}.dump()); });
        a.join();
        b.join();
        INFO("round " << round << ": vm " << vm_resp.status << " " << vm_resp.body << "; ct " << ct_resp.status << " "
                      << ct_resp.body);
        int succeeded = 0;
        for (auto* resp : {&vm_resp, &ct_resp}) {
            if (resp->status == 409) {
                CHECK(resp->json()["error"]["code"] == "conflict");
                continue;
            }
            REQUIRE(resp->status == 202);
            auto t = finished_task(h, resp->json()["id"].get<std::string>());
            INFO(t.dump());
            if (t["state"] == "succeeded") ++succeeded;
            else CHECK(t["error"]["code"] == "conflict");
        }
        CHECK(succeeded == 1);
        bool vm = domain_exists(name), ct = lxc_domain_exists(name);
        CHECK(vm != ct);
        vm_won += vm;
        ct_won += ct;
        // The loser's name is free again once the winner is gone.
        if (vm) CHECK(h.ctl({"vm", "delete", name}).exit_code == 0);
        if (ct) CHECK(h.ctl({"ct", "delete", name}).exit_code == 0);
        CHECK_FALSE(domain_exists(name));
        CHECK_FALSE(lxc_domain_exists(name));
    }
    INFO("VM won " << vm_won << " rounds, the container " << ct_won);
    CHECK(vm_won + ct_won == 6);
}

TEST_CASE("guests: container lifecycle events carry state and reason, and come again as guest.lifecycle", "[guest][ct]") {
    skip_unless_runnable();
    Hvd h;
    CtCleanup cleanup;
    fs::permissions(h.dir, fs::perms::others_exec, fs::perm_options::add);
    REQUIRE(h.ctl({"ct", "template", "build", "busybox"}).exit_code == 0);
    const std::string name = "it-ctev-" + std::to_string(::getpid());
    cleanup.names.push_back(name);
    REQUIRE(h.ctl({"ct", "create", name, "--template", "busybox", "--memory", "64M"}).exit_code == 0);

    Child events(h.ctl_argv({"events", "-o", "json"}));
    REQUIRE(h.await_event_stream(events));
    auto start = h.http("POST", "/v1/cts/" + name + "/start");
    REQUIRE(start.status == 200);
    auto event_of = [&](const std::string& type, const std::string& state) {
        return events.wait_line(
            [&](const std::string& l) {
                auto j = json::parse(l, nullptr, false);
                return j.is_object() && j.value("type", "") == type && j.value("target", "") == "ct/" + name &&
                       j["data"].value("state", "") == state;
            },
            std::chrono::seconds(30));
    };
    auto started = event_of("ct.lifecycle", "running");
    REQUIRE(started);
    auto j = json::parse(*started);
    CHECK(j["data"]["event"] == "started");
    CHECK(j["data"]["reason"] == "booted");
    auto g = event_of("guest.lifecycle", "running");
    REQUIRE(g);
    j = json::parse(*g);
    CHECK(j["data"]["kind"] == "ct");
    CHECK(j["data"]["name"] == name);

    REQUIRE(h.ctl({"ct", "stop", name}).exit_code == 0);
    auto stopped = event_of("ct.lifecycle", "stopped");
    REQUIRE(stopped);
    j = json::parse(*stopped);
    CHECK(j["data"]["event"] == "stopped");
    CHECK(j["data"]["reason"] == "destroyed");
    REQUIRE(h.ctl({"ct", "delete", name}).exit_code == 0);
    CHECK(event_of("ct.lifecycle", "deleted"));
}
