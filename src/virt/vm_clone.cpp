// Clones and templates (docs/snapshots.md "Clones and templates"). A clone is a new domain with a
// new uuid and new MACs and its own disks: full copies made by each pool's clone operation (same
// format and provisioning mode; reflinked where the filesystem can), or, from a template, linked
// clones that hold only their own writes. Nothing half-made: every volume is an item of one
// intent record before it is made (with "vm-domain" by uuid last), so a failed or cancelled
// clone deletes what it made and an interrupted one is undone at hvd's next start.
#include <libvirt/libvirt.h>
#include <spdlog/spdlog.h>

#include "hv/error.hpp"
#include "hv/util/command.hpp"
#include "hv/util/intent_log.hpp"
#include "hv/util/reverter.hpp"
#include "vm_manager.hpp"

namespace hv::virt {

void VmManager::refuse_template(const api::VmSpec& spec, const char* what) {
    if (spec.is_template)
        fail(Errc::conflict, "vm '{}' is a template: it cannot {} (clone it: hvctl vm clone {} NEW [--linked])",
             spec.name, what, spec.name);
}

api::VmInfo VmManager::clone(const std::string& src, const std::string& dst, const std::string& pool, bool linked,
                             util::Progress& progress) {
    require_ready();
    api::validate_name(dst, "vm name");
    auto src_lock = op_lock(src);
    auto dst_lock = op_lock(dst);
    auto dom = conn_->domain(src);
    auto info = read_domain(dom.get(), nullptr);
    if (!info.managed) fail(Errc::conflict, "vm '{}' was not created by hv; clone it with virt-clone", src);
    if (info.state != api::VmState::stopped && info.state != api::VmState::crashed)
        fail(Errc::conflict, "vm '{}' is {}: stop it to clone it (its disks must not change during the copy)", src,
             api::to_string(info.state));
    if (linked && !info.spec.is_template)
        fail(Errc::conflict,
             "vm '{}' is no template: linked clones read from their base, which must never change (make it one: "
             "hvctl vm template {}; or make a full clone)",
             src, src);
    if (conn_->find_domain(dst)) fail(Errc::conflict, "vm '{}' already exists", dst);
    if (!pool.empty()) pools_.get(pool);  // 404 for an unknown pool

    auto spec = info.spec;
    spec.name = dst;
    spec.is_template = false;
    for (auto& n : spec.nics) n.mac = random_mac();
    for (const auto& d : spec.disks) {
        if (d.volume.empty() || d.pool.empty())
            fail(Errc::conflict, "disk '{}' of vm '{}' is no pool volume: it cannot be cloned", d.name, src);
        if (!pool.empty() && pool != d.pool) {
            // Another pool: a full copy through qemu-img, file volume to file volume.
            if (linked)
                fail(Errc::invalid_input, "disk '{}' of vm '{}' is in pool '{}': a linked clone reads from its base, so it "
                     "stays in that pool (leave --pool out, or make a full clone)", d.name, src, d.pool);
            if (!api::source_of(d).is_file() || pools_.get(pool).spec.type == "rbd")
                fail(Errc::unsupported, "disk '{}' of vm '{}': a clone into another pool copies file volumes (dir, btrfs) "
                     "only; '{}' -> '{}' is not one of those", d.name, src, d.pool, pool);
        }
        if (linked && !pools_.get(d.pool).caps.linked_clones)
            fail(Errc::unsupported, "disk '{}' of vm '{}' is in pool '{}' ({}), which has no linked clones; make a full clone",
                 d.name, src, d.pool, pools_.get(d.pool).spec.type);
        auto target = dst + "-" + d.name;
        const auto& into = pool.empty() ? d.pool : pool;
        bool taken = true;
        try {
            pools_.volume(into, target);
        } catch (const Error& e) {
            if (e.code() != Errc::not_found) throw;
            taken = false;
        }
        if (taken) fail(Errc::conflict, "volume '{}' already exists in pool '{}'", target, into);
    }

    // Declared before the reverter: after the reverter ran, the record goes (intent_log.hpp).
    auto intent = pools_.intents().begin("vm.clone", "vm/" + dst);
    util::Reverter revert;
    const int total = static_cast<int>(spec.disks.size()) + 1;
    int step = 0;
    for (auto& d : spec.disks) {
        if (progress.cancelled()) fail(Errc::cancelled, "clone of vm '{}' was cancelled", src);
        auto target = dst + "-" + d.name;
        const std::string into = pool.empty() ? d.pool : pool;
        progress.step(100 * step / total, fmt::format("{} {} ({}:{} -> {}:{})", linked ? "linking" : "copying", d.name,
                                                      d.pool, d.volume, into, target));
        if (into == d.pool) {
            pools_.clone_volume(d.pool, d.volume, target, progress, linked, &intent);
        } else {
            // The same capacity and provisioning in the other pool, in that pool's format;
            // qemu-img writes the guest-visible content into it (holes stay holes).
            auto from = pools_.volume(d.pool, d.volume);
            api::VolumeSpec vs{target, into, from.capacity, pools_.default_format(into), from.provision};
            pools_.create_volume(vs, progress, &intent);
            revert.add([this, &progress, into, target] {
                progress.log(fmt::format("clone failed: deleting volume {}:{} it made", into, target));
                pools_.delete_volume(into, target);
            });
            auto to = pools_.volume(into, target);
            auto r = util::run_command({"qemu-img", "convert", "-n", "-f", from.format, "-O", to.format, from.path, to.path},
                                       std::chrono::hours(12));
            if (r.exit_status != 0)
                fail(Errc::internal, "copying {}:{} into {}:{} failed: qemu-img: {}", d.pool, d.volume, into, target, r.err.substr(0, 300));
            d.pool = into;
            d.format = to.format;
            d.volume = target;
            api::set_source(d, pools_.disk_source(d.pool, target));
            d.owned = true;
            ++step;
            continue;
        }
        revert.add([this, &progress, p = d.pool, target] {
            progress.log(fmt::format("clone failed: deleting volume {}:{} it made", p, target));
            pools_.delete_volume(p, target);
        });
        d.volume = target;
        api::set_source(d, pools_.disk_source(d.pool, target));
        d.owned = true;
        ++step;
    }
    if (progress.cancelled()) fail(Errc::cancelled, "clone of vm '{}' was cancelled", src);
    progress.step(100 * step / total, "defining the libvirt domain");
    auto uuid = util::random_uuid();
    intent.add("vm-domain", {{"name", dst}, {"uuid", uuid}});
    conn_->define(domain_xml(spec, xml_options(), uuid), dst);
    revert.release();
    intent.finish();
    spdlog::info("vm {}: {} clone of {} ({} disk(s))", dst, linked ? "linked" : "full", src, spec.disks.size());
    refresh(dst);
    return get(dst);
}

api::VmInfo VmManager::make_template(const std::string& name) {
    require_ready();
    auto lock = op_lock(name);
    auto dom = conn_->domain(name);
    auto info = read_domain(dom.get(), nullptr);
    if (!info.managed) fail(Errc::conflict, "vm '{}' was not created by hv: it cannot be made a template", name);
    if (info.spec.is_template) return info;  // idempotent
    if (info.state != api::VmState::stopped && info.state != api::VmState::crashed)
        fail(Errc::conflict, "vm '{}' is {}: stop it to make it a template", name, api::to_string(info.state));
    int snaps = virDomainSnapshotNum(dom.get(), 0);
    if (snaps > 0)
        fail(Errc::conflict,
             "vm '{}' has {} snapshot(s): a template's disks are the base of linked clones and keep only their "
             "current state; delete the snapshots first",
             name, snaps);
    for (const auto& d : info.spec.disks)
        if (d.volume.empty() || d.pool.empty())
            fail(Errc::conflict, "disk '{}' of vm '{}' is no pool volume: a template's disks must be clonable", d.name,
                 name);
    auto spec = info.spec;
    spec.is_template = true;
    write_spec(dom.get(), spec, VIR_DOMAIN_AFFECT_CONFIG);
    spdlog::info("vm {}: made a template", name);
    refresh(name);
    return get(name);
}

}  // namespace hv::virt
