// TaskManager's journal: tasks written to <dir>/<id>.json and loaded again by the next
// TaskManager (an hvd restart), unfinished ones turned into failed, ids continuing after the
// highest one seen, history trimming on disk, no writes on progress.
#include <stdlib.h>

#include <algorithm>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "../../src/daemon/task_manager.hpp"

using hv::daemon::EventBus;
using hv::daemon::TaskManager;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        std::string t = (fs::temp_directory_path() / "hv-task-journal-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::string slurp(const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

json read_json(const std::string& p) { return json::parse(slurp(p)); }

hv::api::TaskInfo wait_final(TaskManager& m, const std::string& id) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        auto t = m.get(id);
        if (hv::api::is_final(t.state)) return t;
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

std::vector<std::string> json_files(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        auto name = e.path().filename().string();
        if (!name.ends_with(".log")) out.push_back(name);  // task logs: observability_test.cpp
    }
    std::sort(out.begin(), out.end());
    return out;
}

void write_task(const std::string& dir, const std::string& id, const std::string& state) {
    hv::api::TaskInfo t;
    t.id = id;
    t.kind = "volume.create";
    t.target = "volume/local/big";
    t.state = hv::api::task_state_from_string(state);
    t.created_at = 1000;
    if (state != "pending") t.started_at = 1001;
    if (hv::api::is_final(t.state)) t.finished_at = 1002;
    std::ofstream(dir + "/" + id + ".json") << json(t).dump();
}

}  // namespace

TEST_CASE("task journal: a finished task survives a restart as it was", "[task][journal]") {
    TempDir d;
    EventBus bus;
    std::string id;
    std::string file_during_work;
    {
        boost::asio::thread_pool pool(2);
        TaskManager m(pool, bus, 10, d.path);
        auto t = m.submit("volume.create", "volume/local/a", [&](hv::util::Progress& p) {
            p.update(50, "zeroing half way");
            file_during_work = slurp(d.path + "/t-000001.json");
            return json{{"x", 1}};
        });
        id = t.id;
        CHECK(id == "t-000001");
        auto fin = wait_final(m, id);
        CHECK(fin.state == hv::api::TaskState::succeeded);
        pool.join();
        auto j = read_json(d.path + "/" + id + ".json");
        CHECK(j["state"] == "succeeded");
        CHECK(j["result"]["x"] == 1);
    }
    // Progress updates are not written: the file still shows the start.
    CHECK(file_during_work.find("zeroing half way") == std::string::npos);
    CHECK(file_during_work.find("\"running\"") != std::string::npos);
    CHECK(json_files(d.path) == std::vector<std::string>{id + ".json"});  // no .tmp left

    boost::asio::thread_pool pool(2);
    TaskManager m(pool, bus, 10, d.path);
    auto t = m.get(id);
    CHECK(t.state == hv::api::TaskState::succeeded);
    CHECK(t.kind == "volume.create");
    CHECK(t.target == "volume/local/a");
    CHECK(t.result["x"] == 1);
    CHECK(t.finished_at > 0);
    REQUIRE(m.list().size() == 1);
    auto n = m.submit("vm.create", "vm/b", [](hv::util::Progress&) { return json(); });
    CHECK(n.id == "t-000002");
    wait_final(m, n.id);
    pool.join();
}

TEST_CASE("task journal: tasks unfinished when hvd died load as failed and are rewritten", "[task][journal]") {
    TempDir d;
    write_task(d.path, "t-000003", "succeeded");
    write_task(d.path, "t-000007", "running");
    write_task(d.path, "t-000005", "pending");
    std::ofstream(d.path + "/.t-000009.json.tmp") << "{\"id\":";  // a write cut short
    std::ofstream(d.path + "/t-000010.json") << "not json";       // ignored, but not fatal
    EventBus bus;
    boost::asio::thread_pool pool(2);
    TaskManager m(pool, bus, 10, d.path);

    for (std::string id : {"t-000007", "t-000005"}) {
        auto t = m.get(id);
        INFO(id);
        CHECK(t.state == hv::api::TaskState::failed);
        REQUIRE(t.error.has_value());
        CHECK(t.error->code == hv::Errc::internal);
        CHECK_THAT(t.error->message, Catch::Contains("hvd stopped while the task was running"));
        CHECK(t.finished_at > 1002);
        auto j = read_json(d.path + "/" + id + ".json");
        CHECK(j["state"] == "failed");
        CHECK(j["error"]["code"] == "internal");
    }
    auto ok = m.get("t-000003");
    CHECK(ok.state == hv::api::TaskState::succeeded);
    CHECK(ok.finished_at == 1002);
    CHECK_FALSE(fs::exists(d.path + "/.t-000009.json.tmp"));
    CHECK_THROWS(m.get("t-000010"));

    // Ids continue after the highest one seen (the unreadable t-000010 counts too).
    auto n = m.submit("vm.create", "vm/c", [](hv::util::Progress&) { return json(); });
    CHECK(n.id == "t-000011");
    wait_final(m, n.id);
    pool.join();
}

TEST_CASE("task journal: only the last `history` finished tasks stay on disk", "[task][journal]") {
    TempDir d;
    EventBus bus;
    {
        boost::asio::thread_pool pool(2);
        TaskManager m(pool, bus, 3, d.path);
        for (int i = 0; i < 6; ++i) {
            auto t = m.submit("vm.create", "vm/x", [](hv::util::Progress&) { return json(); });
            wait_final(m, t.id);
        }
        pool.join();
        CHECK(m.list().size() == 3);
        CHECK(json_files(d.path) == std::vector<std::string>{"t-000004.json", "t-000005.json", "t-000006.json"});
    }
    // A smaller history at the next start trims at load; ids still continue.
    boost::asio::thread_pool pool(2);
    TaskManager m(pool, bus, 2, d.path);
    CHECK(json_files(d.path) == std::vector<std::string>{"t-000005.json", "t-000006.json"});
    CHECK_THROWS(m.get("t-000004"));
    auto t = m.submit("vm.create", "vm/y", [](hv::util::Progress&) { return json(); });
    CHECK(t.id == "t-000007");
    wait_final(m, t.id);
    pool.join();
}

TEST_CASE("task manager without a journal directory keeps tasks in memory only", "[task][journal]") {
    EventBus bus;
    boost::asio::thread_pool pool(2);
    TaskManager m(pool, bus, 10);
    auto t = m.submit("vm.create", "vm/z", [](hv::util::Progress&) { return json{{"ok", true}}; });
    CHECK(t.id == "t-000001");
    CHECK(wait_final(m, t.id).state == hv::api::TaskState::succeeded);
    pool.join();
}
