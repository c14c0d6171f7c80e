// Observability: the YAML emitter of `hvctl -o yaml`, the Prometheus renderer and its cache,
// libvirt bulk-stats parsing, task logs (lines, persistence, bounds), log fields and the
// journal sink (through a fake journal writer).
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <set>
#include <stdexcept>

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include "../../src/daemon/journal_sink.hpp"
#include "../../src/daemon/metrics.hpp"
#include "../../src/daemon/task_manager.hpp"
#include "../../src/virt/domain_stats.hpp"
#include "hv/util/log_context.hpp"
#include "yaml.hpp"

using hv::cli::to_yaml;
using hv::cli::yaml_plain_ok;
using hv::daemon::Exposition;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        std::string t = (fs::temp_directory_path() / "hv-obs-test-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

bool has_line(const std::string& text, const std::string& line) {
    for (const auto& l : lines_of(text))
        if (l == line) return true;
    return false;
}

hv::api::TaskInfo wait_final(hv::daemon::TaskManager& m, const std::string& id) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        auto t = m.get(id);
        if (hv::api::is_final(t.state)) return t;
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

std::vector<std::string> messages(const hv::api::TaskLog& l) {
    std::vector<std::string> out;
    for (const auto& line : l.lines) out.push_back(line.message);
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------------- YAML

TEST_CASE("yaml: strings that YAML would read as something else are quoted", "[yaml]") {
    for (const char* s : {"true", "False", "yes", "NO", "on", "off", "y", "n", "null", "Null", "~", "", "123", "1.5",
                          "-1", "0x1F", "1e3", ".inf", "-.inf", ".nan", "2024-05-01", "12:30", " lead", "trail ",
                          "a: b", "a #b", "key:", "- x", "[x]", "{x}", "*ref", "&anchor", "!tag", "%dir", "@at", "`x",
                          "'q'", "\"q\"", "a,b", "multi\nline", "tab\there", "caf\xc3\xa9", "|", ">", "?", "#c"}) {
        INFO("'" << s << "'");
        CHECK_FALSE(yaml_plain_ok(s));
    }
    for (const char* s : {"web01", "running", "t-000012", "vm/web01", "/var/lib/hv/images", "qemu:///system",
                          "local:iso/debian-12.iso", "creating disk0", "a.b_c-d", "x=1", "v1"}) {
        INFO("'" << s << "'");
        CHECK(yaml_plain_ok(s));
    }
}

TEST_CASE("yaml: scalars, quoting and escapes", "[yaml]") {
    CHECK(to_yaml(json(nullptr)) == "null\n");
    CHECK(to_yaml(json(true)) == "true\n");
    CHECK(to_yaml(json(42)) == "42\n");
    CHECK(to_yaml(json(-7)) == "-7\n");
    CHECK(to_yaml(json(1.5)) == "1.5\n");
    CHECK(to_yaml(json("web01")) == "web01\n");
    CHECK(to_yaml(json("true")) == "\"true\"\n");
    CHECK(to_yaml(json("0123")) == "\"0123\"\n");
    CHECK(to_yaml(json("")) == "\"\"\n");
    CHECK(to_yaml(json("say \"hi\"\n\\")) == "\"say \\\"hi\\\"\\n\\\\\"\n");
}

TEST_CASE("yaml: empty containers, nested maps and lists", "[yaml]") {
    json j = {{"name", "web01"},
              {"cpus", 2},
              {"tags", json::array()},
              {"meta", json::object()},
              {"disks", json::array({{{"name", "disk0"}, {"size", 1024}}, {{"name", "disk1"}, {"owned", false}}})},
              {"matrix", json::array({json::array({1, 2}), json::array(), json::array({"yes"})})},
              {"nested", {{"a", {{"b", "c"}}}}},
              {"no", "off"}};
    // nlohmann::json orders keys alphabetically.
    CHECK(to_yaml(j) ==
          "cpus: 2\n"
          "disks:\n"
          "  - name: disk0\n"
          "    size: 1024\n"
          "  - name: disk1\n"
          "    owned: false\n"
          "matrix:\n"
          "  - - 1\n"
          "    - 2\n"
          "  - []\n"
          "  - - \"yes\"\n"
          "meta: {}\n"
          "name: web01\n"
          "nested:\n"
          "  a:\n"
          "    b: c\n"
          "\"no\": \"off\"\n"
          "tags: []\n");
    CHECK(to_yaml(json::array()) == "[]\n");
    CHECK(to_yaml(json::object()) == "{}\n");
    CHECK(to_yaml(json::array({json::object(), json::array({json::array({1})})})) == "- {}\n- - - 1\n");
}

// ---------------------------------------------------------------------------------- metrics

TEST_CASE("metrics: HELP and TYPE once per family, samples grouped, labels escaped", "[metrics]") {
    Exposition e;
    e.add("hv_x_total", "Things\nwith a \\ backslash", Exposition::Type::counter, {{"vm", "a"}}, std::uint64_t{1});
    e.add("hv_y", "Other", Exposition::Type::gauge, {}, 2.5);
    e.add("hv_x_total", "ignored: first help wins", Exposition::Type::counter,
          {{"vm", "we\"ird\\na\nme"}, {"disk", "vda"}}, std::uint64_t{18446744073709551615ull});
    CHECK(e.text() ==
          "# HELP hv_x_total Things\\nwith a \\\\ backslash\n"
          "# TYPE hv_x_total counter\n"
          "hv_x_total{vm=\"a\"} 1\n"
          "hv_x_total{vm=\"we\\\"ird\\\\na\\nme\",disk=\"vda\"} 18446744073709551615\n"
          "# HELP hv_y Other\n"
          "# TYPE hv_y gauge\n"
          "hv_y 2.5\n");
    CHECK(Exposition::format_value(1.0 / 0.0) == "+Inf");
    CHECK(Exposition::format_value(-1.0 / 0.0) == "-Inf");
    CHECK(Exposition::format_value(std::nan("")) == "NaN");
    CHECK(Exposition::format_value(0.000001) == "1e-06");
    CHECK(Exposition::format_value(12.0) == "12");
}

TEST_CASE("metrics: a snapshot renders host, task and per-VM families", "[metrics]") {
    hv::daemon::MetricsSnapshot s;
    s.version = "0.1.0";
    s.uptime_seconds = 12.5;
    s.cpus = 2;
    s.memory_total = 1024;
    s.memory_available = 512;
    s.pools.push_back({"local", true, 100, 40, 60, 70, 3});
    s.libvirt_up = true;
    s.tasks_by_state = {{"pending", 0}, {"running", 1}, {"succeeded", 4}, {"failed", 1}, {"cancelled", 0}};
    s.tasks_finished = {{"vm.create", "succeeded", 3}, {"vm.create", "failed", 1}};
    s.migrations = {{"vm", 2, 1, 9.5, 0.25}, {"ct", 0, 0, 0, 0}};
    hv::virt::DomainStats web;
    web.name = "web01";
    web.state = "running";
    web.values = {{"cpu.time", 4649376423ull}, {"cpu.user", 2500000000ull}, {"balloon.current", 262144}, {"balloon.rss", 1000}, {"vcpu.current", 2}};
    web.disks.push_back({"vda", {{"rd.bytes", 4096}, {"wr.bytes", 512}, {"rd.reqs", 8}, {"capacity", 1 << 30}}});
    web.nics.push_back({"vnet0", {{"rx.bytes", 100}, {"tx.bytes", 200}, {"rx.pkts", 3}}});
    hv::virt::DomainStats off;
    off.name = "db01";
    off.state = "shutoff";
    s.vms = {web, off};
    auto text = hv::daemon::render_metrics(s);
    INFO(text);
    for (const char* l : {
             "hv_build_info{version=\"0.1.0\"} 1",
             "hv_daemon_uptime_seconds 12.5",
             "hv_libvirt_up 1",
             "hv_host_cpus 2",
             "hv_host_memory_bytes 1024",
             "hv_pool_free_bytes{pool=\"local\"} 60",
             "hv_pool_committed_bytes{pool=\"local\"} 70",
             "hv_tasks{state=\"running\"} 1",
             "hv_tasks{state=\"pending\"} 0",
             "hv_tasks_finished_total{kind=\"vm.create\",state=\"failed\"} 1",
             "# TYPE hv_migrations_total counter",
             "hv_migrations_total{kind=\"vm\",result=\"ok\"} 2",
             "hv_migrations_total{kind=\"vm\",result=\"failed\"} 1",
             "hv_migrations_total{kind=\"ct\",result=\"ok\"} 0",
             "hv_migration_seconds_total{kind=\"vm\"} 9.5",
             "hv_migration_downtime_seconds_total{kind=\"vm\"} 0.25",
             "hv_migration_downtime_seconds_total{kind=\"ct\"} 0",
             "# TYPE hv_vm_cpu_seconds_total counter",
             "hv_vm_cpu_seconds_total{vm=\"web01\"} 4.649376423",
             "hv_vm_cpu_user_seconds_total{vm=\"web01\"} 2.5",
             "hv_vm_memory_bytes{vm=\"web01\"} 268435456",
             "hv_vm_memory_rss_bytes{vm=\"web01\"} 1024000",
             "hv_vm_vcpus{vm=\"web01\"} 2",
             "hv_vm_state{vm=\"web01\",state=\"running\"} 1",
             "hv_vm_state{vm=\"db01\",state=\"shutoff\"} 1",
             "# TYPE hv_vm_disk_read_bytes_total counter",
             "hv_vm_disk_read_bytes_total{vm=\"web01\",disk=\"vda\"} 4096",
             "hv_vm_disk_write_bytes_total{vm=\"web01\",disk=\"vda\"} 512",
             "hv_vm_disk_read_requests_total{vm=\"web01\",disk=\"vda\"} 8",
             "hv_vm_disk_capacity_bytes{vm=\"web01\",disk=\"vda\"} 1073741824",
             "hv_vm_net_rx_bytes_total{vm=\"web01\",nic=\"vnet0\"} 100",
             "hv_vm_net_tx_bytes_total{vm=\"web01\",nic=\"vnet0\"} 200",
             "hv_vm_net_rx_packets_total{vm=\"web01\",nic=\"vnet0\"} 3",
         }) {
        INFO(l);
        CHECK(has_line(text, l));
    }
    // A stopped VM has no counters (absent, not zero); each family's samples are contiguous
    // and every sample line belongs to the family announced last.
    CHECK(text.find("hv_vm_cpu_seconds_total{vm=\"db01\"}") == std::string::npos);
    std::string family;
    std::set<std::string> seen;
    for (const auto& l : lines_of(text)) {
        if (l.rfind("# HELP ", 0) == 0) {
            family = l.substr(7, l.find(' ', 7) - 7);
            CHECK(seen.insert(family).second);
            continue;
        }
        if (l.rfind("# TYPE ", 0) == 0) {
            CHECK(l.substr(7, family.size()) == family);
            continue;
        }
        CHECK(l.substr(0, l.find_first_of("{ ")) == family);
    }
}

TEST_CASE("metrics: containers render hv_ct_* families and hv_lxc_up beside unchanged VM families", "[metrics]") {
    hv::daemon::MetricsSnapshot s;
    s.version = "0.1.0";
    s.libvirt_up = true;
    hv::virt::DomainStats vm;
    vm.name = "web01";
    vm.state = "running";
    vm.values = {{"cpu.time", 1000000000ull}, {"balloon.current", 1024}};
    s.vms = {vm};
    // Without containers (hvd without a CtManager) there is no hv_lxc_up.
    auto text = hv::daemon::render_metrics(s);
    CHECK(text.find("hv_lxc_up") == std::string::npos);
    CHECK(text.find("hv_ct_") == std::string::npos);

    s.containers = true;
    s.lxc_up = true;
    hv::virt::DomainStats ct;
    ct.name = "box1";
    ct.state = "running";
    ct.values = {{"cpu.time", 334807205ull}, {"cpu.user", 310000000ull}, {"cpu.system", 20000000ull},
                 {"memory.current", 9220096}, {"memory.max", 67108864}, {"memory.anon", 167936},
                 {"memory.file", 8396800}, {"memory.swap", 0}, {"io.rd.bytes", 4096}, {"io.wr.bytes", 8192},
                 {"io.rd.reqs", 1}, {"io.wr.reqs", 2}};
    ct.nics.push_back({"vnet7", {{"rx.bytes", 100}, {"tx.bytes", 200}, {"rx.pkts", 3}, {"tx.drop", 0}}});
    hv::virt::DomainStats off;
    off.name = "box2";
    off.state = "shutoff";
    s.cts = {ct, off};
    text = hv::daemon::render_metrics(s);
    INFO(text);
    for (const char* l : {
             "hv_lxc_up 1",
             "hv_vm_cpu_seconds_total{vm=\"web01\"} 1",
             "hv_vm_memory_bytes{vm=\"web01\"} 1048576",
             "hv_vm_state{vm=\"web01\",state=\"running\"} 1",
             "# TYPE hv_ct_cpu_seconds_total counter",
             "hv_ct_cpu_seconds_total{ct=\"box1\"} 0.334807205",
             "hv_ct_cpu_user_seconds_total{ct=\"box1\"} 0.31",
             "hv_ct_cpu_system_seconds_total{ct=\"box1\"} 0.02",
             "# TYPE hv_ct_memory_bytes gauge",
             "hv_ct_memory_bytes{ct=\"box1\"} 9220096",
             "hv_ct_memory_max_bytes{ct=\"box1\"} 67108864",
             "hv_ct_memory_anon_bytes{ct=\"box1\"} 167936",
             "hv_ct_memory_file_bytes{ct=\"box1\"} 8396800",
             "hv_ct_memory_swap_bytes{ct=\"box1\"} 0",
             "# TYPE hv_ct_io_read_bytes_total counter",
             "hv_ct_io_read_bytes_total{ct=\"box1\"} 4096",
             "hv_ct_io_write_bytes_total{ct=\"box1\"} 8192",
             "hv_ct_io_read_requests_total{ct=\"box1\"} 1",
             "hv_ct_io_write_requests_total{ct=\"box1\"} 2",
             "hv_ct_net_rx_bytes_total{ct=\"box1\",nic=\"vnet7\"} 100",
             "hv_ct_net_tx_bytes_total{ct=\"box1\",nic=\"vnet7\"} 200",
             "hv_ct_net_rx_packets_total{ct=\"box1\",nic=\"vnet7\"} 3",
             "hv_ct_net_tx_dropped_total{ct=\"box1\",nic=\"vnet7\"} 0",
             "hv_ct_state{ct=\"box1\",state=\"running\"} 1",
             "hv_ct_state{ct=\"box2\",state=\"shutoff\"} 1",
         }) {
        INFO(l);
        CHECK(has_line(text, l));
    }
    // A stopped container has only its state; VM-only fields of a container record are not
    // rendered (the container table knows no balloon).
    CHECK(text.find("{ct=\"box2\"}") == std::string::npos);
    CHECK(text.find("hv_ct_vcpus") == std::string::npos);
    // The LXC connection down: hv_lxc_up 0, VM families as before.
    s.lxc_up = false;
    s.cts.clear();
    text = hv::daemon::render_metrics(s);
    CHECK(has_line(text, "hv_lxc_up 0"));
    CHECK(has_line(text, "hv_vm_cpu_seconds_total{vm=\"web01\"} 1"));
    CHECK(text.find("\nhv_ct_") == std::string::npos);
}

TEST_CASE("metrics: libvirt typed parameters become a stats record", "[metrics]") {
    std::vector<virTypedParameter> p(12);
    auto set = [](virTypedParameter& t, const char* f, int type) {
        std::memset(&t, 0, sizeof t);
        std::strncpy(t.field, f, VIR_TYPED_PARAM_FIELD_LENGTH - 1);
        t.type = type;
    };
    set(p[0], "state.state", VIR_TYPED_PARAM_INT), p[0].value.i = VIR_DOMAIN_RUNNING;
    set(p[1], "cpu.time", VIR_TYPED_PARAM_ULLONG), p[1].value.ul = 123456789;
    set(p[2], "balloon.current", VIR_TYPED_PARAM_ULLONG), p[2].value.ul = 65536;
    set(p[3], "net.count", VIR_TYPED_PARAM_UINT), p[3].value.ui = 1;
    char vnet[] = "vnet7", vda[] = "vda", sda[] = "sda";
    set(p[4], "net.0.name", VIR_TYPED_PARAM_STRING), p[4].value.s = vnet;
    set(p[5], "net.0.rx.bytes", VIR_TYPED_PARAM_ULLONG), p[5].value.ul = 999;
    set(p[6], "block.count", VIR_TYPED_PARAM_UINT), p[6].value.ui = 2;
    set(p[7], "block.1.name", VIR_TYPED_PARAM_STRING), p[7].value.s = sda;
    set(p[8], "block.0.name", VIR_TYPED_PARAM_STRING), p[8].value.s = vda;
    set(p[9], "block.0.wr.bytes", VIR_TYPED_PARAM_ULLONG), p[9].value.ul = 4096;
    set(p[10], "block.1.rd.reqs", VIR_TYPED_PARAM_ULLONG), p[10].value.ul = 5;
    set(p[11], "vcpu.current", VIR_TYPED_PARAM_UINT), p[11].value.ui = 2;
    auto s = hv::virt::domain_stats_from_params("web01", p.data(), static_cast<int>(p.size()));
    CHECK(s.name == "web01");
    CHECK(s.state == "running");
    CHECK(s.values.at("cpu.time") == 123456789);
    CHECK(s.values.at("balloon.current") == 65536);
    CHECK(s.values.at("vcpu.current") == 2);
    CHECK_FALSE(s.values.count("net.count"));
    REQUIRE(s.nics.size() == 1);
    CHECK(s.nics[0].name == "vnet7");
    CHECK(s.nics[0].values.at("rx.bytes") == 999);
    REQUIRE(s.disks.size() == 2);
    CHECK(s.disks[0].name == "vda");
    CHECK(s.disks[0].values.at("wr.bytes") == 4096);
    CHECK(s.disks[1].name == "sda");
    CHECK(s.disks[1].values.at("rd.reqs") == 5);
    CHECK(hv::virt::domain_state_name(VIR_DOMAIN_SHUTOFF) == "shutoff");
}

TEST_CASE("metrics: the cache renders once per period, also under concurrent scrapes", "[metrics]") {
    using Clock = hv::daemon::MetricsCache::Clock;
    auto now = std::make_shared<Clock::time_point>(Clock::time_point{} + std::chrono::hours(1));
    std::atomic<int> renders{0};
    hv::daemon::MetricsCache cache(
        std::chrono::seconds(5),
        [&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            return "n " + std::to_string(++renders) + "\n";
        },
        [now] { return *now; });
    std::vector<std::thread> th;
    std::vector<std::string> got(8);
    for (int i = 0; i < 8; ++i) th.emplace_back([&, i] { got[i] = cache.get(); });
    for (auto& t : th) t.join();
    CHECK(renders == 1);
    for (const auto& g : got) CHECK(g == "n 1\n");
    *now += std::chrono::seconds(4);
    CHECK(cache.get() == "n 1\n");
    *now += std::chrono::seconds(2);
    CHECK(cache.get() == "n 2\n");
    CHECK(renders == 2);

    hv::daemon::MetricsCache uncached(std::chrono::seconds(0), [&] { return std::to_string(++renders); });
    uncached.get();
    uncached.get();
    CHECK(renders == 4);
}

TEST_CASE("metrics: while a render hangs, other scrapes get the previous text at once", "[metrics]") {
    std::mutex gate;
    std::atomic<int> renders{0};
    std::atomic<bool> fail_next{false};
    hv::daemon::MetricsCache cache(std::chrono::milliseconds(0), [&]() -> std::string {
        int n = ++renders;
        if (fail_next.exchange(false)) throw std::runtime_error("libvirt went away");
        std::lock_guard lk(gate);  // held by the test: a libvirt call that hangs
        return "n " + std::to_string(n) + "\n";
    });
    CHECK(cache.get() == "n 1\n");
    std::unique_lock hang(gate);
    std::string slow;
    std::thread t([&] { slow = cache.get(); });
    while (renders < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    auto t0 = std::chrono::steady_clock::now();
    CHECK(cache.get() == "n 1\n");  // not blocked behind the hanging render
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
    CHECK(renders == 2);
    hang.unlock();
    t.join();
    CHECK(slow == "n 2\n");
    // A render that throws fails its caller only; the next one renders again.
    fail_next = true;
    CHECK_THROWS(cache.get());
    CHECK(cache.get() == "n 4\n");
}

// ---------------------------------------------------------------------------------- task logs

TEST_CASE("task log: step and log lines between start and end, read after a sequence number", "[task][log]") {
    hv::daemon::EventBus bus;
    boost::asio::thread_pool pool(2);
    hv::daemon::TaskManager m(pool, bus, 10);
    auto t = m.submit("vm.create", "vm/web01", [](hv::util::Progress& p) {
        p.step(10, "creating disk0 (1G)");
        p.update(50, "a percentage: not logged");
        p.log("defining the domain\nwith a newline");
        return json();
    });
    wait_final(m, t.id);
    auto l = m.log(t.id);
    CHECK(l.id == t.id);
    CHECK(l.state == hv::api::TaskState::succeeded);
    CHECK(messages(l) == std::vector<std::string>{"started", "creating disk0 (1G)", "defining the domain with a newline",
                                                  "succeeded"});
    for (std::size_t i = 0; i < l.lines.size(); ++i) {
        CHECK(l.lines[i].seq == i + 1);
        CHECK(l.lines[i].time > 0);
    }
    CHECK(messages(m.log(t.id, 2)) == std::vector<std::string>{"defining the domain with a newline", "succeeded"});
    CHECK(m.log(t.id, 4).lines.empty());

    auto f = m.submit("vm.delete", "vm/web01", [](hv::util::Progress&) -> json {
        throw hv::Error(hv::Errc::conflict, "vm 'web01' is running");
    });
    wait_final(m, f.id);
    CHECK(messages(m.log(f.id)).back() == "failed: vm 'web01' is running");
    CHECK_THROWS_AS(m.log("t-999999"), hv::Error);
    pool.join();
}

TEST_CASE("task log: persisted beside the journal, bounded, reloaded, removed with its task", "[task][log]") {
    TempDir d;
    hv::daemon::EventBus bus;
    constexpr auto kMax = hv::daemon::TaskManager::kMaxLogLines;
    std::string id, small;
    {
        boost::asio::thread_pool pool(2);
        hv::daemon::TaskManager m(pool, bus, 10, d.path);
        auto t = m.submit("volume.create", "volume/local/big", [](hv::util::Progress& p) {
            for (std::size_t i = 0; i < 3 * kMax; ++i) p.log("line " + std::to_string(i));
            p.log(std::string(5000, 'x'));
            return json();
        });
        id = t.id;
        wait_final(m, id);
        auto s = m.submit("vm.create", "vm/a", [](hv::util::Progress& p) {
            p.log("only line");
            return json();
        });
        small = s.id;
        wait_final(m, small);
        pool.join();
        auto l = m.log(id);
        CHECK(l.lines.size() == kMax);
        CHECK(l.dropped == 3 * kMax + 3 - kMax);  // start + 3*kMax + long + end
        CHECK(l.lines.back().message == "succeeded");
        auto longest = l.lines[l.lines.size() - 2].message;
        CHECK(longest.size() <= hv::daemon::TaskManager::kMaxLogLineBytes + 3);
        CHECK(longest.ends_with("..."));
    }
    // The file never holds more than twice the limit.
    std::ifstream in(d.path + "/" + id + ".log");
    std::size_t n = 0;
    for (std::string l; std::getline(in, l);) ++n;
    CHECK(n > 0);
    CHECK(n <= 2 * kMax);

    boost::asio::thread_pool pool(2);
    hv::daemon::TaskManager m(pool, bus, 10, d.path);
    auto l = m.log(id);
    CHECK(l.lines.size() == kMax);
    CHECK(l.lines.back().message == "succeeded");
    CHECK(l.dropped == 3 * kMax + 3 - kMax);
    CHECK(messages(m.log(small)) == std::vector<std::string>{"started", "only line", "succeeded"});
    pool.join();
    // Trimmed with its task (history 1 keeps only the newest finished one).
    boost::asio::thread_pool pool2(1);
    hv::daemon::TaskManager m2(pool2, bus, 1, d.path);
    pool2.join();
    CHECK_FALSE(fs::exists(d.path + "/" + id + ".log"));
    CHECK(fs::exists(d.path + "/" + small + ".log"));
}

TEST_CASE("task log: a task interrupted by an hvd crash says so in its log", "[task][log]") {
    TempDir d;
    hv::api::TaskInfo t;
    t.id = "t-000004";
    t.kind = "vm.create";
    t.target = "vm/x";
    t.state = hv::api::TaskState::running;
    t.created_at = 1000;
    t.started_at = 1001;
    std::ofstream(d.path + "/t-000004.json") << json(t).dump();
    std::ofstream(d.path + "/t-000004.log") << json(hv::api::TaskLogLine{1, 1001, "started"}).dump() << "\n"
                                            << json(hv::api::TaskLogLine{2, 1002, "creating disk0"}).dump() << "\n"
                                            << "{\"seq\":3,\"ti";  // cut short by the crash
    std::ofstream(d.path + "/t-000002.log") << "{}\n";               // no task: removed
    hv::daemon::EventBus bus;
    boost::asio::thread_pool pool(1);
    hv::daemon::TaskManager m(pool, bus, 10, d.path);
    auto l = m.log("t-000004");
    CHECK(l.state == hv::api::TaskState::failed);
    REQUIRE(l.lines.size() == 3);
    CHECK(l.lines[1].message == "creating disk0");
    CHECK(l.lines[2].seq == 3);
    CHECK_THAT(l.lines[2].message, Catch::Contains("hvd stopped while the task was running"));
    CHECK_FALSE(fs::exists(d.path + "/t-000002.log"));
    pool.join();
}

// ---------------------------------------------------------------------------------- log fields

TEST_CASE("log fields: scopes nest and restore, targets name their objects", "[log]") {
    using hv::util::LogFields;
    using hv::util::LogScope;
    CHECK(hv::util::log_fields().empty());
    {
        LogScope a({{"TASK_ID", "t-1"}, {"VM", "a"}, {"bad-name", "x"}, {"_PID", "1"}});
        CHECK(hv::util::log_fields() == LogFields{{"TASK_ID", "t-1"}, {"VM", "a"}});
        {
            LogScope b({{"VM", "b"}, {"POOL", "local"}});
            CHECK(hv::util::log_fields() == LogFields{{"TASK_ID", "t-1"}, {"VM", "b"}, {"POOL", "local"}});
        }
        CHECK(hv::util::log_fields() == LogFields{{"TASK_ID", "t-1"}, {"VM", "a"}});
    }
    CHECK(hv::util::log_fields().empty());
    CHECK(hv::util::target_log_fields("vm/web01") == LogFields{{"VM", "web01"}});
    CHECK(hv::util::target_log_fields("volume/local/d1") == LogFields{{"POOL", "local"}, {"VOLUME", "d1"}});
    CHECK(hv::util::target_log_fields("pool/fast") == LogFields{{"POOL", "fast"}});
    CHECK(hv::util::target_log_fields("host").empty());
}

namespace {
struct FakeJournal final : hv::daemon::JournalWriter {
    std::shared_ptr<std::vector<std::vector<std::string>>> records = std::make_shared<std::vector<std::vector<std::string>>>();
    std::shared_ptr<std::mutex> mu = std::make_shared<std::mutex>();
    int send(const std::vector<std::string>& fields) override {
        std::lock_guard lk(*mu);
        records->push_back(fields);
        return 0;
    }
};

bool has(const std::vector<std::string>& fields, const std::string& f) {
    return std::find(fields.begin(), fields.end(), f) != fields.end();
}

// Installs a logger on the fake journal as spdlog's default for one test.
struct JournalLogger {
    FakeJournal* fake;
    std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
    std::shared_ptr<std::vector<std::vector<std::string>>> records;
    std::shared_ptr<std::mutex> mu;
    JournalLogger() {
        auto w = std::make_unique<FakeJournal>();
        records = w->records;
        mu = w->mu;
        auto sink = std::make_shared<hv::daemon::JournalSink>(std::move(w), "hvd");
        auto l = std::make_shared<spdlog::logger>("journal-test", sink);
        l->set_level(spdlog::level::debug);
        spdlog::set_default_logger(l);
    }
    ~JournalLogger() { spdlog::set_default_logger(previous); }
    std::vector<std::vector<std::string>> get() {
        std::lock_guard lk(*mu);
        return *records;
    }
};
}  // namespace

TEST_CASE("journal sink: message, priority, identifier and the thread's fields", "[log][journal]") {
    JournalLogger j;
    spdlog::info("plain");
    {
        hv::util::LogScope s({{"VM", "web01"}, {"TASK_ID", "t-000012"}});
        spdlog::warn("disk {} is {}", "vda", "slow\nreally");
    }
    spdlog::error("after");
    auto r = j.get();
    REQUIRE(r.size() == 3);
    CHECK(has(r[0], "MESSAGE=plain"));
    CHECK(has(r[0], "PRIORITY=6"));
    CHECK(has(r[0], "SYSLOG_IDENTIFIER=hvd"));
    CHECK_FALSE(has(r[0], "VM=web01"));
    CHECK(has(r[1], "MESSAGE=disk vda is slow\nreally"));
    CHECK(has(r[1], "PRIORITY=4"));
    CHECK(has(r[1], "VM=web01"));
    CHECK(has(r[1], "TASK_ID=t-000012"));
    CHECK(has(r[2], "PRIORITY=3"));
    CHECK_FALSE(has(r[2], "VM=web01"));
}

TEST_CASE("journal sink: what a task logs carries TASK_ID, TASK_KIND and its target's fields", "[log][journal]") {
    JournalLogger j;
    hv::daemon::EventBus bus;
    boost::asio::thread_pool pool(1);
    hv::daemon::TaskManager m(pool, bus, 10);
    auto t = m.submit("volume.create", "volume/local/d1", [](hv::util::Progress& p) {
        spdlog::info("from inside the operation");
        p.log("a task log line");
        return json();
    });
    wait_final(m, t.id);
    pool.join();
    bool inside = false, line = false;
    for (const auto& rec : j.get()) {
        bool fields = has(rec, "TASK_ID=" + t.id) && has(rec, "TASK_KIND=volume.create") && has(rec, "POOL=local") &&
                      has(rec, "VOLUME=d1");
        if (has(rec, "MESSAGE=from inside the operation")) inside = fields;
        if (has(rec, "MESSAGE=task " + t.id + " volume.create volume/local/d1: a task log line")) line = fields;
    }
    CHECK(inside);
    CHECK(line);
}

TEST_CASE("journal sink: log_target auto follows JOURNAL_STREAM, explicit targets win", "[log][journal]") {
    const char* old = std::getenv("JOURNAL_STREAM");
    std::string saved = old ? old : "";
    ::unsetenv("JOURNAL_STREAM");
    CHECK(hv::daemon::resolve_log_target("auto") == "stderr");
    CHECK(hv::daemon::resolve_log_target("journal") == "journal");
    ::setenv("JOURNAL_STREAM", "1:2", 1);  // not stderr's device:inode
    CHECK(hv::daemon::resolve_log_target("auto") == "stderr");
    struct stat st {};
    REQUIRE(::fstat(2, &st) == 0);
    ::setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)).c_str(), 1);
    CHECK(hv::daemon::resolve_log_target("auto") == "journal");
    CHECK(hv::daemon::resolve_log_target("stderr") == "stderr");
    if (old) ::setenv("JOURNAL_STREAM", saved.c_str(), 1);
    else ::unsetenv("JOURNAL_STREAM");
}
