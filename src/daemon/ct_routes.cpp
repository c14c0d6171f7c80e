#include "ct_routes.hpp"

#include "iso_routes.hpp"

#include <sys/stat.h>

#include "../storage/ct_templates.hpp"
#include "hv/api/ct.hpp"
#include "hv/api/json_reader.hpp"

namespace hv::daemon {
using nlohmann::json;
using api::VmState;

void register_ct_routes(Router& r, ApiContext& c, virt::CtManager& cts, storage::TemplateStore& templates) {
    r.add("GET", "/v1/cts", [&cts](const Request&) { return Response{200, cts.list()}; });

    r.add("POST", "/v1/cts", [&c, &cts, &templates](const Request& req) {
        auto spec = api::ct_spec_from_json(req.json());
        api::validate(spec);
        // Fast answers before a task exists: name taken (by a container or a VM) -> 409,
        // unknown template or pool -> 4xx; libvirt down -> 503.
        if (cts.exists(spec.name)) fail(Errc::conflict, "container '{}' already exists", spec.name);
        try {
            c.vms.get(spec.name);
            fail(Errc::conflict, "a vm named '{}' exists: containers and VMs share one name space", spec.name);
        } catch (const Error& e) {
            if (e.code() != Errc::not_found) throw;
        }
        templates.resolve(spec.tmpl, spec.rootfs.pool);
        auto images = c.pools.content_dir(spec.rootfs.pool, "images");
        if (spec.unprivileged) storage::require_searchable(images);
        auto name = spec.name;
        return Response{202, c.tasks.submit("ct.create", "ct/" + name, [&cts, spec = std::move(spec)](util::Progress& p) {
                            return json(cts.create(spec, p));
                        })};
    });

    r.add("GET", "/v1/cts/{name}", [&cts](const Request& req) { return Response{200, cts.get(req.param("name"))}; });

    r.add("PATCH", "/v1/cts/{name}", [&cts](const Request& req) {
        auto patch = api::ct_patch_from_json(req.json());
        return Response{200, cts.update(req.param("name"), patch)};
    });

    r.add("DELETE", "/v1/cts/{name}", [&c, &cts](const Request& req) {
        const auto& name = req.param("name");
        cts.expect_state(name, {VmState::stopped, VmState::crashed}, "delete");
        return Response{202, c.tasks.submit("ct.delete", "ct/" + name, [&cts, name](util::Progress& p) {
                            cts.remove(name, p);
                            return json{{"name", name}, {"deleted", true}};
                        })};
    });

    for (const char* action : {"start", "stop", "reboot"}) {
        r.add("POST", std::string("/v1/cts/{name}/") + action, [&cts, act = std::string(action)](const Request& req) {
            if (!req.body.empty()) {
                auto body = req.json();
                api::ObjectReader rd(body, "");
                rd.finish();
            }
            return Response{200, cts.action(req.param("name"), act)};
        });
    }

    r.add("POST", "/v1/cts/{name}/shutdown", [&c, &cts](const Request& req) {
        const auto& name = req.param("name");
        auto body = req.json();
        api::ObjectReader rd(body, "");
        auto timeout = rd.opt<std::int64_t>("timeout").value_or(60);
        bool force = rd.opt<bool>("force").value_or(false);
        rd.finish();
        if (timeout < 0 || timeout > 86400) fail(Errc::invalid_input, "timeout must be between 0 and 86400 seconds");
        cts.expect_state(name, {VmState::running, VmState::shutting_down}, "shut down");
        return Response{202, c.tasks.submit("ct.shutdown", "ct/" + name, [&cts, name, timeout, force](util::Progress& p) {
                            bool forced = false;
                            auto info = cts.shutdown(name, static_cast<int>(timeout), force, p, &forced);
                            return json{{"ct", json(info)}, {"forced", forced}};
                        })};
    });

    // Runs a command synchronously; it must end within the request timeout.
    // Interactive console: HTTP upgrade to a raw byte stream (hvctl ct console).
    r.add_upgrade("GET", "/v1/cts/{name}/console", "hv-console", [&cts](const Request& req) -> Takeover {
        auto console = cts.open_console(req.param("name"), req.flag("force"));
        return [console](int fd, std::string pending) { console->attach(fd, std::move(pending)); };
    });

    r.add("POST", "/v1/cts/{name}/exec", [&c, &cts](const Request& req) {
        auto body = req.json();
        api::ObjectReader rd(body, "");
        auto command = rd.req<std::vector<std::string>>("command");
        const int max_timeout = std::max(1, c.config.request_timeout - 1);
        auto timeout = rd.opt<std::int64_t>("timeout").value_or(std::min(20, max_timeout));
        rd.finish();
        if (timeout < 1 || timeout > max_timeout)
            fail(Errc::invalid_input, "timeout must be between 1 and {} seconds (daemon.request_timeout - 1)", max_timeout);
        return Response{200, cts.exec(req.param("name"), command, static_cast<int>(timeout))};
    });

    // Templates: the vztmpl content of the pools, through the ISO library's store and routes.
    register_file_store_routes(r, c, templates.files(), "templates");
    r.add("POST", "/v1/storage/pools/{pool}/templates/build", [&c, &templates](const Request& req) {
        auto body = req.json();
        api::ObjectReader rd(body, "");
        auto kind = rd.req<std::string>("kind");
        bool replace = rd.opt<bool>("replace").value_or(false);
        rd.finish();
        if (kind != "busybox" && kind != "debian-12")
            fail(Errc::invalid_input, "kind '{}' is not one of busybox, debian-12", kind);
        auto pool = req.param("pool");
        c.pools.content_dir(pool, "vztmpl");  // 404 / unsupported before the task
        std::string mirror = c.config.ct_debian_mirror;
        return Response{202, c.tasks.submit("template.build", "pool/" + pool,
                                            [&templates, pool, kind, replace, mirror](util::Progress& p) {
                                                return json(templates.build(pool, kind, replace, mirror, p));
                                            })};
    });
}

}  // namespace hv::daemon
