#include "accel.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <libvirt/virterror.h>

namespace hv::virt {

AccelChoice choose_accel(const std::string& configured, virConnectPtr conn, const std::string& sysroot) {
    if (configured == "tcg") return {"tcg", "qemu", "forced by configuration (accel = \"tcg\")"};
    if (configured == "kvm") return {"kvm", "kvm", "forced by configuration (accel = \"kvm\")"};

    auto tcg = [](std::string why) { return AccelChoice{"tcg", "qemu", "KVM not usable: " + why}; };
    std::string dev = sysroot + "/dev/kvm";
    struct stat st {};
    if (::stat(dev.c_str(), &st) != 0) return tcg(fmt::format("{}: {}", "/dev/kvm", std::strerror(errno)));
    // A KVM that only runs paravirtualized guests (PVM, used by nested sandboxes) hangs full
    // guests after the kernel decompressor: only kvm_intel/kvm_amd provide real hardware virt.
    std::error_code ec;
    bool hw = std::filesystem::exists(sysroot + "/sys/module/kvm_intel", ec) ||
              std::filesystem::exists(sysroot + "/sys/module/kvm_amd", ec);
    if (!hw) {
        if (std::filesystem::exists(sysroot + "/sys/module/kvm_pvm", ec))
            return tcg("KVM is provided by kvm_pvm (paravirtual nested KVM), which cannot run full guests");
        return tcg("neither kvm_intel nor kvm_amd is loaded");
    }
    if (::access(dev.c_str(), R_OK | W_OK) != 0) return tcg(fmt::format("/dev/kvm: {}", std::strerror(errno)));
    if (conn) {
        char* caps = virConnectGetDomainCapabilities(conn, nullptr, "x86_64", nullptr, "kvm", 0);
        if (!caps) {
            virErrorPtr e = virGetLastError();
            return tcg(fmt::format("libvirt reports no KVM support: {}", e && e->message ? e->message : "unknown"));
        }
        free(caps);
    }
    return {"kvm", "kvm", "hardware virtualization available (/dev/kvm, kvm_intel/kvm_amd, libvirt domain capabilities)"};
}

}  // namespace hv::virt
