// The managed etcd member (src/cluster/etcd_process.cpp): its argv, and real etcd members
// with mutual TLS on free 127.0.0.1 ports, started and supervised by EtcdProcess: healthy,
// restarted with their data after kill -9, gone after stop(), and a second member joining.
// Without an etcd binary the live cases WARN and skip; with one, any failure fails.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "etcd_process.hpp"
#include "hv/error.hpp"
#include "hv/util/command.hpp"
#include "pki.hpp"
#include "temp_dir.hpp"
#include "free_port.hpp"

using namespace hv;
using namespace hv::cluster;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
using hvtest_net::free_port;

bool in_path(const std::string& prog) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "");
    std::string d;
    while (std::getline(dirs, d, ':'))
        if (!d.empty() && ::access((d + "/" + prog).c_str(), X_OK) == 0) return true;
    return false;
}

bool have_etcd() {
    if (in_path("etcd") && in_path("etcdctl")) return true;
    WARN("etcd or etcdctl is not installed: the live etcd member tests are skipped");
    return false;
}


const cluster::pki::KeyPair& test_ca() {
    static const auto ca = cluster::pki::make_ca("hv etcd test");
    return ca;
}

EtcdMemberConfig member(const std::string& dir, const std::string& name) {
    EtcdMemberConfig c;
    c.name = name;
    c.data_dir = dir + "/" + name + "/etcd";
    c.tls_dir = dir + "/" + name + "/tls";
    c.log_file = dir + "/" + name + "/etcd.log";
    c.address = "127.0.0.1";
    c.client_port = free_port();
    c.peer_port = free_port();
    while (c.peer_port == c.client_port) c.peer_port = free_port();
    auto host = cluster::pki::issue(test_ca(), "host:" + name, {{"127.0.0.1"}, {}});
    c.tls = TlsIdentity{test_ca().cert_pem, host.cert_pem, host.key_pem};
    return c;
}

std::string peer_url(const EtcdMemberConfig& c) { return "https://127.0.0.1:" + std::to_string(c.peer_port); }

// etcdctl against the member, with its own certificate.
util::CommandResult etcdctl(const EtcdMemberConfig& c, std::vector<std::string> args) {
    std::vector<std::string> argv = {"etcdctl", "--endpoints=https://127.0.0.1:" + std::to_string(c.client_port),
                                     "--cacert=" + c.tls_dir + "/ca.crt", "--cert=" + c.tls_dir + "/host.crt",
                                     "--key=" + c.tls_dir + "/host.key", "--dial-timeout=3s", "--command-timeout=5s"};
    argv.insert(argv.end(), args.begin(), args.end());
    return util::run_command(argv, 15s);
}

std::string log_of(const EtcdMemberConfig& c) {
    std::ifstream in(c.log_file);
    std::stringstream s;
    s << in.rdbuf();
    auto t = s.str();
    return t.size() > 4000 ? t.substr(t.size() - 4000) : t;
}

bool process_exists(int pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno != ESRCH); }

template <typename F>
bool eventually(std::chrono::milliseconds timeout, F&& f) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (f()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return f();
}

// The member answers /health within 20 s, or the test fails with the end of its log.
void require_healthy(EtcdProcess& p, const EtcdMemberConfig& c) {
    if (!p.wait_healthy(20s)) FAIL("etcd member " << c.name << " is not healthy; its log ends:\n" << log_of(c));
}

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

TEST_CASE("etcd member: the argv names the member, its URLs, the cluster and every TLS file", "[etcd-process]") {
    EtcdMemberConfig c;
    c.binary = "/usr/bin/etcd";
    c.name = "node1";
    c.data_dir = "/var/lib/hv/cluster/etcd";
    c.tls_dir = "/var/lib/hv/cluster/tls";
    c.log_file = "/var/log/hv/etcd.log";
    c.address = "10.0.0.1";
    auto a = etcd_argv(c);
    REQUIRE(!a.empty());
    CHECK(a[0] == "/usr/bin/etcd");
    for (const char* want :
         {"--name=node1", "--data-dir=/var/lib/hv/cluster/etcd", "--listen-client-urls=https://10.0.0.1:2379",
          "--advertise-client-urls=https://10.0.0.1:2379", "--listen-peer-urls=https://10.0.0.1:2380",
          "--initial-advertise-peer-urls=https://10.0.0.1:2380", "--initial-cluster=node1=https://10.0.0.1:2380",
          "--initial-cluster-state=new", "--initial-cluster-token=hv", "--client-cert-auth",
          "--trusted-ca-file=/var/lib/hv/cluster/tls/ca.crt", "--cert-file=/var/lib/hv/cluster/tls/host.crt",
          "--key-file=/var/lib/hv/cluster/tls/host.key", "--peer-client-cert-auth",
          "--peer-trusted-ca-file=/var/lib/hv/cluster/tls/ca.crt", "--peer-cert-file=/var/lib/hv/cluster/tls/host.crt",
          "--peer-key-file=/var/lib/hv/cluster/tls/host.key", "--auto-compaction-mode=periodic",
          "--auto-compaction-retention=1h", "--heartbeat-interval=100", "--election-timeout=1000", "--pre-vote", "--logger=zap",
          "--log-outputs=stderr"})
        CHECK(has(a, want));
    // Nothing but flags: no shell, no stray argument.
    for (std::size_t i = 1; i < a.size(); ++i) CHECK(a[i].rfind("--", 0) == 0);

    c.existing = true;
    c.initial_cluster = "node0=https://10.0.0.9:2380,node1=https://10.0.0.1:2380";
    c.address = "fd00::1";
    c.client_port = 12379;
    c.cluster_token = "lab";
    a = etcd_argv(c);
    CHECK(has(a, "--initial-cluster-state=existing"));
    CHECK(has(a, "--initial-cluster=node0=https://10.0.0.9:2380,node1=https://10.0.0.1:2380"));
    CHECK(has(a, "--listen-client-urls=https://[fd00::1]:12379"));
    CHECK(has(a, "--initial-cluster-token=lab"));
}

TEST_CASE("etcd member: a config without its essentials or a binary that is not there is refused", "[etcd-process]") {
    test::TempDir dir("hv-etcd");
    auto c = member(dir.path, "m1");
    {
        auto bad = c;
        bad.name = "";
        EtcdProcess p(bad);
        CHECK_THROWS_AS(p.start(), Error);
        CHECK(p.pid() == 0);
    }
    {
        auto bad = c;
        bad.existing = true;
        EtcdProcess p(bad);
        CHECK_THROWS_AS(p.start(), Error);
    }
    {
        auto bad = c;
        bad.binary = dir.path + "/no-such-etcd";
        EtcdProcess p(bad);
        try {
            p.start();
            FAIL("started a binary that does not exist");
        } catch (const Error& e) {
            CHECK(e.code() == Errc::unavailable);
        }
        CHECK(p.pid() == 0);
        p.stop();
    }
}

TEST_CASE("etcd member: a member that exits is restarted with a doubling backoff, with argv and a clean environment",
          "[etcd-process]") {
    // A stand-in for etcd that records what it got and exits at once.
    test::TempDir dir("hv-etcd");
    auto c = member(dir.path, "m1");
    c.binary = dir.path + "/fake-etcd";
    {
        std::ofstream script(c.binary);
        script << "#!/bin/sh\n"
               << "env > '" << dir.path << "/env'\n"
               << "printf '%s\\n' \"$0\" \"$@\" > '" << dir.path << "/argv'\n"
               << "readlink /proc/$$/fd/0 > '" << dir.path << "/stdin'\n"
               << "echo fake etcd says hello >&2\n"
               << "exit 3\n";
    }
    REQUIRE(::chmod(c.binary.c_str(), 0755) == 0);
    // Set while the member runs (each run rewrites the files), unset only once it is stopped
    // (declared before it, so destroyed after it).
    struct Env {
        Env() {
            ::setenv("ETCD_INITIAL_CLUSTER_STATE", "existing", 1);
            ::setenv("ETCDCTL_API", "2", 1);
            ::setenv("HV_TEST_KEPT", "yes", 1);
        }
        ~Env() {
            ::unsetenv("ETCD_INITIAL_CLUSTER_STATE");
            ::unsetenv("ETCDCTL_API");
            ::unsetenv("HV_TEST_KEPT");
        }
    } env_guard;
    EtcdProcess p(c);
    auto t0 = std::chrono::steady_clock::now();
    p.start();

    // Restarts after 1 s, then 2 s more: the second restart comes 3 s after the start at
    // the earliest (a busy machine only makes it later).
    REQUIRE(eventually(15s, [&] { return p.restarts() >= 1; }));
    auto first = std::chrono::steady_clock::now() - t0;
    CHECK(first >= 900ms);
    REQUIRE(eventually(15s, [&] { return p.restarts() >= 2; }));
    auto second = std::chrono::steady_clock::now() - t0;
    CHECK(second >= 2900ms);
    CHECK_FALSE(p.wait_healthy(200ms));
    p.stop();
    CHECK(p.pid() == 0);

    auto slurp = [](const std::string& path) {
        std::ifstream in(path);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    };
    std::string argv;
    for (const auto& a : etcd_argv(c)) argv += a + "\n";
    CHECK(slurp(dir.path + "/argv") == argv);
    auto env = slurp(dir.path + "/env");
    CHECK(env.find("HV_TEST_KEPT=yes") != std::string::npos);
    CHECK(env.find("ETCD_INITIAL_CLUSTER_STATE") == std::string::npos);
    CHECK(env.find("ETCDCTL_API") == std::string::npos);
    CHECK(slurp(dir.path + "/stdin") == "/dev/null\n");
    auto log = slurp(c.log_file);
    CHECK(log.find("fake etcd says hello") != std::string::npos);
    CHECK(log.find("exited with status 3; restarting in 1000 ms") != std::string::npos);
    CHECK(log.find("exited with status 3; restarting in 2000 ms") != std::string::npos);
}

TEST_CASE("etcd member: healthy over mutual TLS, restarted with its data after kill -9, gone after stop",
          "[etcd-process]") {
    if (!have_etcd()) return;
    test::TempDir dir("hv-etcd");
    auto c = member(dir.path, "m1");
    EtcdProcess p(c);
    p.start();
    CHECK(p.client_url() == "https://127.0.0.1:" + std::to_string(c.client_port));
    require_healthy(p, c);
    int first = p.pid();
    REQUIRE(first > 0);
    CHECK(p.restarts() == 0);

    // The TLS files are the identity's, private.
    for (const char* f : {"ca.crt", "host.crt", "host.key"}) {
        struct stat st {};
        REQUIRE(::stat((c.tls_dir + "/" + f).c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
    }
    {
        std::ifstream in(c.tls_dir + "/host.key");
        std::stringstream s;
        s << in.rdbuf();
        CHECK(s.str() == c.tls.key_pem);
    }

    // Mutual TLS: a client without a certificate gets nowhere.
    auto anon = util::run_command({"etcdctl", "--endpoints=https://127.0.0.1:" + std::to_string(c.client_port),
                                   "--cacert=" + c.tls_dir + "/ca.crt", "--dial-timeout=1s", "--command-timeout=1s", "get",
                                   "/hv/x"},
                                  10s);
    CHECK(anon.exit_status != 0);

    auto put = etcdctl(c, {"put", "/hv/test/key", "value-1"});
    INFO("put: " << put.out << put.err);
    REQUIRE(put.exit_status == 0);

    REQUIRE(::kill(first, SIGKILL) == 0);
    REQUIRE(eventually(15s, [&] { return p.restarts() == 1 && p.pid() > 0 && p.pid() != first; }));
    CHECK_FALSE(process_exists(first));  // reaped, not a zombie
    require_healthy(p, c);
    auto get = etcdctl(c, {"get", "--print-value-only", "/hv/test/key"});
    INFO("get: " << get.out << get.err);
    REQUIRE(get.exit_status == 0);
    CHECK(get.out == "value-1\n");

    int second = p.pid();
    p.stop();
    CHECK(p.pid() == 0);
    CHECK_FALSE(process_exists(second));
    CHECK_FALSE(p.wait_healthy(100ms));
    auto after = etcdctl(c, {"get", "/hv/test/key"});
    CHECK(after.exit_status != 0);
    CHECK(log_of(c).find("hvd: stopped etcd member m1") != std::string::npos);
}

TEST_CASE("etcd member: a second member joins with member add and existing state", "[etcd-process]") {
    if (!have_etcd()) return;
    test::TempDir dir("hv-etcd");
    auto c1 = member(dir.path, "m1");
    auto c2 = member(dir.path, "m2");
    EtcdProcess p1(c1);
    p1.start();
    require_healthy(p1, c1);

    auto add = etcdctl(c1, {"member", "add", "m2", "--peer-urls=" + peer_url(c2)});
    INFO("member add: " << add.out << add.err);
    REQUIRE(add.exit_status == 0);

    c2.existing = true;
    c2.initial_cluster = "m1=" + peer_url(c1) + ",m2=" + peer_url(c2);
    EtcdProcess p2(c2);
    p2.start();
    require_healthy(p2, c2);
    require_healthy(p1, c1);

    auto list = etcdctl(c2, {"member", "list"});
    INFO("member list: " << list.out << list.err);
    REQUIRE(list.exit_status == 0);
    CHECK(list.out.find(", started, m1, ") != std::string::npos);
    CHECK(list.out.find(", started, m2, ") != std::string::npos);
    // What one member writes, the other reads.
    REQUIRE(etcdctl(c1, {"put", "/hv/test/both", "yes"}).exit_status == 0);
    auto get = etcdctl(c2, {"get", "--print-value-only", "/hv/test/both"});
    CHECK(get.out == "yes\n");

    int pid1 = p1.pid(), pid2 = p2.pid();
    p2.stop();
    p1.stop();
    CHECK_FALSE(process_exists(pid1));
    CHECK_FALSE(process_exists(pid2));
}
