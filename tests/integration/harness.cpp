#include "harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

extern char** environ;

namespace fs = std::filesystem;

namespace hvtest {

std::string Result::describe() const {
    std::ostringstream s;
    s << "exit " << exit_code << (timed_out ? " (timed out)" : "") << "\n--- stdout:\n"
      << out << "\n--- stderr:\n"
      << err;
    return s.str();
}

std::string env(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) {
        FAIL("environment variable " << name
                                     << " is not set: run the integration tests through ctest "
                                        "(ctest --test-dir build -L integration), which sets it");
    }
    return v;
}

namespace {
bool in_path(const std::string& prog) {
    for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"})
        if (::access((std::string(dir) + "/" + prog).c_str(), X_OK) == 0) return true;
    return false;
}
}  // namespace

void skip_unless_runnable() {
    std::string why;
    if (::geteuid() != 0) why = "integration tests need root (they run a private libvirtd)";
    else if (!in_path("libvirtd")) why = "libvirtd is not installed (scripts/install-deps.sh installs it)";
    else if (!in_path("qemu-system-x86_64")) why = "qemu-system-x86_64 is not installed";
    else if (!in_path("virsh")) why = "virsh is not installed";
    else if (!in_path("curl")) why = "curl is not installed";
    if (why.empty()) return;
    std::cout << "SKIPPED: " << why << std::endl;
    std::cerr << "SKIPPED: " << why << std::endl;
    std::_Exit(77);
}

// ---------------------------------------------------------------------------------------
// Child
// ---------------------------------------------------------------------------------------

Child::Child(const std::vector<std::string>& argv, const std::string& log_file, const std::string& stdin_file) {
    REQUIRE(!argv.empty());
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, stdin_file.c_str(), O_RDONLY, 0);
    int outp[2] = {-1, -1}, errp[2] = {-1, -1};
    if (log_file.empty()) {
        REQUIRE(::pipe2(outp, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(errp, O_CLOEXEC) == 0);
        posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
        posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    } else {
        posix_spawn_file_actions_addopen(&fa, 1, log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
    }
    // Own process group, so a Ctrl-C of the test run does not hit hvd first.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int rc = ::posix_spawnp(&pid_, args[0], &fa, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (log_file.empty()) {
        ::close(outp[1]);
        ::close(errp[1]);
        out_fd_ = outp[0];
        err_fd_ = errp[0];
    }
    if (rc != 0) {
        if (out_fd_ >= 0) ::close(out_fd_);
        if (err_fd_ >= 0) ::close(err_fd_);
        out_fd_ = err_fd_ = -1;
        pid_ = -1;
        FAIL("cannot run " << argv[0] << ": " << std::strerror(rc));
    }
}

Child::~Child() {
    if (pid_ > 0 && !reaped_) {
        ::kill(pid_, SIGKILL);
        reap(true);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
}

int Child::reap(bool block) {
    if (reaped_) return status_;
    int st = 0;
    pid_t r;
    do {
        r = ::waitpid(pid_, &st, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == pid_) {
        reaped_ = true;
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
    }
    return reaped_ ? status_ : -1;
}

bool Child::running() {
    reap(false);
    return !reaped_;
}

bool Child::pump(std::chrono::milliseconds wait) {
    pollfd fds[2];
    int n = 0;
    if (out_fd_ >= 0) fds[n++] = {out_fd_, POLLIN, 0};
    if (err_fd_ >= 0) fds[n++] = {err_fd_, POLLIN, 0};
    if (n == 0) {
        if (wait.count() > 0) std::this_thread::sleep_for(std::min(wait, std::chrono::milliseconds(50)));
        return false;
    }
    int r = ::poll(fds, n, static_cast<int>(wait.count()));
    if (r <= 0) return true;
    char buf[8192];
    for (int i = 0; i < n; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t k = ::read(fds[i].fd, buf, sizeof buf);
        if (k > 0) {
            (fds[i].fd == out_fd_ ? out_ : err_).append(buf, static_cast<std::size_t>(k));
        } else if (k == 0 || errno != EINTR) {
            if (fds[i].fd == out_fd_) out_fd_ = -1;
            else err_fd_ = -1;
            ::close(fds[i].fd);
        }
    }
    return out_fd_ >= 0 || err_fd_ >= 0;
}

std::optional<std::string> Child::wait_line(const std::function<bool(const std::string&)>& pred,
                                            std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
        for (auto nl = out_.find('\n', line_pos_); nl != std::string::npos; nl = out_.find('\n', line_pos_)) {
            std::string line = out_.substr(line_pos_, nl - line_pos_);
            line_pos_ = nl + 1;
            if (pred(line)) return line;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return std::nullopt;
        if (!pump(std::min(left, std::chrono::milliseconds(200))) && out_.find('\n', line_pos_) == std::string::npos) {
            // Both pipes closed and no complete line left: the process has gone.
            return std::nullopt;
        }
    }
}

Result Child::finish(std::chrono::milliseconds timeout) {
    Result r;
    auto deadline = Clock::now() + timeout;
    for (;;) {
        bool open = pump(std::chrono::milliseconds(100));
        if (!open && reap(false) >= 0 && reaped_) break;
        if (Clock::now() > deadline) {
            r.timed_out = true;
            ::kill(pid_, SIGKILL);
            while (pump(std::chrono::milliseconds(100))) {
            }
            reap(true);
            break;
        }
    }
    r.exit_code = status_;
    r.out = out_;
    r.err = err_;
    return r;
}

int Child::terminate(std::chrono::milliseconds grace) {
    if (!running()) return status_;
    ::kill(pid_, SIGTERM);
    auto deadline = Clock::now() + grace;
    while (Clock::now() < deadline) {
        pump(std::chrono::milliseconds(50));
        if (!running()) return status_;
    }
    ::kill(pid_, SIGKILL);
    return reap(true);
}

Result run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
    Child c(argv);
    return c.finish(timeout);
}

LoopFs::LoopFs(const std::string& img, std::string mount_point, const char* size, std::vector<std::string> mkfs)
    : mnt(std::move(mount_point)) {
    mkfs.push_back(img);
    ok = run({"truncate", "-s", size, img}).exit_code == 0 && run(mkfs).exit_code == 0 &&
         run({"mkdir", "-p", mnt}).exit_code == 0 && run({"mount", "-o", "loop", img, mnt}).exit_code == 0;
}

LoopFs::~LoopFs() {
    if (ok) run({"umount", "-l", mnt});
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
        if (pred()) return true;
        if (Clock::now() + interval > deadline) return pred();
        std::this_thread::sleep_for(interval);
    }
}

double metric_sample(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        if (l.rfind(series + " ", 0) == 0) return std::stod(l.substr(series.size() + 1));
    return -1;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

bool file_exists(const std::string& path) {
    std::error_code ec;
    return fs::exists(path, ec);
}

std::vector<std::string> list_dir(const std::string& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) names.push_back(e.path().filename().string());
    return names;
}

// ---------------------------------------------------------------------------------------
// virsh
// ---------------------------------------------------------------------------------------

std::string libvirt_uri() { return env("HV_TEST_LIBVIRT_URI"); }

Result virsh(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"virsh", "-q", "-c", libvirt_uri()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, 60s);
}

namespace {
std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
    std::size_t i = 0;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n')) ++i;
    return s.substr(i);
}
}  // namespace

std::string domstate(const std::string& name) {
    auto r = virsh({"domstate", name});
    if (r.exit_code != 0) return "";
    return trim(r.out);
}

bool domain_exists(const std::string& name) { return virsh({"dominfo", name}).exit_code == 0; }

std::string lxc_uri() {
    auto q = libvirt_uri();  // qemu:///system?socket=...
    return "lxc" + q.substr(q.find(':'));
}

Result lxc_virsh(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"virsh", "-q", "-c", lxc_uri()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, 60s);
}

bool lxc_domain_exists(const std::string& name) { return lxc_virsh({"dominfo", name}).exit_code == 0; }

CtCleanup::~CtCleanup() {
    for (const auto& n : names) {
        if (!lxc_domain_exists(n)) continue;
        lxc_virsh({"destroy", n});
        lxc_virsh({"undefine", n});
    }
}

// ---------------------------------------------------------------------------------------
// Hvd
// ---------------------------------------------------------------------------------------

nlohmann::json HttpResponse::json() const {
    return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
}

Hvd::Hvd(bool wait_for_libvirt, const std::string& config_toml, bool in_libvirt_netns, std::vector<std::string> wrapper)
    : in_libvirt_netns_(in_libvirt_netns), wrapper_(std::move(wrapper)) {
    skip_unless_runnable();
    // Short base path: Unix socket paths are limited to 108 bytes.
    char tmpl[] = "/tmp/hvit-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    socket = dir + "/hvd.sock";
    state_dir = dir + "/state";
    pool_dir = state_dir + "/images";
    image_dir = pool_dir + "/images";
    log_dir = state_dir + "/logs";
    log_file = dir + "/hvd.log";
    // An empty config file: built-in defaults, whatever /etc/hv/hvd.toml on this host says.
    std::ofstream(dir + "/hvd.toml") << "# integration test: built-in defaults + command line flags\n" << config_toml;
    start(wait_for_libvirt);
}

std::string libvirt_netns_path() {
    // The holder process of scripts/private-libvirtd.sh owns libvirtd's network namespace.
    std::string holder = env("HV_TEST_LIBVIRT_DIR") + "/holder.pid";
    std::string pid = read_file(holder);
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    REQUIRE_FALSE(pid.empty());
    std::string ns = "/proc/" + pid + "/ns/net";
    INFO("network namespace of the private libvirtd: " << ns);
    REQUIRE(file_exists(ns));
    return ns;
}

Result in_libvirt_mountns(const std::vector<std::string>& argv) {
    auto net = libvirt_netns_path();  // "/proc/PID/ns/net" of the holder
    std::vector<std::string> full{"nsenter", "--mount=" + net.substr(0, net.size() - 3) + "mnt", "--"};
    full.insert(full.end(), argv.begin(), argv.end());
    return run(full);
}

Result in_libvirt_netns(const std::vector<std::string>& argv) {
    std::vector<std::string> full{"nsenter", "--net=" + libvirt_netns_path(), "--"};
    full.insert(full.end(), argv.begin(), argv.end());
    return run(full);
}

void Hvd::start(bool wait_for_libvirt) {
    REQUIRE_FALSE(proc_.has_value());
    std::vector<std::string> argv{env("HVD_BIN"), "--config",       dir + "/hvd.toml", "--socket",
                                  socket,         "--state-dir",    state_dir,         "--libvirt-uri",
                                  libvirt_uri(),  "--accel",        "tcg",             "--foreground",
                                  "--log-level",  "debug"};
    if (in_libvirt_netns_) argv.insert(argv.begin(), {"nsenter", "--net=" + libvirt_netns_path(), "--"});
    auto wrapper = wrapper_;
    for (auto& w : wrapper)
        if (w == "@SOCKET@") w = socket;
    argv.insert(argv.begin(), wrapper.begin(), wrapper.end());
    proc_.emplace(argv, log_file);
    // Ready = the socket accepts connections.
    auto connectable = [&] {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::snprintf(a.sun_path, sizeof a.sun_path, "%s", socket.c_str());
        bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        return ok;
    };
    bool up = wait_until([&] { return connectable() || !proc_->running(); }, 20s, 5ms);
    if (!up || !proc_->running()) {
        int st = proc_->running() ? -1 : proc_->terminate();
        FAIL("hvd did not come up on " << socket << " (exit status " << st << "); hvd.log:\n" << log_tail());
    }
    if (!wait_for_libvirt) return;
    // hvd listens before its first libvirt connection is up (see the startup test in
    // state_test.cpp); the other tests start from a connected hvd.
    bool connected = wait_until(
        [&] {
            auto h = http("GET", "/v1/host");
            return h.status == 200 && h.json().value("libvirt_connected", false);
        },
        20s, 50ms);
    if (!connected) FAIL("hvd did not connect to libvirt at " << libvirt_uri() << "; hvd.log:\n" << log_tail());
}

int Hvd::stop() {
    if (!proc_) return -1;
    int st = proc_->terminate(15s);
    proc_.reset();
    return st;
}

int Hvd::kill_hard() {
    if (!proc_) return -1;
    ::kill(proc_->pid(), SIGKILL);
    int st = proc_->finish(15s).exit_code;
    proc_.reset();
    return st;
}

bool Hvd::running() { return proc_ && proc_->running(); }

namespace {
// The first line of an ASan/LSan/UBSan report in a process's output, "" when there is none.
// Under the sanitizer build (label sanitize) every report ends the process (abort_on_error),
// but a report at exit (a leak) or in a process the test then restarts must still fail it.
std::string sanitizer_report(const std::string& text) {
    for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"}) {
        auto at = text.find(marker);
        if (at == std::string::npos) continue;
        auto begin = text.rfind('\n', at);
        begin = begin == std::string::npos ? 0 : begin + 1;
        return text.substr(begin, text.find('\n', at) - begin);
    }
    return "";
}
}  // namespace

Hvd::~Hvd() {
    bool failed = std::uncaught_exceptions() > 0;
    for (const auto& name : vms_) {
        if (!domain_exists(name)) continue;
        virsh({"destroy", name});
        if (virsh({"undefine", name, "--nvram"}).exit_code != 0) virsh({"undefine", name});
    }
    if (proc_) {
        int st = proc_->terminate(15s);
        if (st != 0) {
            std::cerr << "note: hvd exited with status " << st << " on SIGTERM\n";
            failed = true;
        }
        proc_.reset();
    }
    if (auto report = sanitizer_report(read_file(log_file)); !report.empty()) {
        failed = true;
        if (std::uncaught_exceptions() == 0) FAIL_CHECK("hvd's log has a sanitizer report: " << report);
    }
    const char* keep = std::getenv("HV_TEST_KEEP");
    if (failed || (keep && *keep == '1')) {
        std::cerr << "---- hvd.log (" << log_file << "), last lines:\n" << log_tail() << "----\n";
    }
    if (keep && *keep == '1') {
        std::cerr << "HV_TEST_KEEP=1: keeping " << dir << "\n";
    } else {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
}

std::string Hvd::vm(const std::string& base) {
    std::string name = "it-" + base + "-" + std::to_string(::getpid());
    vms_.insert(name);
    return name;
}

bool Hvd::await_event_stream(Child& events, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    for (int round = 0; Clock::now() < deadline; ++round) {
        auto probe = vm("evprobe" + std::to_string(round));
        auto r = ctl({"vm", "create", probe, "--memory", "64M"});
        if (r.exit_code != 0) {
            FAIL_CHECK("creating the event probe VM failed: " << r.describe());
            return false;
        }
        auto line = events.wait_line(
            [&](const std::string& l) {
                auto j = nlohmann::json::parse(l, nullptr, false);
                return j.is_object() && j.value("type", "") == "task" && j.contains("data") && j["data"].is_object() &&
                       j["data"].value("target", "") == "vm/" + probe;
            },
            2s);
        auto d = ctl({"vm", "delete", probe});
        if (d.exit_code != 0) FAIL_CHECK("deleting the event probe VM failed: " << d.describe());
        if (line) return true;
        if (!events.running()) return false;
    }
    return false;
}

std::vector<std::string> Hvd::ctl_argv(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{env("HVCTL_BIN"), "--socket", socket};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

Result Hvd::ctl(const std::vector<std::string>& args, std::chrono::milliseconds timeout) const {
    auto r = run(ctl_argv(args), timeout);
    if (auto report = sanitizer_report(r.err); !report.empty()) FAIL_CHECK("hvctl reported: " << report << "\n" << r.err);
    return r;
}

nlohmann::json Hvd::ctl_json(const std::vector<std::string>& args) const {
    auto a = args;
    a.push_back("-o");
    a.push_back("json");
    auto r = ctl(a);
    INFO("hvctl " << [&] {
        std::string s;
        for (const auto& x : a) s += x + " ";
        return s;
    }() << "\n"
                  << r.describe());
    REQUIRE(r.exit_code == 0);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    return j;
}

nlohmann::json Hvd::show(const std::string& name) const { return ctl_json({"vm", "show", name}); }

HttpResponse Hvd::http(const std::string& method, const std::string& target, const std::string& body) const {
    std::vector<std::string> argv{"curl", "-sS", "--max-time", "60", "--unix-socket", socket, "-X", method,
                                  "-o", "-", "-w", "\n%{http_code}"};
    if (!body.empty()) {
        argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
    }
    argv.push_back("http://hvd" + target);
    auto r = run(argv, 90s);
    INFO("curl " << method << " " << target << "\n" << r.describe());
    REQUIRE(r.exit_code == 0);
    HttpResponse h;
    auto nl = r.out.rfind('\n');
    REQUIRE(nl != std::string::npos);
    h.status = std::atoi(r.out.c_str() + nl + 1);
    h.body = r.out.substr(0, nl);
    return h;
}

std::string Hvd::log_tail(std::size_t lines) const {
    std::string all = read_file(log_file);
    std::size_t pos = all.size();
    for (std::size_t n = 0; n <= lines && pos > 0; ++n) {
        pos = all.rfind('\n', pos - 1);
        if (pos == std::string::npos) {
            pos = 0;
            break;
        }
    }
    return all.substr(pos);
}

// ---------------------------------------------------------------------------------------
// LibvirtdRestartGuard
// ---------------------------------------------------------------------------------------

void LibvirtdRestartGuard::stop_libvirtd() {
    auto r = run({env("HV_PRIVATE_LIBVIRTD"), "stop-libvirtd", env("HV_TEST_LIBVIRT_DIR")}, 60s);
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    stopped_ = true;
}

void LibvirtdRestartGuard::start_libvirtd() {
    auto r = run({env("HV_PRIVATE_LIBVIRTD"), "start", env("HV_TEST_LIBVIRT_DIR")}, 90s);
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    stopped_ = false;
}

LibvirtdRestartGuard::~LibvirtdRestartGuard() {
    if (!stopped_) return;
    auto r = run({env("HV_PRIVATE_LIBVIRTD"), "start", env("HV_TEST_LIBVIRT_DIR")}, 90s);
    if (r.exit_code != 0) std::cerr << "could not restart the private libvirtd:\n" << r.describe() << "\n";
}

}  // namespace hvtest
