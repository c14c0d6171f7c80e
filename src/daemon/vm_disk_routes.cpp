#include "vm_disk_routes.hpp"

#include "hv/api/json_reader.hpp"

namespace hv::daemon {
using nlohmann::json;

void register_vm_disk_routes(Router& r, ApiContext& c) {
    // Body: a DiskSpec. A new volume may take long (eager-zeroed), so this is a task.
    r.add("POST", "/v1/vms/{name}/disks", "guest:{name}", [&c](const Request& req) {
        const auto& name = req.param("name");
        auto disk = api::disk_from_json(req.json(), "disk");
        // Fast answers before a task exists: unknown VM -> 404, bad spec -> 400, hot-plug of a
        // bus that cannot -> 409 (the task checks everything again under the VM's lock).
        auto info = c.vms.get(name);
        if (!info.managed) fail(Errc::conflict, "vm '{}' was not created by hv; change its devices with virsh", name);
        auto check = info.spec;
        check.disks.push_back(disk);
        if (!disk.name.empty())
            for (const auto& d : info.spec.disks)
                if (d.name == disk.name) fail(Errc::conflict, "vm '{}' already has a disk named '{}'", name, disk.name);
        api::validate(check);
        virt::check_disk(disk, info.spec.machine, "disk");
        const bool running = info.state != api::VmState::stopped && info.state != api::VmState::crashed;
        if (running && !virt::hotpluggable_bus(disk.bus))
            fail(Errc::conflict, "{} disks cannot be hot-plugged (only virtio and scsi can); stop vm '{}' to attach it",
                 disk.bus, name);
        return Response{202, c.tasks.submit("vm.disk.attach", "vm/" + name, [&c, name, disk](util::Progress& p) {
                            return json(c.vms.attach_disk(name, disk, p));
                        })};
    });

    r.add("DELETE", "/v1/vms/{name}/disks/{disk}", "guest:{name}", [&c](const Request& req) {
        return Response{200, c.vms.detach_disk(req.param("name"), req.param("disk"), req.flag("purge"))};
    });

    // NICs: body a NicSpec (add) or a NicPatch (set). Quick libvirt calls: no task.
    r.add("POST", "/v1/vms/{name}/nics", "guest:{name}", [&c](const Request& req) {
        return Response{200, c.vms.attach_nic(req.param("name"), api::nic_from_json(req.json(), "nic"))};
    });
    r.add("PATCH", "/v1/vms/{name}/nics/{nic}", "guest:{name}", [&c](const Request& req) {
        return Response{200, c.vms.update_nic(req.param("name"), req.param("nic"), api::nic_patch_from_json(req.json()))};
    });
    r.add("DELETE", "/v1/vms/{name}/nics/{nic}", "guest:{name}", [&c](const Request& req) {
        return Response{200, c.vms.detach_nic(req.param("name"), req.param("nic"))};
    });

    // {"iso": "local:iso/x.iso"} inserts, {"iso": ""} ejects.
    r.add("PUT", "/v1/vms/{name}/cdrom", "guest:{name}", [&c](const Request& req) {
        auto body = req.json();
        api::ObjectReader rd(body, "");
        auto iso = rd.req<std::string>("iso");
        rd.finish();
        return Response{200, c.vms.set_cdrom(req.param("name"), iso)};
    });
}

}  // namespace hv::daemon
