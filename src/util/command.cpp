#include "hv/util/command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "hv/error.hpp"

extern char** environ;

namespace hv::util {

namespace {
// Starts argv[0] (PATH) with the file actions `fa` (then destroyed); the child gets only
// stdin/stdout/stderr, never hvd's sockets. Returns posix_spawnp's error (0 = started).
int spawn(const std::vector<std::string>& argv, posix_spawn_file_actions_t& fa, pid_t& pid) {
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}
}  // namespace

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
    return run_command_lines(argv, timeout, {});
}

CommandResult run_command_lines(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                                const std::function<bool(const std::string& line)>& on_line) {
    if (argv.empty()) fail(Errc::internal, "run_command: empty argv");
    int outp[2], errp[2];
    if (pipe2(outp, O_CLOEXEC) != 0) fail(Errc::internal, "pipe: {}", std::strerror(errno));
    if (pipe2(errp, O_CLOEXEC) != 0) {
        close(outp[0]);
        close(outp[1]);
        fail(Errc::internal, "pipe: {}", std::strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    pid_t pid = -1;
    int rc = spawn(argv, fa, pid);
    close(outp[1]);
    close(errp[1]);
    if (rc != 0) {
        close(outp[0]);
        close(errp[0]);
        fail(Errc::internal, "cannot run {}: {}", argv[0], std::strerror(rc));
    }
    CommandResult res;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    pollfd fds[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[8192];
    std::size_t seen[2] = {0, 0};  // how much of out/err was handed to on_line
    bool killed = false;
    // Passes the complete lines that arrived; kills the program when on_line says so.
    auto lines = [&](int i, bool all) {
        auto& text = i == 0 ? res.out : res.err;
        for (;;) {
            auto nl = text.find('\n', seen[i]);
            if (nl == std::string::npos && !(all && seen[i] < text.size())) break;
            if (nl == std::string::npos) nl = text.size();
            std::string line = text.substr(seen[i], nl - seen[i]);
            seen[i] = std::min(text.size(), nl + 1);
            if (!killed && !on_line(line)) {
                killed = true;
                kill(pid, SIGKILL);
            }
        }
    };
    // A line handler that throws (or anything else here) must not leak the child: it is killed
    // and reaped before the exception goes on.
    auto reap = [&](int& status) {
        for (auto& f : fds)
            if (f.fd >= 0) {
                close(f.fd);
                f.fd = -1;
            }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    };
    try {
    while (open_fds > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            res.timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        int wait_ms = static_cast<int>(on_line ? std::min<long>(left.count(), 500) : left.count());
        int n = poll(fds, 2, wait_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 && on_line && !killed && !on_line("")) {
            killed = true;
            kill(pid, SIGKILL);
        }
        if (n <= 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t r = read(fds[i].fd, buf, sizeof buf);
            if (r > 0) {
                (i == 0 ? res.out : res.err).append(buf, static_cast<std::size_t>(r));
                if (on_line) lines(i, false);
            } else if (r == 0 || errno != EINTR) {
                if (on_line) lines(i, true);
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    } catch (...) {
        kill(pid, SIGKILL);
        int ignored = 0;
        reap(ignored);
        throw;
    }
    int status = 0;
    reap(status);
    if (WIFEXITED(status)) res.exit_status = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) res.exit_status = 128 + WTERMSIG(status);
    return res;
}

CommandResult run_command_piped(const std::vector<std::string>& argv, bool child_reads,
                                const std::function<void(int fd)>& pump, std::chrono::milliseconds timeout) {
    if (argv.empty()) fail(Errc::internal, "run_command: empty argv");
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) fail(Errc::internal, "pipe: {}", std::strerror(errno));
    int err = memfd_create("hv-stderr", MFD_CLOEXEC);
    if (err < 0) {
        close(p[0]);
        close(p[1]);
        fail(Errc::internal, "memfd_create: {}", std::strerror(errno));
    }
    const int child_end = child_reads ? p[0] : p[1], mine = child_reads ? p[1] : p[0];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (child_reads) {
        posix_spawn_file_actions_adddup2(&fa, child_end, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    } else {
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, child_end, 1);
    }
    posix_spawn_file_actions_adddup2(&fa, err, 2);
    pid_t pid = -1;
    int rc = spawn(argv, fa, pid);
    close(child_end);
    if (rc != 0) {
        close(mine);
        close(err);
        fail(Errc::internal, "cannot run {}: {}", argv[0], std::strerror(rc));
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    auto reap = [&](bool now) {
        for (;;) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid || (w < 0 && errno != EINTR)) return w == pid;
            if (now || std::chrono::steady_clock::now() > deadline) {
                kill(pid, SIGKILL);
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
                }
                return false;
            }
            usleep(20000);
        }
    };
    CommandResult res;
    try {
        pump(mine);
    } catch (...) {
        close(mine);
        reap(true);
        close(err);
        throw;
    }
    close(mine);
    res.timed_out = !reap(false);
    if (WIFEXITED(status)) res.exit_status = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) res.exit_status = 128 + WTERMSIG(status);
    char buf[65536];
    auto n = pread(err, buf, sizeof buf, 0);
    if (n > 0) res.err.assign(buf, static_cast<std::size_t>(n));
    close(err);
    return res;
}

std::string run_checked(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
    auto r = run_command(argv, timeout);
    if (r.timed_out) fail(Errc::timeout, "{} did not finish within {} ms", argv[0], timeout.count());
    if (r.exit_status != 0) {
        auto msg = r.err.empty() ? r.out : r.err;
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
        fail(Errc::internal, "{} failed (exit {}): {}", argv[0], r.exit_status, msg);
    }
    return r.out;
}

}  // namespace hv::util
