// A running VM's disks through libvirt's backup API (virDomainBackupBegin, push mode, full):
// QEMU copies each disk as it was when the job began into a raw file hv names (in the
// store's tmp/), while the guest keeps running. hv waits for the job (job info, polled),
// aborts it on cancel or failure, and the caller chunks the files and removes them.
#pragma once

#include <string>
#include <vector>

#include "connection.hpp"
#include "hv/util/progress.hpp"

namespace hv::backup {

struct LiveDisk {
    std::string source;  // the volume's path as the domain has it
    std::string target;  // the raw file QEMU writes (must not exist)
};

// The <domainbackup> document for those disks: the domain's other disks get backup='no'.
// `domain_xml` is the live definition (its <disk> elements are read for the target devs).
std::string backup_xml(const std::string& domain_xml, const std::vector<LiveDisk>& disks);

// The guest's filesystems are frozen through its agent for the start of the job (the moment
// whose disks it copies) and thawed right after, when the agent answers; without one the copy
// is crash-consistent. Returns whether they were frozen.
bool live_backup(virt::Connection& conn, const std::string& vm, const std::vector<LiveDisk>& disks,
                 util::Progress& progress);

}  // namespace hv::backup
