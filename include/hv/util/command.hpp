// External programs are run from an argv vector, never through a shell.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace hv::util {

struct CommandResult {
    int exit_status = -1;    // exit code, or 128+signal
    std::string out;         // stdout
    std::string err;         // stderr
    bool timed_out = false;
};

// Runs argv[0] (looked up in PATH) with argv; stdin is /dev/null. Kills the child
// (SIGKILL) after `timeout`. Throws hv::Error(internal) only when the program cannot be run.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

// run_command, and `on_line` sees each complete line of stdout and stderr as it comes (without the
// newline), and "" at least every 500 ms while the program is quiet. Returning false kills the
// program (SIGKILL; exit status 137).
CommandResult run_command_lines(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                                const std::function<bool(const std::string& line)>& on_line);

// Runs argv with one end of a pipe for the caller: the program's stdin (child_reads) or its
// stdout. `pump(fd)` moves the data and returns when done; then that end is closed (the
// program sees end of input) and the program is waited for, at most `timeout` in all. stderr
// (its first 64 KiB) and the exit status come back. A pump that throws kills the program (it
// is reaped before the exception goes on).
CommandResult run_command_piped(const std::vector<std::string>& argv, bool child_reads,
                                const std::function<void(int fd)>& pump, std::chrono::milliseconds timeout);

// Same, but throws hv::Error(internal) with stderr when the exit status is not 0.
std::string run_checked(const std::vector<std::string>& argv,
                        std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace hv::util
