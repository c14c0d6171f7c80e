// hvd's configuration: /etc/hv/hvd.toml, validated against one table of keys with defaults
// (config.cpp, kSchema). Unknown keys and out-of-range values are rejected with the key named.
#pragma once

#include <string>

namespace hv::daemon {

struct Config {
    // [daemon]
    std::string socket = "/run/hv/hvd.sock";
    std::string socket_group = "hv";
    std::string state_dir = "/var/lib/hv";
    std::string log_level = "info";
    int workers = 8;
    int request_timeout = 30;  // seconds a synchronous API call may take before 504
    int header_timeout = 10;             // seconds a request header may take to arrive (408)
    int max_connections = 512;           // open connections of all users but root together
    int max_connections_per_uid = 64;    // open connections of one uid (root excepted)
    int max_root_connections = 4096;     // root's own open connections
    int task_history = 500;
    int metrics_cache = 5;  // seconds GET /v1/metrics reuses its answer (0: none)
    std::string log_target = "auto";  // auto | journal | stderr
    // [autostart] (defaults of `hvctl autostart host`; see docs/api.md for why these values)
    int autostart_boot_delay = 10;
    int autostart_max_parallel = 4;
    int autostart_retries = 2;
    int autostart_retry_delay = 10;
    // [libvirt]
    std::string libvirt_uri = "qemu:///system";
    std::string accel = "auto";
    int reconnect_interval_ms = 1000;
    int keepalive_interval = 5;
    std::string lxc_uri;  // "" = libvirt_uri with the lxc scheme (same host and socket)
    // [containers]
    std::string ct_debian_mirror = "http://deb.debian.org/debian";
    // [storage]
    std::string image_dir;  // empty = <state_dir>/images
    // [time] (chrony; see src/time/chrony_manager.hpp)
    std::string time_chronyc = "chronyc";
    std::string time_command_address;  // "" = chronyc's default socket
    std::string time_sources_file = "/etc/chrony/sources.d/hv.sources";
    std::string time_source_options;
    std::string time_service = "chrony";
    // [cluster] (docs/cluster.md)
    std::string cluster_node_name;  // "" = the host name
    std::string cluster_address;
    int cluster_port = 7443;
    std::string cluster_endpoints;  // "" = managed etcd member
    std::string cluster_etcd_binary = "etcd";
    std::string cluster_etcd_ca;    // external etcd: its CA, and this host's client certificate + key
    std::string cluster_etcd_cert;
    std::string cluster_etcd_key;
    int cluster_etcd_client_port = 2379;
    int cluster_etcd_peer_port = 2380;
    int cluster_voters = 3;
    int cluster_lease_ttl = 5;
    int cluster_clock_warn_ms = 500;
    int cluster_maintenance_parallel = 2;  // live migrations at once when a host enters maintenance
    std::string cluster_migration_socket_dir = "/run/hv/migrate";  // data sockets of --with-local-disks / --postcopy
    int cluster_migration_timeout = 120;   // seconds per GiB (memory + copied disks) before a migration is aborted
    int ceph_osd_memory_target_mb = 1024;  // [ceph]: each OSD's cache target
    int ceph_mon_data_avail_warn = 30;     // [ceph]: percent free below which a monitor warns
    std::string ha_watchdog = "/dev/watchdog";  // [ha]: the watchdog device (tests: a FIFO of an emulator)
    int ha_watchdog_timeout = 3;               // [ha]: seconds; pet window + this + margin <= cluster lease_ttl

    // lxc_uri, or the LXC driver next to libvirt_uri: "qemu:///system?socket=S" ->
    // "lxc:///system?socket=S" ("qemu+ssh://h/system" -> "lxc+ssh://h/system").
    std::string effective_lxc_uri() const {
        if (!lxc_uri.empty()) return lxc_uri;
        if (libvirt_uri.rfind("qemu", 0) == 0) return "lxc" + libvirt_uri.substr(4);
        return "lxc:///system";
    }
    std::string effective_image_dir() const { return image_dir.empty() ? state_dir + "/images" : image_dir; }
};

// Parses TOML text; `origin` names the source in error messages. Throws hv::Error(invalid_input).
Config parse_config(const std::string& toml_text, const std::string& origin);
// Reads a file; a missing file at the default path means "all defaults".
Config load_config(const std::string& path, bool must_exist);
// The defaults rendered as a commented TOML document (etc/hvd.toml is generated from this).
std::string default_config_toml();

}  // namespace hv::daemon
