// The GuestDriver of each kind: VMs over virt::VmManager (QEMU), containers over
// virt::CtManager (LXC).
#pragma once

#include <memory>

#include "guest.hpp"

namespace hv::virt {
class VmManager;
class CtManager;
}  // namespace hv::virt

namespace hv::guest {

std::unique_ptr<GuestDriver> make_vm_driver(virt::VmManager& vms);
std::unique_ptr<GuestDriver> make_ct_driver(virt::CtManager& cts);

}  // namespace hv::guest
