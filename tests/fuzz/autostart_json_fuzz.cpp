// Autostart settings (src/daemon/autostart.cpp): PUT /v1/vms|cts/{name}/autostart and
// PUT /v1/autostart/host, and what hvd does with a set of accepted settings: the dependency
// check, the plan (the scheduler on a simulated clock) and the stop waves. The first byte picks:
// 'a' guest settings, 'b' host settings, 'c' an object {"guest name": settings, ...}.
#include "autostart.hpp"
#include "fuzz_common.hpp"
#include "hv/api/vm.hpp"

namespace as = hv::guest::autostart;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::size_t which = hvfuzz::select(data, size, 3);
    auto j = hvfuzz::parse_json(hvfuzz::text(data, size));
    if (!j) return 0;
    switch (which) {
        case 0:
            hvfuzz::expect([&] {
                as::Settings base;
                base.after = {"db01"};
                auto s = as::settings_from_json(*j, base);
                hvfuzz::render_value(s);
                as::validate(s, "web01", as::Kind::vm);
                as::validate(s, "web01", as::Kind::ct);
            });
            break;
        case 1:
            hvfuzz::expect([&] {
                auto h = as::host_settings_from_json(*j);
                hvfuzz::render_value(h);
                as::validate(h);
            });
            break;
        default: {
            if (!j->is_object() || j->size() > 16) return 0;
            std::map<std::string, as::Settings> guests;
            bool ok = hvfuzz::expect([&] {
                for (const auto& [name, v] : j->items()) {
                    hv::api::validate_name(name, "name");
                    auto s = as::settings_from_json(v);
                    as::validate(s, name);
                    guests[name] = s;
                }
            });
            if (!ok) return 0;
            // A cycle is a conflict (409); an unknown or disabled dependency invalid_input.
            if (!hvfuzz::expect([&] { as::check_dependencies(guests); },
                                {hv::Errc::invalid_input, hv::Errc::conflict}))
                return 0;
            as::RunOptions opt;
            auto report = as::plan(guests, opt);
            hvfuzz::render_value(report);
            std::size_t enabled = 0;
            for (const auto& [n, s] : guests) enabled += s.enabled;
            if (report.vms.size() != enabled) hvfuzz::bug("plan", "the plan does not hold every enabled guest once");
            std::size_t stopped = 0;
            for (const auto& wave : as::stop_waves(guests)) stopped += wave.size();
            // stop-all stops every running guest, autostart-enabled or not (autostart_routes.cpp).
            if (stopped != guests.size()) hvfuzz::bug("stop_waves", "the waves do not hold every guest once");
        }
    }
    return 0;
}
