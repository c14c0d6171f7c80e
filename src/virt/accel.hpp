// Which accelerator VMs get: "auto" uses KVM only when this host can really run KVM guests.
#pragma once

#include <string>

#include <libvirt/libvirt.h>

namespace hv::virt {

struct AccelChoice {
    std::string accel;        // "kvm" | "tcg"
    std::string domain_type;  // libvirt domain type: "kvm" | "qemu"
    std::string reason;
};

// configured: "auto" | "kvm" | "tcg". `conn` may be null (then libvirt is not consulted).
// sysroot: prefix for /dev, /sys and /proc reads (tests point it at fixtures).
AccelChoice choose_accel(const std::string& configured, virConnectPtr conn, const std::string& sysroot = "");

}  // namespace hv::virt
