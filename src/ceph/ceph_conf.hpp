// What hvd writes for Ceph's daemons on a host: ceph.conf and keyrings (pure functions,
// checked with golden files: tests/unit/ceph_conf_test.cpp, tests/golden/ceph/).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace hv::ceph {

struct MonAddr {
    std::string name;     // the mon id (the host's node name)
    std::string address;  // IPv4
};

struct ConfInput {
    std::string fsid;
    std::string network;          // public_network
    std::string cluster_network;  // "" = the public one
    std::vector<MonAddr> mons;    // mon_host
    std::string dir;              // the host's Ceph directory (<hvd state_dir>/ceph)
    std::string host;             // this host's node name (the OSDs' CRUSH host)
    int osd_memory_target_mb = 1024;
    int mon_data_avail_warn = 30;
};

// "[v2:10.0.0.1:3300,v1:10.0.0.1:6789],[v2:...]" (Ceph's mon_host; both protocols).
std::string mon_host(const std::vector<MonAddr>& mons);
std::string render_ceph_conf(const ConfInput& in);

// A keyring file with one entity: "[client.admin]\n\tkey = ...\n\tcaps mon = \"allow *\"\n".
// caps: service -> capability (sorted as Ceph's own tools write them).
std::string render_keyring(const std::string& entity, const std::string& key,
                           const std::map<std::string, std::string>& caps = {});

// A new cephx secret as ceph-authtool --gen-print-key makes it: base64 of
// {type u16 = 1 (AES), created u32 sec + u32 nsec, length u16 = 16, 16 random bytes}.
std::string generate_key();
// The key is such a secret (base64, 28 bytes decoded, type 1, length 16).
bool valid_key(const std::string& key);

}  // namespace hv::ceph
