#include "live_backup.hpp"

#include <libvirt/libvirt.h>

#include <chrono>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "hv/error.hpp"
#include "fs_freeze.hpp"
#include "hv/virt/domain_xml.hpp"

namespace hv::backup {

std::string backup_xml(const std::string& domain_xml, const std::vector<LiveDisk>& disks) {
    auto facts = virt::parse_devices(domain_xml);
    std::string x = "<domainbackup mode='push'>\n  <disks>\n";
    std::size_t found = 0;
    for (const auto& d : facts.disks) {
        if (d.target.empty()) continue;
        const LiveDisk* ours = nullptr;
        for (const auto& l : disks)
            if (l.source == d.source || (!d.backing.empty() && l.source == d.backing)) ours = &l;
        if (!ours) {
            x += fmt::format("    <disk name='{}' backup='no'/>\n", virt::xml_escape(d.target));
            continue;
        }
        ++found;
        x += fmt::format(
            "    <disk name='{}' backup='yes' type='file'>\n      <driver type='raw'/>\n      <target file='{}'/>\n    </disk>\n",
            virt::xml_escape(d.target), virt::xml_escape(ours->target));
    }
    if (found != disks.size())
        fail(Errc::internal, "the running domain has {} of the {} disks to back up", found, disks.size());
    x += "  </disks>\n</domainbackup>\n";
    return x;
}

bool live_backup(virt::Connection& conn, const std::string& vm, const std::vector<LiveDisk>& disks,
                 util::Progress& progress) {
    auto dom = conn.domain(vm);
    char* xml = virDomainGetXMLDesc(dom.get(), 0);
    if (!xml) virt::throw_libvirt_error(fmt::format("cannot read the definition of vm '{}'", vm));
    std::string live(xml);
    free(xml);
    auto doc = backup_xml(live, disks);
    bool quiesced = false;
    {
        std::optional<virt::FsFreeze> frozen;
        try {
            frozen.emplace(dom.get(), vm);
            quiesced = true;
            progress.log("froze the guest's filesystems (guest agent) for the start of the job");
        } catch (const Error& e) {
            progress.log(fmt::format("not frozen (crash-consistent copy): {}", e.what()));
        }
        if (virDomainBackupBegin(dom.get(), doc.c_str(), nullptr, 0) < 0)
            virt::throw_libvirt_error(fmt::format("cannot begin the backup job of vm '{}'", vm));
    }  // thawed: the job's point in time is set
    // From here, any way out but the job's end aborts it.
    struct Abort {
        virDomainPtr d;
        bool armed = true;
        ~Abort() {
            if (armed) virDomainAbortJob(d);
        }
    } abort{dom.get()};
    for (;;) {
        virDomainJobInfo ji{};
        if (virDomainGetJobInfo(dom.get(), &ji) < 0)
            virt::throw_libvirt_error(fmt::format("cannot read the backup job of vm '{}'", vm));
        if (ji.type == VIR_DOMAIN_JOB_NONE) break;
        if (progress.cancelled()) fail(Errc::cancelled, "the backup of vm '{}' was cancelled", vm);
        int pct = ji.dataTotal ? static_cast<int>(100 * ji.dataProcessed / ji.dataTotal) : -1;
        progress.update(pct, fmt::format("libvirt backup job: {} of {} MiB copied", ji.dataProcessed >> 20,
                                         ji.dataTotal >> 20));
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    abort.armed = false;
    int type = 0, n = 0;
    virTypedParameterPtr params = nullptr;
    if (virDomainGetJobStats(dom.get(), &type, &params, &n, VIR_DOMAIN_JOB_STATS_COMPLETED) < 0)
        virt::throw_libvirt_error(fmt::format("cannot read how the backup job of vm '{}' ended", vm));
    const char* msg = nullptr;
    virTypedParamsGetString(params, n, VIR_DOMAIN_JOB_ERRMSG, &msg);
    std::string err = msg ? msg : "";
    virTypedParamsFree(params, n);
    if (type != VIR_DOMAIN_JOB_COMPLETED)
        fail(Errc::internal, "the backup job of vm '{}' failed{}", vm, err.empty() ? "" : ": " + err);
    return quiesced;
}

}  // namespace hv::backup
