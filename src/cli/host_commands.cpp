// hvctl host show, hvctl version
#include <iostream>

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

    host->add_subcommand("metrics", "Print hvd's metrics (GET /v1/metrics, Prometheus text format)")->callback([&ctx] {
        ctx.action = [&g = ctx.g] {
            std::cout << g.client().metrics() << std::flush;
            return 0;
        };
    });

    // Prints the client version first so it is shown even when hvd is down (exit 10 then).
    app.add_subcommand("version", "Show the versions of hvctl, hvd and the API")->callback([&ctx] {
        ctx.action = [&g = ctx.g] {
            // Flat and stable: {"client", "client_api_version", "daemon", "daemon_api_version"}.
            nlohmann::json out{{"client", HV_VERSION}, {"client_api_version", api::kApiVersion},
                               {"daemon", nullptr}, {"daemon_api_version", nullptr}};
            if (!g.json()) print_line(fmt::format("hvctl {} (API {})", HV_VERSION, api::kApiVersion));
            api::VersionInfo daemon;
            try {
                Client c = g.client();
                try {
                    daemon = c.version();
                } catch (const DaemonUnreachable&) {
                    throw;
                } catch (const Error& e) {
                    if (e.code() != Errc::not_found) throw;
                    daemon.version = c.host().version;  // an hvd from before /v1/version
                    daemon.api_version = api::kApiVersion;
                }
            } catch (const DaemonUnreachable&) {
                if (g.json()) print_json(out);
                else print_line("hvd   unreachable");
                throw;
            }
            out["daemon"] = daemon.version;
            out["daemon_api_version"] = daemon.api_version;
            if (g.json()) print_json(out);
            else print_line(fmt::format("hvd   {} (API {})", daemon.version, daemon.api_version));
            return 0;
        };
    });
}

}  // namespace hv::cli
