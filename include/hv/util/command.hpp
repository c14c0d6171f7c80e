// External programs are run from an argv vector, never through a shell.
#pragma once

#include <chrono>
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

// Same, but throws hv::Error(internal) with stderr when the exit status is not 0.
std::string run_checked(const std::vector<std::string>& argv,
                        std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace hv::util
