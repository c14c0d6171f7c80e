// Wire model of hv's Ceph (docs/api.md "Ceph", docs/ceph.md): the hyperconverged Ceph cluster
// hvd deploys on the members of its hv cluster. from_json is strict (unknown fields ->
// invalid_input).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::api {

// POST /v1/ceph/init: the Ceph cluster's configuration, once per hv cluster.
struct CephInit {
    // The public network of Ceph (monitors, clients, OSDs), IPv4 CIDR. Example: "10.10.10.0/24".
    std::string network;
    // The OSDs' replication network; "" = the public network.
    std::string cluster_network;
};

// POST /v1/ceph/osds (on the host of ?host=, default: the one asked).
struct CephOsdCreate {
    // A block device (whole disk or partition) or, for tests and labs, a regular file.
    std::string device;
    // BlueStore's DB/WAL on a faster device ("" = on `device`): a partition (or file) of its
    // own, used by this OSD only.
    std::string db_device;
    // Wipe what is on the device(s) first (a filesystem, a partition table, an old OSD).
    bool zap = false;
};

// POST /v1/ceph/pools
struct CephPoolCreate {
    std::string name;     // Ceph pool and hv storage pool name (1-32 of a-z 0-9 -)
    int size = 3;         // copies of each object (1-7)
    int min_size = 2;     // copies up for I/O to go on (1..size)
    int pg_num = 32;      // placement groups (a power of two, 8-4096); the autoscaler adjusts it
    // Size > hosts with OSDs: place copies on OSDs of the same host (chooseleaf type osd).
    bool force = false;
    // Also add an hv storage pool of the same name (type rbd) on every member.
    bool add_storage = true;
};

struct CephMon {
    std::string name;      // = the host's node name
    std::string host;
    std::string address;   // in the public network
    bool in_quorum = false;
};

struct CephOsd {
    int id = -1;
    std::string host;
    std::string device;
    std::string db_device;
    bool up = false;
    bool in = false;
};

struct CephPool {
    std::string name;
    int size = 0;
    int min_size = 0;
    int pg_num = 0;
    std::string failure_domain;  // "host" | "osd"
    std::string storage_pool;    // the hv storage pool ("" if none)
};

// GET /v1/ceph/status
struct CephStatus {
    bool initialized = false;
    std::string fsid;
    std::string network;
    std::string cluster_network;
    std::string health;                 // HEALTH_OK | HEALTH_WARN | HEALTH_ERR | "" (no monitor answers)
    std::vector<std::string> summary;   // the state in plain words, one sentence each
    std::vector<CephMon> mons;
    int mons_in_quorum = 0;
    int osds = 0, osds_up = 0, osds_in = 0;
    int osd_hosts = 0;                  // hosts with an OSD up or down
    std::vector<CephOsd> osd_list;
    int pgs = 0, pgs_active_clean = 0, pgs_inactive = 0;
    std::uint64_t degraded_objects = 0, degraded_total = 0;
    std::uint64_t recovering_bytes_per_sec = 0;
    std::uint64_t raw_total = 0, raw_used = 0, raw_avail = 0;  // bytes
    std::vector<CephPool> pools;
    std::vector<std::string> warnings;  // redundancy warnings (e.g. exactly 3 hosts for size 3)
};

nlohmann::json to_json(const CephInit& c);
CephInit ceph_init_from_json(const nlohmann::json& j);
nlohmann::json to_json(const CephOsdCreate& c);
CephOsdCreate ceph_osd_create_from_json(const nlohmann::json& j);
nlohmann::json to_json(const CephPoolCreate& c);
CephPoolCreate ceph_pool_create_from_json(const nlohmann::json& j);
nlohmann::json to_json(const CephMon& m);
nlohmann::json to_json(const CephOsd& o);
nlohmann::json to_json(const CephPool& p);
nlohmann::json to_json(const CephStatus& s);

// An IPv4 network "a.b.c.d/n" (host bits zero); invalid_input naming `what` otherwise.
void check_ipv4_cidr(const std::string& cidr, const char* what);

}  // namespace hv::api
