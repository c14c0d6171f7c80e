#include "storage_routes.hpp"

#include "hv/api/json_reader.hpp"
#include "hv/api/storage.hpp"

namespace hv::daemon {
using nlohmann::json;

namespace {

// Volumes of running VMs are not resized or cloned behind QEMU's back.
void refuse_if_running(ApiContext& c, const std::vector<std::string>& users, const std::string& what) {
    for (const auto& vm : users) {
        auto info = c.vms.get(vm);
        if (info.state != api::VmState::stopped && info.state != api::VmState::crashed)
            fail(Errc::conflict, "cannot {}: it is attached to vm '{}', which is {}; stop the vm first", what, vm,
                 api::to_string(info.state));
    }
}

}  // namespace

void register_storage_routes(Router& r, ApiContext& c) {
    r.add("GET", "/v1/storage/backends", "host", [](const Request&) {
        json out = json::array();
        for (const auto& b : storage::backends()) out.push_back(json{{"type", b.type}, {"caps", b.caps}});
        return Response{200, out};
    });

    // ---- pools
    r.add("GET", "/v1/storage/pools", "host", [&c](const Request&) { return Response{200, c.pools.list()}; });
    r.add("POST", "/v1/storage/pools", "host", [&c](const Request& req) {
        auto spec = api::pool_spec_from_json(req.json());
        return Response{201, c.pools.add(spec)};
    });
    r.add("GET", "/v1/storage/pools/{pool}", "pool:{pool}", [&c](const Request& req) { return Response{200, c.pools.get(req.param("pool"))}; });
    r.add("DELETE", "/v1/storage/pools/{pool}", "pool:{pool}", [&c](const Request& req) {
        c.pools.remove(req.param("pool"));
        return Response{200, json{{"name", req.param("pool")}, {"removed", true}}};
    });
    r.add("POST", "/v1/storage/pools/{pool}/scan", "pool:{pool}",
          [&c](const Request& req) { return Response{200, c.pools.scan(req.param("pool"))}; });

    // ---- volumes
    r.add("GET", "/v1/storage/pools/{pool}/volumes", "pool:{pool}",
          [&c](const Request& req) { return Response{200, c.pools.volumes(req.param("pool"))}; });
    r.add("GET", "/v1/storage/pools/{pool}/volumes/{name}", "pool:{pool}", [&c](const Request& req) {
        return Response{200, c.pools.volume(req.param("pool"), req.param("name"))};
    });
    r.add("POST", "/v1/storage/pools/{pool}/volumes", "pool:{pool}", [&c](const Request& req) {
        auto body = req.json();
        if (body.is_object() && !body.contains("pool")) body["pool"] = req.param("pool");
        auto spec = api::volume_spec_from_json(body);
        if (spec.pool != req.param("pool"))
            fail(Errc::invalid_input, "field 'pool' ('{}') differs from the pool in the path ('{}')", spec.pool,
                 req.param("pool"));
        c.pools.precheck_create(spec);  // fast 4xx/507 before a task exists
        auto target = "volume/" + spec.pool + "/" + spec.name;
        return Response{202, c.tasks.submit("volume.create", target, [&c, spec](util::Progress& p) {
                            auto created = c.pools.create_volume(spec, p);
                            return json{{"volume", created.volume}, {"warnings", created.warnings}};
                        })};
    });
    r.add("DELETE", "/v1/storage/pools/{pool}/volumes/{name}", "pool:{pool}", [&c](const Request& req) {
        const auto& pool = req.param("pool");
        const auto& name = req.param("name");
        bool force = req.flag("force");
        std::vector<std::string> detached;
        std::function<void(const std::vector<std::string>&, const std::string&)> detach;
        if (force) {
            detach = [&c, &detached](const std::vector<std::string>& users, const std::string& path) {
                detached = c.guests.release_image(users, path);
            };
        }
        c.pools.delete_volume(pool, name, detach);
        return Response{200, json{{"pool", pool}, {"name", name}, {"deleted", true}, {"detached_from", detached}}};
    });
    r.add("POST", "/v1/storage/pools/{pool}/volumes/{name}/resize", "pool:{pool}", [&c](const Request& req) {
        const auto pool = req.param("pool");
        const auto name = req.param("name");
        auto body = req.json();
        api::ObjectReader rd(body, "");
        auto size = rd.opt_size("size");
        rd.finish();
        if (!size) fail(Errc::invalid_input, "field 'size' is required (e.g. \"40G\")");
        auto v = c.pools.volume(pool, name);
        if (*size <= v.capacity)
            fail(Errc::invalid_input, "volume '{}' is {}: resize only grows (asked {})", name,
                 api::format_size(v.capacity), api::format_size(*size));
        refuse_if_running(c, v.used_by, "resize volume '" + name + "'");
        return Response{202, c.tasks.submit("volume.resize", "volume/" + pool + "/" + name,
                                            [&c, pool, name, sz = *size](util::Progress& p) {
                                                return json(c.pools.resize_volume(pool, name, sz, p));
                                            })};
    });
    r.add("POST", "/v1/storage/pools/{pool}/volumes/{name}/clone", "pool:{pool}", [&c](const Request& req) {
        const auto pool = req.param("pool");
        const auto name = req.param("name");
        auto body = req.json();
        api::ObjectReader rd(body, "");
        auto target = rd.req<std::string>("target");
        rd.finish();
        api::validate_name(target, "volume name");
        auto v = c.pools.volume(pool, name);
        refuse_if_running(c, v.used_by, "clone volume '" + name + "'");
        return Response{202, c.tasks.submit("volume.clone", "volume/" + pool + "/" + target,
                                            [&c, pool, name, target](util::Progress& p) {
                                                return json(c.pools.clone_volume(pool, name, target, p));
                                            })};
    });
}

}  // namespace hv::daemon
