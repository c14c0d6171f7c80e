// hvd wired together: config -> libvirt connection + state cache -> tasks -> REST routes ->
// HTTP server. main.cpp only parses flags and calls run().
#pragma once

#include <string>

#include "config.hpp"

namespace hv::daemon {

struct Overrides {
    std::string config_path = "/etc/hv/hvd.toml";
    bool config_given = false;
    std::string socket, libvirt_uri, state_dir, accel, log_level, log_target, node_name;
};

// Applies command-line overrides on top of the file (and validates the result).
Config resolve_config(const Overrides& o);

// Exit status when hvd had to give up waiting for stuck calls (a hung libvirtd) while stopping:
// not a clean stop.
inline constexpr int kStuckExit = 70;  // EX_SOFTWARE

// Runs hvd until SIGTERM/SIGINT. Returns the process exit code.
int run(const Config& cfg);

}  // namespace hv::daemon
