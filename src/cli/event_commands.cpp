// hvctl events: follows GET /v1/events until interrupted.
#include <CLI/CLI.hpp>

#include "context.hpp"
#include "output.hpp"

namespace hv::cli {

void add_event_commands(CLI::App& app, Context& ctx) {
    app.add_subcommand("events", "Follow hvd's event stream (one line per event; Ctrl-C to stop)")->callback([&ctx] {
        ctx.action = [&g = ctx.g]() -> int {
            g.client().events([&](const api::Event& e) {
                if (g.json()) print_json_line(nlohmann::json(e));
                else print_line(event_line(e));
                return true;
            });
            throw DaemonUnreachable(Errc::unavailable, "hvd closed the event stream");
        };
    });
}

}  // namespace hv::cli
