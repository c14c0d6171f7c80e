#include "snapshot_routes.hpp"

#include "hv/api/snapshot.hpp"

namespace hv::daemon {
using nlohmann::json;

void register_snapshot_routes(Router& r, ApiContext& c) {
    r.add("GET", "/v1/vms/{name}/snapshots", "guest:{name}", [&c](const Request& req) {
        return Response{200, api::to_json(c.vms.snapshots(req.param("name")))};
    });
    // Body: a SnapshotCreate. Unknown VM 404, name taken or wrong state 409, a disk that cannot
    // 501: answered before a task exists (the task checks again under the VM's lock).
    r.add("POST", "/v1/vms/{name}/snapshots", "guest:{name}", [&c](const Request& req) {
        auto rq = api::snapshot_create_from_json(req.json());
        auto name = req.param("name");
        c.vms.check_snapshot(name, rq);
        return Response{202, c.tasks.submit("vm.snapshot.create", "vm/" + name, [&c, name, rq](util::Progress& p) {
                            return api::to_json(c.vms.create_snapshot(name, rq, p));
                        })};
    });
    r.add("GET", "/v1/vms/{name}/snapshots/{snap}", "guest:{name}", [&c](const Request& req) {
        api::validate_snapshot_name(req.param("snap"));
        return Response{200, api::to_json(c.vms.snapshot(req.param("name"), req.param("snap")))};
    });
    // Body: a SnapshotRevert ({} or {"start": true}).
    r.add("POST", "/v1/vms/{name}/snapshots/{snap}/revert", "guest:{name}", [&c](const Request& req) {
        auto rq = api::snapshot_revert_from_json(req.json());
        auto name = req.param("name");
        auto snap = req.param("snap");
        api::validate_snapshot_name(snap);
        c.vms.snapshot(name, snap);  // 404 before a task exists
        return Response{202, c.tasks.submit("vm.snapshot.revert", "vm/" + name, [&c, name, snap, rq](util::Progress& p) {
                            return json(c.vms.revert_snapshot(name, snap, rq.start, p));
                        })};
    });
    // ?children=1 deletes everything under it too; otherwise its children move up to its parent.
    r.add("DELETE", "/v1/vms/{name}/snapshots/{snap}", "guest:{name}", [&c](const Request& req) {
        auto name = req.param("name");
        auto snap = req.param("snap");
        api::validate_snapshot_name(snap);
        bool children = req.flag("children");
        c.vms.snapshot(name, snap);
        return Response{202, c.tasks.submit("vm.snapshot.delete", "vm/" + name, [&c, name, snap, children](util::Progress& p) {
                            return json{{"vm", name}, {"deleted", c.vms.delete_snapshot(name, snap, children, p)}};
                        })};
    });
}

}  // namespace hv::daemon
