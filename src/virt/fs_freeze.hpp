// The guest's filesystems frozen through its agent (virDomainFSFreeze) for the life of the
// object: snapshots with --quiesce and the start of a running VM's backup job.
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include <string>

#include <fmt/format.h>

#include "connection.hpp"

namespace hv::virt {

// Freezes at construction (throws when the agent cannot); thaws when it leaves scope.
class FsFreeze {
public:
    FsFreeze(virDomainPtr d, const std::string& vm) : d_(d), vm_(vm) {
        if (virDomainFSFreeze(d_, nullptr, 0, 0) < 0)
            throw_libvirt_error(fmt::format("cannot freeze the filesystems of vm '{}' through its guest agent", vm_));
    }
    FsFreeze(const FsFreeze&) = delete;
    FsFreeze& operator=(const FsFreeze&) = delete;
    ~FsFreeze() {
        if (virDomainFSThaw(d_, nullptr, 0, 0) < 0) {
            virErrorPtr e = virGetLastError();
            spdlog::error("vm {}: cannot thaw the guest's filesystems: {}", vm_, e && e->message ? e->message : "?");
        }
    }

private:
    virDomainPtr d_;
    std::string vm_;
};

}  // namespace hv::virt
