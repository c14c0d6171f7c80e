#include "supervisor.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hv/util/atomic_file.hpp"
#include "hv/util/guard.hpp"

namespace hv::ceph {

unsigned long long process_start_time(int pid) {
    if (pid <= 0) return 0;
    std::ifstream f(fmt::format("/proc/{}/stat", pid));
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto paren = s.rfind(')');
    if (paren == std::string::npos) return 0;
    std::istringstream in(s.substr(paren + 2));
    std::string state;
    in >> state;
    if (state == "Z" || state == "X") return 0;
    std::string field;
    for (int i = 4; i < 22 && in >> field; ++i) {
    }
    unsigned long long st = 0;
    in >> st;
    return st;
}

namespace {

std::string find_in_path(const std::string& prog) {
    if (prog.find('/') != std::string::npos) return ::access(prog.c_str(), X_OK) == 0 ? prog : std::string();
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
    for (std::size_t pos = 0; pos <= p.size();) {
        auto colon = p.find(':', pos);
        auto dir = p.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos);
        auto cand = (dir.empty() ? "." : dir) + "/" + prog;
        if (::access(cand.c_str(), X_OK) == 0) return cand;
        if (colon == std::string::npos) break;
        pos = colon + 1;
    }
    return {};
}

struct Running {
    int pid = 0;
    unsigned long long start = 0;
    bool child = false;  // ours to reap
    int restarts = 0;
    int started = 0;
    std::string last_exit;
    std::chrono::steady_clock::time_point next_try{};
    std::chrono::seconds backoff{1};
};

}  // namespace

struct Supervisor::Impl {
    std::string pid_dir;
    mutable std::mutex mu;
    mutable std::condition_variable cv;
    std::map<std::string, DaemonSpec> wanted;
    std::map<std::string, Running> run;
    std::vector<std::string> to_stop;
    bool quit = false;
    std::thread thread;

    std::string pid_file(const std::string& name) const { return pid_dir + "/" + name + ".pid"; }

    // A daemon an earlier hvd started, from its pid file.
    void adopt(const std::string& name, Running& r) {
        std::ifstream f(pid_file(name));
        int pid = 0;
        unsigned long long st = 0;
        if (!(f >> pid >> st) || pid <= 0) return;
        if (process_start_time(pid) == st && st != 0) {
            r.pid = pid;
            r.start = st;
            r.child = false;
            spdlog::info("ceph: {} runs (pid {}), adopted", name, pid);
        }
    }

    bool alive(const std::string& name, Running& r) {
        if (r.pid <= 0) return false;
        if (r.child) {
            int status = 0;
            pid_t w = ::waitpid(r.pid, &status, WNOHANG);
            if (w == r.pid) {
                r.last_exit = WIFEXITED(status) ? fmt::format("exit status {}", WEXITSTATUS(status))
                                                : fmt::format("signal {}", WTERMSIG(status));
                spdlog::warn("ceph: {} (pid {}) ended: {}", name, r.pid, r.last_exit);
                r.pid = 0;
                return false;
            }
            if (w < 0 && errno == ECHILD) r.child = false;  // reaped elsewhere: look at /proc
            else return true;
        }
        if (process_start_time(r.pid) == r.start) return true;
        spdlog::warn("ceph: {} (pid {}) is gone", name, r.pid);
        r.last_exit = "gone";
        r.pid = 0;
        return false;
    }

    void spawn(const DaemonSpec& d, Running& r) {
        auto bin = find_in_path(d.argv.at(0));
        if (bin.empty()) {
            r.last_exit = fmt::format("{} is not installed", d.argv[0]);
            spdlog::error("ceph: cannot start {}: {}", d.name, r.last_exit);
            return;
        }
        std::vector<char*> argv;
        for (const auto& a : d.argv) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        const char* log = d.log_file.c_str();
        pid_t pid = ::fork();
        if (pid < 0) {
            spdlog::error("ceph: fork for {}: {}", d.name, std::strerror(errno));
            return;
        }
        if (pid == 0) {
            // Only async-signal-safe calls from here on.
            ::setsid();
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            ::signal(SIGPIPE, SIG_DFL);
            int in = ::open("/dev/null", O_RDONLY);
            int out = ::open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
            if (in >= 0) ::dup2(in, 0);
            if (out >= 0) {
                ::dup2(out, 1);
                ::dup2(out, 2);
            }
            ::syscall(SYS_close_range, 3u, ~0u, 0u);
            ::execv(bin.c_str(), argv.data());
            ::_exit(127);
        }
        r.pid = pid;
        r.child = true;
        r.start = 0;
        for (int i = 0; i < 50 && r.start == 0; ++i) {  // /proc/PID/stat exists at once
            r.start = process_start_time(pid);
            if (!r.start) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        if (r.started++ > 0) ++r.restarts;
        util::guarded("ceph pid file", [&] {
            util::write_file_atomic(pid_file(d.name), fmt::format("{} {}\n", pid, r.start), 0644);
        });
        spdlog::info("ceph: started {} (pid {})", d.name, pid);
    }

    void terminate(const std::string& name, Running& r) {
        if (!alive(name, r)) {
            ::unlink(pid_file(name).c_str());
            return;
        }
        int pid = r.pid;
        ::kill(pid, SIGTERM);
        for (int i = 0; i < 150; ++i) {
            if (!alive(name, r)) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (alive(name, r)) {
            ::kill(pid, SIGKILL);
            for (int i = 0; i < 50 && alive(name, r); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        ::unlink(pid_file(name).c_str());
        spdlog::info("ceph: stopped {} (pid {})", name, pid);
    }

    void loop() {
        std::unique_lock lk(mu);
        while (!quit) {
            util::guarded("ceph supervisor", [&] {
                auto stops = std::move(to_stop);
                to_stop.clear();
                for (const auto& name : stops) {
                    auto it = run.find(name);
                    if (it == run.end()) {
                        Running r;
                        adopt(name, r);
                        it = run.emplace(name, r).first;
                    }
                    Running copy = it->second;
                    lk.unlock();
                    terminate(name, copy);
                    lk.lock();
                    run[name] = copy;
                }
                auto now = std::chrono::steady_clock::now();
                for (auto& [name, spec] : wanted) {
                    auto [it, fresh] = run.try_emplace(name);
                    Running& r = it->second;
                    if (fresh) adopt(name, r);
                    if (alive(name, r)) {
                        // Up for a minute: the next failure starts the backoff again.
                        continue;
                    }
                    if (now < r.next_try) continue;
                    spawn(spec, r);
                    r.next_try = now + r.backoff;
                    r.backoff = std::min(r.backoff * 2, std::chrono::seconds(30));
                }
            });
            cv.notify_all();
            cv.wait_for(lk, std::chrono::seconds(1));
        }
    }
};

Supervisor::Supervisor(std::string pid_dir) : impl_(std::make_unique<Impl>()) {
    impl_->pid_dir = std::move(pid_dir);
}

void Supervisor::start() {
    std::lock_guard lk(impl_->mu);
    if (impl_->thread.joinable()) return;
    ::mkdir(impl_->pid_dir.c_str(), 0755);
    impl_->thread = std::thread([this] { impl_->loop(); });
}

Supervisor::~Supervisor() {
    {
        std::lock_guard lk(impl_->mu);
        impl_->quit = true;
    }
    impl_->cv.notify_all();
    if (impl_->thread.joinable()) impl_->thread.join();
}

void Supervisor::want(std::vector<DaemonSpec> daemons) {
    std::lock_guard lk(impl_->mu);
    std::map<std::string, DaemonSpec> next;
    for (auto& d : daemons) next.emplace(d.name, std::move(d));
    for (const auto& [name, _] : impl_->wanted)
        if (!next.count(name)) impl_->to_stop.push_back(name);
    for (const auto& [name, spec] : next) {
        auto it = impl_->run.find(name);
        if (it != impl_->run.end() && !impl_->wanted.count(name)) {
            it->second.next_try = {};
            it->second.backoff = std::chrono::seconds(1);
        }
    }
    impl_->wanted = std::move(next);
    impl_->cv.notify_all();
}

void Supervisor::stop(const std::string& name) {
    std::unique_lock lk(impl_->mu);
    if (!impl_->thread.joinable()) return;
    impl_->wanted.erase(name);
    impl_->to_stop.push_back(name);
    impl_->cv.notify_all();
    // Wait for the loop to have stopped it.
    impl_->cv.wait_for(lk, std::chrono::seconds(30), [&] {
        return std::find(impl_->to_stop.begin(), impl_->to_stop.end(), name) == impl_->to_stop.end() &&
               (impl_->run.count(name) == 0 || impl_->run[name].pid == 0);
    });
}

std::vector<DaemonState> Supervisor::states() const {
    std::lock_guard lk(impl_->mu);
    std::vector<DaemonState> out;
    for (const auto& [name, r] : impl_->run)
        if (impl_->wanted.count(name)) out.push_back({name, r.pid, r.restarts, r.last_exit});
    return out;
}

bool Supervisor::wait_running(const std::string& name, std::chrono::milliseconds timeout) const {
    std::unique_lock lk(impl_->mu);
    return impl_->cv.wait_for(lk, timeout, [&] {
        auto it = impl_->run.find(name);
        return it != impl_->run.end() && it->second.pid > 0;
    });
}

}  // namespace hv::ceph
