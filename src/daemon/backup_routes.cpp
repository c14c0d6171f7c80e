#include "backup_routes.hpp"

#include <memory>

#include "backup_service.hpp"
#include "hv/api/backup.hpp"
#include "hv/api/json_reader.hpp"

namespace hv::daemon {
using nlohmann::json;

void register_backup_routes(Router& r, ApiContext& c) {
    auto svc = std::make_shared<backup::BackupService>(c.config.state_dir, c.vms, c.pools, c.guests);

    r.add("GET", "/v1/backup-stores", "host", [svc](const Request&) {
        json out = json::array();
        for (const auto& s : svc->stores()) out.push_back(api::to_json(s));
        return Response{200, out};
    });
    r.add("POST", "/v1/backup-stores", "host", [svc](const Request& req) {
        return Response{201, api::to_json(svc->add_store(api::backup_store_from_json(req.json())))};
    });
    r.add("DELETE", "/v1/backup-stores/{store}", "host", [svc](const Request& req) {
        svc->remove_store(req.param("store"));
        return Response{200, json{{"name", req.param("store")}, {"removed", true}}};
    });
    // ?store=S&guest=G, both optional.
    r.add("GET", "/v1/backups", "host", [svc](const Request& req) {
        auto q = [&](const char* k) {
            auto it = req.query.find(k);
            return it == req.query.end() ? std::string() : it->second;
        };
        return Response{200, svc->list(q("store"), q("guest"))};
    });
    r.add("POST", "/v1/vms/{name}/backup", "guest:{name}", [&c, svc](const Request& req) {
        auto rq = api::backup_create_from_json(req.json());
        auto vm = req.param("name");
        svc->precheck_create(vm, rq);
        return Response{202, c.tasks.submit("vm.backup", "vm/" + vm,
                                            [svc, vm, rq](util::Progress& p) { return svc->create(vm, rq, p); })};
    });
    r.add("POST", "/v1/backup-stores/{store}/backups/{guest}/{time}/restore", "host", [&c, svc](const Request& req) {
        auto rq = api::backup_restore_from_json(req.json());
        auto store = req.param("store"), guest = req.param("guest"), time = req.param("time");
        svc->precheck_restore(store, guest, time, rq);
        auto name = rq.as.empty() ? guest : rq.as;
        // The new name is held from here to the end of the task, across kinds (like a create).
        auto claim = c.guests.claim(api::GuestKind::vm, name);
        return Response{202, c.tasks.submit("backup.restore", "vm/" + name,
                                            [svc, claim, store, guest, time, rq](util::Progress& p) mutable {
                                                auto held = std::move(claim);
                                                return svc->restore(store, guest, time, rq, p);
                                            })};
    });
    // Body {"guest": G (optional), "time": T (optional, with guest)}.
    r.add("POST", "/v1/backup-stores/{store}/verify", "host", [&c, svc](const Request& req) {
        auto v = api::backup_verify_from_json(req.body.empty() ? json::object() : req.json());
        const auto guest = v.guest, time = v.time;
        auto store = req.param("store");
        svc->store(store);  // 404
        return Response{202, c.tasks.submit("backup.verify", "backup-store/" + store,
                                            [svc, store, guest, time](util::Progress& p) {
                                                return svc->verify(store, guest, time, p);
                                            })};
    });
    r.add("POST", "/v1/backup-stores/{store}/prune", "host", [&c, svc](const Request& req) {
        auto rq = api::backup_prune_from_json(req.json());
        auto store = req.param("store");
        svc->store(store);  // 404
        return Response{202, c.tasks.submit("backup.prune", "backup-store/" + store,
                                            [svc, store, rq](util::Progress& p) { return svc->prune(store, rq, p); })};
    });
}

}  // namespace hv::daemon
