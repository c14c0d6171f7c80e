// The managed etcd member (etcd_process.hpp): its flags, its TLS files, and a supervisor
// thread that forks it, reaps it, restarts it with a backoff and health-checks it over mutual
// TLS. The supervisor thread is the one that forks: PR_SET_PDEATHSIG fires when the thread
// that forked the child exits, so a short-lived thread would take etcd with it.
#include "etcd_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "hv/error.hpp"
#include "hv/util/atomic_file.hpp"

extern char** environ;

namespace hv::cluster {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// IPv6 literals go in brackets inside a URL.
std::string url_host(const std::string& address) {
    if (address.find(':') != std::string::npos && address.front() != '[') return "[" + address + "]";
    return address;
}
std::string url(const std::string& address, int port) { return "https://" + url_host(address) + ":" + std::to_string(port); }

std::string tls_file(const EtcdMemberConfig& c, const char* name) { return (fs::path(c.tls_dir) / name).string(); }

void validate(const EtcdMemberConfig& c) {
    if (c.binary.empty()) fail(Errc::invalid_input, "etcd member: no etcd binary");
    if (c.name.empty()) fail(Errc::invalid_input, "etcd member: no name");
    if (c.data_dir.empty() || c.tls_dir.empty() || c.log_file.empty())
        fail(Errc::invalid_input, "etcd member: data_dir, tls_dir and log_file are required");
    if (c.address.empty()) fail(Errc::invalid_input, "etcd member: no address");
    for (int p : {c.client_port, c.peer_port})
        if (p < 1 || p > 65535) fail(Errc::invalid_input, "etcd member: port {} is out of range", p);
    if (c.client_port == c.peer_port) fail(Errc::invalid_input, "etcd member: the client and peer ports are the same");
    if (c.existing && c.initial_cluster.empty())
        fail(Errc::invalid_input, "etcd member: joining an existing cluster needs its initial_cluster");
}

// The binary's path, looked up in PATH before fork (execve in the child, nothing that
// allocates after fork).
std::string resolve_binary(const std::string& binary) {
    if (binary.find('/') != std::string::npos) return binary;
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    std::size_t p = 0;
    while (p <= dirs.size()) {
        auto e = dirs.find(':', p);
        if (e == std::string::npos) e = dirs.size();
        std::string dir = dirs.substr(p, e - p);
        std::string cand = (dir.empty() ? std::string(".") : dir) + "/" + binary;
        if (::access(cand.c_str(), X_OK) == 0) return cand;
        p = e + 1;
    }
    fail(Errc::unavailable, "cannot run {}: not found in PATH", binary);
}

// hvd's environment without etcd's own variables: etcd reads every flag from ETCD_<FLAG>
// too, and a stray one would change the member behind hvd's back.
std::vector<std::string> child_environment() {
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
        std::string_view v(*e);
        if (v.substr(0, 5) == "ETCD_" || v.substr(0, 8) == "ETCDCTL_") continue;
        env.emplace_back(v);
    }
    return env;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
    std::vector<char*> out;
    for (auto& s : v) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

void append_log(int fd, const std::string& line) {
    std::string l = line + "\n";
    ssize_t ignored = ::write(fd, l.data(), l.size());
    (void)ignored;
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("was killed by signal ") + std::to_string(WTERMSIG(status));
    return "stopped";
}

// GET https://address:port/health with the member's own certificate as the client's;
// true when etcd answers {"health":"true"}. `why` says what went wrong otherwise.
bool check_health(const EtcdMemberConfig& c, std::chrono::milliseconds timeout, std::string& why) {
    try {
        asio::io_context ioc;
        asio::ssl::context ctx(asio::ssl::context::tls_client);
        ctx.set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                        asio::ssl::context::no_tlsv1_1);
        ctx.add_certificate_authority(asio::buffer(c.tls.ca_pem));
        ctx.use_certificate_chain(asio::buffer(c.tls.cert_pem));
        ctx.use_private_key(asio::buffer(c.tls.key_pem), asio::ssl::context::pem);
        ctx.set_verify_mode(asio::ssl::verify_peer);
        beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
        // The member's certificate must name the address we dialled.
        X509_VERIFY_PARAM* param = SSL_get0_param(stream.native_handle());
        boost::system::error_code aec;
        asio::ip::make_address(c.address, aec);
        if (!aec) {
            if (X509_VERIFY_PARAM_set1_ip_asc(param, c.address.c_str()) != 1) {
                why = "cannot set the expected IP address";
                return false;
            }
        } else {
            X509_VERIFY_PARAM_set1_host(param, c.address.c_str(), 0);
            SSL_set_tlsext_host_name(stream.native_handle(), c.address.c_str());
        }
        asio::ip::tcp::resolver resolver(ioc);
        auto endpoints = resolver.resolve(c.address, std::to_string(c.client_port));
        http::request<http::empty_body> req{http::verb::get, "/health", 11};
        req.set(http::field::host, url_host(c.address) + ":" + std::to_string(c.client_port));
        http::response<http::string_body> res;
        beast::flat_buffer buf;
        boost::system::error_code result;
        bool done = false;
        auto finish = [&](boost::system::error_code ec) {
            result = ec;
            done = true;
        };
        beast::get_lowest_layer(stream).expires_after(timeout);
        beast::get_lowest_layer(stream).async_connect(endpoints, [&](boost::system::error_code ec, const auto&) {
            if (ec) return finish(ec);
            stream.async_handshake(asio::ssl::stream_base::client, [&](boost::system::error_code ec2) {
                if (ec2) return finish(ec2);
                http::async_write(stream, req, [&](boost::system::error_code ec3, std::size_t) {
                    if (ec3) return finish(ec3);
                    http::async_read(stream, buf, res, [&](boost::system::error_code ec4, std::size_t) { finish(ec4); });
                });
            });
        });
        ioc.run();
        if (!done || result) {
            why = done ? result.message() : "no answer";
            return false;
        }
        if (res.result_int() != 200) {
            why = "HTTP status " + std::to_string(res.result_int());
            return false;
        }
        auto j = nlohmann::json::parse(res.body(), nullptr, false);
        if (j.is_object() && j.contains("health") && j["health"] == "true") return true;
        why = "etcd reports itself unhealthy";
        return false;
    } catch (const std::exception& e) {
        why = e.what();
        return false;
    }
}

constexpr auto kHealthInterval = 5s;
constexpr auto kHealthTimeout = 2s;
constexpr auto kUnhealthyKill = 30s;
constexpr auto kBackoffFirst = 1s;
constexpr auto kBackoffMax = 30s;
// A run this long counts as a success: the next crash restarts after kBackoffFirst again.
constexpr auto kStableRun = 60s;
constexpr auto kStopGrace = 10s;
constexpr auto kReapPoll = 100ms;

}  // namespace

std::vector<std::string> etcd_argv(const EtcdMemberConfig& c) {
    std::string client = url(c.address, c.client_port);
    std::string peer = url(c.address, c.peer_port);
    std::string initial = c.initial_cluster.empty() ? c.name + "=" + peer : c.initial_cluster;
    return {
        c.binary,
        "--name=" + c.name,
        "--data-dir=" + c.data_dir,
        "--listen-client-urls=" + client,
        "--advertise-client-urls=" + client,
        "--listen-peer-urls=" + peer,
        "--initial-advertise-peer-urls=" + peer,
        "--initial-cluster=" + initial,
        std::string("--initial-cluster-state=") + (c.existing ? "existing" : "new"),
        "--initial-cluster-token=" + c.cluster_token,
        // Clients (hvd on every host, etcdctl) and peers must present a certificate of the
        // cluster CA.
        "--client-cert-auth",
        "--trusted-ca-file=" + tls_file(c, "ca.crt"),
        "--cert-file=" + tls_file(c, "host.crt"),
        "--key-file=" + tls_file(c, "host.key"),
        "--peer-client-cert-auth",
        "--peer-trusted-ca-file=" + tls_file(c, "ca.crt"),
        "--peer-cert-file=" + tls_file(c, "host.crt"),
        "--peer-key-file=" + tls_file(c, "host.key"),
        // hv keeps little history: compact what is older than an hour.
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=1h",
        // A LAN: a lost leader is noticed within a second.
        "--heartbeat-interval=100",
        "--election-timeout=1000",
        // A member back from a partition must not depose a working leader (its raised term
        // would force an election: a second of no keepalives, and HA's watchdogs count those).
        "--pre-vote",
        "--logger=zap",
        "--log-outputs=stderr",
    };
}

struct EtcdProcess::Impl {
    EtcdMemberConfig config;
    std::atomic<int> pid{0};
    std::atomic<int> restarts{0};

    std::mutex mu;
    std::condition_variable cv;
    bool stopping = false;  // under mu
    bool healthy = false;   // under mu: the last check of the current run succeeded
    std::thread thread;

    explicit Impl(EtcdMemberConfig c) : config(std::move(c)) {}

    void write_files() {
        std::error_code ec;
        fs::create_directories(config.tls_dir, ec);
        if (ec) fail(Errc::internal, "etcd member: cannot create {}: {}", config.tls_dir, ec.message());
        ::chmod(config.tls_dir.c_str(), 0700);
        util::write_file_atomic(tls_file(config, "ca.crt"), config.tls.ca_pem, 0600);
        util::write_file_atomic(tls_file(config, "host.crt"), config.tls.cert_pem, 0600);
        util::write_file_atomic(tls_file(config, "host.key"), config.tls.key_pem, 0600);
        // etcd wants its data directory private (it warns otherwise, and refuses in newer
        // releases).
        fs::create_directories(config.data_dir, ec);
        if (ec) fail(Errc::internal, "etcd member: cannot create {}: {}", config.data_dir, ec.message());
        ::chmod(config.data_dir.c_str(), 0700);
        auto log_dir = fs::path(config.log_file).parent_path();
        if (!log_dir.empty()) {
            fs::create_directories(log_dir, ec);
            if (ec) fail(Errc::internal, "etcd member: cannot create {}: {}", log_dir.string(), ec.message());
        }
    }

    // fork + execve of the member, from the supervisor thread. Returns once exec succeeded
    // (a CLOEXEC pipe tells: it closes on exec, or carries the child's errno).
    int spawn() {
        auto argv_s = etcd_argv(config);
        std::string path = resolve_binary(config.binary);
        auto env_s = child_environment();
        auto argv = c_strings(argv_s);
        auto envp = c_strings(env_s);
        int log = ::open(config.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (log < 0) fail(Errc::internal, "etcd member: cannot open {}: {}", config.log_file, std::strerror(errno));
        int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        int errp[2];
        if (devnull < 0 || ::pipe2(errp, O_CLOEXEC) != 0) {
            int e = errno;
            ::close(log);
            if (devnull >= 0) ::close(devnull);
            fail(Errc::internal, "etcd member: {}", std::strerror(e));
        }
        pid_t parent = ::getpid();
        pid_t child = ::fork();
        if (child == 0) {
            // Only async-signal-safe calls from here to execve.
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);  // hvd died before prctl
            ::setsid();  // no terminal signals meant for hvd
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            for (int s = 1; s < NSIG; ++s)
                if (s != SIGKILL && s != SIGSTOP) ::signal(s, SIG_DFL);
            // Every descriptor this needs moved above 2 first (hvd may run with 0-2 closed, so
            // they could be any of them), then 0-2 and the error pipe as 3 (CLOEXEC: a
            // successful exec closes it), and nothing else of hvd's.
            int ep = ::fcntl(errp[1], F_DUPFD_CLOEXEC, 10);
            int lg = ::fcntl(log, F_DUPFD_CLOEXEC, 10);
            int dn = ::fcntl(devnull, F_DUPFD_CLOEXEC, 10);
            if (ep < 0 || lg < 0 || dn < 0) ::_exit(127);
            ::dup2(dn, 0);
            ::dup2(lg, 1);
            ::dup2(lg, 2);
            ::dup2(ep, 3);
            ::fcntl(3, F_SETFD, FD_CLOEXEC);
            ::close_range(4, ~0U, 0);
            ::execve(path.c_str(), argv.data(), envp.data());
            int e = errno;
            ssize_t ignored = ::write(3, &e, sizeof e);
            (void)ignored;
            ::_exit(127);
        }
        int fork_errno = errno;
        ::close(errp[1]);
        ::close(devnull);
        if (child < 0) {
            ::close(errp[0]);
            ::close(log);
            fail(Errc::internal, "etcd member: fork: {}", std::strerror(fork_errno));
        }
        int child_errno = 0;
        ssize_t n;
        do {
            n = ::read(errp[0], &child_errno, sizeof child_errno);
        } while (n < 0 && errno == EINTR);
        ::close(errp[0]);
        if (n > 0) {
            int status = 0;
            while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
            }
            append_log(log, "hvd: cannot run " + path + ": " + std::strerror(child_errno));
            ::close(log);
            fail(Errc::unavailable, "etcd member: cannot run {}: {}", path, std::strerror(child_errno));
        }
        append_log(log, "hvd: started etcd member " + config.name + " (pid " + std::to_string(child) + ")");
        ::close(log);
        return child;
    }

    void log_line(const std::string& line) {
        int log = ::open(config.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (log < 0) return;
        append_log(log, line);
        ::close(log);
    }

    // Sleeps until `until` or stop(); true when stopping.
    bool sleep_until(std::chrono::steady_clock::time_point until) {
        std::unique_lock lk(mu);
        return cv.wait_until(lk, until, [&] { return stopping; });
    }
    bool is_stopping() {
        std::lock_guard lk(mu);
        return stopping;
    }
    void set_healthy(bool h) {
        {
            std::lock_guard lk(mu);
            healthy = h;
        }
        cv.notify_all();
    }

    // Non-blocking reap; true when the child is gone (status set).
    bool reaped(int p, int& status) {
        pid_t r;
        do {
            r = ::waitpid(p, &status, WNOHANG);
        } while (r < 0 && errno == EINTR);
        if (r == p) return true;
        if (r < 0 && errno == ECHILD) {
            status = 0;
            return true;  // someone else reaped it: it is gone all the same
        }
        return false;
    }

    // SIGTERM, then SIGKILL after the grace period; waits until it is reaped.
    void terminate(int p) {
        ::kill(p, SIGTERM);
        auto deadline = std::chrono::steady_clock::now() + kStopGrace;
        int status = 0;
        while (!reaped(p, status)) {
            if (std::chrono::steady_clock::now() >= deadline) {
                spdlog::warn("etcd member {}: still running {} s after SIGTERM, killing it", config.name,
                             std::chrono::duration_cast<std::chrono::seconds>(kStopGrace).count());
                ::kill(p, SIGKILL);
                while (::waitpid(p, &status, 0) < 0 && errno == EINTR) {
                }
                break;
            }
            std::this_thread::sleep_for(kReapPoll);
        }
        log_line("hvd: stopped etcd member " + config.name + " (pid " + std::to_string(p) + ", it " +
                 describe_status(status) + ")");
        pid = 0;
    }

    // The supervisor: the first spawn's outcome goes to `first`; then it reaps, restarts and
    // checks health until stop(). Nothing leaves this function by exception.
    void run(std::promise<void>& first) {
        try {
            pid = spawn();
            first.set_value();
        } catch (...) {
            first.set_exception(std::current_exception());
            return;
        }
        spdlog::info("etcd member {} started (pid {}), client URL {}", config.name, pid.load(),
                     url(config.address, config.client_port));
        auto backoff = std::chrono::duration_cast<std::chrono::milliseconds>(kBackoffFirst);
        auto started = std::chrono::steady_clock::now();
        auto healthy_since_check = started;  // unhealthy time counts from start or the last good check
        auto next_check = started + kHealthInterval;
        for (;;) {
            try {
                int p = pid;
                if (p == 0) {
                    // Not running (a failed restart): retry after the backoff.
                    if (sleep_until(std::chrono::steady_clock::now() + backoff)) return;
                    backoff = std::min<std::chrono::milliseconds>(backoff * 2, kBackoffMax);
                    pid = spawn();
                    ++restarts;
                    started = healthy_since_check = std::chrono::steady_clock::now();
                    next_check = started + kHealthInterval;
                    spdlog::info("etcd member {} restarted (pid {})", config.name, pid.load());
                    continue;
                }
                if (is_stopping()) {
                    terminate(p);
                    set_healthy(false);
                    return;
                }
                int status = 0;
                if (reaped(p, status)) {
                    pid = 0;
                    set_healthy(false);
                    auto ran = std::chrono::steady_clock::now() - started;
                    if (ran >= kStableRun) backoff = std::chrono::duration_cast<std::chrono::milliseconds>(kBackoffFirst);
                    spdlog::warn("etcd member {} (pid {}) {}; restarting in {} ms", config.name, p,
                                 describe_status(status), backoff.count());
                    log_line("hvd: etcd member " + config.name + " (pid " + std::to_string(p) + ") " +
                             describe_status(status) + "; restarting in " + std::to_string(backoff.count()) + " ms");
                    if (sleep_until(std::chrono::steady_clock::now() + backoff)) return;
                    backoff = std::min<std::chrono::milliseconds>(backoff * 2, kBackoffMax);
                    pid = spawn();
                    ++restarts;
                    started = healthy_since_check = std::chrono::steady_clock::now();
                    next_check = started + kHealthInterval;
                    spdlog::info("etcd member {} restarted (pid {})", config.name, pid.load());
                    continue;
                }
                auto now = std::chrono::steady_clock::now();
                if (now >= next_check) {
                    std::string why;
                    bool ok = check_health(config, kHealthTimeout, why);
                    now = std::chrono::steady_clock::now();
                    next_check = now + kHealthInterval;
                    set_healthy(ok);
                    if (ok) {
                        healthy_since_check = now;
                    } else if (now - healthy_since_check >= kUnhealthyKill) {
                        spdlog::warn("etcd member {} (pid {}) unhealthy for {} s ({}): killing it", config.name, p,
                                     std::chrono::duration_cast<std::chrono::seconds>(now - healthy_since_check).count(),
                                     why);
                        log_line("hvd: etcd member unhealthy for 30 s (" + why + "): SIGKILL");
                        ::kill(p, SIGKILL);
                        // Reaped (and restarted) by the next round.
                    }
                }
                if (sleep_until(std::min(next_check, std::chrono::steady_clock::now() + kReapPoll))) continue;
            } catch (const std::exception& e) {
                // A restart that failed (the binary vanished, the log is unwritable): pid
                // stays 0 and the next round retries after the backoff.
                spdlog::error("etcd member {}: {}", config.name, e.what());
            } catch (...) {
                spdlog::error("etcd member {}: unknown error in the supervisor", config.name);
            }
        }
    }
};

EtcdProcess::EtcdProcess(EtcdMemberConfig c) : impl_(std::make_unique<Impl>(std::move(c))) {}

EtcdProcess::~EtcdProcess() {
    try {
        stop();
    } catch (...) {
    }
}

void EtcdProcess::start() {
    auto& m = *impl_;
    if (m.thread.joinable()) fail(Errc::conflict, "etcd member {} is already started", m.config.name);
    validate(m.config);
    m.write_files();
    {
        std::lock_guard lk(m.mu);
        m.stopping = false;
        m.healthy = false;
    }
    std::promise<void> first;
    auto started = first.get_future();
    m.thread = std::thread([&m, p = std::move(first)]() mutable { m.run(p); });
    try {
        started.get();
    } catch (...) {
        m.thread.join();
        throw;
    }
}

bool EtcdProcess::wait_healthy(std::chrono::milliseconds timeout) {
    auto& m = *impl_;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        {
            std::lock_guard lk(m.mu);
            if (m.healthy) return true;
            if (m.stopping) return false;
        }
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return false;
        if (m.pid != 0) {
            std::string why;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
            if (check_health(m.config, std::min<std::chrono::milliseconds>(left, kHealthTimeout), why)) {
                m.set_healthy(true);
                return true;
            }
        }
        std::unique_lock lk(m.mu);
        m.cv.wait_until(lk, std::min(deadline, std::chrono::steady_clock::now() + 200ms),
                        [&] { return m.healthy || m.stopping; });
    }
}

void EtcdProcess::stop() {
    auto& m = *impl_;
    {
        std::lock_guard lk(m.mu);
        m.stopping = true;
    }
    m.cv.notify_all();
    if (m.thread.joinable()) m.thread.join();
}

int EtcdProcess::pid() const { return impl_->pid; }
int EtcdProcess::restarts() const { return impl_->restarts; }
std::string EtcdProcess::client_url() const { return url(impl_->config.address, impl_->config.client_port); }

}  // namespace hv::cluster
