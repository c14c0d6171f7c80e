// hv's Ceph deployment without Ceph's daemons (they run in tests/integration/ceph_test.cpp on
// the rig): ceph.conf against its golden file, keys and keyrings, the wire model's checks, the
// osd tree reader, the daemon supervisor (start, restart after a kill, adopt by a new
// supervisor, stop), and CephService's refusals over the in-memory store.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "ceph_conf.hpp"
#include "ceph_service.hpp"
#include "ceph_status.hpp"
#include "cluster.hpp"
#include "hv/api/ceph.hpp"
#include "hv/error.hpp"
#include "hv/storage/pool_manager.hpp"
#include "memory_store.hpp"
#include "supervisor.hpp"
#include "temp_dir.hpp"

using namespace hv;
using nlohmann::json;
using namespace std::chrono_literals;

#ifndef HV_TEST_DATA_DIR
#error "HV_TEST_DATA_DIR must name the tests/data directory"
#endif

namespace {

std::string slurp(const std::string& p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

Errc code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.code();
    }
    return Errc::internal;  // "did not throw" reads as a wrong code
}

template <typename F>
bool eventually(F f, std::chrono::milliseconds limit = 10s) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (f()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return f();
}

}  // namespace

TEST_CASE("ceph.conf matches its golden file", "[ceph][golden]") {
    ceph::ConfInput in;
    in.fsid = "2eeee155-c771-4492-8a21-5832d97d7554";
    in.network = "10.10.10.0/24";
    in.mons = {{"h1", "10.10.10.1"}, {"h2", "10.10.10.2"}, {"h3", "10.10.10.3"}};
    in.dir = "/var/lib/hv/ceph";
    in.host = "h2";
    auto text = ceph::render_ceph_conf(in);
    const std::string golden = std::string(HV_TEST_DATA_DIR) + "/ceph.conf.golden";
    if (std::getenv("HV_REGENERATE_GOLDEN")) std::ofstream(golden) << text;
    INFO("HV_REGENERATE_GOLDEN=1 rewrites " << golden);
    CHECK(text == slurp(golden));
    CHECK(ceph::mon_host(in.mons) ==
          "[v2:10.10.10.1:3300,v1:10.10.10.1:6789],[v2:10.10.10.2:3300,v1:10.10.10.2:6789],[v2:10.10.10.3:3300,v1:10.10.10.3:6789]");
}

TEST_CASE("ceph keys look like ceph-authtool's, keyrings like Ceph's", "[ceph]") {
    std::set<std::string> seen;
    for (int i = 0; i < 20; ++i) {
        auto k = ceph::generate_key();
        CHECK(k.size() == 40);
        CHECK(ceph::valid_key(k));
        seen.insert(k);
    }
    CHECK(seen.size() == 20);
    CHECK(ceph::valid_key("AQAqRxNrlkHpLhAAkL8CEI7xuuv4Uu9p95MKwA=="));  // made by ceph-authtool --gen-print-key
    CHECK_FALSE(ceph::valid_key(""));
    CHECK_FALSE(ceph::valid_key("not a key at all, not a key at all, no!"));
    CHECK(ceph::render_keyring("client.admin", "KEY", {{"mon", "allow *"}, {"osd", "allow *"}}) ==
          "[client.admin]\n\tkey = KEY\n\tcaps mon = \"allow *\"\n\tcaps osd = \"allow *\"\n");
}

TEST_CASE("ceph wire model: bad input is refused with the field named", "[ceph][api]") {
    CHECK(api::ceph_init_from_json(json{{"network", "10.0.0.0/24"}}).network == "10.0.0.0/24");
    for (const char* bad : {"10.0.0.1/24", "10.0.0.0", "10.0.0.0/33", "10.0.0.0/4", "x/24", "10.0.0.0/2a", "::1/64"}) {
        INFO(bad);
        CHECK(code_of([&] { api::ceph_init_from_json(json{{"network", bad}}); }) == Errc::invalid_input);
    }
    CHECK(code_of([&] { api::ceph_init_from_json(json{{"network", "10.0.0.0/24"}, {"extra", 1}}); }) == Errc::invalid_input);
    CHECK(code_of([&] { api::ceph_init_from_json(json::array()); }) == Errc::invalid_input);

    auto o = api::ceph_osd_create_from_json(json{{"device", "/dev/sdb"}, {"db_device", "/dev/nvme0n1p1"}, {"zap", true}});
    CHECK(o.zap);
    for (const char* bad : {"", "sdb", "/dev/sd b", "/dev/../etc/passwd"}) {
        INFO(bad);
        CHECK(code_of([&] { api::ceph_osd_create_from_json(json{{"device", bad}}); }) == Errc::invalid_input);
    }
    CHECK(code_of([&] { api::ceph_osd_create_from_json(json{{"device", "/dev/sdb"}, {"db_device", "/dev/sdb"}}); }) ==
          Errc::invalid_input);

    auto p = api::ceph_pool_create_from_json(json{{"name", "vmpool"}});
    CHECK(p.size == 3);
    CHECK(p.min_size == 2);
    CHECK(p.pg_num == 32);
    CHECK(p.add_storage);
    CHECK(api::ceph_pool_create_from_json(json{{"name", "p"}, {"size", 2}}).min_size == 1);
    for (const json& bad : {json{{"name", "Bad_Name"}}, json{{"name", "p"}, {"size", 0}}, json{{"name", "p"}, {"size", 8}},
                            json{{"name", "p"}, {"size", 3}, {"min_size", 4}}, json{{"name", "p"}, {"pg_num", 48}},
                            json{{"name", "p"}, {"pg_num", 4}}, json{{"name", "p"}, {"size", "3"}}}) {
        INFO(bad.dump());
        CHECK(code_of([&] { api::ceph_pool_create_from_json(bad); }) == Errc::invalid_input);
    }
}

TEST_CASE("osd tree: the hosts with OSDs, each OSD up/in", "[ceph]") {
    auto t = storage::parse_osd_tree(R"({"nodes":[
        {"id":-1,"name":"default","type":"root","children":[-4,-3,-2]},
        {"id":-2,"name":"h1","type":"host","children":[0]},
        {"id":-3,"name":"h2","type":"host","children":[1]},
        {"id":-4,"name":"h3","type":"host","children":[]},
        {"id":0,"name":"osd.0","type":"osd","status":"up","reweight":1},
        {"id":1,"name":"osd.1","type":"osd","status":"down","reweight":0}],"stray":[]})");
    CHECK(t.hosts_with_osds == 2);
    REQUIRE(t.osds.size() == 2);
    CHECK(t.osds[0].host == "h1");
    CHECK(t.osds[0].up);
    CHECK(t.osds[0].in);
    CHECK_FALSE(t.osds[1].up);
    CHECK_FALSE(t.osds[1].in);
    CHECK(code_of([] { storage::parse_osd_tree("[]"); }) == Errc::invalid_input);
    CHECK(storage::parse_osd_tree(R"({"nodes":{"a":1}})").osds.empty());
}

TEST_CASE("supervisor: starts, restarts after a kill, a new one adopts, stops", "[ceph]") {
    test::TempDir tmp;
    ceph::DaemonSpec d{"sleeper", {"sleep", "300"}, tmp.path + "/sleeper.out"};
    int first = 0;
    {
        ceph::Supervisor s(tmp.path + "/pids");
        s.start();
        s.want({d});
        REQUIRE(s.wait_running("sleeper", 5s));
        first = s.states().at(0).pid;
        REQUIRE(first > 0);
        ::kill(first, SIGKILL);
        REQUIRE(eventually([&] {
            auto st = s.states();
            return !st.empty() && st[0].pid > 0 && st[0].pid != first;
        }));
        CHECK(s.states().at(0).restarts == 1);
        CHECK(s.states().at(0).last_exit == "signal 9");
        first = s.states().at(0).pid;
    }
    // The daemon outlives its supervisor; the next one takes it over (no second copy).
    CHECK(ceph::process_start_time(first) != 0);
    {
        ceph::Supervisor s(tmp.path + "/pids");
        s.start();
        s.want({d});
        REQUIRE(s.wait_running("sleeper", 5s));
        CHECK(s.states().at(0).pid == first);
        CHECK(s.states().at(0).restarts == 0);
        s.want({});
        CHECK(eventually([&] { return ceph::process_start_time(first) == 0; }, 20s));
        CHECK(eventually([&] { return !std::filesystem::exists(tmp.path + "/pids/sleeper.pid"); }));
    }
    // A program that is not there: reported, never a throw.
    ceph::Supervisor s(tmp.path + "/pids2");
    s.start();
    s.want({{"nothing", {"/nonexistent/ceph-mon"}, tmp.path + "/n.out"}});
    CHECK_FALSE(s.wait_running("nothing", 1500ms));
}

TEST_CASE("ceph service over the store: init once, refusals before anything is made", "[ceph]") {
    test::TempDir tmp;
    auto store = std::make_shared<cluster::MemoryStore>();
    cluster::ClusterOptions co;
    co.node_name = "h1";
    co.state_dir = tmp.path + "/cluster";
    cluster::Cluster cl(co, {});
    api::PoolSpec local;
    local.name = "local";
    local.path = tmp.path + "/images";
    storage::PoolManager pools(tmp.path + "/pools.json", local);
    ceph::CephService svc({tmp.path + "/ceph", "h1"}, cl, pools);

    // Outside a cluster: 409 with what to do.
    CHECK(code_of([&] { svc.init(api::CephInit{"10.0.0.0/24", ""}); }) == Errc::conflict);
    cl.attach_for_test(store, "test", "10.0.0.1");
    CHECK(code_of([&] { svc.precheck_mon(); }) == Errc::conflict);  // not initialized
    auto st = svc.init(api::CephInit{"198.51.100.0/24", ""});       // TEST-NET-2: no local address
    CHECK(st.initialized);
    CHECK(st.fsid.size() == 36);
    CHECK(st.mons.empty());
    CHECK(code_of([&] { svc.init(api::CephInit{"10.0.0.0/24", ""}); }) == Errc::conflict);
    auto cfg = json::parse(store->get("/hv/ceph/config")->value);
    CHECK(ceph::valid_key(cfg.at("keys").at("admin")));
    CHECK(ceph::valid_key(cfg.at("keys").at("mon")));
    CHECK(cfg.at("network") == "198.51.100.0/24");
    // This host has no address in Ceph's network: no monitor here.
    try {
        svc.precheck_mon();
        FAIL("precheck_mon accepted a host outside Ceph's network");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::conflict);
        CHECK(std::string(e.what()).find("no address in Ceph's network 198.51.100.0/24") != std::string::npos);
    }
    CHECK(code_of([&] { svc.precheck_osd(api::CephOsdCreate{"/dev/null", "", false}); }) == Errc::conflict);  // no mon
    CHECK(code_of([&] { svc.precheck_pool(api::CephPoolCreate{"vmpool"}); }) == Errc::conflict);
    CHECK(svc.status().summary.at(0).find("no monitor") != std::string::npos);
    CHECK(store->list("/hv/ceph/mons/").kvs.empty());
}
