#include "progress.hpp"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <thread>

#include <sys/ioctl.h>
#include <unistd.h>

#include "output.hpp"

namespace hv::cli {

api::TaskInfo task_from_body(const nlohmann::json& body) {
    try {
        return api::task_info_from_json(body);
    } catch (const Error& e) {
        fail(Errc::internal, "hvd sent a malformed task: {}", e.what());
    }
}
namespace {
constexpr auto kPoll = std::chrono::milliseconds(200);

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) { g_interrupted = 1; }

// Installs the SIGINT handler while waiting; restores the old one afterwards.
class InterruptGuard {
public:
    InterruptGuard() {
        g_interrupted = 0;
        struct sigaction sa{};
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;  // let socket calls finish; the flag is checked between polls
        sigaction(SIGINT, &sa, &old_);
    }
    ~InterruptGuard() { sigaction(SIGINT, &old_, nullptr); }
    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;

private:
    struct sigaction old_{};
};

std::size_t terminal_columns() {
    winsize ws{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
}

class ProgressDisplay {
public:
    ProgressDisplay() : tty_(isatty(STDERR_FILENO) == 1) {}
    ~ProgressDisplay() { clear(); }
    ProgressDisplay(const ProgressDisplay&) = delete;
    ProgressDisplay& operator=(const ProgressDisplay&) = delete;

    void draw(const api::TaskInfo& t) {
        if (!tty_) return;
        std::string msg = t.message.empty() ? api::to_string(t.state) : t.message;
        std::cerr << "\r\033[K" << progress_line(t.progress, msg, tick_++, terminal_columns()) << std::flush;
        drawn_ = true;
    }
    void clear() {
        if (tty_ && drawn_) std::cerr << "\r\033[K" << std::flush;
        drawn_ = false;
    }

private:
    bool tty_;
    bool drawn_ = false;
    unsigned tick_ = 0;
};
}  // namespace

api::TaskInfo wait_for_task(Client& client, const std::string& id) {
    InterruptGuard guard;
    ProgressDisplay display;
    // Most tasks (a thin volume, a define) end within milliseconds: poll at 5 ms first and
    // back off to kPoll, so they are not answered a whole poll interval late.
    auto wait = std::chrono::milliseconds(5);
    for (;;) {
        api::TaskInfo t = client.get_task(id);
        if (api::is_final(t.state)) return t;
        display.draw(t);
        std::this_thread::sleep_for(wait);
        wait = std::min(kPoll, wait * 2);
        if (g_interrupted) {
            display.clear();
            std::cerr << "interrupted: task " << id << " goes on in hvd (follow it with: hvctl task wait " << id
                      << ")" << std::endl;
            std::exit(130);
        }
    }
}

int task_exit_code(const api::TaskInfo& t) {
    if (t.state == api::TaskState::succeeded) return 0;
    if (t.error) return exit_code(t.error->code);
    if (t.state == api::TaskState::cancelled) return exit_code(Errc::cancelled);
    return kExitTaskFailed;
}

int finish_task(const Globals& g, Client& client, const api::TaskInfo& task, bool async,
                const std::function<int(const api::TaskInfo&)>& on_success) {
    if (async) {
        if (g.json()) print_json(nlohmann::json(task));
        else print_line(task.id);
        return 0;
    }
    api::TaskInfo t = api::is_final(task.state) ? task : wait_for_task(client, task.id);
    if (t.state == api::TaskState::succeeded) return on_success(t);
    std::string msg = t.error && !t.error->message.empty()
                          ? t.error->message
                          : fmt::format("task {} ({} {}) {}", t.id, t.kind, t.target, api::to_string(t.state));
    print_error(msg);
    return task_exit_code(t);
}

}  // namespace hv::cli
