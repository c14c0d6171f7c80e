// Nothing a client sends ends hvd: text that is not UTF-8 is refused where it enters (400) and
// never rendered back raw; slow and greedy clients are bounded per uid and in total while root
// always gets through (docs/api.md "Text and names", docs/configuration.md [daemon]).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {

void require_alive(Hvd& hvd) {
    REQUIRE(hvd.running());
    auto r = hvd.ctl({"vm", "list", "-o", "json"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
}

std::int64_t mono_ms() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// A client process of another uid that opens `n` connections and sends each half a request
// header, then reports once `expect_refused` of them were refused (one byte on `ready`) and
// finally every connection's HTTP status and when it arrived. Forked, so only plain system
// calls and fixed buffers are used in the child.
constexpr int kMaxConns = 64;
struct FloodResult {
    int status[kMaxConns];
    std::int64_t at_ms[kMaxConns];
};

struct Flood {
    pid_t pid = -1;
    int ready_fd = -1;
    int result_fd = -1;

    Flood(uid_t uid, int n, int expect_refused, const std::string& socket_path) {
        REQUIRE(n <= kMaxConns);
        int ready[2], result[2];
        REQUIRE(::pipe(ready) == 0);
        REQUIRE(::pipe(result) == 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        REQUIRE(socket_path.size() < sizeof addr.sun_path);
        std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
        pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(ready[0]);
            ::close(result[0]);
            if (::setresgid(uid, uid, uid) != 0 || ::setresuid(uid, uid, uid) != 0) ::_exit(3);
            static const char half[] = "GET /v1/vms HTTP/1.1\r\nHost: hvd\r\nX-Slow: ";
            static FloodResult res;
            pollfd fds[kMaxConns];
            for (int i = 0; i < n; ++i) {
                res.status[i] = 0;
                res.at_ms[i] = 0;
                int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ::_exit(4);
                (void)!::send(s, half, sizeof half - 1, MSG_NOSIGNAL);  // may be refused already: read below
                fds[i] = {s, POLLIN, 0};
            }
            int answered = 0, refused = 0;
            bool told = false;
            auto deadline = mono_ms() + 60000;
            while (answered < n && mono_ms() < deadline) {
                if (!told && refused >= expect_refused) {
                    char c = 'r';
                    if (::write(ready[1], &c, 1) != 1) ::_exit(5);
                    told = true;
                }
                if (::poll(fds, static_cast<nfds_t>(n), 100) <= 0) continue;
                for (int i = 0; i < n; ++i) {
                    if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                    char buf[128] = {0};
                    ssize_t k = ::read(fds[i].fd, buf, sizeof buf - 1);
                    // "HTTP/1.1 503 ..." -> 503; closed without an answer -> -1
                    int st = (k >= 12 && std::memcmp(buf, "HTTP/1.", 7) == 0) ? std::atoi(buf + 9) : -1;
                    res.status[i] = st;
                    res.at_ms[i] = mono_ms();
                    if (st == 503) ++refused;
                    ::close(fds[i].fd);
                    fds[i].fd = -1;
                    ++answered;
                }
            }
            if (!told) {
                char c = 'r';
                (void)!::write(ready[1], &c, 1);
            }
            (void)!::write(result[1], &res, sizeof res);
            ::_exit(0);
        }
        ::close(ready[1]);
        ::close(result[1]);
        ready_fd = ready[0];
        result_fd = result[0];
    }
    ~Flood() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        if (ready_fd >= 0) ::close(ready_fd);
        if (result_fd >= 0) ::close(result_fd);
    }
    void wait_ready() {
        pollfd p{ready_fd, POLLIN, 0};
        REQUIRE(::poll(&p, 1, 30000) == 1);
        char c;
        REQUIRE(::read(ready_fd, &c, 1) == 1);
    }
    FloodResult finish() {
        FloodResult r{};
        std::size_t got = 0;
        while (got < sizeof r) {
            pollfd p{result_fd, POLLIN, 0};
            REQUIRE(::poll(&p, 1, 70000) == 1);
            ssize_t k = ::read(result_fd, reinterpret_cast<char*>(&r) + got, sizeof r - got);
            REQUIRE(k > 0);
            got += static_cast<std::size_t>(k);
        }
        int st = 0;
        ::waitpid(pid, &st, 0);
        pid = -1;
        REQUIRE(WIFEXITED(st));
        REQUIRE(WEXITSTATUS(st) == 0);
        return r;
    }
};

int count(const FloodResult& r, int n, int status) {
    int c = 0;
    for (int i = 0; i < n; ++i) c += r.status[i] == status;
    return c;
}

}  // namespace

TEST_CASE("text that is not UTF-8 is refused with 400 where it enters, and hvd goes on", "[integration][hardening]") {
    Hvd hvd;
    // The requests that used to end hvd (each one alone).
    struct Case {
        std::string method, target, body;
    };
    std::vector<Case> cases{
        {"GET", "/v1/vms/%FF%FE", ""},
        {"DELETE", "/v1/vms/x?purge=%FF", ""},
        {"POST", "/v1/vms", "{\"name\":\"a\xff\",\"cpus\":1,\"memory\":\"64M\"}"},
        {"PUT", "/v1/time", "{\"servers\":[{\"host\":\"\xff\xfe\"}]}"},
        {"PUT", "/v1/storage/pools/local/isos/%FF.iso", "not an iso"},
        {"GET", "/v1/vms/a%00b", ""},
        {"GET", "/v1/vms/%2e%2e", ""},
        {"GET", "/v1/storage/pools/local/isos/..%2Fetc", ""},
        {"GET", "/v1/tasks?%FF=1", ""},
        {"POST", "/v1/vms", "{\"name\":\"ok\",\"description\":\"\xed\xa0\x80\",\"memory\":\"64M\"}"},  // a surrogate
        {"POST", "/v1/vms", "{\"name\":\"\xc0\xaf\",\"memory\":\"64M\"}"},                          // overlong '/'
    };
    for (const auto& c : cases) {
        auto h = hvd.http(c.method, c.target, c.body);
        INFO(c.method << " " << c.target << " -> " << h.status << " " << h.body);
        CHECK(h.status == 400);
        auto j = h.json();
        REQUIRE(j.is_object());
        CHECK(j["error"]["code"] == "invalid_input");
        require_alive(hvd);
    }
    // Nothing was stored under a name that is not UTF-8; the ISO list still renders.
    for (const auto& f : list_dir(hvd.pool_dir + "/iso")) CHECK(f.find('\xff') == std::string::npos);
    auto isos = hvd.ctl({"storage", "iso", "list", "-o", "json"});
    INFO(isos.describe());
    CHECK(isos.exit_code == 0);

    // A non-ASCII name from hvctl is a clean 400 (exit 3) quoting the whole name and character.
    auto r = hvd.ctl({"vm", "create", "café", "--memory", "64M"});
    INFO(r.describe());
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("'café'") != std::string::npos);
    CHECK(r.err.find("'é'") != std::string::npos);
    r = hvd.ctl({"ct", "create", "café", "--template", "busybox"});
    INFO(r.describe());
    CHECK(r.exit_code == 3);
    r = hvd.ctl({"storage", "pool", "add", "café", "--type", "dir", "--path", hvd.dir + "/p"});
    INFO(r.describe());
    CHECK(r.exit_code == 3);
    CHECK_FALSE(domain_exists("café"));
    require_alive(hvd);
}

TEST_CASE("half-open connections of one uid neither keep out other uids nor root, and get 408 after the header timeout",
          "[integration][hardening][connections]") {
    // Small limits so the test needs few connections: 16 per uid, 20 for all non-root uids.
    Hvd hvd(true,
            "[daemon]\nheader_timeout = 6\nmax_connections = 20\nmax_connections_per_uid = 16\n");
    // Other uids may connect (the harness dir is private to root).
    REQUIRE(::chmod(hvd.dir.c_str(), 0711) == 0);
    REQUIRE(::chmod(hvd.socket.c_str(), 0666) == 0);

    // uid 65534 holds 16 half-open connections; its other 24 are refused at once with 503.
    Flood a(65534, 40, 24, hvd.socket);
    a.wait_ready();
    // uid 65533 gets the 4 slots left of the 20, then the total limit refuses it.
    Flood b(65533, 8, 4, hvd.socket);
    b.wait_ready();
    // root still gets through, while every non-root slot is held.
    auto r = hvd.ctl({"vm", "list", "-o", "json"});
    auto root_done = mono_ms();
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto h = hvd.http("GET", "/v1/version");
    CHECK(h.status == 200);

    auto ra = a.finish();
    auto rb = b.finish();
    CHECK(count(ra, 40, 503) == 24);
    CHECK(count(ra, 40, 408) == 16);  // the header never came: answered, not dropped
    CHECK(count(rb, 8, 503) == 4);
    CHECK(count(rb, 8, 408) == 4);
    // root's answer came while the held connections were still open.
    std::int64_t first_408 = INT64_MAX;
    for (int i = 0; i < 40; ++i)
        if (ra.status[i] == 408) first_408 = std::min(first_408, ra.at_ms[i]);
    CHECK(root_done < first_408);

    // Their slots are free again: the same uid is served.
    Flood again(65534, 1, 0, hvd.socket);
    auto rr = again.finish();
    CHECK(rr.status[0] == 408);
    require_alive(hvd);
    CHECK(hvd.log_tail(400).find("refusing a connection") != std::string::npos);
}
