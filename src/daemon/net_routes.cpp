#include "net_routes.hpp"

#include "hv/api/net.hpp"
#include "net_manager.hpp"

namespace hv::daemon {
using nlohmann::json;

void register_net_routes(Router& r, ApiContext& c) {
    r.add("GET", "/v1/net/nics", [&c](const Request& req) { return Response{200, c.net.nics(req.flag("all"))}; });
    r.add("GET", "/v1/net/features", [&c](const Request&) { return Response{200, c.net.features()}; });

    r.add("GET", "/v1/net/bridges", [&c](const Request&) { return Response{200, c.net.bridges()}; });
    r.add("POST", "/v1/net/bridges", [&c](const Request& req) {
        return Response{201, c.net.create_bridge(api::bridge_spec_from_json(req.json()))};
    });
    r.add("GET", "/v1/net/bridges/{name}", [&c](const Request& req) { return Response{200, c.net.bridge(req.param("name"))}; });
    r.add("DELETE", "/v1/net/bridges/{name}", [&c](const Request& req) {
        c.net.delete_bridge(req.param("name"), req.flag("force"));
        return Response{200, json{{"name", req.param("name")}, {"deleted", true}}};
    });

    r.add("GET", "/v1/net/bonds", [&c](const Request&) { return Response{200, c.net.bonds()}; });
    r.add("POST", "/v1/net/bonds", [&c](const Request& req) {
        return Response{201, c.net.create_bond(api::bond_spec_from_json(req.json()))};
    });
    r.add("GET", "/v1/net/bonds/{name}", [&c](const Request& req) { return Response{200, c.net.bond(req.param("name"))}; });
    r.add("DELETE", "/v1/net/bonds/{name}", [&c](const Request& req) {
        c.net.delete_bond(req.param("name"));
        return Response{200, json{{"name", req.param("name")}, {"deleted", true}}};
    });

    r.add("GET", "/v1/net/vlans", [&c](const Request&) { return Response{200, c.net.vlans()}; });
    r.add("POST", "/v1/net/vlans", [&c](const Request& req) {
        return Response{201, c.net.create_vlan(api::vlan_spec_from_json(req.json()))};
    });
    r.add("GET", "/v1/net/vlans/{name}", [&c](const Request& req) { return Response{200, c.net.vlan(req.param("name"))}; });
    r.add("DELETE", "/v1/net/vlans/{name}", [&c](const Request& req) {
        c.net.delete_vlan(req.param("name"));
        return Response{200, json{{"name", req.param("name")}, {"deleted", true}}};
    });
}

}  // namespace hv::daemon
