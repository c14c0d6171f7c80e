#include "clone_routes.hpp"

#include "hv/api/json_reader.hpp"

namespace hv::daemon {
using nlohmann::json;

void register_clone_routes(Router& r, ApiContext& c) {
    // Body {"name": DST, "pool": P (optional), "linked": bool (optional)}: a clone of a stopped
    // VM or template (docs/snapshots.md). What can be told now is refused now (400/404/409),
    // the copy runs as a task.
    r.add("POST", "/v1/vms/{name}/clone", "guest:{name}", [&c](const Request& req) {
        auto body = req.json();
        api::ObjectReader rd(body, "");
        auto dst = rd.req<std::string>("name");
        auto pool = rd.opt<std::string>("pool").value_or("");
        bool linked = rd.opt<bool>("linked").value_or(false);
        rd.finish();
        api::validate_name(dst, "vm name");
        if (!pool.empty()) {
            api::validate_name(pool, "pool name");
            c.pools.get(pool);  // 404
        }
        auto src = req.param("name");
        auto info = c.vms.get(src);  // 404
        if (info.state != api::VmState::stopped && info.state != api::VmState::crashed)
            fail(Errc::conflict, "vm '{}' is {}: stop it to clone it", src, api::to_string(info.state));
        if (linked && !info.spec.is_template)
            fail(Errc::conflict, "vm '{}' is no template: linked clones are made from templates (hvctl vm template {})",
                 src, src);
        // The new name is held from here to the end of the task, across kinds (like a create).
        auto claim = c.guests.claim(api::GuestKind::vm, dst);
        return Response{202, c.tasks.submit("vm.clone", "vm/" + dst,
                                            [&c, claim, src, dst, pool, linked](util::Progress& p) mutable {
                                                auto held = std::move(claim);
                                                return json(c.vms.clone(src, dst, pool, linked, p));
                                            })};
    });
    // No body: the stopped VM becomes a template (one way).
    r.add("POST", "/v1/vms/{name}/template", "guest:{name}", [&c](const Request& req) {
        return Response{200, json(c.vms.make_template(req.param("name")))};
    });
}

}  // namespace hv::daemon
