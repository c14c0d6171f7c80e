// util::IntentLog: records written durably before side effects, removed when the operation
// ends, loaded by the next process (an hvd restart) and rolled back idempotently; a torn tmp
// file is ignored; a handler that says "unavailable" keeps the record for a later pass.
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "hv/util/atomic_file.hpp"

#include "hv/error.hpp"
#include "hv/util/intent_log.hpp"
#include "hv/util/log_context.hpp"

using hv::util::IntentLog;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        std::string t = (fs::temp_directory_path() / "hv-intent-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::set<std::string> names(const std::string& dir) {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) out.insert(e.path().filename().string());
    return out;
}

void touch(const std::string& p) { std::ofstream(p) << "x"; }

// Runs `fn` in a child process, which ends it with _exit before its locals are destroyed, like
// hvd killed in the middle of an operation. Returns the child's exit status.
int in_killed_child(const std::function<void()>& fn) {
    pid_t pid = ::fork();
    if (pid == 0) {
        try {
            fn();
        } catch (...) {
            ::_exit(3);
        }
        ::_exit(0);
    }
    int st = -1;
    ::waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

// A "file" undo like the storage one: removes the path if it is there.
IntentLog::Undo remove_file(int* calls) {
    return [calls](const json& d) -> std::vector<std::string> {
        ++*calls;
        auto p = d.at("path").get<std::string>();
        if (::unlink(p.c_str()) != 0) return {};
        return {"removed " + p};
    };
}

}  // namespace

TEST_CASE("intent log: a record is on disk while the operation runs and gone when it ends", "[intent]") {
    TempDir t;
    std::string dir = t.path + "/pending";
    IntentLog log(dir);
    {
        hv::util::LogScope scope(hv::util::LogFields{{"TASK_ID", "t-000042"}});
        auto in = log.begin("vm.create", "vm/web01");
        CHECK(names(dir).empty());  // nothing written before the first item
        in.add("volume", {{"pool", "local"}, {"name", "web01-disk0"}});
        auto i2 = in.add("vm-domain", {{"name", "web01"}, {"uuid", "u1"}});
        in.update(i2, {{"name", "web01"}, {"uuid", "u2"}});
        auto recs = IntentLog(dir).load();  // what a restarted hvd would see now
        REQUIRE(recs.size() == 1);
        CHECK(recs[0].id == in.id());
        CHECK(recs[0].op == "vm.create");
        CHECK(recs[0].target == "vm/web01");
        CHECK(recs[0].task == "t-000042");
        REQUIRE(recs[0].items.size() == 2);
        CHECK(recs[0].items[0].type == "volume");
        CHECK(recs[0].items[0].data.at("name") == "web01-disk0");
        CHECK(recs[0].items[1].data.at("uuid") == "u2");
        // Only the record itself: no tmp file stays behind after a write.
        CHECK(names(dir) == std::set<std::string>{in.id() + ".json"});
        auto scratch = in.scratch_dir();
        CHECK(fs::is_directory(scratch));
        touch(scratch + "/file");
    }
    CHECK(names(dir).empty());  // the Intent left scope: record and scratch directory removed
}

TEST_CASE("intent log: recovery rolls back items in reverse order, once, and is idempotent", "[intent]") {
    TempDir t;
    std::string dir = t.path + "/pending";
    std::string a = t.path + "/.a.partial", b = t.path + "/.b.partial";
    std::string scratch;
    REQUIRE(in_killed_child([&] {
                IntentLog w(dir);
                auto in = w.begin("template.build", "template/local/busybox.tar.gz");
                in.add("file", {{"path", a}});
                touch(a);
                in.add("file", {{"path", b}});
                touch(b);
                touch(in.scratch_dir() + "/junk");
                ::_exit(0);  // killed here: no destructor runs
            }) == 0);
    for (const auto& n : names(dir))
        if (n.ends_with(".d")) scratch = dir + "/" + n;
    REQUIRE_FALSE(scratch.empty());
    REQUIRE(fs::exists(scratch + "/junk"));

    IntentLog log(dir);
    int calls = 0;
    std::vector<std::string> order;
    log.on("file", [&](const json& d) -> std::vector<std::string> {
        order.push_back(d.at("path").get<std::string>());
        return remove_file(&calls)(d);
    });
    auto out = log.recover();
    REQUIRE(out.size() == 1);
    CHECK(out[0].error.empty());
    CHECK_FALSE(out[0].deferred);
    CHECK(order == std::vector<std::string>{b, a});  // reverse order of the side effects
    CHECK(out[0].done == std::vector<std::string>{"removed " + b, "removed " + a, "removed its scratch directory"});
    CHECK_FALSE(fs::exists(a));
    CHECK_FALSE(fs::exists(b));
    CHECK_FALSE(fs::exists(scratch));
    CHECK(names(dir).empty());
    // A second pass (a second restart) finds nothing and does nothing.
    CHECK(log.recover().empty());
    CHECK(calls == 2);
    // The handler itself is idempotent: running it on a gone file removes nothing.
    CHECK(remove_file(&calls)({{"path", a}}).empty());
}

TEST_CASE("intent log: a torn tmp file is ignored and removed, an unreadable record is set aside", "[intent]") {
    TempDir t;
    std::string dir = t.path + "/pending";
    fs::create_directories(dir);
    // A crash during the first write of a record: only its tmp file exists, half written.
    std::ofstream(hv::util::atomic_temp_path(dir + "/t-000001-77-1.json")) << R"({"id": "t-000001-77-1", "op": "vm.cre)";
    // A crash during an update: the old record and a torn tmp of the new version.
    std::ofstream(dir + "/t-000002-77-2.json")
        << json{{"id", "t-000002-77-2"}, {"op", "volume.create"}, {"target", "volume/local/v"}, {"task", "t-000002"},
                {"created", 1}, {"items", json::array({{{"type", "probe"}, {"data", {{"n", 1}}}}})}}
               .dump();
    std::ofstream(hv::util::atomic_temp_path(dir + "/t-000002-77-2.json")) << R"({"id": "t-000002-77-2", "op": "volu)";
    // Garbage under a record name (not something hv writes; kept for inspection).
    std::ofstream(dir + "/bad-1-1.json") << "not json";

    IntentLog log(dir);
    std::vector<int> seen;
    log.on("probe", [&](const json& d) -> std::vector<std::string> {
        seen.push_back(d.at("n").get<int>());
        return {"probe undone"};
    });
    auto out = log.recover();
    REQUIRE(out.size() == 1);
    CHECK(out[0].record.task == "t-000002");
    CHECK(out[0].done == std::vector<std::string>{"probe undone"});
    CHECK(seen == std::vector<int>{1});  // the old version of the record, not the torn one
    CHECK(names(dir) == std::set<std::string>{"bad-1-1.json.bad"});
}

TEST_CASE("intent log: an unavailable handler defers the record, an unknown type fails it", "[intent]") {
    TempDir t;
    std::string dir = t.path + "/pending";
    std::string f = t.path + "/.v.partial";
    touch(f);
    REQUIRE(in_killed_child([&] {
                IntentLog w(dir);
                auto in = w.begin("vm.create", "vm/x");
                in.add("file", {{"path", f}});
                in.add("vm-domain", {{"name", "x"}, {"uuid", "u"}});
                auto other = w.begin("ct.create", "ct/y");
                other.add("mystery", json::object());
                ::_exit(0);  // killed here: no destructor runs
            }) == 0);
    IntentLog log(dir);
    int calls = 0;
    bool libvirt_up = false;
    log.on("file", remove_file(&calls));
    log.on("vm-domain", [&](const json&) -> std::vector<std::string> {
        if (!libvirt_up) hv::fail(hv::Errc::unavailable, "libvirt is not connected");
        return {"undefined vm x"};
    });
    auto first = log.recover();
    REQUIRE(first.size() == 2);
    int deferred = 0, failed = 0;
    for (const auto& o : first) {
        if (o.record.op == "vm.create") {
            CHECK(o.deferred);
            CHECK(o.error.find("not connected") != std::string::npos);
            ++deferred;
        } else {
            CHECK_FALSE(o.deferred);
            CHECK(o.error.find("mystery") != std::string::npos);
            ++failed;
        }
    }
    CHECK(deferred == 1);
    CHECK(failed == 1);
    CHECK(fs::exists(f));  // nothing of a deferred record is touched before the domain is checked
    CHECK(calls == 0);
    CHECK(log.pending() == 2);

    libvirt_up = true;
    auto second = log.recover();
    REQUIRE(second.size() == 2);
    for (const auto& o : second)
        if (o.record.op == "vm.create") {
            CHECK(o.error.empty());
            CHECK(o.done == std::vector<std::string>{"undefined vm x", "removed " + f});
        }
    CHECK_FALSE(fs::exists(f));
    CHECK(log.pending() == 1);  // the record nobody can undo stays (and is reported each start)
}

TEST_CASE("intent log: a disabled log writes nothing, uuids are version 4", "[intent]") {
    IntentLog off("");
    auto in = off.begin("volume.create", "volume/local/v");
    in.add("volume", {{"pool", "local"}, {"name", "v"}});
    CHECK(off.load().empty());
    auto u = hv::util::random_uuid();
    REQUIRE(u.size() == 36);
    CHECK(u[14] == '4');
    CHECK(std::string("89ab").find(u[19]) != std::string::npos);
    CHECK(u != hv::util::random_uuid());
}
