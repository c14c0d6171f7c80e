// VM snapshots: libvirt internal snapshots (qcow2), docs/snapshots.md.
//
// - With memory (a running or paused VM): QEMU's checkpoint (savevm) of RAM and every disk;
//   revert resumes the guest where it was.
// - Without memory, stopped VM: qemu-img's internal snapshot of each disk.
// - Without memory, running VM: libvirt 9.0 refuses an internal disk-only snapshot of a running
//   domain, so hv takes the same checkpoint (the guest paused for its moment: every disk
//   consistent at one instant) with hv's marker (kSnapshotNs, memory="no") in the saved live
//   definition, and never resumes its RAM: revert loads it paused and powers the VM off, so the
//   disks are as they were and the guest boots from them (with `start`).
// - --quiesce: the guest agent freezes the filesystems around the snapshot; the thaw is RAII,
//   so it happens on every way out.
// Everything runs under the VM's operation lock.
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include <memory>

#include "hv/error.hpp"
#include "hv/util/reverter.hpp"
#include "fs_freeze.hpp"
#include "hv/virt/snapshot_xml.hpp"
#include "vm_manager.hpp"

namespace hv::virt {
using api::SnapshotInfo;
using api::VmInfo;
using api::VmState;

namespace {

struct SnapshotDeleter {
    void operator()(virDomainSnapshotPtr s) const {
        if (s) virDomainSnapshotFree(s);
    }
};
using SnapshotHandle = std::unique_ptr<virDomainSnapshot, SnapshotDeleter>;

[[noreturn]] void throw_snapshot_error(const std::string& what) {
    virErrorPtr e = virGetLastError();
    if (e && e->code == VIR_ERR_SNAPSHOT_REVERT_RISKY)
        fail(Errc::conflict, "{}: {} (the VM's devices changed since the snapshot)", what, e->message ? e->message : "");
    throw_libvirt_error(what);
}

// nullptr when the VM has no snapshot of that name.
SnapshotHandle find_snapshot(virDomainPtr d, const std::string& snap) {
    virDomainSnapshotPtr s = virDomainSnapshotLookupByName(d, snap.c_str(), 0);
    if (!s) {
        virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_DOMAIN_SNAPSHOT) {
            virResetLastError();
            return nullptr;
        }
        throw_libvirt_error(fmt::format("cannot look up snapshot '{}'", snap));
    }
    return SnapshotHandle(s);
}

SnapshotHandle require_snapshot(virDomainPtr d, const std::string& vm, const std::string& snap) {
    auto s = find_snapshot(d, snap);
    if (!s) fail(Errc::not_found, "vm '{}' has no snapshot '{}'", vm, snap);
    return s;
}

SnapshotFacts facts_of(virDomainSnapshotPtr s) {
    char* xml = virDomainSnapshotGetXMLDesc(s, 0);
    if (!xml) throw_libvirt_error("cannot read a snapshot's XML");
    std::string text(xml);
    free(xml);
    auto f = parse_snapshot_xml(text);
    if (!f) fail(Errc::internal, "cannot parse the snapshot XML from libvirt");
    return *f;
}

SnapshotInfo info_of(virDomainSnapshotPtr s) {
    int cur = virDomainSnapshotIsCurrent(s, 0);
    return snapshot_info(facts_of(s), cur == 1);
}

std::vector<SnapshotHandle> all_snapshots(virDomainPtr d) {
    virDomainSnapshotPtr* list = nullptr;
    int n = virDomainListAllSnapshots(d, &list, 0);
    if (n < 0) throw_libvirt_error("cannot list snapshots");
    std::vector<SnapshotHandle> out;
    for (int i = 0; i < n; ++i) out.emplace_back(list[i]);
    free(list);
    return out;
}

std::string domain_xml_of(virDomainPtr d, unsigned flags) {
    char* xml = virDomainGetXMLDesc(d, flags);
    if (!xml) throw_libvirt_error("cannot read the domain XML");
    std::string text(xml);
    free(xml);
    return text;
}

}  // namespace

std::vector<SnapshotInfo> VmManager::snapshots(const std::string& vm) {
    require_ready();
    auto dom = conn_->domain(vm);
    std::vector<SnapshotInfo> list;
    for (const auto& s : all_snapshots(dom.get())) list.push_back(info_of(s.get()));
    std::vector<SnapshotInfo> out;
    for (auto& n : api::snapshot_tree(std::move(list))) out.push_back(std::move(n.info));
    return out;
}

SnapshotInfo VmManager::snapshot(const std::string& vm, const std::string& snap) {
    require_ready();
    auto dom = conn_->domain(vm);
    return info_of(require_snapshot(dom.get(), vm, snap).get());
}

namespace {

struct SnapshotPlan {
    bool active = false;
    VmState state = VmState::stopped;
    std::vector<SnapshotDiskXml> disks;
};

}  // namespace

// The checks of a create on the domain as it is now; throws what the request gets.
static SnapshotPlan plan_snapshot(virDomainPtr d, const std::string& vm, const api::SnapshotCreate& rq,
                                  const api::VmSpec* spec) {
    SnapshotPlan p;
    p.state = map_state(domain_state(d).first);
    p.active = is_active(p.state);
    if (find_snapshot(d, rq.name)) fail(Errc::conflict, "vm '{}' already has a snapshot '{}'", vm, rq.name);
    if (rq.memory && !p.active)
        fail(Errc::conflict, "vm '{}' is {}: a snapshot with memory needs it running (or paused)", vm,
             api::to_string(p.state));
    if (rq.quiesce && p.state != VmState::running)
        fail(Errc::conflict, "vm '{}' is {}: --quiesce needs the running guest's agent", vm, api::to_string(p.state));
    auto devices = parse_devices(domain_xml_of(d, p.active ? 0 : VIR_DOMAIN_XML_INACTIVE));
    auto describe = [spec](const XmlDisk& x) {
        if (spec)
            for (const auto& disk : spec->disks) {
                auto src = api::source_of(disk);
                bool same = src.is_file() ? (x.source == src.path || (x.transient && x.backing == src.path))
                                          : (x.protocol == src.protocol && x.name == src.name);
                if (same && !disk.name.empty()) return fmt::format("disk '{}' ({})", disk.name, x.target);
            }
        return fmt::format("disk {}", x.target);
    };
    p.disks = snapshot_disks(devices, p.active, describe);
    if (p.disks.empty()) fail(Errc::conflict, "vm '{}' has no disk to snapshot", vm);
    return p;
}

void VmManager::check_snapshot(const std::string& vm, const api::SnapshotCreate& rq) {
    require_ready();
    auto dom = conn_->domain(vm);
    auto info = read_domain(dom.get(), nullptr);
    refuse_template(info.spec, "have snapshots");
    plan_snapshot(dom.get(), vm, rq, info.managed ? &info.spec : nullptr);
}

SnapshotInfo VmManager::create_snapshot(const std::string& vm, const api::SnapshotCreate& rq, util::Progress& progress) {
    require_ready();
    api::validate_snapshot_name(rq.name);
    auto lock = op_lock(vm);
    auto dom = conn_->domain(vm);
    auto info = read_domain(dom.get(), nullptr);
    refuse_template(info.spec, "have snapshots");
    auto plan = plan_snapshot(dom.get(), vm, rq, info.managed ? &info.spec : nullptr);
    if (progress.cancelled()) fail(Errc::cancelled, "snapshot '{}' of vm '{}' was cancelled", rq.name, vm);

    if (plan.active) {
        // The marker goes into the live definition libvirt saves with the snapshot.
        auto marker = snapshot_marker_xml(rq.memory);
        if (virDomainSetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, marker.c_str(), kSnapshotPrefix, kSnapshotNs,
                                 VIR_DOMAIN_AFFECT_LIVE) < 0)
            throw_libvirt_error(fmt::format("cannot mark the snapshot of vm '{}'", vm));
    }
    SnapshotCreateXml x{rq.name, rq.description, plan.active, plan.disks};
    const auto xml = snapshot_create_xml(x);
    SnapshotHandle snap;
    {
        std::optional<FsFreeze> frozen;
        if (rq.quiesce) {
            progress.step(10, "freezing the guest's filesystems (guest agent)");
            frozen.emplace(dom.get(), vm);
        }
        progress.step(20, plan.active ? (rq.memory ? "saving memory and disks (the guest is paused meanwhile)"
                                                   : "snapshotting the disks (the guest is paused meanwhile)")
                                      : "snapshotting the disks");
        virDomainSnapshotPtr s = virDomainSnapshotCreateXML(dom.get(), xml.c_str(), VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC);
        if (!s) throw_snapshot_error(fmt::format("cannot snapshot vm '{}'", vm));
        snap.reset(s);
    }  // thawed here (also when the create threw)
    util::Reverter undo;
    undo.add([&snap, vm, name = rq.name] {
        if (virDomainSnapshotDelete(snap.get(), 0) < 0) {
            virErrorPtr e = virGetLastError();
            spdlog::error("vm {}: cannot remove snapshot {} after a failed create: {}", vm, name,
                          e && e->message ? e->message : "?");
        }
    });
    if (progress.cancelled()) fail(Errc::cancelled, "snapshot '{}' of vm '{}' was cancelled (removed again)", rq.name, vm);
    auto out = info_of(snap.get());
    undo.release();
    spdlog::info("vm {}: snapshot {} taken (memory: {})", vm, rq.name, rq.memory);
    progress.step(100, fmt::format("snapshot '{}' taken", rq.name));
    return out;
}

VmInfo VmManager::revert_snapshot(const std::string& vm, const std::string& snap, bool start, util::Progress& progress) {
    require_ready();
    {
        auto lock = op_lock(vm);
        auto dom = conn_->domain(vm);
        auto s = require_snapshot(dom.get(), vm, snap);
        auto f = facts_of(s.get());
        auto si = snapshot_info(f, true);
        const bool saved_ram = f.memory_location == "internal" || f.memory_location == "external";
        if (progress.cancelled()) fail(Errc::cancelled, "revert of vm '{}' to '{}' was cancelled", vm, snap);
        if (si.memory || !saved_ram) {
            // A memory snapshot resumes as it was taken (running, or paused unless start); a
            // stopped VM's snapshot leaves the VM stopped, or boots it with start.
            progress.step(20, fmt::format("reverting to '{}'", snap));
            unsigned flags = start ? VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING : 0;
            if (virDomainRevertToSnapshot(s.get(), flags) < 0)
                throw_snapshot_error(fmt::format("cannot revert vm '{}' to snapshot '{}'", vm, snap));
        } else {
            // hv's disk-only snapshot of a running VM: load it paused, power off; the disks are
            // as they were at the snapshot, the saved RAM is never run.
            progress.step(20, fmt::format("reverting the disks to '{}'", snap));
            if (virDomainRevertToSnapshot(s.get(), VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED) < 0)
                throw_snapshot_error(fmt::format("cannot revert vm '{}' to snapshot '{}'", vm, snap));
            if (domain_active(dom.get()) && virDomainDestroy(dom.get()) < 0)
                throw_libvirt_error(fmt::format("cannot power off vm '{}' after reverting its disks", vm));
            if (start) {
                progress.step(70, fmt::format("starting vm '{}' from the reverted disks", vm));
                if (virDomainCreate(dom.get()) < 0) throw_libvirt_error(fmt::format("cannot start vm '{}'", vm));
                record_start(dom.get(), static_cast<std::int64_t>(std::time(nullptr)));
            }
        }
        spdlog::info("vm {}: reverted to snapshot {}{}", vm, snap, start ? " and started" : "");
        progress.step(100, fmt::format("vm '{}' is at snapshot '{}'", vm, snap));
        refresh(vm);
    }
    return get(vm);
}

std::vector<std::string> VmManager::delete_snapshot(const std::string& vm, const std::string& snap, bool children,
                                                    util::Progress& progress) {
    require_ready();
    auto lock = op_lock(vm);
    auto dom = conn_->domain(vm);
    auto s = require_snapshot(dom.get(), vm, snap);
    std::vector<std::string> names{snap};
    if (children) {
        virDomainSnapshotPtr* list = nullptr;
        int n = virDomainSnapshotListAllChildren(s.get(), &list, VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS);
        if (n < 0) throw_libvirt_error(fmt::format("cannot list the children of snapshot '{}'", snap));
        for (int i = 0; i < n; ++i) {
            SnapshotHandle c(list[i]);
            if (const char* nm = virDomainSnapshotGetName(c.get())) names.emplace_back(nm);
        }
        free(list);
    }
    if (progress.cancelled()) fail(Errc::cancelled, "delete of snapshot '{}' of vm '{}' was cancelled", snap, vm);
    progress.step(20, children && names.size() > 1 ? fmt::format("deleting '{}' and {} snapshots under it", snap, names.size() - 1)
                                                    : fmt::format("deleting '{}'", snap));
    if (virDomainSnapshotDelete(s.get(), children ? VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN : 0) < 0)
        throw_snapshot_error(fmt::format("cannot delete snapshot '{}' of vm '{}'", snap, vm));
    spdlog::info("vm {}: deleted snapshot(s) {}", vm, fmt::join(names, ", "));
    progress.step(100, fmt::format("deleted {}", fmt::join(names, ", ")));
    return names;
}

}  // namespace hv::virt
