#include "net_routes.hpp"

#include "hv/api/json_reader.hpp"
#include "hv/api/net.hpp"
#include "net_manager.hpp"

namespace hv::daemon {
using nlohmann::json;

void register_net_routes(Router& r, net::NetManager& net) {
    r.add("GET", "/v1/net/nics", "host", [&net](const Request& req) { return Response{200, net.nics(req.flag("all"))}; });
    r.add("GET", "/v1/net/features", "host", [&net](const Request&) { return Response{200, net.features()}; });

    r.add("GET", "/v1/net/bridges", "host", [&net](const Request&) { return Response{200, net.bridges()}; });
    // 201 applied; 202 staged (a port carries an address): POST /v1/net/apply applies it.
    r.add("POST", "/v1/net/bridges", "host", [&net](const Request& req) {
        auto info = net.create_bridge(api::bridge_spec_from_json(req.json()));
        return Response{info.pending ? 202 : 201, info};
    });

    // Safe apply (commit-confirmed).
    r.add("GET", "/v1/net/pending", "host", [&net](const Request&) { return Response{200, net.apply_state()}; });
    r.add("DELETE", "/v1/net/pending", "host", [&net](const Request&) { return Response{200, net.revert()}; });
    r.add("POST", "/v1/net/apply", "host", [&net](const Request& req) {
        auto body = req.json();
        api::ObjectReader rd(body, "");
        auto within = rd.opt<int>("confirm_within").value_or(60);
        rd.finish();
        return Response{200, net.apply(within)};
    });
    r.add("POST", "/v1/net/confirm", "host", [&net](const Request&) { return Response{200, net.confirm()}; });
    r.add("GET", "/v1/net/bridges/{name}", "host", [&net](const Request& req) { return Response{200, net.bridge(req.param("name"))}; });
    r.add("PATCH", "/v1/net/bridges/{name}", "host", [&net](const Request& req) {
        return Response{200, net.update_bridge(req.param("name"), api::bridge_patch_from_json(req.json()))};
    });
    r.add("DELETE", "/v1/net/bridges/{name}", "host", [&net](const Request& req) {
        net.delete_bridge(req.param("name"), req.flag("force"));
        return Response{200, json{{"name", req.param("name")}, {"deleted", true}}};
    });

    r.add("GET", "/v1/net/bonds", "host", [&net](const Request&) { return Response{200, net.bonds()}; });
    r.add("POST", "/v1/net/bonds", "host", [&net](const Request& req) {
        return Response{201, net.create_bond(api::bond_spec_from_json(req.json()))};
    });
    r.add("GET", "/v1/net/bonds/{name}", "host", [&net](const Request& req) { return Response{200, net.bond(req.param("name"))}; });
    r.add("PATCH", "/v1/net/bonds/{name}", "host", [&net](const Request& req) {
        return Response{200, net.update_bond(req.param("name"), api::bond_patch_from_json(req.json()))};
    });
    r.add("DELETE", "/v1/net/bonds/{name}", "host", [&net](const Request& req) {
        net.delete_bond(req.param("name"));
        return Response{200, json{{"name", req.param("name")}, {"deleted", true}}};
    });

    r.add("GET", "/v1/net/vlans", "host", [&net](const Request&) { return Response{200, net.vlans()}; });
    r.add("POST", "/v1/net/vlans", "host", [&net](const Request& req) {
        return Response{201, net.create_vlan(api::vlan_spec_from_json(req.json()))};
    });
    r.add("GET", "/v1/net/vlans/{name}", "host", [&net](const Request& req) { return Response{200, net.vlan(req.param("name"))}; });
    r.add("PATCH", "/v1/net/vlans/{name}", "host", [&net](const Request& req) {
        return Response{200, net.update_vlan(req.param("name"), api::vlan_patch_from_json(req.json()))};
    });
    r.add("DELETE", "/v1/net/vlans/{name}", "host", [&net](const Request& req) {
        net.delete_vlan(req.param("name"));
        return Response{200, json{{"name", req.param("name")}, {"deleted", true}}};
    });
}

}  // namespace hv::daemon
