#include "host_service.hpp"

#include <unistd.h>

#include <fstream>
#include <thread>

namespace hv::daemon {

std::uint64_t HostService::meminfo(const char* key) {
    std::ifstream in("/proc/meminfo");
    std::string k;
    std::uint64_t v = 0;
    std::string unit;
    while (in >> k >> v >> unit)
        if (k == key) return v * 1024;
    return 0;
}

api::HostInfo HostService::info() const {
    api::HostInfo h;
    char hn[256] = {};
    ::gethostname(hn, sizeof hn - 1);
    h.hostname = hn;
    h.version = HV_VERSION;
    h.libvirt_uri = cfg_.libvirt_uri;
    h.accel_config = cfg_.accel;
    auto a = vms_.accel();
    h.accel = a.accel;
    h.accel_reason = a.reason;
    h.cpus = static_cast<int>(std::thread::hardware_concurrency());
    h.memory_total = meminfo("MemTotal:");
    h.memory_available = meminfo("MemAvailable:");
    h.image_dir = pools_.builtin_path();
    h.image_dir_free = pools_.builtin_free();
    h.vms_total = static_cast<int>(vms_.count(&h.vms_running));
    for (const auto& f : net_.features().items) (f.supported ? h.net_features : h.net_features_missing).push_back(f.name);
    h.daemon_uptime =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count();
    auto lv = vms_.versions();
    h.libvirt_connected = lv.connected;
    h.libvirt_version = lv.libvirt;
    h.qemu_version = lv.hypervisor;
    return h;
}

}  // namespace hv::daemon
