#include "ct_routes.hpp"

#include "iso_routes.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>

#include "../storage/ct_templates.hpp"
#include "hv/api/ct.hpp"
#include "hv/api/json_reader.hpp"

namespace hv::daemon {
using nlohmann::json;

void register_ct_routes(Router& r, ApiContext& c, virt::CtManager& cts, storage::TemplateStore& templates) {
    r.add("POST", "/v1/cts", "host", [&c, &cts, &templates](const Request& req) {
        auto spec = api::ct_spec_from_json(req.json());
        api::validate(spec);
        // The name is held from here to the end of the task, across kinds (a VM or another
        // container of that name: 409). Unknown template or pool -> 4xx; libvirt down -> 503.
        auto claim = c.guests.claim(api::GuestKind::ct, spec.name);
        templates.resolve(spec.tmpl, spec.rootfs.pool);
        auto images = c.pools.content_dir(spec.rootfs.pool, "images");
        if (spec.unprivileged) storage::require_searchable(images);
        auto name = spec.name;
        return Response{202, c.tasks.submit("ct.create", "ct/" + name,
                                            [&cts, claim, spec = std::move(spec)](util::Progress& p) mutable {
                                                auto held = std::move(claim);  // released as the work ends
                                                return json(cts.create(spec, p));
                                            })};
    });

    // Runs a command synchronously; it must end within the request timeout.
    // Interactive console: HTTP upgrade to a raw byte stream (hvctl ct console).
    r.add_upgrade("GET", "/v1/cts/{name}/console", "guest:{name}", "hv-console", [&cts](const Request& req) -> Takeover {
        auto console = cts.open_console(req.param("name"), req.flag("force"));
        return [console](int fd, std::string pending) { console->attach(fd, std::move(pending)); };
    });

    r.add("POST", "/v1/cts/{name}/exec", "guest:{name}", [&c, &cts](const Request& req) {
        auto body = req.json();
        api::ObjectReader rd(body, "");
        auto command = rd.req<std::vector<std::string>>("command");
        // The answer is due at the request's deadline (daemon.request_timeout after it came).
        auto left = std::chrono::ceil<std::chrono::seconds>(req.deadline - std::chrono::steady_clock::now()).count();
        const int max_timeout = static_cast<int>(std::clamp<std::int64_t>(left - 1, 1, c.config.request_timeout));
        auto timeout = rd.opt<std::int64_t>("timeout").value_or(std::min(20, max_timeout));
        rd.finish();
        if (timeout < 1 || timeout > max_timeout)
            fail(Errc::invalid_input, "timeout must be between 1 and {} seconds (daemon.request_timeout - 1)", max_timeout);
        return Response{200, cts.exec(req.param("name"), command, static_cast<int>(timeout))};
    });

    // Templates: the vztmpl content of the pools, through the ISO library's store and routes.
    register_file_store_routes(r, c, templates.files(), "templates");
    r.add("POST", "/v1/storage/pools/{pool}/templates/build", "pool:{pool}", [&c, &templates](const Request& req) {
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
