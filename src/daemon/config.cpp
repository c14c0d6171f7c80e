#include "config.hpp"

#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <toml++/toml.h>
#include <algorithm>

#include "hv/error.hpp"

namespace hv::daemon {
namespace {

struct Key {
    const char* section;
    const char* name;
    const char* help;
    // exactly one of these describes the type
    std::string Config::*str = nullptr;
    int Config::*num = nullptr;
    long long min = 0, max = 0;
    std::vector<std::string> allowed{};
};

// The one table: every key, its type, range and meaning. Defaults come from Config's
// member initializers.
const std::vector<Key>& schema() {
    static const std::vector<Key> k{
        {"daemon", "socket", "Unix socket of the REST API", &Config::socket},
        {"daemon", "socket_group", "group owning the socket (mode 0660) when it exists", &Config::socket_group},
        {"daemon", "state_dir", "hvd's state directory", &Config::state_dir},
        {"daemon", "log_level", "trace|debug|info|warn|error", &Config::log_level, nullptr, 0, 0,
         {"trace", "debug", "info", "warn", "error"}},
        {"daemon", "workers", "threads that run libvirt calls and tasks", nullptr, &Config::workers, 2, 256},
        {"daemon", "request_timeout", "seconds before a synchronous call answers 504", nullptr,
         &Config::request_timeout, 1, 3600},
        {"daemon", "header_timeout", "seconds a client may take to send a request header (408 after it; idle connections close)",
         nullptr, &Config::header_timeout, 1, 300},
        {"daemon", "max_connections", "open API connections of all users but root together (503 beyond)", nullptr,
         &Config::max_connections, 1, 100000},
        {"daemon", "max_connections_per_uid", "open API connections of one user (SO_PEERCRED uid; root excepted)",
         nullptr, &Config::max_connections_per_uid, 1, 100000},
        {"daemon", "max_root_connections", "root's own open API connections (others never keep root out)", nullptr,
         &Config::max_root_connections, 1, 100000},
        {"daemon", "task_history", "finished tasks kept in memory", nullptr, &Config::task_history, 10, 100000},
        {"daemon", "log_target",
         "journal|stderr|auto: auto logs to the journal (with fields VM=, TASK_ID=...) when stderr is connected to it",
         &Config::log_target, nullptr, 0, 0, {"auto", "journal", "stderr"}},
        {"daemon", "metrics_cache", "seconds GET /v1/metrics reuses its answer, so scrapes cost one libvirt call per period (0: none)",
         nullptr, &Config::metrics_cache, 0, 3600},
        {"autostart", "boot_delay", "seconds after hvd starts at host boot before the first autostart VM starts",
         nullptr, &Config::autostart_boot_delay, 0, 86400},
        {"autostart", "max_parallel", "autostart VMs booting (started, not yet ready) at the same time", nullptr,
         &Config::autostart_max_parallel, 1, 1000},
        {"autostart", "retries", "extra start attempts for an autostart VM that fails to start", nullptr,
         &Config::autostart_retries, 0, 100},
        {"autostart", "retry_delay", "seconds between those attempts", nullptr, &Config::autostart_retry_delay, 0, 86400},
        {"libvirt", "uri", "libvirt connection URI", &Config::libvirt_uri},
        {"libvirt", "accel", "auto|kvm|tcg: auto uses KVM only when the host can run it", &Config::accel, nullptr, 0, 0,
         {"auto", "kvm", "tcg"}},
        {"libvirt", "reconnect_interval_ms", "delay between reconnection attempts", nullptr,
         &Config::reconnect_interval_ms, 100, 60000},
        {"libvirt", "keepalive_interval", "seconds between libvirt keepalive probes", nullptr,
         &Config::keepalive_interval, 1, 300},
        {"libvirt", "lxc_uri", "libvirt URI of the LXC driver for containers (empty: uri with the scheme lxc, same socket)",
         &Config::lxc_uri},
        {"containers", "debian_mirror", "Debian mirror for debootstrap (hvctl ct template build debian-12)",
         &Config::ct_debian_mirror},
        {"storage", "image_dir", "path of the built-in pool 'local' (empty: <state_dir>/images); disks go to its images/ folder", &Config::image_dir},
        {"time", "chronyc", "chronyc program that hvd runs (argv only) to talk to chronyd", &Config::time_chronyc},
        {"time", "command_address", "chronyd's command socket path or HOST:PORT (empty: chronyc's default)",
         &Config::time_command_address},
        {"time", "sources_file", "hv's chrony sources file, in a directory chrony.conf names with sourcedir",
         &Config::time_sources_file},
        {"time", "source_options", "options added to every server/pool line, e.g. \"minpoll 6 maxpoll 10\"",
         &Config::time_source_options},
        {"time", "service", "systemd unit of chronyd (hvctl time set --enable)", &Config::time_service},
        {"cluster", "node_name", "this host's name in the cluster (empty: the host name); 1-32 of a-z 0-9 -",
         &Config::cluster_node_name},
        {"cluster", "address", "this host's address in the cluster network (default of hvctl cluster create/join --address)",
         &Config::cluster_address},
        {"cluster", "port", "TCP port of hvd's API between hosts: HTTPS with client certificates of the cluster CA",
         nullptr, &Config::cluster_port, 1, 65535},
        {"cluster", "endpoints", "external etcd client URLs, comma-separated (empty: hvd runs the local etcd member itself)",
         &Config::cluster_endpoints},
        {"cluster", "etcd_ca", "external etcd: the CA file its server certificates are checked against", &Config::cluster_etcd_ca},
        {"cluster", "etcd_cert", "external etcd: this host's client certificate file (PEM)", &Config::cluster_etcd_cert},
        {"cluster", "etcd_key", "external etcd: the key file of that certificate (PEM)", &Config::cluster_etcd_key},
        {"cluster", "etcd_binary", "etcd program of the managed member (argv only)", &Config::cluster_etcd_binary},
        {"cluster", "etcd_client_port", "client port of the managed etcd member (TLS, client certificates)", nullptr,
         &Config::cluster_etcd_client_port, 1, 65535},
        {"cluster", "etcd_peer_port", "peer port of the managed etcd member (TLS, client certificates)", nullptr,
         &Config::cluster_etcd_peer_port, 1, 65535},
        {"cluster", "voters", "hosts that run a voting etcd member (the first ones to join); later hosts are clients",
         nullptr, &Config::cluster_voters, 1, 7},
        {"cluster", "lease_ttl", "seconds without a heartbeat before a host shows offline", nullptr,
         &Config::cluster_lease_ttl, 2, 60},
        {"cluster", "clock_warn_ms", "hvctl cluster status warns when a member's clock is off by more than this", nullptr,
         &Config::cluster_clock_warn_ms, 1, 600000},
        {"cluster", "maintenance_parallel", "live migrations at once when this host enters maintenance", nullptr,
         &Config::cluster_maintenance_parallel, 1, 16},
        {"cluster", "migration_socket_dir",
         "where a live migration that copies disks or may switch to post-copy makes its data sockets (QEMU opens them; "
         "the same path on every member, local to each)",
         &Config::cluster_migration_socket_dir},
        {"cluster", "migration_timeout", "seconds a live migration may take per GiB of memory and copied disk before it is aborted",
         nullptr, &Config::cluster_migration_timeout, 10, 3600},
        {"ceph", "osd_memory_target_mb", "memory each Ceph OSD of this host aims to use (MiB; Ceph's osd_memory_target)",
         nullptr, &Config::ceph_osd_memory_target_mb, 896, 65536},
        {"ceph", "mon_data_avail_warn", "a Ceph monitor warns when its filesystem has less free space than this (percent)",
         nullptr, &Config::ceph_mon_data_avail_warn, 1, 99},
        {"ha", "watchdog", "the watchdog HA fences this host with (/dev/watchdog; softdog is loaded when there is none)",
         &Config::ha_watchdog},
        {"ha", "watchdog_timeout",
         "seconds the watchdog waits for a pet before it resets the host; 1 + this + 1 must not exceed [cluster] lease_ttl",
         nullptr, &Config::ha_watchdog_timeout, 1, 58},
    };
    return k;
}

std::string where(const toml::node& n, const std::string& origin) {
    auto s = n.source();
    if (s.begin.line) return fmt::format("{}:{}", origin, s.begin.line);
    return origin;
}
}  // namespace

Config parse_config(const std::string& text, const std::string& origin) {
    Config cfg;
    toml::table root;
    try {
        root = toml::parse(text, origin);
    } catch (const toml::parse_error& e) {
        fail(Errc::invalid_input, "{}:{}: {}", origin, e.source().begin.line, e.description());
    }
    std::set<std::string> sections;
    for (const auto& k : schema()) sections.insert(k.section);
    for (auto&& [sname, snode] : root) {
        std::string sec(sname.str());
        if (!sections.count(sec)) fail(Errc::invalid_input, "{}: unknown section [{}]", where(snode, origin), sec);
        auto* tbl = snode.as_table();
        if (!tbl) fail(Errc::invalid_input, "{}: [{}] must be a table", where(snode, origin), sec);
        for (auto&& [kname, knode] : *tbl) {
            std::string key(kname.str());
            const Key* def = nullptr;
            for (const auto& k : schema())
                if (sec == k.section && key == k.name) def = &k;
            if (!def) fail(Errc::invalid_input, "{}: unknown key '{}.{}'", where(knode, origin), sec, key);
            if (def->str) {
                auto v = knode.value<std::string>();
                if (!v || !knode.is_string())
                    fail(Errc::invalid_input, "{}: '{}.{}' must be a string", where(knode, origin), sec, key);
                if (!def->allowed.empty() &&
                    std::find(def->allowed.begin(), def->allowed.end(), *v) == def->allowed.end())
                    fail(Errc::invalid_input, "{}: '{}.{}' = \"{}\" is not one of {}", where(knode, origin), sec, key, *v,
                         fmt::join(def->allowed, ", "));
                cfg.*(def->str) = *v;
            } else {
                if (!knode.is_integer())
                    fail(Errc::invalid_input, "{}: '{}.{}' must be an integer", where(knode, origin), sec, key);
                auto v = *knode.value<long long>();
                if (v < def->min || v > def->max)
                    fail(Errc::invalid_input, "{}: '{}.{}' = {} is out of range ({}..{})", where(knode, origin), sec,
                         key, v, def->min, def->max);
                cfg.*(def->num) = static_cast<int>(v);
            }
        }
    }
    if (cfg.socket.empty() || cfg.socket[0] != '/') fail(Errc::invalid_input, "{}: 'daemon.socket' must be an absolute path", origin);
    if (cfg.state_dir.empty() || cfg.state_dir[0] != '/') fail(Errc::invalid_input, "{}: 'daemon.state_dir' must be an absolute path", origin);
    if (!cfg.image_dir.empty() && cfg.image_dir[0] != '/') fail(Errc::invalid_input, "{}: 'storage.image_dir' must be an absolute path", origin);
    // QEMU's Unix socket paths are at most 107 bytes: the directory leaves room for the names.
    if (cfg.cluster_migration_socket_dir.empty() || cfg.cluster_migration_socket_dir[0] != '/' ||
        cfg.cluster_migration_socket_dir.size() > 60)
        fail(Errc::invalid_input, "{}: 'cluster.migration_socket_dir' must be an absolute path of at most 60 bytes", origin);
    // An external etcd has a CA of its own (the cluster CA is made later, at create): the
    // client identity for it is configured, all three files or none.
    bool any_file = !cfg.cluster_etcd_ca.empty() || !cfg.cluster_etcd_cert.empty() || !cfg.cluster_etcd_key.empty();
    if (!cfg.cluster_endpoints.empty() &&
        (cfg.cluster_etcd_ca.empty() || cfg.cluster_etcd_cert.empty() || cfg.cluster_etcd_key.empty()))
        fail(Errc::invalid_input, "{}: 'cluster.endpoints' (an external etcd) needs 'cluster.etcd_ca', 'cluster.etcd_cert' "
             "and 'cluster.etcd_key': its CA and this host's client certificate", origin);
    if (cfg.cluster_endpoints.empty() && any_file)
        fail(Errc::invalid_input, "{}: 'cluster.etcd_ca', 'etcd_cert' and 'etcd_key' are for an external etcd: set "
             "'cluster.endpoints' too (the managed member uses the cluster CA)", origin);
    for (const auto* f : {&cfg.cluster_etcd_ca, &cfg.cluster_etcd_cert, &cfg.cluster_etcd_key})
        if (!f->empty() && (*f)[0] != '/') fail(Errc::invalid_input, "{}: '{}' must be an absolute path", origin, *f);
    // HA's fencing rule (docs/ha.md): a host whose lease can expire is dead by then.
    if (1 + cfg.ha_watchdog_timeout + 1 > cfg.cluster_lease_ttl)
        fail(Errc::invalid_input,
             "{}: 'ha.watchdog_timeout' = {} with 'cluster.lease_ttl' = {}: HA needs pet window 1 s + watchdog timeout + "
             "margin 1 s <= lease_ttl, so a fenced host is dead before its lease expires (docs/ha.md)",
             origin, cfg.ha_watchdog_timeout, cfg.cluster_lease_ttl);
    return cfg;
}

Config load_config(const std::string& path, bool must_exist) {
    std::ifstream in(path);
    if (!in) {
        if (must_exist) fail(Errc::invalid_input, "cannot read config file {}", path);
        return Config{};
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_config(ss.str(), path);
}

std::string default_config_toml() {
    Config d;
    std::string out = "# hvd configuration. Every key is optional; shown with its default.\n";
    std::string cur;
    for (const auto& k : schema()) {
        if (cur != k.section) {
            cur = k.section;
            out += fmt::format("\n[{}]\n", cur);
        }
        out += fmt::format("# {}\n", k.help);
        if (k.str) out += fmt::format("#{} = \"{}\"\n", k.name, d.*(k.str));
        else out += fmt::format("#{} = {}\n", k.name, d.*(k.num));
    }
    return out;
}

}  // namespace hv::daemon
