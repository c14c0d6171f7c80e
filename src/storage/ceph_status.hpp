// Ceph's health in plain words, from the monitors' answer to {"prefix": "status"} (JSON, the
// same document `ceph status -f json` prints). The answer comes from the cluster, an outside
// input: parsed defensively and fuzzed (tests/fuzz/ceph_status_fuzz.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hv::storage {

struct CephHealth {
    std::string status;  // HEALTH_OK, HEALTH_WARN, HEALTH_ERR ("" when not said)
    int osds = 0, osds_up = 0, osds_in = 0;
    int pgs = 0;
    int pgs_active_clean = 0;
    int pgs_inactive = 0;  // not "active": their I/O blocks (fewer than min_size copies up)
    std::uint64_t degraded_objects = 0, degraded_total = 0;
    std::uint64_t recovering_bytes_per_sec = 0;
    std::vector<std::string> checks;  // each health check's summary, e.g. "1 osds down"
    std::vector<std::string> quorum_names;  // monitors in quorum
    std::uint64_t bytes_total = 0, bytes_used = 0, bytes_avail = 0;  // raw
};

// One OSD of `osd tree`: its CRUSH host, up/down, in (reweight > 0).
struct CephTreeOsd {
    int id = -1;
    std::string host;
    bool up = false;
    bool in = false;
};
struct CephTree {
    std::vector<CephTreeOsd> osds;
    int hosts_with_osds = 0;
};
// The monitors' answer to {"prefix": "osd tree"}; invalid_input when it is not one.
CephTree parse_osd_tree(const std::string& json);

// Throws invalid_input when `json` is not a status document.
CephHealth parse_ceph_status(const std::string& json);

// What an admin must know, one sentence each; empty when all is well (HEALTH_OK, every PG
// active+clean). Blocked I/O first, then degraded data (with the recovery rate), then the
// other checks.
std::vector<std::string> health_words(const CephHealth& h);

}  // namespace hv::storage
