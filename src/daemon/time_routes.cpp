#include "time_routes.hpp"

#include <memory>

#include "chrony_manager.hpp"
#include "hv/api/time.hpp"

namespace hv::daemon {

void register_time_routes(Router& r, const Config& cfg) {
    time::ChronyOptions o;
    o.chronyc = cfg.time_chronyc;
    o.command_address = cfg.time_command_address;
    o.sources_file = cfg.time_sources_file;
    o.source_options = cfg.time_source_options;
    o.service = cfg.time_service;
    time::validate_options(o);
    auto chrony = std::make_shared<time::ChronyManager>(std::move(o));

    r.add("GET", "/v1/time", "host", [chrony](const Request&) { return Response{200, chrony->status()}; });
    r.add("PUT", "/v1/time", "host", [chrony](const Request& req) {
        auto settings = api::time_settings_from_json(req.json());
        return Response{200, chrony->apply(settings)};
    });
}

}  // namespace hv::daemon
