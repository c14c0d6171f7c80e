// hvd: the hv host daemon. Flags override /etc/hv/hvd.toml (see docs/configuration.md).
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "daemon.hpp"
#include "hv/error.hpp"
#include "route_table.hpp"

int main(int argc, char** argv) {
    // Each thread that allocates would otherwise get its own malloc arena (bench/memory.sh:
    // -0.5 MiB with 200 VMs); hvd's threads mostly wait.
    mallopt(M_ARENA_MAX, 2);
    CLI::App app{"hvd - hv virtualization host daemon"};
    hv::daemon::Overrides o;
    bool check = false, foreground = false, print_defaults = false, print_routes = false;
    app.add_option("--config", o.config_path, "configuration file")->check(CLI::ExistingFile);
    app.add_option("--socket", o.socket, "Unix socket of the REST API");
    app.add_option("--libvirt-uri", o.libvirt_uri, "libvirt connection URI");
    app.add_option("--state-dir", o.state_dir, "state directory (disk images in <dir>/images)");
    app.add_option("--node-name", o.node_name, "this host's name in the cluster ([cluster] node_name)");
    app.add_option("--accel", o.accel, "auto|kvm|tcg");
    app.add_option("--log-level", o.log_level, "trace|debug|info|warn|error");
    app.add_option("--log-target", o.log_target, "auto|journal|stderr (auto: the journal when stderr is connected to it)");
    app.add_flag("--foreground", foreground, "run in the foreground (hvd never daemonizes itself)");
    app.add_flag("--check-config", check, "validate the configuration and exit");
    app.add_flag("--print-default-config", print_defaults, "print the default configuration as TOML and exit");
    app.add_flag("--print-routes", print_routes,
                 "print the REST API's route table as JSON (method, pattern, kind) and exit");
    app.set_version_flag("--version", std::string("hvd ") + HV_VERSION);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    if (print_defaults) {
        std::cout << hv::daemon::default_config_toml();
        return 0;
    }
    try {
        if (print_routes) {
            std::cout << hv::daemon::route_table_json().dump(1) << "\n";
            return 0;
        }
        o.config_given = app.count("--config") > 0;
        auto cfg = hv::daemon::resolve_config(o);
        if (check) {
            std::cout << "configuration OK: socket " << cfg.socket << ", libvirt " << cfg.libvirt_uri << ", state "
                      << cfg.state_dir << ", images " << cfg.effective_image_dir() << ", accel " << cfg.accel << "\n";
            return 0;
        }
        return hv::daemon::run(cfg);
    } catch (const hv::Error& e) {
        std::cerr << "hvd: " << e.what() << "\n";
        return hv::exit_code(e.code());
    } catch (const std::exception& e) {
        std::cerr << "hvd: " << e.what() << "\n";
        return 1;
    }
}
