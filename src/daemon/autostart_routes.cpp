#include "autostart_routes.hpp"

#include <fmt/format.h>

#include "hv/api/json_reader.hpp"

namespace hv::daemon {

void register_autostart_routes(Router& r, guest::AutostartService& s) {
    for (auto k : {api::GuestKind::vm, api::GuestKind::ct}) {
        api::GuestKind kind = k;
        std::string path = fmt::format("/v1/{}s/{{name}}/autostart", api::kind_name(kind));
        r.add("GET", path, "guest:{name}", [&s, kind](const Request& q) { return Response{200, s.get(kind, q.param("name"))}; });
        r.add("PUT", path, "guest:{name}", [&s, kind](const Request& q) { return Response{200, s.set(kind, q.param("name"), q.json())}; });
    }
    r.add("GET", "/v1/autostart/host", "host", [&s](const Request&) { return Response{200, s.host()}; });
    r.add("PUT", "/v1/autostart/host", "host", [&s](const Request& q) { return Response{200, s.set_host(q.json())}; });
    r.add("GET", "/v1/autostart/plan", "host", [&s](const Request&) { return Response{200, s.plan()}; });
    r.add("GET", "/v1/autostart/status", "host", [&s](const Request&) { return Response{200, s.status()}; }, true);
    r.add("POST", "/v1/autostart/run", "host", [&s](const Request& q) {
        auto body = q.json();  // the reader keeps a reference
        api::ObjectReader rd(body, "");
        bool delay = rd.opt<bool>("boot_delay").value_or(false);
        rd.finish();
        return Response{202, s.run(delay)};
    });
    r.add("POST", "/v1/autostart/stop-all", "host", [&s](const Request& q) {
        auto body = q.json();  // the reader keeps a reference
        api::ObjectReader rd(body, "");
        rd.finish();
        return Response{202, s.stop_all()};
    });
}

}  // namespace hv::daemon
