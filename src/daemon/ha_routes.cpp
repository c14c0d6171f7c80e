#include "ha_routes.hpp"

#include "hv/api/ha.hpp"
#include "hv/api/json_reader.hpp"
#include "hv/error.hpp"

namespace hv::daemon {
using nlohmann::json;

void register_ha_routes(Router& r, ha::HaService& ha) {
    // Enabling reads the guest's definition and disks: it runs on the guest's host.
    r.add("PUT", "/v1/ha/resources/{name}", "guest:{name}", [&ha](const Request& req) {
        auto e = api::ha_enable_from_json(req.json());
        return Response{200, ha.enable(req.param("name"), e)};
    });
    r.add("DELETE", "/v1/ha/resources/{name}", "host", [&ha](const Request& req) {
        ha.disable(req.param("name"));
        return Response{200, json{{"guest", req.param("name")}, {"ha", false}}};
    });
    r.add("GET", "/v1/ha/status", "host", [&ha](const Request&) { return Response{200, ha.status()}; });
    r.add("GET", "/v1/ha/groups", "host", [&ha](const Request&) { return Response{200, ha.groups()}; });
    r.add("POST", "/v1/ha/groups", "host", [&ha](const Request& req) {
        return Response{201, ha.put_group(api::ha_group_from_json(req.json()))};
    });
    // The cluster's HA settings (one record; any member reads and writes it).
    r.add("GET", "/v1/ha/settings", "host", [&ha](const Request&) { return Response{200, api::to_json(ha.settings())}; });
    r.add("PUT", "/v1/ha/settings", "host", [&ha](const Request& req) { return Response{200, ha.put_settings(req.json())}; });
    r.add("DELETE", "/v1/ha/groups/{group}", "host", [&ha](const Request& req) {
        ha.delete_group(req.param("group"));
        return Response{200, json{{"name", req.param("group")}, {"removed", true}}};
    });
}

}  // namespace hv::daemon
