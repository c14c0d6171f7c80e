#include "guest_routes.hpp"

#include <fmt/format.h>

#include "hv/api/json_reader.hpp"

namespace hv::daemon {
using nlohmann::json;
using guest::GuestDriver;
using guest::GuestState;

void expect_no_options(const Request& req) {
    if (req.body.empty()) return;
    auto body = req.json();  // the reader keeps a reference
    api::ObjectReader rd(body, "");
    rd.finish();
}

void register_guest_routes(Router& r, guest::Guests& guests, TaskManager& tasks) {
    for (GuestDriver* dp : guests.drivers()) {
        GuestDriver& d = *dp;
        const std::string kind = api::kind_name(d.kind());
        const std::string all = "/v1/" + kind + "s", one = all + "/{name}";
        // VMs answer from hvd's state cache (fast: on the I/O thread); containers ask libvirt.
        const bool fast = d.kind() == api::GuestKind::vm;

        r.add("GET", all, "host", [&d, &guests](const Request&) { return Response{200, guests.list_json(d)}; }, fast);
        r.add("GET", one, "guest:{name}", [&d](const Request& req) { return Response{200, d.info(req.param("name"))}; },
              fast);
        r.add("PATCH", one, "guest:{name}", [&d, &guests](const Request& req) {
            auto patch = api::vm_patch_from_json(req.json());
            guests.expect_not_moving(d.kind(), req.param("name"));
            return Response{200, d.update(req.param("name"), patch)};
        });
        r.add("DELETE", one, "guest:{name}", [&d, &guests, &tasks, kind](const Request& req) {
            const auto& name = req.param("name");
            bool purge = req.flag("purge");
            guests.expect_state(d.kind(), name, {GuestState::stopped, GuestState::crashed}, "delete");
            guests.expect_not_moving(d.kind(), name);
            return Response{202, tasks.submit(kind + ".delete", kind + "/" + name, [&d, &guests, name, purge](util::Progress& p) {
                                auto out = d.remove(name, purge, p);
                                guests.requested(d.kind(), name, "deleted");  // HA lets it go
                                return out;
                            })};
        });
        for (const auto& action : d.actions()) {
            r.add("POST", one + "/" + action, "guest:{name}", [&d, &guests, action](const Request& req) {
                expect_no_options(req);
                guests.requested(d.kind(), req.param("name"), action);
                return Response{200, d.action(req.param("name"), action)};
            });
        }
        r.add("POST", one + "/shutdown", "guest:{name}", [&d, &guests, &tasks, kind](const Request& req) {
            const auto& name = req.param("name");
            auto body = req.json();
            api::ObjectReader rd(body, "");
            auto timeout = rd.opt<std::int64_t>("timeout").value_or(60);
            bool force = rd.opt<bool>("force").value_or(false);
            rd.finish();
            if (timeout < 0 || timeout > 86400) fail(Errc::invalid_input, "timeout must be between 0 and 86400 seconds");
            guests.expect_state(d.kind(), name, {GuestState::running, GuestState::shutting_down}, "shut down");
            guests.requested(d.kind(), name, "shutdown");
            return Response{202, tasks.submit(kind + ".shutdown", kind + "/" + name,
                                              [&d, kind, name, timeout, force](util::Progress& p) {
                                                  bool forced = false;
                                                  auto info = guest::shutdown(d, name, static_cast<int>(timeout), force,
                                                                              p, &forced);
                                                  return json{{kind, info}, {"forced", forced}};
                                              })};
        });
    }
}

}  // namespace hv::daemon
