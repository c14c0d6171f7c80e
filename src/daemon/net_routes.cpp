#include "net_routes.hpp"

#include "hv/api/json_reader.hpp"
#include "hv/api/net.hpp"
#include "net_manager.hpp"

namespace hv::daemon {
using nlohmann::json;

void register_net_routes(Router& r, ApiContext& c) {
    r.add("GET", "/v1/net/nics", [&c](const Request& req) { return Response{200, c.net.nics(req.flag("all"))}; });
    r.add("GET", "/v1/net/features", [&c](const Request&) { return Response{200, c.net.features()}; });

    r.add("GET", "/v1/net/bridges", [&c](const Request&) { return Response{200, c.net.bridges()}; });
    // 201 applied; 202 staged (a port carries an address): POST /v1/net/apply applies it.
    r.add("POST", "/v1/net/bridges", [&c](const Request& req) {
        auto info = c.net.create_bridge(api::bridge_spec_from_json(req.json()));
        return Response{info.pending ? 202 : 201, info};
    });

    // Safe apply (commit-confirmed).
    r.add("GET", "/v1/net/pending", [&c](const Request&) { return Response{200, c.net.apply_state()}; });
    r.add("DELETE", "/v1/net/pending", [&c](const Request&) { return Response{200, c.net.revert()}; });
    r.add("POST", "/v1/net/apply", [&c](const Request& req) {
        auto body = req.json();
        api::ObjectReader rd(body, "");
        auto within = rd.opt<int>("confirm_within").value_or(60);
        rd.finish();
        return Response{200, c.net.apply(within)};
    });
    r.add("POST", "/v1/net/confirm", [&c](const Request&) { return Response{200, c.net.confirm()}; });
    r.add("GET", "/v1/net/bridges/{name}", [&c](const Request& req) { return Response{200, c.net.bridge(req.param("name"))}; });
    r.add("PATCH", "/v1/net/bridges/{name}", [&c](const Request& req) {
        return Response{200, c.net.update_bridge(req.param("name"), api::bridge_patch_from_json(req.json()))};
    });
    r.add("DELETE", "/v1/net/bridges/{name}", [&c](const Request& req) {
        c.net.delete_bridge(req.param("name"), req.flag("force"));
        return Response{200, json{{"name", req.param("name")}, {"deleted", true}}};
    });

    r.add("GET", "/v1/net/bonds", [&c](const Request&) { return Response{200, c.net.bonds()}; });
    r.add("POST", "/v1/net/bonds", [&c](const Request& req) {
        return Response{201, c.net.create_bond(api::bond_spec_from_json(req.json()))};
    });
    r.add("GET", "/v1/net/bonds/{name}", [&c](const Request& req) { return Response{200, c.net.bond(req.param("name"))}; });
    r.add("PATCH", "/v1/net/bonds/{name}", [&c](const Request& req) {
        return Response{200, c.net.update_bond(req.param("name"), api::bond_patch_from_json(req.json()))};
    });
    r.add("DELETE", "/v1/net/bonds/{name}", [&c](const Request& req) {
        c.net.delete_bond(req.param("name"));
        return Response{200, json{{"name", req.param("name")}, {"deleted", true}}};
    });

    r.add("GET", "/v1/net/vlans", [&c](const Request&) { return Response{200, c.net.vlans()}; });
    r.add("POST", "/v1/net/vlans", [&c](const Request& req) {
        return Response{201, c.net.create_vlan(api::vlan_spec_from_json(req.json()))};
    });
    r.add("GET", "/v1/net/vlans/{name}", [&c](const Request& req) { return Response{200, c.net.vlan(req.param("name"))}; });
    r.add("PATCH", "/v1/net/vlans/{name}", [&c](const Request& req) {
        return Response{200, c.net.update_vlan(req.param("name"), api::vlan_patch_from_json(req.json()))};
    });
    r.add("DELETE", "/v1/net/vlans/{name}", [&c](const Request& req) {
        c.net.delete_vlan(req.param("name"));
        return Response{200, json{{"name", req.param("name")}, {"deleted", true}}};
    });
}

}  // namespace hv::daemon
