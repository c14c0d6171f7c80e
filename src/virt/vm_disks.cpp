// Devices of existing VMs: disks and CD/DVD (attach cold / hot-plug, detach, insert/eject) and
// NICs (add / set / remove, with their VLANs).
//
// Like `vm set`, these change only the device concerned through libvirt's own calls
// (virDomainAttachDeviceFlags / DetachDeviceFlags / UpdateDeviceFlags) and then rewrite hv's
// metadata spec; the domain XML is never regenerated. Stopped VM: VIR_DOMAIN_AFFECT_CONFIG.
// Running (or paused) VM: AFFECT_LIVE|AFFECT_CONFIG, for buses QEMU can hot-plug (virtio,
// scsi); sata and ide answer 409. A CD/DVD change is a media change and works while running.
#include <sys/stat.h>

#include <set>
#include <string_view>

#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include "hv/api/size.hpp"
#include "hv/error.hpp"
#include "hv/util/reverter.hpp"
#include "vm_manager.hpp"

namespace hv::virt {
using api::VmInfo;

namespace {

// flags = VIR_DOMAIN_XML_INACTIVE for the persistent definition, 0 for the live one.
DeviceFacts devices_of(virDomainPtr d, unsigned flags) {
    char* xml = virDomainGetXMLDesc(d, flags);
    if (!xml) throw_libvirt_error("cannot read the domain XML");
    std::string text(xml);
    free(xml);
    return parse_devices(text);
}

std::set<std::string> targets_of(const DeviceFacts& f) {
    std::set<std::string> out;
    for (const auto& d : f.disks) out.insert(d.target);
    return out;
}

// The <disk device='disk'> of `disk`'s volume: a file disk by its path (a running transient
// disk shows its overlay as source and the volume as backing file), a network disk by
// protocol and name.
const XmlDisk* find_disk(const DeviceFacts& f, const api::DiskSpec& disk) {
    const auto src = api::source_of(disk);
    for (const auto& d : f.disks) {
        if (d.device != "disk") continue;
        if (!src.is_file()) {
            if (d.type == "network" && d.protocol == src.protocol && d.name == src.name) return &d;
        } else if (d.type != "network" && (d.source == src.path || (d.transient && d.backing == src.path))) {
            return &d;
        }
    }
    return nullptr;
}
const XmlDisk* find_cdrom(const DeviceFacts& f) {
    for (const auto& d : f.disks)
        if (d.device == "cdrom") return &d;
    return nullptr;
}

void require_regular_file(const std::string& path, const char* what) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        fail(Errc::invalid_input, "{} '{}' does not exist or is not a regular file", what, path);
}

void check_managed(const VmInfo& info) {
    if (!info.managed) fail(Errc::conflict, "vm '{}' was not created by hv; change its devices with virsh", info.spec.name);
}

std::string hotplug_refusal(const std::string& vm, const std::string& bus, const char* what) {
    return fmt::format("{} disks cannot be hot-plugged (only virtio and scsi can); stop vm '{}' to {} it", bus, vm, what);
}

constexpr const char* kVirtioScsi = "<controller type='scsi' model='virtio-scsi'/>";

}  // namespace

VmManager::DeviceEdit VmManager::begin_edit(const std::string& vm) {
    DeviceEdit e{op_lock(vm), conn_->domain(vm)};
    auto info = read_domain(e.dom.get(), nullptr);
    check_managed(info);
    e.spec = std::move(info.spec);
    e.active = domain_active(e.dom.get());
    return e;
}

VmInfo VmManager::attach_disk(const std::string& vm, api::DiskSpec disk, util::Progress& progress) {
    require_ready();
    auto edit = begin_edit(vm);
    refuse_template(edit.spec, "get another disk");
    auto& dom = edit.dom;
    const bool active = edit.active;

    auto spec = std::move(edit.spec);
    if (disk.name.empty()) {
        auto taken = [&](const std::string& n) {
            for (const auto& o : spec.disks)
                if (o.name == n) return true;
            return false;
        };
        int k = static_cast<int>(spec.disks.size());
        for (int i = 0; i <= k; ++i)
            if (!taken("disk" + std::to_string(i))) {
                k = i;
                break;
            }
        disk.name = "disk" + std::to_string(k);
    } else {
        for (const auto& o : spec.disks)
            if (o.name == disk.name) fail(Errc::conflict, "vm '{}' already has a disk named '{}'", vm, disk.name);
    }
    disk.owned = false;
    const std::string what = fmt::format("disk '{}'", disk.name);
    {
        auto check = spec;
        check.disks.push_back(disk);
        api::validate(check);
    }
    check_disk(disk, spec.machine, what);
    if (active && !hotpluggable_bus(disk.bus)) fail(Errc::conflict, "{}", hotplug_refusal(vm, disk.bus, "attach"));

    // The volume: an existing one (volume= or a pool path=) or a new "<vm>-<disk>" one, the
    // same rules as a disk of `vm create`.
    bool create = false;
    if (!disk.path.empty()) {
        auto ref = pools_.locate(disk.path);
        if (ref.pool.empty() || ref.content != "images")
            fail(Errc::invalid_input,
                 "{}: {} is not a volume of any storage pool; add a pool for its directory (hvctl storage pool add) "
                 "or give volume=",
                 what, disk.path);
        disk.pool = ref.pool;
        disk.volume = ref.name;
    }
    if (!disk.volume.empty()) {
        auto v = pools_.volume(disk.pool, disk.volume);
        if (!v.used_by.empty())
            fail(Errc::conflict, "{}: volume '{}' is already used by {}", what, disk.volume, fmt::join(v.used_by, ", "));
        api::set_source(disk, pools_.disk_source(disk.pool, disk.volume));
        disk.format = v.format;
        disk.provision = v.provision;
        disk.size = v.capacity;
        // Only a file source is a file to check; a network one (rbd) is reached by QEMU itself.
        if (!disk.source) require_regular_file(disk.path, "disk image");
    } else {
        create = true;
        try {
            if (disk.format.empty()) disk.format = pools_.default_format(disk.pool);
            api::VolumeSpec vs{vm + "-" + disk.name, disk.pool, disk.size, disk.format, disk.provision};
            pools_.precheck_create(vs);
        } catch (const Error& e) {
            fail(e.code(), "{}: {}", what, e.what());
        }
    }

    auto persistent = devices_of(dom.get(), VIR_DOMAIN_XML_INACTIVE);
    std::optional<DeviceFacts> live;
    auto used = targets_of(persistent);
    if (active) {
        live = devices_of(dom.get(), 0);
        for (const auto& t : targets_of(*live)) used.insert(t);
    }
    const std::string target = free_target(disk.bus, used);

    util::Reverter revert;
    if (create) {
        progress.step(0, fmt::format("creating {} ({})", disk.name, api::format_size(disk.size)));
        api::VolumeSpec vs{vm + "-" + disk.name, disk.pool, disk.size, disk.format, disk.provision};
        auto created = pools_.create_volume(vs, progress);
        for (const auto& w : created.warnings) spdlog::warn("vm {}: {}", vm, w);
        disk.volume = created.volume.name;
        disk.owned = true;
        revert.add([this, pool = disk.pool, vol = disk.volume] { pools_.delete_volume(pool, vol); });
        api::set_source(disk, pools_.disk_source(disk.pool, disk.volume));
    }
    // Again, now that the pool gave the source: some modes need a file (check_disk).
    check_disk(disk, spec.machine, what);
    if (progress.cancelled()) fail(Errc::cancelled, "attach of {} to vm '{}' was cancelled", what, vm);
    progress.step(90, fmt::format("attaching {} as {} ({})", disk.name, target, disk.bus));

    const unsigned cfg = VIR_DOMAIN_AFFECT_CONFIG;
    const unsigned both = cfg | VIR_DOMAIN_AFFECT_LIVE;
    auto dom_ptr = dom.get();
    // One virtio-scsi controller, added when the first scsi disk arrives (in each of the
    // definitions that lacks one; libvirt would otherwise pick its default model).
    if (disk.bus == "scsi") {
        unsigned flags = 0;
        if (!persistent.scsi_controller) flags |= cfg;
        if (live && !live->scsi_controller) flags |= VIR_DOMAIN_AFFECT_LIVE;
        if (flags) {
            if (virDomainAttachDeviceFlags(dom_ptr, kVirtioScsi, flags) < 0)
                throw_libvirt_error(fmt::format("cannot add a virtio-scsi controller to vm '{}'", vm));
            if (flags & cfg)
                revert.add([dom_ptr] { virDomainDetachDeviceFlags(dom_ptr, kVirtioScsi, VIR_DOMAIN_AFFECT_CONFIG); });
        }
    }
    const auto dev_xml = disk_device_xml(disk, target);
    const unsigned flags = active ? both : cfg;
    if (virDomainAttachDeviceFlags(dom_ptr, dev_xml.c_str(), flags) < 0) {
        // q35: every virtio disk is a PCIe device on its own root port, and libvirt leaves one
        // free port per boot for hot-plug.
        virErrorPtr e = virGetLastError();
        if (active && e && e->message && std::string_view(e->message).find("No more available PCI slots") != std::string_view::npos)
            fail(Errc::conflict,
                 "cannot hot-plug {} into vm '{}': no free PCI(e) slot is left for hot-plug ({}); attach it while the vm "
                 "is stopped, or use bus=scsi on a vm that already has its virtio-scsi controller",
                 what, vm, e->message);
        throw_libvirt_error(fmt::format("cannot attach {} to vm '{}'", what, vm));
    }
    revert.add([dom_ptr, dev_xml, flags] { virDomainDetachDeviceFlags(dom_ptr, dev_xml.c_str(), flags); });

    spec.disks.push_back(disk);
    write_spec(dom_ptr, spec, flags);
    revert.release();
    refresh(vm);
    progress.step(100, fmt::format("attached {} as {}", disk.name, target));
    return get(vm);
}

VmInfo VmManager::detach_disk(const std::string& vm, const std::string& disk_name, bool purge) {
    require_ready();
    std::optional<api::DiskSpec> removed;
    bool still_live = false;
    {
        auto edit = begin_edit(vm);
        refuse_template(edit.spec, "lose a disk");
        auto& dom = edit.dom;
        const bool active = edit.active;
        auto spec = std::move(edit.spec);
        auto it = std::find_if(spec.disks.begin(), spec.disks.end(), [&](const api::DiskSpec& d) { return d.name == disk_name; });
        if (it == spec.disks.end()) fail(Errc::not_found, "vm '{}' has no disk named '{}'", vm, disk_name);
        if (active && !hotpluggable_bus(it->bus)) fail(Errc::conflict, "{}", hotplug_refusal(vm, it->bus, "detach"));

        // libvirt finds the disk to detach by its target; the definitions may name it apart.
        auto detach = [&](const XmlDisk& x, unsigned flags) {
            auto src = x.type == "network" ? api::DiskSource::network(x.protocol, x.name) : api::DiskSource::file(x.source);
            auto xml = disk_detach_xml(src, x.target, x.bus);
            if (virDomainDetachDeviceFlags(dom.get(), xml.c_str(), flags) < 0)
                throw_libvirt_error(fmt::format("cannot detach disk '{}' from vm '{}'", disk_name, vm));
        };
        if (active) {
            auto live = devices_of(dom.get(), 0);
            if (const auto* x = find_disk(live, *it)) {
                detach(*x, VIR_DOMAIN_AFFECT_LIVE);
                // libvirt waits a few seconds for the guest to release the device, then returns
                // with the request pending: the disk leaves when the guest acknowledges it.
                still_live = find_disk(devices_of(dom.get(), 0), *it) != nullptr;
            }
        }
        auto persistent = devices_of(dom.get(), VIR_DOMAIN_XML_INACTIVE);
        if (const auto* x = find_disk(persistent, *it)) detach(*x, VIR_DOMAIN_AFFECT_CONFIG);

        removed = *it;
        spec.disks.erase(it);
        write_spec(dom.get(), spec, static_cast<unsigned>(VIR_DOMAIN_AFFECT_CONFIG) | (active ? static_cast<unsigned>(VIR_DOMAIN_AFFECT_LIVE) : 0u));
        refresh(vm);
    }
    if (purge && removed->owned) {
        if (still_live)
            fail(Errc::conflict,
                 "disk '{}' was removed from vm '{}', but the guest has not released it yet, so its volume '{}' was "
                 "kept; delete it once the guest let go of it (hvctl storage volume delete {} {})",
                 disk_name, vm, removed->volume, removed->pool, removed->volume);
        auto ref = pools_.locate(removed->path);
        if (!ref.pool.empty() && ref.content == "images") {
            try {
                pools_.delete_volume(ref.pool, ref.name);
            } catch (const Error& e) {
                fail(e.code(), "disk '{}' was removed from vm '{}' but its volume could not be deleted: {}", disk_name, vm,
                     e.what());
            }
        }
    }
    return get(vm);
}

VmInfo VmManager::set_cdrom(const std::string& vm, const std::string& iso) {
    require_ready();
    auto edit = begin_edit(vm);
    auto& dom = edit.dom;
    const bool active = edit.active;

    std::string path;
    if (!iso.empty()) {
        if (iso.find(':') != std::string::npos && iso[0] != '/') {
            path = pools_.resolve(api::parse_volume_ref(iso, "iso"));
        } else {
            if (iso[0] != '/' || iso.find("..") != std::string::npos)
                fail(Errc::invalid_input, "iso '{}' is neither POOL:iso/NAME nor an absolute path", iso);
            auto ref = pools_.locate(iso);
            if (ref.pool.empty())
                fail(Errc::invalid_input,
                     "iso {} is not an ISO of any storage pool (upload it with hvctl storage iso upload, or give "
                     "POOL:iso/NAME)",
                     iso);
            path = iso;
        }
        require_regular_file(path, "cdrom image");
    }

    auto spec = std::move(edit.spec);
    auto persistent = devices_of(dom.get(), VIR_DOMAIN_XML_INACTIVE);
    const XmlDisk* pdrive = find_cdrom(persistent);
    std::optional<DeviceFacts> live;
    const XmlDisk* ldrive = nullptr;
    if (active) {
        live = devices_of(dom.get(), 0);
        ldrive = find_cdrom(*live);
    }
    // VIR_DOMAIN_DEVICE_MODIFY_FORCE: eject even when the guest locked the tray.
    const unsigned force = VIR_DOMAIN_DEVICE_MODIFY_FORCE;
    auto change = [&](const XmlDisk& drive, unsigned flags) {
        auto xml = cdrom_device_xml(path, drive.bus, drive.target);
        if (virDomainUpdateDeviceFlags(dom.get(), xml.c_str(), flags | force) < 0)
            throw_libvirt_error(fmt::format("cannot {} the CD/DVD of vm '{}'", path.empty() ? "eject" : "change", vm));
    };
    if (active && !ldrive && !path.empty())
        fail(Errc::conflict, "vm '{}' has no CD/DVD drive and {} drives cannot be hot-plugged; stop the vm to add one", vm,
             cdrom_bus(spec.machine));
    if (ldrive) change(*ldrive, VIR_DOMAIN_AFFECT_LIVE);
    if (pdrive) {
        change(*pdrive, VIR_DOMAIN_AFFECT_CONFIG);
    } else if (!path.empty()) {
        // No drive yet (the VM was made without --cdrom): add one to the definition.
        const auto bus = cdrom_bus(spec.machine);
        auto used = targets_of(persistent);
        auto xml = cdrom_device_xml(path, bus, free_target(bus, used));
        if (virDomainAttachDeviceFlags(dom.get(), xml.c_str(), VIR_DOMAIN_AFFECT_CONFIG) < 0)
            throw_libvirt_error(fmt::format("cannot add a CD/DVD drive to vm '{}'", vm));
    }
    spec.cdrom = path;
    write_spec(dom.get(), spec, static_cast<unsigned>(VIR_DOMAIN_AFFECT_CONFIG) | (active ? static_cast<unsigned>(VIR_DOMAIN_AFFECT_LIVE) : 0u));
    refresh(vm);
    return get(vm);
}



// ---- NICs -----------------------------------------------------------------------------------
// Same rules as disks: libvirt's device calls, then hv's metadata spec. A NIC's VLANs are not
// in the domain XML (libvirt tags only OVS / SR-IOV ports): they are hv's metadata, applied
// to the tap on the bridge by opts_.ports.plug whenever the tap exists.

namespace {
api::NicSpec* find_nic(api::VmSpec& spec, const std::string& name) {
    for (auto& n : spec.nics)
        if (n.name == name) return &n;
    return nullptr;
}
}  // namespace

VmInfo VmManager::attach_nic(const std::string& vm, api::NicSpec nic) {
    require_ready();
    {
        auto edit = begin_edit(vm);
        auto& dom = edit.dom;
        const bool active = edit.active;
        auto spec = std::move(edit.spec);
        if (!nic.name.empty() && find_nic(spec, nic.name))
            fail(Errc::conflict, "vm '{}' already has a NIC named '{}'", vm, nic.name);
        spec.nics.push_back(nic);
        name_nics(spec.nics);
        api::validate(spec);
        nic = spec.nics.back();
        if (!nic.network.empty()) {
            auto c = conn_->get();
            virNetworkPtr net = virNetworkLookupByName(c.get(), nic.network.c_str());
            if (!net) fail(Errc::invalid_input, "network '{}' does not exist in libvirt", nic.network);
            virNetworkFree(net);
        }
        if (opts_.ports.check) opts_.ports.check(nic);

        const unsigned flags = VIR_DOMAIN_AFFECT_CONFIG | (active ? VIR_DOMAIN_AFFECT_LIVE : 0u);
        const auto xml = nic_device_xml(nic);
        util::Reverter revert;
        if (active && !nic.bridge.empty() && opts_.ports.plug) {
            // Hot-plug: attach live first, give the new tap its VLANs, then persist. A failed
            // plug unplugs the NIC again.
            if (virDomainAttachDeviceFlags(dom.get(), xml.c_str(), VIR_DOMAIN_AFFECT_LIVE) < 0)
                throw_libvirt_error(fmt::format("cannot hot-plug NIC {} into vm '{}'", nic.name, vm));
            revert.add([d = dom.get(), xml] { virDomainDetachDeviceFlags(d, xml.c_str(), VIR_DOMAIN_AFFECT_LIVE); });
            api::VmSpec one = spec;
            one.nics = {nic};
            plug_nics(dom.get(), one);
            if (virDomainAttachDeviceFlags(dom.get(), xml.c_str(), VIR_DOMAIN_AFFECT_CONFIG) < 0)
                throw_libvirt_error(fmt::format("cannot add NIC {} to vm '{}'", nic.name, vm));
            revert.add([d = dom.get(), xml] { virDomainDetachDeviceFlags(d, xml.c_str(), VIR_DOMAIN_AFFECT_CONFIG); });
        } else {
            if (virDomainAttachDeviceFlags(dom.get(), xml.c_str(), flags) < 0)
                throw_libvirt_error(fmt::format("cannot add NIC {} to vm '{}'", nic.name, vm));
            revert.add([d = dom.get(), xml, flags] { virDomainDetachDeviceFlags(d, xml.c_str(), flags); });
        }
        write_spec(dom.get(), spec, flags);
        revert.release();
        refresh(vm);
    }
    return get(vm);
}

VmInfo VmManager::update_nic(const std::string& vm, const std::string& nic_name, const api::NicPatch& patch) {
    require_ready();
    {
        auto edit = begin_edit(vm);
        auto& dom = edit.dom;
        const bool active = edit.active;
        auto spec = std::move(edit.spec);
        auto* cur = find_nic(spec, nic_name);
        if (!cur) fail(Errc::not_found, "vm '{}' has no NIC named '{}'", vm, nic_name);
        auto next = api::apply_patch(*cur, patch);
        if (active && (next.model != cur->model || next.mtu != cur->mtu))
            fail(Errc::conflict, "vm '{}' is running: a NIC's model and mtu change only while it is stopped "
                 "(vlan, trunks and bridge change live)", vm);
        if (!next.network.empty() && next.network != cur->network) {
            auto c = conn_->get();
            virNetworkPtr net = virNetworkLookupByName(c.get(), next.network.c_str());
            if (!net) fail(Errc::invalid_input, "network '{}' does not exist in libvirt", next.network);
            virNetworkFree(net);
        }
        if (opts_.ports.check) opts_.ports.check(next);
        const unsigned flags = VIR_DOMAIN_AFFECT_CONFIG | (active ? VIR_DOMAIN_AFFECT_LIVE : 0u);
        const bool device_changes = next.bridge != cur->bridge || next.network != cur->network ||
                                    next.model != cur->model || next.mtu != cur->mtu;
        util::Reverter revert;
        if (device_changes) {
            const auto xml = nic_device_xml(next), old_xml = nic_device_xml(*cur);
            if (virDomainUpdateDeviceFlags(dom.get(), xml.c_str(), flags) < 0)
                throw_libvirt_error(fmt::format("cannot change NIC {} of vm '{}'", nic_name, vm));
            revert.add([d = dom.get(), old_xml, flags] { virDomainUpdateDeviceFlags(d, old_xml.c_str(), flags); });
        }
        if (active && !next.bridge.empty()) {
            api::VmSpec one = spec;
            one.nics = {next};
            plug_nics(dom.get(), one);
        }
        *cur = next;
        write_spec(dom.get(), spec, flags);
        revert.release();
        refresh(vm);
    }
    return get(vm);
}

VmInfo VmManager::detach_nic(const std::string& vm, const std::string& nic_name) {
    require_ready();
    {
        auto edit = begin_edit(vm);
        auto& dom = edit.dom;
        const bool active = edit.active;
        auto spec = std::move(edit.spec);
        auto it = std::find_if(spec.nics.begin(), spec.nics.end(), [&](const api::NicSpec& n) { return n.name == nic_name; });
        if (it == spec.nics.end()) fail(Errc::not_found, "vm '{}' has no NIC named '{}'", vm, nic_name);
        // libvirt matches the interface by its MAC (the rest must parse: type, source).
        auto xml = nic_device_xml(*it);
        if (active && virDomainDetachDeviceFlags(dom.get(), xml.c_str(), VIR_DOMAIN_AFFECT_LIVE) < 0)
            throw_libvirt_error(fmt::format("cannot unplug NIC {} from vm '{}'", nic_name, vm));
        if (virDomainDetachDeviceFlags(dom.get(), xml.c_str(), VIR_DOMAIN_AFFECT_CONFIG) < 0)
            throw_libvirt_error(fmt::format("cannot remove NIC {} from vm '{}'", nic_name, vm));
        spec.nics.erase(it);
        write_spec(dom.get(), spec, VIR_DOMAIN_AFFECT_CONFIG | (active ? VIR_DOMAIN_AFFECT_LIVE : 0u));
        refresh(vm);
    }
    return get(vm);
}

}  // namespace hv::virt
