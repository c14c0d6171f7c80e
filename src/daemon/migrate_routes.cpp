#include "migrate_routes.hpp"

#include <thread>

#include "hv/api/json_reader.hpp"
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

void register_migrate_routes(Router& r, migrate::Migrator& m, TaskManager& tasks, const std::string& libvirt_uri,
                             int parallel) {
    // Host maintenance (runs on the host of ?host=).
    r.add("GET", "/v1/host/maintenance", "host", [&m](const Request&) { return Response{200, m.maintenance_status()}; });
    r.add("POST", "/v1/host/maintenance", "host", [&m, &tasks, parallel](const Request& req) {
        auto body = req.json();
        api::ObjectReader rd(body, "");
        const bool local = rd.opt<bool>("with_local_disks").value_or(false);
        rd.finish();
        m.precheck_maintenance();
        return Response{202, tasks.submit("host.maintenance.enter", "host", [&m, parallel, local](util::Progress& p) {
                            return m.enter_maintenance(parallel, local, p);
                        })};
    });
    r.add("DELETE", "/v1/host/maintenance", "host", [&m, &tasks](const Request& req) {
        bool back = req.flag("return");
        if (m.maintenance_status().at("maintenance").is_null())
            fail(Errc::conflict, "this host is not in maintenance");
        return Response{202, tasks.submit("host.maintenance.exit", "host", [&m, back](util::Progress& p) {
                            return m.exit_maintenance(back, p);
                        })};
    });
    // The destination's CPU pre-flight: can this host's hypervisor run {"cpu": CpuSpec}?
    r.add("POST", "/v1/host/cpu-check", "host", [&m](const Request& req) {
        auto body = req.json();
        api::ObjectReader rd(body, "");
        const auto* cpu = rd.raw("cpu");
        if (!cpu) fail(Errc::invalid_input, "field 'cpu' is required");
        auto spec = api::cpu_from_json(*cpu, "cpu");
        rd.finish();
        api::validate(spec, false);
        return Response{200, m.check_cpu_here(spec)};
    });
    // POST /v1/{vms,cts}/{name}/migrate: the pre-flight (the dry run's answer, or 409 with the
    // blockers), then the move as a task.
    for (const bool vm : {true, false}) {
        const std::string kind = vm ? "vm" : "ct", noun = vm ? "vm" : "container";
        r.add("POST", "/v1/" + kind + "s/{name}/migrate", "guest:{name}", [&m, &tasks, vm, kind, noun](const Request& req) {
            auto rq = api::migrate_request_from_json(req.json());
            auto name = req.param("name");
            auto report = vm ? m.check(name, rq) : m.check_ct(name, rq);
            if (rq.dry_run) return Response{200, api::to_json(report)};
            if (!report.ok)
                fail(Errc::conflict, "cannot migrate {} '{}' to {}: {}", noun, name, rq.to, fmt::join(report.blockers, "; "));
            return Response{202, tasks.submit(kind + ".migrate", kind + "/" + name, [&m, vm, name, rq](util::Progress& p) {
                                return api::to_json(vm ? m.migrate(name, rq, p) : m.migrate_ct(name, rq, p));
                            })};
        });
    }
    r.add_upgrade("GET", "/v1/host/libvirt", "host", "hv-libvirt", [socket = libvirt_socket_of(libvirt_uri)](const Request& req) -> Takeover {
        if (req.peer_subject.rfind("host:", 0) != 0)
            fail(Errc::forbidden, "the libvirt tunnel is for cluster members only (a migration between hosts)");
        return [socket](int fd, std::string pending) {
            std::thread([fd, pending = std::move(pending), socket] {
                util::guarded("libvirt relay", [&] { cluster::relay_to_unix(fd, pending, socket); });
            }).detach();
        };
    });
    // A container's root filesystem from the member it leaves (ct migrate): unpacked into
    // this host's pool, kept only when the sender commits.
    r.add_upgrade("GET", "/v1/host/ct-rootfs", "host", "hv-rootfs", [&m](const Request& req) -> Takeover {
        if (req.peer_subject.rfind("host:", 0) != 0)
            fail(Errc::forbidden, "root filesystem copies are for cluster members only (a container migration)");
        auto pool = req.query.count("pool") ? req.query.at("pool") : std::string();
        auto name = req.query.count("name") ? req.query.at("name") : std::string();
        if (pool.empty() || name.empty()) fail(Errc::invalid_input, "query parameters 'pool' and 'name' are required");
        m.check_rootfs_receive(pool, name);  // 4xx before the upgrade
        return [&m, pool, name](int fd, std::string pending) {
            std::thread([&m, fd, pending = std::move(pending), pool, name]() mutable {
                util::guarded("root filesystem receive", [&] { m.receive_rootfs(fd, std::move(pending), pool, name); });
            }).detach();
        };
    });
    // A stopped VM's disk from the member it leaves (vm migrate --offline --with-local-disks):
    // written into the volume that member made here for it.
    r.add_upgrade("GET", "/v1/host/volume-data", "host", "hv-volume", [&m](const Request& req) -> Takeover {
        if (req.peer_subject.rfind("host:", 0) != 0)
            fail(Errc::forbidden, "volume copies are for cluster members only (a migration)");
        auto pool = req.query.count("pool") ? req.query.at("pool") : std::string();
        auto name = req.query.count("name") ? req.query.at("name") : std::string();
        if (pool.empty() || name.empty()) fail(Errc::invalid_input, "query parameters 'pool' and 'name' are required");
        m.check_volume_receive(pool, name);  // 4xx before the upgrade
        return [&m, pool, name](int fd, std::string pending) {
            std::thread([&m, fd, pending = std::move(pending), pool, name]() mutable {
                util::guarded("volume receive", [&] { m.receive_volume(fd, std::move(pending), pool, name); });
            }).detach();
        };
    });
    // QEMU's data sockets of a migration that copies disks or may switch to post-copy: the
    // source's hvd joins its socket to the one of the same name that this host's QEMU listens on.
    r.add_upgrade("GET", "/v1/host/migration-stream", "host", "hv-migration", [&m](const Request& req) -> Takeover {
        if (req.peer_subject.rfind("host:", 0) != 0)
            fail(Errc::forbidden, "migration streams are for cluster members only (a migration between hosts)");
        auto it = req.query.find("socket");
        if (it == req.query.end()) fail(Errc::invalid_input, "query parameter 'socket' is required");
        auto path = m.stream_socket(it->second);  // 400 unless one of the names hv makes
        return [path](int fd, std::string pending) {
            std::thread([fd, pending = std::move(pending), path] {
                util::guarded("migration stream relay", [&] { cluster::relay_to_unix(fd, pending, path, 10000); });
            }).detach();
        };
    });
}

}  // namespace hv::daemon
