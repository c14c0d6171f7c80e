#include "migrate_routes.hpp"

#include <thread>

#include "hv/api/migrate.hpp"
#include "hv/error.hpp"
#include "hv/util/guard.hpp"
#include "libvirt_tunnel.hpp"

namespace hv::daemon {
using nlohmann::json;

std::string libvirt_socket_of(const std::string& uri) {
    auto q = uri.find("socket=");
    if (q != std::string::npos && (uri[q - 1] == '?' || uri[q - 1] == '&')) {
        auto end = uri.find('&', q);
        return uri.substr(q + 7, end == std::string::npos ? std::string::npos : end - q - 7);
    }
    return "/var/run/libvirt/libvirt-sock";
}

void register_migrate_routes(Router& r, migrate::Migrator& m, TaskManager& tasks, const std::string& libvirt_uri) {
    r.add("POST", "/v1/vms/{name}/migrate", "guest:{name}", [&m, &tasks](const Request& req) {
        auto rq = api::migrate_request_from_json(req.json());
        auto name = req.param("name");
        auto report = m.check(name, rq);
        if (rq.dry_run) return Response{200, api::to_json(report)};
        if (!report.ok)
            fail(Errc::conflict, "cannot migrate vm '{}' to {}: {}", name, rq.to, fmt::join(report.blockers, "; "));
        return Response{202, tasks.submit("vm.migrate", "vm/" + name, [&m, name, rq](util::Progress& p) {
                            return api::to_json(m.migrate(name, rq, p));
                        })};
    });
    r.add_upgrade("GET", "/v1/host/libvirt", "host", "hv-libvirt", [socket = libvirt_socket_of(libvirt_uri)](const Request& req) -> Takeover {
        if (req.peer_subject.rfind("host:", 0) != 0)
            fail(Errc::forbidden, "the libvirt tunnel is for cluster members only (a migration between hosts)");
        return [socket](int fd, std::string pending) {
            std::thread([fd, pending = std::move(pending), socket] {
                util::guarded("libvirt relay", [&] { cluster::relay_to_unix(fd, pending, socket); });
            }).detach();
        };
    });
}

}  // namespace hv::daemon
