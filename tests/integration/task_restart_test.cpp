// Tasks across an hvd crash: hvd SIGKILLed in the middle of an eager-zero comes back with the
// task failed (clear message), the partial volume removed, and task ids that do not repeat.
#include <sys/statvfs.h>

#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {

constexpr std::uint64_t MiB = 1ULL << 20;

std::uint64_t pool_free_bytes(const std::string& dir) {
    struct statvfs st {};
    REQUIRE(::statvfs(dir.c_str(), &st) == 0);
    return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

// "t-000042" -> 42
std::uint64_t id_number(const std::string& id) { return std::stoull(id.substr(2)); }

}  // namespace

TEST_CASE("hvd killed during an eager-zero: after restart the task is failed and the partial volume is gone",
          "[integration][storage][task]") {
    Hvd hvd;
    // Large enough to be caught while zeroing, small enough for CI disks.
    std::uint64_t size = 12ULL << 30;
    if (pool_free_bytes(hvd.pool_dir) < size + (4ULL << 30)) {
        WARN("less than 16 GiB free for the pool: the kill-during-zeroing test uses 2 GiB");
        size = 2ULL << 30;
    }
    auto t = hvd.ctl_json({"storage", "volume", "create", "local", "big", "--size", std::to_string(size / MiB) + "M",
                           "--format", "raw", "--provision", "eager-zeroed", "--async"});
    std::string id = t["id"];
    json seen;
    auto deadline = Clock::now() + 60s;
    while (Clock::now() < deadline) {
        seen = hvd.ctl_json({"task", "show", id});
        std::string msg = seen.value("message", "");
        if (seen["state"] == "running" && msg.find("zeroing") != std::string::npos) break;
        if (seen["state"] != "running" && seen["state"] != "pending") break;
        std::this_thread::sleep_for(20ms);
    }
    INFO("task before the kill: " << seen.dump());
    bool caught = seen["state"] == "running" && seen.value("message", "").find("zeroing") != std::string::npos;

    hvd.kill_hard();
    hvd.start();

    auto after = hvd.ctl_json({"task", "show", id});
    INFO("task after the restart: " << after.dump());
    if (caught && after["state"] != "succeeded") {
        CHECK(after["state"] == "failed");
        CHECK(after["error"]["code"] == "internal");
        CHECK_THAT(after["error"]["message"].get<std::string>(), Catch::Contains("hvd stopped while the task was running"));
        CHECK(after["finished_at"].get<std::int64_t>() > 0);
        auto w = hvd.ctl({"task", "wait", id});
        INFO(w.describe());
        CHECK(w.exit_code != 0);
        CHECK(hvd.ctl({"storage", "volume", "show", "local", "big"}).exit_code == 4);
        for (const auto& name : list_dir(hvd.image_dir)) {
            INFO("left in the image dir: " << name);
            CHECK(name.find("big") == std::string::npos);  // neither the volume nor its .partial
        }
    } else {
        WARN("the zeroing finished before hvd was killed: " << after.dump());
        CHECK(after["state"] == "succeeded");
    }

    // Ids continue after the ones of the previous run.
    auto n = hvd.ctl_json({"storage", "volume", "create", "local", "small", "--size", "16M", "--async"});
    std::string nid = n["id"];
    CHECK(nid != id);
    CHECK(id_number(nid) > id_number(id));
    auto w = hvd.ctl({"task", "wait", nid});
    INFO(w.describe());
    CHECK(w.exit_code == 0);
}
