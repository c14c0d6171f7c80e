#include "hv/api/ceph.hpp"

#include <arpa/inet.h>

#include "hv/api/json_reader.hpp"
#include "hv/error.hpp"

namespace hv::api {
using nlohmann::json;

void check_ipv4_cidr(const std::string& cidr, const char* what) {
    auto slash = cidr.find('/');
    bool ok = slash != std::string::npos && slash + 1 < cidr.size() && cidr.size() - slash - 1 <= 2;
    in_addr a{};
    int bits = -1;
    if (ok) {
        for (std::size_t i = slash + 1; i < cidr.size(); ++i) ok = ok && cidr[i] >= '0' && cidr[i] <= '9';
        if (ok) bits = std::stoi(cidr.substr(slash + 1));
        ok = ok && bits >= 8 && bits <= 32 && inet_pton(AF_INET, cidr.substr(0, slash).c_str(), &a) == 1;
    }
    if (ok && bits < 32) {
        std::uint32_t host_mask = (bits == 0 ? 0xffffffffu : (0xffffffffu >> bits));
        ok = (ntohl(a.s_addr) & host_mask) == 0;
    }
    if (!ok) fail(Errc::invalid_input, "{} must be an IPv4 network like 10.10.10.0/24 (prefix 8-32, host bits zero)", what);
}

json to_json(const CephInit& c) { return {{"network", c.network}, {"cluster_network", c.cluster_network}}; }
CephInit ceph_init_from_json(const json& j) {
    ObjectReader rd(j, "");
    CephInit c;
    c.network = rd.req<std::string>("network");
    c.cluster_network = rd.opt<std::string>("cluster_network").value_or("");
    rd.finish();
    check_ipv4_cidr(c.network, "field 'network'");
    if (!c.cluster_network.empty()) check_ipv4_cidr(c.cluster_network, "field 'cluster_network'");
    return c;
}

namespace {
void check_device_path(const std::string& p, const char* what) {
    bool ok = !p.empty() && p[0] == '/' && p.size() < 4096 && p.find("/../") == std::string::npos &&
              p.find('\n') == std::string::npos && p.find(' ') == std::string::npos;
    if (!ok) fail(Errc::invalid_input, "{} must be an absolute path without spaces (e.g. /dev/sdb)", what);
}
}  // namespace

json to_json(const CephOsdCreate& c) { return {{"device", c.device}, {"db_device", c.db_device}, {"zap", c.zap}}; }
CephOsdCreate ceph_osd_create_from_json(const json& j) {
    ObjectReader rd(j, "");
    CephOsdCreate c;
    c.device = rd.req<std::string>("device");
    c.db_device = rd.opt<std::string>("db_device").value_or("");
    c.zap = rd.opt<bool>("zap").value_or(false);
    rd.finish();
    check_device_path(c.device, "field 'device'");
    if (!c.db_device.empty()) check_device_path(c.db_device, "field 'db_device'");
    if (c.db_device == c.device) fail(Errc::invalid_input, "field 'db_device' must be another device than 'device'");
    return c;
}

json to_json(const CephPoolCreate& c) {
    return {{"name", c.name},   {"size", c.size},   {"min_size", c.min_size}, {"pg_num", c.pg_num},
            {"force", c.force}, {"add_storage", c.add_storage}};
}
CephPoolCreate ceph_pool_create_from_json(const json& j) {
    ObjectReader rd(j, "");
    CephPoolCreate c;
    c.name = rd.req<std::string>("name");
    c.size = read_int(rd, "size", 3);
    c.min_size = read_int(rd, "min_size", c.size >= 2 ? c.size - c.size / 2 : 1);
    c.pg_num = read_int(rd, "pg_num", 32);
    c.force = rd.opt<bool>("force").value_or(false);
    c.add_storage = rd.opt<bool>("add_storage").value_or(true);
    rd.finish();
    bool name_ok = !c.name.empty() && c.name.size() <= 32 && c.name[0] >= 'a' && c.name[0] <= 'z';
    for (char ch : c.name) name_ok = name_ok && ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-');
    if (!name_ok) fail(Errc::invalid_input, "field 'name' must be 1-32 of a-z 0-9 - starting with a letter");
    if (c.size < 1 || c.size > 7) fail(Errc::invalid_input, "field 'size' must be between 1 and 7 copies");
    if (c.min_size < 1 || c.min_size > c.size)
        fail(Errc::invalid_input, "field 'min_size' must be between 1 and size ({})", c.size);
    if (c.pg_num < 8 || c.pg_num > 4096 || (c.pg_num & (c.pg_num - 1)) != 0)
        fail(Errc::invalid_input, "field 'pg_num' must be a power of two between 8 and 4096");
    return c;
}

json to_json(const CephMon& m) {
    return {{"name", m.name}, {"host", m.host}, {"address", m.address}, {"in_quorum", m.in_quorum}};
}
json to_json(const CephOsd& o) {
    return {{"id", o.id}, {"host", o.host}, {"device", o.device}, {"db_device", o.db_device}, {"up", o.up}, {"in", o.in}};
}
json to_json(const CephPool& p) {
    return {{"name", p.name},         {"size", p.size},
            {"min_size", p.min_size}, {"pg_num", p.pg_num},
            {"failure_domain", p.failure_domain}, {"storage_pool", p.storage_pool}};
}

json to_json(const CephStatus& s) {
    json mons = json::array(), osds = json::array(), pools = json::array();
    for (const auto& m : s.mons) mons.push_back(to_json(m));
    for (const auto& o : s.osd_list) osds.push_back(to_json(o));
    for (const auto& p : s.pools) pools.push_back(to_json(p));
    return {{"initialized", s.initialized},
            {"fsid", s.fsid},
            {"network", s.network},
            {"cluster_network", s.cluster_network},
            {"health", s.health},
            {"summary", s.summary},
            {"mons", mons},
            {"mons_in_quorum", s.mons_in_quorum},
            {"osds", s.osds},
            {"osds_up", s.osds_up},
            {"osds_in", s.osds_in},
            {"osd_hosts", s.osd_hosts},
            {"osd_list", osds},
            {"pgs", s.pgs},
            {"pgs_active_clean", s.pgs_active_clean},
            {"pgs_inactive", s.pgs_inactive},
            {"degraded_objects", s.degraded_objects},
            {"degraded_total", s.degraded_total},
            {"recovering_bytes_per_sec", s.recovering_bytes_per_sec},
            {"raw_total", s.raw_total},
            {"raw_used", s.raw_used},
            {"raw_avail", s.raw_avail},
            {"pools", pools},
            {"warnings", s.warnings}};
}

}  // namespace hv::api
