// hvctl events: follows GET /v1/events until interrupted.
#include <memory>

#include <CLI/CLI.hpp>

#include "context.hpp"
#include "output.hpp"

namespace hv::cli {

void add_event_commands(CLI::App& app, Context& ctx) {
    auto host = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("events", "Follow hvd's event stream (one line per event; Ctrl-C to stop)");
    cmd->add_option("--host", *host, "A cluster member whose events to follow (default: the host asked)");
    cmd->callback([&ctx, host] {
        ctx.action = [&g = ctx.g, host]() -> int {
            g.client().events(
                [&](const api::Event& e) {
                    if (g.json()) print_json_line(nlohmann::json(e));
                    else print_line(event_line(e));
                    return true;
                },
                *host);
            throw DaemonUnreachable(Errc::unavailable, "hvd closed the event stream");
        };
    });
}

}  // namespace hv::cli
