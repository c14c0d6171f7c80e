#include "cluster_routes.hpp"

#include "hv/api/cluster.hpp"
#include "hv/api/json_reader.hpp"
#include "hv/error.hpp"

namespace hv::daemon {
using nlohmann::json;

namespace {
json members_json(const std::vector<api::MemberStatus>& ms) {
    json out = json::array();
    for (const auto& m : ms) out.push_back(api::to_json(m));
    return out;
}
// A body without "address" gets [cluster] address.
json with_address(json body, const Config& cfg) {
    if (body.is_object() && !body.contains("address") && !cfg.cluster_address.empty()) body["address"] = cfg.cluster_address;
    return body;
}
}  // namespace

void register_cluster_routes(Router& r, cluster::Cluster& c, TaskManager& tasks, const Config& cfg) {
    r.add("GET", "/v1/cluster", "host", [&c](const Request&) { return Response{200, api::to_json(c.status())}; });
    // Create and join start an etcd member and wait for it: tasks (hvctl waits with progress).
    r.add("POST", "/v1/cluster", "host", [&c, &tasks, &cfg](const Request& req) {
        auto spec = api::cluster_create_from_json(with_address(req.json(), cfg));
        if (c.member()) fail(Errc::conflict, "this host is already a member of a cluster (hvctl cluster leave first)");
        return Response{202, tasks.submit("cluster.create", "cluster/" + spec.name, [&c, spec](util::Progress& p) {
                            p.step(-1, "creating the cluster CA and starting the store");
                            return json{{"cluster", api::to_json(c.create(spec))}};
                        })};
    });
    r.add("POST", "/v1/cluster/tokens", "host", [&c](const Request& req) {
        auto t = api::token_request_from_json(req.json());
        return Response{201, api::to_json(c.token(t))};
    });
    r.add("POST", "/v1/cluster/join", "host", [&c, &tasks, &cfg](const Request& req) {
        auto j = api::join_request_from_json(with_address(req.json(), cfg));
        if (c.member()) fail(Errc::conflict, "this host is already a member of a cluster (hvctl cluster leave first)");
        return Response{202, tasks.submit("cluster.join", "cluster", [&c, j](util::Progress& p) {
                            p.step(-1, "asking a member to admit this host");
                            return json{{"cluster", api::to_json(c.join(j))}};
                        })};
    });
    // Host to host only (ClusterDispatcher::admit): the caller presents the token's join
    // certificate, CN "join:<token id>".
    r.add("POST", "/v1/cluster/join-request", "host", [&c](const Request& req) {
        if (req.peer_subject.rfind("join:", 0) != 0)
            fail(Errc::forbidden, "the join request needs the join certificate of a token");
        auto offer = api::join_offer_from_json(req.json());
        return Response{200, api::to_json(c.accept_join(req.peer_subject.substr(5), offer))};
    });
    r.add("POST", "/v1/cluster/leave", "host", [&c](const Request& req) {
        auto body = req.json();
        api::ObjectReader rd(body, "");
        rd.finish();
        c.leave();
        return Response{200, api::to_json(c.status())};
    });
    r.add("DELETE", "/v1/cluster/members/{host}", "host", [&c](const Request& req) {
        c.remove(req.param("host"), req.flag("force"));
        return Response{200, api::to_json(c.status())};
    });
    r.add("GET", "/v1/cluster/hosts", "host", [&c](const Request&) { return Response{200, members_json(c.hosts())}; });
}

}  // namespace hv::daemon
