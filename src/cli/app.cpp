#include <exception>

#include <CLI/CLI.hpp>

#include "completion.hpp"
#include "context.hpp"
#include "output.hpp"

namespace hv::cli {

int run(int argc, const char* const* argv) {
    Context ctx;
    CLI::App app{"hvctl: control hvd, the hv KVM virtualization host daemon", "hvctl"};
    app.fallthrough();  // global flags are accepted after the subcommand too
    app.require_subcommand(1);
    app.add_option("--socket", ctx.g.socket, "hvd's Unix socket (default: $HV_SOCKET, else /run/hv/hvd.sock)")
        ->capture_default_str();
    app.add_option("-o,--output", ctx.g.output, "Output format: table, json or yaml")
        ->check(CLI::IsMember({"table", "json", "yaml"}))
        ->capture_default_str();
    app.add_flag("--no-headers", ctx.g.no_headers, "Do not print table headers");

    add_host_commands(app, ctx);
    add_host_list_command(app, ctx);
    add_vm_commands(app, ctx);
    add_autostart_commands(app, ctx);
    add_task_commands(app, ctx);
    add_event_commands(app, ctx);
    add_time_commands(app, ctx);
    add_net_commands(app, ctx);
    add_storage_commands(app, ctx);
    add_ct_commands(app, ctx);
    add_cluster_commands(app, ctx);
    add_ceph_commands(app, ctx);
    add_migrate_command(app, ctx);
    add_snapshot_commands(app, ctx);
    add_ha_commands(app, ctx);
    add_clone_command(app, ctx);
    add_backup_commands(app, ctx);
    add_maintenance_command(app, ctx);
    add_ct_autostart_command(app, ctx);
    add_completion_commands(app, ctx);  // hidden; walks the commands above

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : kExitUsage;
    }
    if (!ctx.action) {
        std::cerr << app.help();
        return kExitUsage;
    }
    set_structured_format(ctx.g.output);
    try {
        return ctx.action();
    } catch (const DaemonUnreachable& e) {
        print_error(e.what());
        return kExitUnreachable;
    } catch (const Error& e) {
        print_error(e.what());
        return exit_code(e.code());
    } catch (const std::exception& e) {
        print_error(e.what());
        return exit_code(Errc::internal);
    }
}

}  // namespace hv::cli
