// Wire model of GET /v1/host.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::api {

struct HostInfo {
    std::string hostname;
    // hv version. Example: "0.1.0".
    std::string version;
    // Example: "qemu:///system".
    std::string libvirt_uri;
    // False while libvirtd is unreachable (hvd reconnects; VM calls answer 503 meanwhile).
    bool libvirt_connected = false;
    // Example: "9.0.0"; empty while disconnected.
    std::string libvirt_version;
    // QEMU version as reported by libvirt. Example: "7.2.0".
    std::string qemu_version;
    // Configured: "auto" | "kvm" | "tcg".
    std::string accel_config;
    // In use: "kvm" | "tcg".
    std::string accel;
    // Why: "KVM probe ran a guest instruction" / "/dev/kvm: Permission denied" / "forced by config".
    std::string accel_reason;
    int cpus = 0;
    std::uint64_t memory_total = 0;
    std::uint64_t memory_available = 0;
    // Directory where hvd creates disk images.
    std::string image_dir;
    std::uint64_t image_dir_free = 0;
    int vms_total = 0;
    int vms_running = 0;
    // Seconds since hvd started.
    std::int64_t daemon_uptime = 0;
    // Network kernel features (hvctl net features): supported and missing ones by name.
    // Example: ["bridge", "veth"] / ["vlan_filtering", "8021q", "bonding", "dummy"].
    std::vector<std::string> net_features;
    std::vector<std::string> net_features_missing;
};

void to_json(nlohmann::json& j, const HostInfo& v);
HostInfo host_info_from_json(const nlohmann::json& j);

// The API version this hv speaks (the path prefix of every route).
inline constexpr const char* kApiVersion = "v1";

// GET /v1/version: answered from memory, so it works even while libvirt is down.
struct VersionInfo {
    // hv version of hvd. Example: "0.1.0".
    std::string version;
    // Example: "v1".
    std::string api_version;
};

void to_json(nlohmann::json& j, const VersionInfo& v);
VersionInfo version_info_from_json(const nlohmann::json& j);

}  // namespace hv::api
