// What every hvctl command shares: the global flags and the deferred action that runs after
// parsing (so parse errors and runtime errors get their own exit codes).
#pragma once

#include <functional>
#include <string>

#include "hv/client.hpp"

namespace CLI {
class App;
}

namespace hv::cli {

// Exit codes that hvctl adds to hv::exit_code() (see docs/api.md).
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 10;
inline constexpr int kExitTaskFailed = 11;

struct Globals {
    std::string socket = default_socket_path();
    std::string output = "table";  // table | json | yaml
    bool no_headers = false;

    // Structured output (-o json or -o yaml): commands print API objects with print_json,
    // which writes the format chosen (set_structured_format); tables otherwise.
    bool json() const { return output != "table"; }
    Client client() const { return Client(socket); }
};

struct Context {
    Globals g;
    // Set by the callback of the subcommand that was parsed; returns the exit code.
    std::function<int()> action;
};

void add_host_commands(CLI::App& app, Context& ctx);  // host show, version
void add_vm_commands(CLI::App& app, Context& ctx);
void add_autostart_commands(CLI::App& app, Context& ctx);  // vm autostart, autostart ... (after vm)
void add_task_commands(CLI::App& app, Context& ctx);
void add_event_commands(CLI::App& app, Context& ctx);
void add_time_commands(CLI::App& app, Context& ctx);  // time show, time set
void add_net_commands(CLI::App& app, Context& ctx);  // net nic|features|bridge|bond|vlan ...
void add_storage_commands(CLI::App& app, Context& ctx);  // storage pool|volume|iso ...
void add_ct_commands(CLI::App& app, Context& ctx);  // ct ..., and list (VMs + containers)
void add_ct_autostart_command(CLI::App& app, Context& ctx);  // ct autostart (after ct)
void add_cluster_commands(CLI::App& app, Context& ctx);  // cluster create|token|join|status|leave|remove
void add_host_list_command(CLI::App& app, Context& ctx);  // host list (after host)
void add_ceph_commands(CLI::App& app, Context& ctx);  // ceph init|status|mon|osd|pool
void add_migrate_command(CLI::App& app, Context& ctx);  // vm migrate, ct migrate (after vm and ct)
void add_snapshot_commands(CLI::App& app, Context& ctx);  // vm snapshot ... (after vm)
void add_ha_commands(CLI::App& app, Context& ctx);  // ha enable|disable|status|group
void add_clone_command(CLI::App& app, Context& ctx);  // vm clone (after vm)
void add_backup_commands(CLI::App& app, Context& ctx);  // backup store|create|list|restore|verify|prune
void add_maintenance_command(CLI::App& app, Context& ctx);  // host maintenance (after host)

// Parses argv, runs the command, maps errors to exit codes.
int run(int argc, const char* const* argv);

}  // namespace hv::cli
