// The Store contract (src/cluster/store.hpp), one set of test cases run against MemoryStore and
// against EtcdStore on a real etcd 3.4 this file starts: 127.0.0.1, free ports, a temporary
// data dir, client-certificate auth with a CA and certificates made here with the openssl CLI.
// Without /usr/bin/etcd (or etcd in PATH) the etcd variants WARN and skip; an etcd that is there
// but does not start fails them.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/streambuf.hpp>
#include <catch2/catch.hpp>

#include "etcd_json.hpp"
#include "etcd_store.hpp"
#include "hv/error.hpp"
#include "hv/util/command.hpp"
#include "https_client.hpp"
#include "memory_store.hpp"
#include "temp_dir.hpp"
#include "free_port.hpp"

extern char** environ;

namespace {
using hvtest_net::free_port;
using namespace hv::cluster;
using namespace std::chrono_literals;
using hv::Errc;
namespace fs = std::filesystem;

std::string read_file(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void write_file(const std::string& p, const std::string& text) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << text;
}

std::string which(const std::string& name) {
    if (fs::exists("/usr/bin/" + name)) return "/usr/bin/" + name;
    const char* path = std::getenv("PATH");
    std::stringstream ss(path ? path : "");
    std::string dir;
    while (std::getline(ss, dir, ':'))
        if (!dir.empty() && fs::exists(dir + "/" + name)) return dir + "/" + name;
    return {};
}


// A CA, etcd's server certificate (IP SAN 127.0.0.1 only, so "localhost" must be refused),
// a client certificate, and a client certificate of another CA.
struct Pki {
    hv::test::TempDir dir{"hv-store-pki"};
    TlsIdentity server, client, foreign;
    std::string other_ca_pem;
    std::string ca_file, server_cert_file, server_key_file;

    void ca(const std::string& name) {
        hv::util::run_checked({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                               "-nodes", "-keyout", dir.path + "/" + name + ".key", "-out", dir.path + "/" + name + ".crt",
                               "-days", "2", "-subj", "/CN=" + name});
    }
    void cert(const std::string& ca, const std::string& name, const std::string& ext) {
        auto p = dir.path + "/" + name;
        write_file(p + ".ext", ext);
        hv::util::run_checked({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                               "-keyout", p + ".key", "-out", p + ".csr", "-subj", "/CN=" + name});
        hv::util::run_checked({"openssl", "x509", "-req", "-in", p + ".csr", "-CA", dir.path + "/" + ca + ".crt", "-CAkey",
                               dir.path + "/" + ca + ".key", "-CAcreateserial", "-out", p + ".crt", "-days", "2",
                               "-extfile", p + ".ext"});
    }
    TlsIdentity identity(const std::string& ca, const std::string& name) {
        return TlsIdentity{read_file(dir.path + "/" + ca + ".crt"), read_file(dir.path + "/" + name + ".crt"),
                           read_file(dir.path + "/" + name + ".key")};
    }
    Pki() {
        ca("ca");
        ca("other-ca");
        cert("ca", "etcd", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
        cert("ca", "client", "extendedKeyUsage=clientAuth\n");
        cert("other-ca", "foreign", "extendedKeyUsage=clientAuth\n");
        server = identity("ca", "etcd");
        client = identity("ca", "client");
        foreign = identity("ca", "foreign");  // trusts etcd's CA, presents a certificate of another
        other_ca_pem = read_file(dir.path + "/other-ca.crt");
        ca_file = dir.path + "/ca.crt";
        server_cert_file = dir.path + "/etcd.crt";
        server_key_file = dir.path + "/etcd.key";
    }
};

// One etcd for the whole run (started on first use, killed by PID at exit).
class EtcdServer {
public:
    std::string binary;
    Pki pki;
    hv::test::TempDir dir{"hv-store-etcd"};
    int client_port = 0;
    int peer_port = 0;
    pid_t pid = 0;

    explicit EtcdServer(std::string bin) : binary(std::move(bin)) {
        client_port = free_port();
        peer_port = free_port();
        while (peer_port == client_port) peer_port = free_port();
    }
    ~EtcdServer() { kill9(); }

    std::string endpoint() const { return "127.0.0.1:" + std::to_string(client_port); }
    std::string log() const { return dir.path + "/etcd.log"; }

    // Starts etcd and waits until it answers over mutual TLS; fails the test if it does not.
    void start() {
        std::string peer = "http://127.0.0.1:" + std::to_string(peer_port);
        std::string client = "https://" + endpoint();
        std::vector<std::string> argv = {binary, "--name", "hvtest", "--data-dir", dir.path + "/data",
                                         "--listen-client-urls", client, "--advertise-client-urls", client,
                                         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                         "--initial-cluster", "hvtest=" + peer, "--heartbeat-interval", "50",
                                         "--election-timeout", "500", "--client-cert-auth", "--trusted-ca-file",
                                         pki.ca_file, "--cert-file", pki.server_cert_file, "--key-file",
                                         pki.server_key_file, "--logger", "zap"};
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(a.data());
        args.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, log().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        int rc = posix_spawn(&pid, binary.c_str(), &fa, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        REQUIRE(rc == 0);
        EtcdStore probe(EtcdOptions{{endpoint()}, pki.client, 500ms});
        auto until = std::chrono::steady_clock::now() + 15s;
        std::string last;
        while (std::chrono::steady_clock::now() < until) {
            int st = 0;
            if (::waitpid(pid, &st, WNOHANG) == pid) {
                pid = 0;
                FAIL("etcd exited at start (status " << st << "); its log:\n" << tail());
            }
            try {
                auto s = probe.status();
                if (s.leader_id != 0) return;
            } catch (const hv::Error& e) {
                last = e.what();
            }
            std::this_thread::sleep_for(50ms);
        }
        FAIL("etcd did not answer within 15 s (last error: " << last << "); its log:\n" << tail());
    }
    void kill9() {
        if (pid <= 0) return;
        ::kill(pid, SIGKILL);
        int st = 0;
        ::waitpid(pid, &st, 0);
        pid = 0;
    }
    std::string tail() const {
        auto s = read_file(log());
        return s.size() > 3000 ? s.substr(s.size() - 3000) : s;
    }

    static EtcdServer* shared() {
        static std::unique_ptr<EtcdServer> server;
        static bool tried = false;
        if (!tried) {
            tried = true;
            auto bin = which("etcd");
            if (bin.empty()) return nullptr;
            server = std::make_unique<EtcdServer>(bin);
            server->start();
        }
        REQUIRE(server);  // it failed to start in an earlier test case
        if (server->pid == 0) server->start();
        return server.get();
    }
};

std::string unique_prefix() {
    static std::atomic<int> n{0};
    static const auto run = std::random_device{}();
    return "/hvtest/" + std::to_string(run) + "/" + std::to_string(++n) + "/";
}

struct MemoryBackend {
    static constexpr const char* name = "memory";
    std::unique_ptr<MemoryStore> store = std::make_unique<MemoryStore>();
    bool ok() const { return true; }
    Store& s() { return *store; }
    void compact(std::int64_t rev) { store->compact(rev); }
    // A lost connection: the memory store has none to lose, so this checks only that a watch
    // keeps going across a spell of unavailability.
    void restart() {
        store->set_available(false);
        std::this_thread::sleep_for(100ms);
        store->set_available(true);
    }
};

struct EtcdBackend {
    static constexpr const char* name = "etcd";
    EtcdServer* server = nullptr;
    std::unique_ptr<EtcdStore> store;
    EtcdBackend() {
        server = EtcdServer::shared();
        if (!server) {
            WARN("etcd is not installed (no /usr/bin/etcd, none in PATH): the etcd variant of the store contract is skipped");
            return;
        }
        store = std::make_unique<EtcdStore>(EtcdOptions{{server->endpoint()}, server->pki.client, 3000ms});
    }
    bool ok() const { return store != nullptr; }
    Store& s() { return *store; }
    void compact(std::int64_t rev) { store->compact(rev); }
    void restart() {
        server->kill9();
        server->start();
    }
};

// What a watch delivered, for waiting on it.
struct Recorder {
    std::mutex m;
    std::condition_variable cv;
    std::vector<WatchEvent> events;
    std::vector<std::size_t> batches;
    std::vector<std::string> errors;

    WatchCallbacks callbacks() {
        WatchCallbacks cb;
        cb.on_events = [this](const std::vector<WatchEvent>& evs) {
            std::lock_guard lock(m);
            events.insert(events.end(), evs.begin(), evs.end());
            batches.push_back(evs.size());
            cv.notify_all();
        };
        cb.on_error = [this](const std::string& why) {
            std::lock_guard lock(m);
            errors.push_back(why);
            cv.notify_all();
        };
        return cb;
    }
    bool wait_events(std::size_t n, std::chrono::milliseconds t = 5000ms) {
        std::unique_lock lock(m);
        return cv.wait_for(lock, t, [&] { return events.size() >= n; });
    }
    bool wait_error(std::chrono::milliseconds t = 5000ms) {
        std::unique_lock lock(m);
        return cv.wait_for(lock, t, [&] { return !errors.empty(); });
    }
    std::vector<WatchEvent> snapshot() {
        std::lock_guard lock(m);
        return events;
    }
};

template <typename F>
Errc error_code_of(F&& f) {
    try {
        f();
    } catch (const hv::Error& e) {
        return e.code();
    }
    FAIL("no hv::Error was thrown");
    return Errc::internal;
}

}  // namespace

TEMPLATE_TEST_CASE("store contract: put get list and del with revisions", "[store]", MemoryBackend, EtcdBackend) {
    TestType b;
    if (!b.ok()) return;
    Store& s = b.s();
    auto p = unique_prefix();

    auto r1 = s.put(p + "a", "1");
    auto kv = s.get(p + "a");
    REQUIRE(kv);
    CHECK(kv->value == "1");
    CHECK(kv->create_revision == r1);
    CHECK(kv->mod_revision == r1);
    CHECK(kv->version == 1);
    CHECK(kv->lease == 0);

    auto r2 = s.put(p + "a", std::string("2\0\xff", 3));
    CHECK(r2 > r1);
    kv = s.get(p + "a");
    REQUIRE(kv);
    CHECK(kv->value == std::string("2\0\xff", 3));
    CHECK(kv->create_revision == r1);
    CHECK(kv->mod_revision == r2);
    CHECK(kv->version == 2);

    s.put(p + "c/x", "3");
    auto r4 = s.put(p + "b", "4");
    s.put(p.substr(0, p.size() - 1) + "0", "outside");  // sorts after the prefix, is not in it
    auto l = s.list(p);
    REQUIRE(l.kvs.size() == 3);
    CHECK(l.kvs[0].key == p + "a");
    CHECK(l.kvs[1].key == p + "b");
    CHECK(l.kvs[2].key == p + "c/x");
    CHECK(l.kvs[1].mod_revision == r4);
    CHECK(l.revision > r4);

    CHECK_FALSE(s.get(p + "nothing"));
    CHECK(s.del(p + "nothing") == 0);
    CHECK(s.del(p + "b") == 1);
    CHECK_FALSE(s.get(p + "b"));
    CHECK(s.del(p, true) == 2);
    CHECK(s.list(p).kvs.empty());
    CHECK(s.get(p.substr(0, p.size() - 1) + "0"));
    CHECK(error_code_of([&] { s.put("", "x"); }) == Errc::invalid_input);
}

TEMPLATE_TEST_CASE("store contract: of two racing absent-claims exactly one wins", "[store]", MemoryBackend, EtcdBackend) {
    TestType b;
    if (!b.ok()) return;
    Store& s = b.s();
    auto p = unique_prefix();
    for (int round = 0; round < 10; ++round) {
        auto key = p + "claim" + std::to_string(round);
        std::atomic<int> ready{0};
        TxnResult res[2];
        std::string err[2];
        auto claim = [&](int who) {
            ++ready;
            while (ready.load() < 2) std::this_thread::yield();
            try {
                res[who] = s.txn({Compare::absent(key)}, {Op::put(key, "owner" + std::to_string(who))}, {Op::get(key)});
            } catch (const std::exception& e) {
                err[who] = e.what();
            }
        };
        std::thread t0(claim, 0), t1(claim, 1);
        t0.join();
        t1.join();
        REQUIRE(err[0].empty());
        REQUIRE(err[1].empty());
        REQUIRE(res[0].succeeded != res[1].succeeded);
        int winner = res[0].succeeded ? 0 : 1;
        const auto& loser = res[1 - winner];
        REQUIRE(loser.responses.size() == 1);
        REQUIRE(loser.responses[0].size() == 1);
        CHECK(loser.responses[0][0].value == "owner" + std::to_string(winner));
        CHECK(res[winner].responses.size() == 1);
        CHECK(res[winner].responses[0].empty());
        CHECK(s.get(key)->value == "owner" + std::to_string(winner));
    }
}

TEMPLATE_TEST_CASE("store contract: a guarded update with a stale mod_revision is refused", "[store]", MemoryBackend,
                   EtcdBackend) {
    TestType b;
    if (!b.ok()) return;
    Store& s = b.s();
    auto p = unique_prefix();
    auto r = s.put(p + "k", "v1");
    auto ok = s.txn({Compare::mod_revision_is(p + "k", r)}, {Op::put(p + "k", "v2"), Op::put(p + "other", "o")});
    CHECK(ok.succeeded);
    CHECK(ok.revision > r);
    CHECK(ok.responses.size() == 2);
    auto kv = s.get(p + "k");
    REQUIRE(kv);
    CHECK(kv->mod_revision == ok.revision);
    CHECK(s.get(p + "other")->mod_revision == ok.revision);  // one revision for the whole txn

    auto stale = s.txn({Compare::mod_revision_is(p + "k", r)}, {Op::put(p + "k", "v3")}, {Op::get(p, true)});
    CHECK_FALSE(stale.succeeded);
    CHECK(stale.revision == ok.revision);  // nothing written
    REQUIRE(stale.responses.size() == 1);
    REQUIRE(stale.responses[0].size() == 2);
    CHECK(stale.responses[0][0].value == "v2");
    CHECK(s.get(p + "k")->value == "v2");

    CHECK(s.txn({Compare::value_is(p + "k", "v2")}, {Op::del(p + "k")}).succeeded);
    CHECK_FALSE(s.get(p + "k"));
    CHECK_FALSE(s.txn({Compare::value_is(p + "k", "v2")}, {Op::put(p + "k", "again")}).succeeded);
    // A value compare on a missing key fails even for not_equal (etcd's rule).
    Compare ne = Compare::value_is(p + "k", "x");
    ne.result = Compare::Result::not_equal;
    CHECK_FALSE(s.txn({ne}, {}).succeeded);
}

TEMPLATE_TEST_CASE("store contract: leases expire and take their keys and keepalive then fails with not_found",
                   "[store]", MemoryBackend, EtcdBackend) {
    TestType b;
    if (!b.ok()) return;
    Store& s = b.s();
    auto p = unique_prefix();

    auto lease = s.grant(1s);
    CHECK(lease > 0);
    s.put(p + "held", "x", lease);
    s.put(p + "kept", "y");
    CHECK(s.get(p + "held")->lease == lease);
    s.keepalive(lease);

    auto until = std::chrono::steady_clock::now() + 6s;
    while (s.get(p + "held") && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(50ms);
    CHECK_FALSE(s.get(p + "held"));
    CHECK(s.get(p + "kept"));
    CHECK(error_code_of([&] { s.keepalive(lease); }) == Errc::not_found);

    auto l2 = s.grant(60s);
    s.put(p + "r", "x", l2);
    s.revoke(l2);
    CHECK_FALSE(s.get(p + "r"));
    CHECK(error_code_of([&] { s.keepalive(l2); }) == Errc::not_found);
    CHECK(error_code_of([&] { s.revoke(l2); }) == Errc::not_found);
    CHECK(error_code_of([&] { s.put(p + "x", "y", l2); }) == Errc::not_found);
    CHECK(error_code_of([&] { s.grant(0s); }) == Errc::invalid_input);
}

TEMPLATE_TEST_CASE("store contract: a watch from a revision delivers the history then live events in order", "[store]",
                   MemoryBackend, EtcdBackend) {
    TestType b;
    if (!b.ok()) return;
    Store& s = b.s();
    auto p = unique_prefix();

    auto r1 = s.put(p + "a", "1");
    auto r2 = s.put(p + "b", "2");
    s.put(p.substr(0, p.size() - 1) + "-not-mine", "z");
    auto r3 = r2 + 2;
    CHECK(s.del(p + "a") == 1);

    Recorder rec, now;
    auto w = s.watch(p, r1, rec.callbacks());
    auto w_now = s.watch(p, 0, now.callbacks());
    REQUIRE(rec.wait_events(3));
    auto r4 = s.put(p + "c", "3");
    auto t = s.txn({}, {Op::put(p + "d", "4"), Op::put(p + "e", "5")});
    REQUIRE(rec.wait_events(6));
    REQUIRE(now.wait_events(3));
    w->cancel();
    w_now->cancel();
    auto after_cancel = rec.snapshot().size();
    s.put(p + "f", "6");
    std::this_thread::sleep_for(200ms);

    auto ev = rec.snapshot();
    CHECK(ev.size() == after_cancel);  // nothing after cancel() returned
    REQUIRE(ev.size() == 6);
    CHECK(ev[0].type == WatchEvent::Type::put);
    CHECK(ev[0].kv.key == p + "a");
    CHECK(ev[0].kv.value == "1");
    CHECK(ev[0].kv.mod_revision == r1);
    CHECK(ev[1].kv.key == p + "b");
    CHECK(ev[1].kv.mod_revision == r2);
    CHECK(ev[2].type == WatchEvent::Type::del);
    CHECK(ev[2].kv.key == p + "a");
    CHECK(ev[2].kv.mod_revision == r3);
    CHECK(ev[3].kv.key == p + "c");
    CHECK(ev[3].kv.mod_revision == r4);
    CHECK(ev[4].kv.key == p + "d");
    CHECK(ev[5].kv.key == p + "e");
    CHECK(ev[4].kv.mod_revision == t.revision);
    CHECK(ev[5].kv.mod_revision == t.revision);
    CHECK(rec.batches.back() == 2);  // one revision, one batch
    CHECK(rec.errors.empty());

    auto evn = now.snapshot();
    REQUIRE(evn.size() == 3);  // "from now": none of the history
    CHECK(evn[0].kv.key == p + "c");
}

TEMPLATE_TEST_CASE("store contract: a watch resumes after the store restarts and loses or repeats nothing", "[store]",
                   MemoryBackend, EtcdBackend) {
    TestType b;
    if (!b.ok()) return;
    Store& s = b.s();
    auto p = unique_prefix();
    auto first = s.put(p + "0", "0");
    Recorder rec;
    auto w = s.watch(p, first, rec.callbacks());
    for (int i = 1; i < 3; ++i) s.put(p + std::to_string(i), std::to_string(i));
    REQUIRE(rec.wait_events(3));
    b.restart();  // etcd: kill -9, start again on the same data dir and ports
    for (int i = 3; i < 6; ++i) s.put(p + std::to_string(i), std::to_string(i));
    REQUIRE(rec.wait_events(6, 10s));
    std::this_thread::sleep_for(300ms);  // a duplicate would arrive by now
    w->cancel();
    auto ev = rec.snapshot();
    REQUIRE(ev.size() == 6);
    for (int i = 0; i < 6; ++i) {
        CHECK(ev[i].kv.key == p + std::to_string(i));
        if (i > 0) CHECK(ev[i].kv.mod_revision > ev[i - 1].kv.mod_revision);
    }
    CHECK(rec.errors.empty());
}

TEMPLATE_TEST_CASE("store contract: a watch from a compacted revision ends with on_error", "[store]", MemoryBackend,
                   EtcdBackend) {
    TestType b;
    if (!b.ok()) return;
    Store& s = b.s();
    auto p = unique_prefix();
    auto r1 = s.put(p + "k", "1");
    s.put(p + "k", "2");
    auto r3 = s.put(p + "k", "3");
    b.compact(r3);
    Recorder rec;
    auto w = s.watch(p, r1, rec.callbacks());
    REQUIRE(rec.wait_error());
    w->cancel();
    CHECK(rec.errors.size() == 1);
    CHECK_THAT(rec.errors[0], Catch::Contains("compacted"));
    CHECK(rec.snapshot().empty());

    // From the compaction revision on, the history is still there.
    Recorder ok;
    auto w2 = s.watch(p, r3, ok.callbacks());
    REQUIRE(ok.wait_events(1));
    w2->cancel();
    CHECK(ok.snapshot()[0].kv.value == "3");
    CHECK(ok.errors.empty());
}

TEMPLATE_TEST_CASE("store contract: destroying the store ends its watches with on_error", "[store]", MemoryBackend,
                   EtcdBackend) {
    TestType b;
    if (!b.ok()) return;
    auto p = unique_prefix();
    Recorder rec;
    auto w = b.s().watch(p, 0, rec.callbacks());
    b.s().put(p + "k", "v");
    REQUIRE(rec.wait_events(1));
    b.store.reset();
    REQUIRE(rec.wait_error());
    w->cancel();
    CHECK(rec.errors.size() == 1);
    CHECK_THAT(rec.errors[0], Catch::Contains("closed"));
}

TEMPLATE_TEST_CASE("store contract: members and status", "[store]", MemoryBackend, EtcdBackend) {
    TestType b;
    if (!b.ok()) return;
    Store& s = b.s();
    auto ms = s.members();
    REQUIRE(ms.size() == 1);
    CHECK(ms[0].id != 0);
    CHECK_FALSE(ms[0].peer_urls.empty());
    CHECK_FALSE(ms[0].learner);
    auto st = s.status();
    CHECK(st.member_id == ms[0].id);
    CHECK(st.leader_id == ms[0].id);
    CHECK(st.revision > 0);
    CHECK_FALSE(st.version.empty());
    CHECK_FALSE(st.endpoint.empty());

    auto url = "http://127.0.0.1:" + std::to_string(free_port());
    auto added = s.member_add({url}, true);
    auto id = added.first;
    const auto& list = added.second;
    CHECK(id != 0);
    REQUIRE(list.size() == 2);
    bool found = false;
    for (const auto& m : list)
        if (m.id == id) {
            found = true;
            CHECK(m.learner);
            CHECK(m.peer_urls == std::vector<std::string>{url});
        }
    CHECK(found);
    CHECK(error_code_of([&] { s.member_promote(ms[0].id); }) == Errc::conflict);  // not a learner
    s.member_remove(id);
    CHECK(s.members().size() == 1);
    CHECK(error_code_of([&] { s.member_remove(id); }) == Errc::not_found);
}

TEST_CASE("store: the memory store fails every call while unavailable", "[store]") {
    MemoryStore s;
    s.put("/k", "v");
    s.set_available(false);
    CHECK(error_code_of([&] { s.get("/k"); }) == Errc::unavailable);
    CHECK(error_code_of([&] { s.put("/k", "w"); }) == Errc::unavailable);
    s.set_available(true);
    CHECK(s.get("/k")->value == "v");
    auto l = s.grant(60s);
    s.put("/l", "x", l);
    s.expire(l);
    CHECK_FALSE(s.get("/l"));
}

TEST_CASE("store: etcd refuses a client certificate of another CA and the server must be named by its certificate",
          "[store]") {
    EtcdBackend b;
    if (!b.ok()) return;
    auto* server = b.server;

    EtcdStore foreign(EtcdOptions{{server->endpoint()}, server->pki.foreign, 2000ms});
    try {
        foreign.get("/x");
        FAIL("a client with a certificate of another CA was served");
    } catch (const hv::Error& e) {
        CHECK(e.code() == Errc::unavailable);
        INFO(e.what());
        CHECK_THAT(std::string(e.what()), Catch::Contains(server->endpoint()));
        CHECK_THAT(std::string(e.what()), Catch::Contains("TLS") || Catch::Contains("tls") || Catch::Contains("reset"));
    }

    // The refusal is a TLS alert before etcd read anything: a write is not "maybe applied".
    try {
        foreign.put("/x", "y");
        FAIL("a client with a certificate of another CA could write");
    } catch (const hv::Error& e) {
        CHECK(e.code() == Errc::unavailable);
        INFO(e.what());
        CHECK_THAT(std::string(e.what()), !Catch::Contains("may have been applied"));
    }

    // The server certificate names IP 127.0.0.1 only: asked as "localhost", the client refuses it.
    EtcdStore by_name(EtcdOptions{{"localhost:" + std::to_string(server->client_port)}, server->pki.client, 2000ms});
    try {
        by_name.get("/x");
        FAIL("a server certificate that does not name the host was accepted");
    } catch (const hv::Error& e) {
        CHECK(e.code() == Errc::unavailable);
        INFO(e.what());
        CHECK_THAT(std::string(e.what()), Catch::Contains("hostname mismatch") || Catch::Contains("IP address mismatch"));
    }

    // A client that trusts another CA refuses etcd's certificate.
    TlsIdentity wrong = server->pki.client;
    wrong.ca_pem = server->pki.other_ca_pem;
    EtcdStore distrust(EtcdOptions{{server->endpoint()}, wrong, 2000ms});
    try {
        distrust.get("/x");
        FAIL("a server certificate of an untrusted CA was accepted");
    } catch (const hv::Error& e) {
        CHECK(e.code() == Errc::unavailable);
        INFO(e.what());
        CHECK_THAT(std::string(e.what()), Catch::Contains("certificate verify"));
    }
}

TEST_CASE("store: etcd endpoint failover skips an endpoint nobody listens on", "[store]") {
    EtcdBackend b;
    if (!b.ok()) return;
    auto dead = "127.0.0.1:" + std::to_string(free_port());
    EtcdStore s(EtcdOptions{{dead, b.server->endpoint()}, b.server->pki.client, 2000ms});
    auto p = unique_prefix();
    s.put(p + "k", "v");  // a connect that failed sent nothing: the write goes to the next endpoint
    CHECK(s.get(p + "k")->value == "v");
    CHECK(s.status().endpoint == "https://" + b.server->endpoint());

    EtcdStore none(EtcdOptions{{dead}, b.server->pki.client, 1000ms});
    try {
        none.put(p + "k", "w");
        FAIL("a put with no endpoint reachable succeeded");
    } catch (const hv::Error& e) {
        CHECK(e.code() == Errc::unavailable);
        CHECK_THAT(std::string(e.what()), Catch::Contains(dead) && Catch::Contains("connect"));
    }
}

TEST_CASE("store: etcd's JSON answers are parsed strictly", "[store]") {
    namespace ej = hv::cluster::etcd_json;
    auto code = [](const std::string& body, int status = 200) {
        return error_code_of([&] { ej::parse_answer(body, status); });
    };
    CHECK(code(R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})") ==
          Errc::not_found);
    CHECK(code(R"({"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14})", 503) == Errc::unavailable);
    CHECK(code(R"({"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14})") ==
          Errc::unavailable);
    CHECK(code(R"({"error":"etcdserver: mvcc: required revision has been compacted","code":11})") == Errc::invalid_input);
    CHECK(code("not json") == Errc::internal);
    CHECK(code("<html>bad gateway</html>", 502) == Errc::unavailable);
    CHECK(code("[1,2]") == Errc::internal);

    auto j = ej::parse_answer(R"({"header":{"revision":"7"},"kvs":[{"key":"YQ==","create_revision":"2","mod_revision":"7","version":"2","value":"MQ=="}],"count":"1"})", 200);
    auto r = ej::parse_range(j);
    CHECK(r.revision == 7);
    REQUIRE(r.kvs.size() == 1);
    CHECK(r.kvs[0].key == "a");
    CHECK(r.kvs[0].value == "1");
    auto bad = [](const std::string& body) {
        return error_code_of([&] { ej::parse_range(nlohmann::json::parse(body)); });
    };
    CHECK(bad(R"({"header":{"revision":"x7"}})") == Errc::internal);
    CHECK(bad(R"({"header":{"revision":"99999999999999999999"}})") == Errc::internal);
    CHECK(bad(R"({"header":{"revision":"7"},"kvs":[{"key":"YQ="}]})") == Errc::internal);
    CHECK(bad(R"({"header":{"revision":"7"},"kvs":{"key":"YQ=="}})") == Errc::internal);
    CHECK(bad(R"({"header":[]})") == Errc::internal);
    CHECK(bad(R"({"header":{},"kvs":[{"value":"YQ=="}]})") == Errc::internal);
    CHECK(error_code_of([] { ej::parse_watch_line(R"({"result":{"events":[{"type":"EXPLODE","kv":{"key":"YQ==","mod_revision":"3"}}]}})"); }) ==
          Errc::internal);
    CHECK(error_code_of([] { ej::parse_watch_line(R"({"error":{"grpc_code":14,"message":"transport is closing"}})"); }) ==
          Errc::unavailable);
    auto w = ej::parse_watch_line(R"({"result":{"header":{"revision":"5"},"canceled":true,"compact_revision":"4"}})");
    CHECK(w.canceled);
    CHECK(w.compact_revision == 4);
    CHECK(ej::base64_decode(ej::base64_encode(std::string("\0\xff\x01zz", 5))) == std::string("\0\xff\x01zz", 5));
    CHECK(error_code_of([] { ej::base64_decode("YQ=a"); }) == Errc::internal);
}

TEST_CASE("store: split_host_port", "[store]") {
    CHECK(split_host_port("https://10.0.0.1:2379", 1) == std::pair<std::string, int>{"10.0.0.1", 2379});
    CHECK(split_host_port("10.0.0.1", 2379) == std::pair<std::string, int>{"10.0.0.1", 2379});
    CHECK(split_host_port("[fd00::1]:23", 1) == std::pair<std::string, int>{"fd00::1", 23});
    CHECK(split_host_port("etcd-1.example:2379/", 1) == std::pair<std::string, int>{"etcd-1.example", 2379});
    for (const char* bad : {"", "http://a:1", "a:0", "a:65536", "a:x", "[fd00::1", "fd00::1:23", "a:1/v3", "a b:1", ":1"})
        CHECK(error_code_of([&] { split_host_port(bad, 1); }) == Errc::invalid_input);
}

namespace {

// Runs argv with `input` on its stdin; returns the exit status (the output goes to /dev/null).
int run_with_stdin(const std::vector<std::string>& argv, const std::string& input) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::vector<std::string> copy = argv;
    std::vector<char*> args;
    for (auto& a : copy) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, argv[0].c_str(), &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[0]);
    REQUIRE(rc == 0);
    REQUIRE(::write(fds[1], input.data(), input.size()) == static_cast<ssize_t>(input.size()));
    ::close(fds[1]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// etcd's WAL fsync and backend commit totals (seconds, count) from its /metrics.
std::pair<double, double> disk_metrics(const EtcdServer& server, const char* name) {
    HttpsClient c(server.pki.client, 3000ms);
    HttpsRequest req;
    req.target = "/metrics";
    auto resp = c.request("127.0.0.1", server.client_port, req);
    double sum = 0, count = 0;
    std::stringstream ss(resp.body);
    std::string line;
    while (std::getline(ss, line)) {
        if (line.rfind(std::string(name) + "_sum ", 0) == 0) sum = std::stod(line.substr(line.find(' ') + 1));
        if (line.rfind(std::string(name) + "_count ", 0) == 0) count = std::stod(line.substr(line.find(' ') + 1));
    }
    return {sum, count};
}

}  // namespace

TEST_CASE("store: benchmark EtcdStore against etcdctl with 200 puts gets and txns", "[.store-bench]") {
    EtcdBackend b;
    if (!b.ok()) return;
    auto etcdctl = which("etcdctl");
    REQUIRE_FALSE(etcdctl.empty());
    auto& pki = b.server->pki;
    const std::vector<std::string> base = {etcdctl, "--endpoints=https://" + b.server->endpoint(),
                                           "--cacert=" + pki.ca_file, "--cert=" + pki.dir.path + "/client.crt",
                                           "--key=" + pki.dir.path + "/client.key"};
    auto ctl = [&](std::vector<std::string> args) {
        auto argv = base;
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = hv::util::run_command(argv, 10s);
        REQUIRE(r.exit_status == 0);
    };
    constexpr int n = 200;
    auto p = unique_prefix();
    using Ms = std::chrono::duration<double, std::milli>;
    auto time = [](auto&& f) {
        auto t0 = std::chrono::steady_clock::now();
        f();
        return Ms(std::chrono::steady_clock::now() - t0).count() / n;
    };
    Store& s = b.s();
    auto fs0 = disk_metrics(*b.server, "etcd_disk_wal_fsync_duration_seconds");
    double put = time([&] { for (int i = 0; i < n; ++i) s.put(p + "k" + std::to_string(i), "v"); });
    auto fs1 = disk_metrics(*b.server, "etcd_disk_wal_fsync_duration_seconds");
    double get = time([&] { for (int i = 0; i < n; ++i) REQUIRE(s.get(p + "k" + std::to_string(i))); });
    double txn = time([&] {
        for (int i = 0; i < n; ++i)
            REQUIRE(s.txn({Compare::absent(p + "t" + std::to_string(i))}, {Op::put(p + "t" + std::to_string(i), "v")}).succeeded);
    });
    double ctl_put = time([&] { for (int i = 0; i < n; ++i) ctl({"put", p + "c" + std::to_string(i), "v"}); });
    double ctl_get = time([&] { for (int i = 0; i < n; ++i) ctl({"get", p + "c" + std::to_string(i)}); });
    double ctl_txn = time([&] {
        for (int i = 0; i < n; ++i) {
            auto argv = base;
            argv.push_back("txn");
            auto key = p + "u" + std::to_string(i);
            REQUIRE(run_with_stdin(argv, "create(\"" + key + "\") = \"0\"\n\nput " + key + " v\n\n\n") == 0);
        }
    });
    REQUIRE(s.get(p + "u" + std::to_string(n - 1)));
    // The floor of one request on its own connection: TCP + TLS handshake + GET /version, which
    // etcd answers without the gateway's gRPC hop or raft.
    HttpsClient https(pki.client, 3000ms);
    HttpsRequest version;
    version.target = "/version";
    double floor = time([&] {
        for (int i = 0; i < n; ++i) REQUIRE(https.request("127.0.0.1", b.server->client_port, version).status == 200);
    });
    double fsync_ms = fs1.second > fs0.second ? (fs1.first - fs0.first) * 1000 / (fs1.second - fs0.second) : 0;
    std::string report = fmt::format(
        "per operation, {} each, ms: EtcdStore put {:.2f} get {:.2f} txn {:.2f}; etcdctl put {:.2f} get {:.2f} txn {:.2f}; "
        "ratio EtcdStore/etcdctl put {:.2f} get {:.2f} txn {:.2f}; etcd WAL fsync during the EtcdStore puts: {:.0f} "
        "fsyncs, mean {:.2f} ms; one TLS connection + GET /version (the per-request floor) {:.2f} ms",
        n, put, get, txn, ctl_put, ctl_get, ctl_txn, put / ctl_put, get / ctl_get, txn / ctl_txn, fs1.second - fs0.second,
        fsync_ms, floor);
    WARN(report);
}

TEST_CASE("store: the HTTPS client keeps to its timeout and refuses bad PEM", "[store]") {
    // A socket that listens but never speaks TLS: the kernel accepts the connection, the
    // handshake never completes.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 4) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    int port = ntohs(a.sin_port);

    static Pki pki;  // shared with nothing else; made once
    HttpsClient c(pki.client, 300ms);
    HttpsRequest req;
    auto t0 = std::chrono::steady_clock::now();
    bool applied = true;
    try {
        c.request("127.0.0.1", port, req, &applied);
        FAIL("a request to a silent server succeeded");
    } catch (const hv::Error& e) {
        CHECK(e.code() == Errc::unavailable);
        CHECK_THAT(std::string(e.what()), Catch::Contains("TLS handshake timed out") && Catch::Contains(std::to_string(port)));
    }
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took >= 250ms);
    CHECK(took < 2s);
    CHECK_FALSE(applied);
    ::close(fd);

    TlsIdentity bad = pki.client;
    bad.key_pem = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n";
    CHECK(error_code_of([&] { HttpsClient x(bad, 1s); }) == Errc::invalid_input);
    bad = pki.client;
    bad.key_pem = pki.foreign.key_pem;  // a key of another certificate
    CHECK(error_code_of([&] { HttpsClient x(bad, 1s); }) == Errc::invalid_input);
    bad = pki.client;
    bad.ca_pem = "junk";
    CHECK(error_code_of([&] { HttpsClient x(bad, 1s); }) == Errc::invalid_input);
}

namespace {

// A TLS server with etcd's certificate that reads each request and never answers it, until the
// client gives up: a request that surely reached a server and maybe applied there.
class SilentTlsServer {
public:
    explicit SilentTlsServer(const TlsIdentity& id) : acceptor_(ioc_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
        ctx_.use_certificate_chain(boost::asio::buffer(id.cert_pem));
        ctx_.use_private_key(boost::asio::buffer(id.key_pem), boost::asio::ssl::context::pem);
        port = acceptor_.local_endpoint().port();
        thread_ = std::thread([this] { run(); });
    }
    ~SilentTlsServer() {
        stop_ = true;
        boost::system::error_code ec;
        boost::asio::ip::tcp::socket poke(ioc_);
        poke.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)}, ec);
        poke.close(ec);
        thread_.join();
    }
    int port = 0;
    std::atomic<int> requests{0};

private:
    void run() {
        while (!stop_) {
            boost::asio::ip::tcp::socket sock(ioc_);
            boost::system::error_code ec;
            acceptor_.accept(sock, ec);
            if (ec || stop_) return;
            boost::asio::ssl::stream<boost::asio::ip::tcp::socket&> s(sock, ctx_);
            s.handshake(boost::asio::ssl::stream_base::server, ec);
            if (ec) continue;
            boost::asio::streambuf buf;
            boost::asio::read_until(s, buf, "\r\n\r\n", ec);
            if (!ec) ++requests;
            char c;
            while (!ec) s.read_some(boost::asio::buffer(&c, 1), ec);  // until the client closes
        }
    }
    boost::asio::io_context ioc_;
    boost::asio::ssl::context ctx_{boost::asio::ssl::context::tls_server};
    boost::asio::ip::tcp::acceptor acceptor_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace

TEST_CASE("store: a write that reached an endpoint is not retried on the next one but a read is", "[store]") {
    EtcdBackend b;
    if (!b.ok()) return;
    SilentTlsServer silent(b.server->pki.server);
    auto p = unique_prefix();
    EtcdStore s(EtcdOptions{{"127.0.0.1:" + std::to_string(silent.port), b.server->endpoint()}, b.server->pki.client, 500ms});
    try {
        s.put(p + "k", "v");
        FAIL("a put whose answer never came succeeded");
    } catch (const hv::Error& e) {
        CHECK(e.code() == Errc::unavailable);
        INFO(e.what());
        CHECK_THAT(std::string(e.what()), Catch::Contains("may have been applied") && Catch::Contains(std::to_string(silent.port)));
    }
    CHECK(silent.requests.load() == 1);
    CHECK_FALSE(b.s().get(p + "k"));  // it was not sent to etcd as well

    CHECK_FALSE(s.get(p + "k"));  // a read moves on to etcd
    CHECK(silent.requests.load() == 2);
    s.put(p + "k", "v");  // etcd answered last: tried first now
    CHECK(silent.requests.load() == 2);
    CHECK(b.s().get(p + "k")->value == "v");
}
