// Disks and CD/DVD of existing VMs: attach (cold / hot-plug), detach, insert/eject.
#include "vm_manager.hpp"

#include "hv/error.hpp"

namespace hv::virt {

api::VmInfo VmManager::attach_disk(const std::string& vm, api::DiskSpec, util::Progress&) {
    fail(Errc::unsupported, "attaching disks to vm '{}' is not implemented yet", vm);
}
api::VmInfo VmManager::detach_disk(const std::string& vm, const std::string&, bool) {
    fail(Errc::unsupported, "detaching disks from vm '{}' is not implemented yet", vm);
}
api::VmInfo VmManager::set_cdrom(const std::string& vm, const std::string&) {
    fail(Errc::unsupported, "changing the CD/DVD of vm '{}' is not implemented yet", vm);
}

}  // namespace hv::virt
