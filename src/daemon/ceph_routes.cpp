#include "ceph_routes.hpp"

#include "hv/api/ceph.hpp"
#include "hv/api/json_reader.hpp"
#include "hv/error.hpp"

namespace hv::daemon {
using nlohmann::json;

void register_ceph_routes(Router& r, ceph::CephService& ceph, TaskManager& tasks) {
    r.add("GET", "/v1/ceph", "host", [&ceph](const Request&) { return Response{200, api::to_json(ceph.status())}; });
    r.add("POST", "/v1/ceph/init", "host", [&ceph](const Request& req) {
        auto in = api::ceph_init_from_json(req.json());
        return Response{201, api::to_json(ceph.init(in))};
    });
    r.add("POST", "/v1/ceph/mons", "host", [&ceph, &tasks](const Request& req) {
        auto body = req.json();
        api::ObjectReader rd(body, "");
        rd.finish();
        ceph.precheck_mon();
        return Response{202, tasks.submit("ceph.mon.create", "ceph/mon", [&ceph](util::Progress& p) {
                            return json{{"mon", api::to_json(ceph.create_mon(p))}};
                        })};
    });
    r.add("POST", "/v1/ceph/osds", "host", [&ceph, &tasks](const Request& req) {
        auto in = api::ceph_osd_create_from_json(req.json());
        ceph.precheck_osd(in);
        return Response{202, tasks.submit("ceph.osd.create", "ceph/osd" + in.device, [&ceph, in](util::Progress& p) {
                            return json{{"osd", api::to_json(ceph.create_osd(in, p))}};
                        })};
    });
    r.add("POST", "/v1/ceph/pools", "host", [&ceph, &tasks](const Request& req) {
        auto in = api::ceph_pool_create_from_json(req.json());
        ceph.precheck_pool(in);
        return Response{202, tasks.submit("ceph.pool.create", "ceph/pool/" + in.name, [&ceph, in](util::Progress& p) {
                            return json{{"pool", api::to_json(ceph.create_pool(in, p))}};
                        })};
    });
}

}  // namespace hv::daemon
