#include "hv/api/host.hpp"

namespace hv::api {
using nlohmann::json;

void to_json(json& j, const HostInfo& v) {
    j = json{{"hostname", v.hostname},
             {"version", v.version},
             {"libvirt_uri", v.libvirt_uri},
             {"libvirt_connected", v.libvirt_connected},
             {"libvirt_version", v.libvirt_version},
             {"qemu_version", v.qemu_version},
             {"accel_config", v.accel_config},
             {"accel", v.accel},
             {"accel_reason", v.accel_reason},
             {"cpus", v.cpus},
             {"memory_total", v.memory_total},
             {"memory_available", v.memory_available},
             {"image_dir", v.image_dir},
             {"image_dir_free", v.image_dir_free},
             {"vms_total", v.vms_total},
             {"vms_running", v.vms_running},
             {"daemon_uptime", v.daemon_uptime},
             {"net_features", v.net_features},
             {"net_features_missing", v.net_features_missing}};
}

HostInfo host_info_from_json(const json& j) {
    HostInfo h;
    h.hostname = j.value("hostname", "");
    h.net_features = j.value("net_features", std::vector<std::string>{});
    h.net_features_missing = j.value("net_features_missing", std::vector<std::string>{});
    h.version = j.value("version", "");
    h.libvirt_uri = j.value("libvirt_uri", "");
    h.libvirt_connected = j.value("libvirt_connected", false);
    h.libvirt_version = j.value("libvirt_version", "");
    h.qemu_version = j.value("qemu_version", "");
    h.accel_config = j.value("accel_config", "");
    h.accel = j.value("accel", "");
    h.accel_reason = j.value("accel_reason", "");
    h.cpus = j.value("cpus", 0);
    h.memory_total = j.value("memory_total", std::uint64_t{0});
    h.memory_available = j.value("memory_available", std::uint64_t{0});
    h.image_dir = j.value("image_dir", "");
    h.image_dir_free = j.value("image_dir_free", std::uint64_t{0});
    h.vms_total = j.value("vms_total", 0);
    h.vms_running = j.value("vms_running", 0);
    h.daemon_uptime = j.value("daemon_uptime", std::int64_t{0});
    return h;
}

void to_json(json& j, const VersionInfo& v) { j = json{{"version", v.version}, {"api_version", v.api_version}}; }

VersionInfo version_info_from_json(const json& j) {
    VersionInfo v;
    v.version = j.value("version", "");
    v.api_version = j.value("api_version", "");
    return v;
}

}  // namespace hv::api
