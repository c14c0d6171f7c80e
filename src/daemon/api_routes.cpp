#include "api_routes.hpp"

#include "ct_manager.hpp"

#include <unistd.h>

#include <fstream>
#include <thread>

#include "hv/api/host.hpp"
#include "hv/api/json_reader.hpp"
#include "iso_routes.hpp"
#include "net_routes.hpp"
#include "obs_routes.hpp"
#include "storage_routes.hpp"
#include "time_routes.hpp"
#include "vm_disk_routes.hpp"

namespace hv::daemon {
using nlohmann::json;
using api::VmState;

namespace {

std::uint64_t meminfo(const char* key) {
    std::ifstream in("/proc/meminfo");
    std::string k;
    std::uint64_t v = 0;
    std::string unit;
    while (in >> k >> v >> unit)
        if (k == key) return v * 1024;
    return 0;
}

std::string libvirt_version_string(unsigned long v) {
    return fmt::format("{}.{}.{}", v / 1000000, (v / 1000) % 1000, v % 1000);
}

api::HostInfo host_info(ApiContext& c) {
    api::HostInfo h;
    char hn[256] = {};
    ::gethostname(hn, sizeof hn - 1);
    h.hostname = hn;
    h.version = HV_VERSION;
    h.libvirt_uri = c.config.libvirt_uri;
    h.accel_config = c.config.accel;
    auto a = c.vms.accel();
    h.accel = a.accel;
    h.accel_reason = a.reason;
    h.cpus = static_cast<int>(std::thread::hardware_concurrency());
    h.memory_total = meminfo("MemTotal:");
    h.memory_available = meminfo("MemAvailable:");
    h.image_dir = c.pools.builtin_path();
    h.image_dir_free = c.pools.builtin_free();
    h.vms_total = static_cast<int>(c.vms.count(&h.vms_running));
    for (const auto& f : c.net.features().items) (f.supported ? h.net_features : h.net_features_missing).push_back(f.name);
    h.daemon_uptime =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - c.started).count();
    try {
        auto conn = c.vms.connection().get();
        h.libvirt_connected = true;
        unsigned long v = 0;
        if (virConnectGetLibVersion(conn.get(), &v) == 0) h.libvirt_version = libvirt_version_string(v);
        if (virConnectGetVersion(conn.get(), &v) == 0) h.qemu_version = libvirt_version_string(v);
    } catch (const Error&) {
        h.libvirt_connected = false;
    }
    return h;
}

Response accepted(const api::TaskInfo& t) { return Response{202, t}; }

}  // namespace

void register_routes(Router& r, ApiContext& c) {
    register_time_routes(r, c.config);
    register_storage_routes(r, c);
    register_vm_disk_routes(r, c);
    register_net_routes(r, c);
    register_iso_routes(r, c);
    register_obs_routes(r, c);
    r.add("GET", "/v1/host", [&c](const Request&) { return Response{200, host_info(c)}; });

    r.add("GET", "/v1/vms", [&c](const Request&) { return Response{200, c.vms.list()}; }, true);

    r.add("POST", "/v1/vms", [&c](const Request& req) {
        auto spec = api::vm_spec_from_json(req.json());
        api::validate(spec);
        // Fast answers before a task exists: libvirt down -> 503 (get checks it), name taken -> 409.
        try {
            c.vms.get(spec.name);
            fail(Errc::conflict, "vm '{}' already exists", spec.name);
        } catch (const Error& e) {
            if (e.code() != Errc::not_found) throw;
        }
        bool ct_named = false;
        try {
            ct_named = c.cts && c.cts->exists(spec.name);
        } catch (const Error& e) {  // the LXC driver down must not block VMs
            if (e.code() != Errc::unavailable) throw;
        }
        if (ct_named)
            fail(Errc::conflict, "a container named '{}' exists: containers and VMs share one name space", spec.name);
        auto name = spec.name;
        return accepted(c.tasks.submit("vm.create", "vm/" + name, [&c, spec = std::move(spec)](util::Progress& p) {
            return json(c.vms.create(spec, p));
        }));
    });

    r.add("GET", "/v1/vms/{name}", [&c](const Request& req) { return Response{200, c.vms.get(req.param("name"))}; }, true);

    r.add("PATCH", "/v1/vms/{name}", [&c](const Request& req) {
        auto patch = api::vm_patch_from_json(req.json());
        return Response{200, c.vms.update(req.param("name"), patch)};
    });

    r.add("DELETE", "/v1/vms/{name}", [&c](const Request& req) {
        const auto& name = req.param("name");
        bool purge = req.flag("purge");
        c.vms.expect_state(name, {VmState::stopped, VmState::crashed}, "delete");
        return accepted(c.tasks.submit("vm.delete", "vm/" + name, [&c, name, purge](util::Progress& p) {
            c.vms.remove(name, purge, p);
            return json{{"name", name}, {"purged", purge}};
        }));
    });

    for (const char* action : {"start", "stop", "reboot", "reset", "suspend", "resume"}) {
        r.add("POST", std::string("/v1/vms/{name}/") + action, [&c, act = std::string(action)](const Request& req) {
            if (!req.body.empty()) {
                auto body = req.json();
                api::ObjectReader rd(body, "");
                rd.finish();
            }
            return Response{200, c.vms.action(req.param("name"), act)};
        });
    }

    r.add("POST", "/v1/vms/{name}/shutdown", [&c](const Request& req) {
        const auto& name = req.param("name");
        auto body = req.json();
        api::ObjectReader rd(body, "");
        auto timeout = rd.opt<std::int64_t>("timeout").value_or(60);
        bool force = rd.opt<bool>("force").value_or(false);
        rd.finish();
        if (timeout < 0 || timeout > 86400) fail(Errc::invalid_input, "timeout must be between 0 and 86400 seconds");
        c.vms.expect_state(name, {VmState::running, VmState::shutting_down}, "shut down");
        return accepted(c.tasks.submit("vm.shutdown", "vm/" + name, [&c, name, timeout, force](util::Progress& p) {
            bool forced = false;
            auto info = c.vms.shutdown(name, static_cast<int>(timeout), force, p, &forced);
            json j = info;
            return json{{"vm", j}, {"forced", forced}};
        }));
    });

    r.add("GET", "/v1/tasks", [&c](const Request&) { return Response{200, c.tasks.list()}; }, true);
    r.add("GET", "/v1/tasks/{id}", [&c](const Request& req) { return Response{200, c.tasks.get(req.param("id"))}; }, true);
    r.add("POST", "/v1/tasks/{id}/cancel",
          [&c](const Request& req) { return Response{200, c.tasks.cancel(req.param("id"))}; }, true);
}

}  // namespace hv::daemon
