#include "api_routes.hpp"

#include "hv/api/host.hpp"
#include "hv/api/json_reader.hpp"
#include "backup_routes.hpp"
#include "clone_routes.hpp"
#include "iso_routes.hpp"
#include "net_routes.hpp"
#include "snapshot_routes.hpp"
#include "storage_routes.hpp"
#include "time_routes.hpp"
#include "vm_disk_routes.hpp"

namespace hv::daemon {
using nlohmann::json;

void register_routes(Router& r, ApiContext& c) {
    register_time_routes(r, c.config);
    register_storage_routes(r, c);
    register_vm_disk_routes(r, c);
    register_snapshot_routes(r, c);
    register_clone_routes(r, c);
    register_backup_routes(r, c);
    register_iso_routes(r, c);
    r.add("GET", "/v1/host", "host", [&c](const Request&) { return Response{200, c.host.info()}; });

    r.add("POST", "/v1/vms", "host", [&c](const Request& req) {
        auto spec = api::vm_spec_from_json(req.json());
        api::validate(spec);
        // The name is held from here to the end of the task, across kinds: a second create of
        // it (a VM or a container) gets 409 at once. libvirt down -> 503.
        auto claim = c.guests.claim(api::GuestKind::vm, spec.name);
        auto name = spec.name;
        return Response{202, c.tasks.submit("vm.create", "vm/" + name,
                                            [&c, claim, spec = std::move(spec)](util::Progress& p) mutable {
                                                auto held = std::move(claim);  // released as the work ends
                                                return json(c.vms.create(spec, p));
                                            })};
    });

    r.add("GET", "/v1/tasks", "host", [&c](const Request&) { return Response{200, c.tasks.list()}; }, true);
    r.add("GET", "/v1/tasks/{id}", "task:{id}", [&c](const Request& req) { return Response{200, c.tasks.get(req.param("id"))}; }, true);
    r.add("POST", "/v1/tasks/{id}/cancel", "task:{id}",
          [&c](const Request& req) { return Response{200, c.tasks.cancel(req.param("id"))}; }, true);
}

}  // namespace hv::daemon
