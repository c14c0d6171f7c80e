// hvctl host show, hvctl version
#include <CLI/CLI.hpp>

#include "context.hpp"
#include "output.hpp"

namespace hv::cli {

void add_host_commands(CLI::App& app, Context& ctx) {
    auto* host = app.add_subcommand("host", "The host hvd runs on");
    host->require_subcommand(1);
    host->add_subcommand("show", "Show hvd, libvirt, acceleration and resources")->callback([&ctx] {
        ctx.action = [&g = ctx.g] {
            print_host(g, g.client().host());
            return 0;
        };
    });

    // Prints the client version first so it is shown even when hvd is down (exit 10 then).
    app.add_subcommand("version", "Show the versions of hvctl and hvd")->callback([&ctx] {
        ctx.action = [&g = ctx.g] {
            if (!g.json()) print_line("hvctl " HV_VERSION);
            std::string daemon;
            try {
                daemon = g.client().host().version;
            } catch (const DaemonUnreachable&) {
                if (g.json()) print_json({{"client", HV_VERSION}, {"daemon", nullptr}});
                throw;
            }
            if (g.json()) print_json({{"client", HV_VERSION}, {"daemon", daemon}});
            else print_line("hvd   " + daemon);
            return 0;
        };
    });
}

}  // namespace hv::cli
