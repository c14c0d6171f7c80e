#include "ceph_conf.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <ctime>

#include <fmt/format.h>

#include "hv/error.hpp"

namespace hv::ceph {

std::string mon_host(const std::vector<MonAddr>& mons) {
    std::string out;
    for (const auto& m : mons) {
        if (!out.empty()) out += ",";
        out += fmt::format("[v2:{0}:3300,v1:{0}:6789]", m.address);
    }
    return out;
}

std::string render_ceph_conf(const ConfInput& in) {
    const std::string& d = in.dir;
    std::string names;
    for (const auto& m : in.mons) names += (names.empty() ? "" : ",") + m.name;
    std::string out = "# Written by hvd from the cluster store (/hv/ceph/): changes here are overwritten.\n";
    out += "[global]\n";
    out += fmt::format("fsid = {}\n", in.fsid);
    out += fmt::format("mon_initial_members = {}\n", names);
    out += fmt::format("mon_host = {}\n", mon_host(in.mons));
    out += fmt::format("public_network = {}\n", in.network);
    out += fmt::format("cluster_network = {}\n", in.cluster_network.empty() ? in.network : in.cluster_network);
    out += "auth_cluster_required = cephx\n"
           "auth_service_required = cephx\n"
           "auth_client_required = cephx\n"
           "auth_allow_insecure_global_id_reclaim = false\n";
    out += fmt::format("keyring = {}/keyring.admin\n", d);
    out += fmt::format("run_dir = {}/run\n", d);
    out += fmt::format("admin_socket = {}/run/$cluster-$name.asok\n", d);
    out += fmt::format("log_file = {}/log/$cluster-$name.log\n", d);
    out += fmt::format("crash_dir = {}/crash\n", d);
    out += "osd_pool_default_size = 3\n"
           "osd_pool_default_min_size = 2\n"
           "mon_allow_pool_delete = true\n";
    // HA (docs/ha.md): the OSDs of a host whose link is cut (no connection reset) are marked
    // down after osd_heartbeat_grace; until then I/O to the PGs they lead waits, and with it the
    // restarted guest's QEMU. Ceph's defaults: a ping every <= 6 s, 20 s grace, stretched for
    // OSDs it thinks laggy. Read by the monitors and the OSDs both, so [global].
    out += "osd_heartbeat_interval = 1\n"
           "osd_heartbeat_grace = 6\n"
           "mon_osd_adjust_heartbeat_grace = false\n";
    out += "[mon]\n";
    out += fmt::format("mon_data = {}/mon/$cluster-$id\n", d);
    out += fmt::format("keyring = {}/mon/$cluster-$id/keyring\n", d);
    out += fmt::format("mon_cluster_log_file = {}/log/$cluster.$channel.log\n", d);
    out += fmt::format("mon_data_avail_warn = {}\n", in.mon_data_avail_warn);
    // HA (docs/ha.md): a monitor lost with its host is noticed after 2 x mon_lease and the
    // quorum formed again within mon_election_timeout (Ceph's defaults: 10 s + 5 s), so the
    // storage fence of a failed host (a blocklist entry: an osdmap change) waits ~7 s, not ~15.
    out += "mon_lease = 2\n"
           "mon_election_timeout = 3\n";
    out += "[mgr]\n";
    out += fmt::format("mgr_data = {}/mgr/$cluster-$id\n", d);
    out += fmt::format("keyring = {}/mgr/$cluster-$id/keyring\n", d);
    out += "[osd]\n";
    out += fmt::format("osd_data = {}/osd/$cluster-$id\n", d);
    out += fmt::format("keyring = {}/osd/$cluster-$id/keyring\n", d);
    out += "osd_objectstore = bluestore\n";
    out += fmt::format("crush_location = root=default host={}\n", in.host);
    out += fmt::format("osd_memory_target = {}\n", static_cast<long long>(in.osd_memory_target_mb) * 1024 * 1024);
    return out;
}

std::string render_keyring(const std::string& entity, const std::string& key,
                           const std::map<std::string, std::string>& caps) {
    std::string out = fmt::format("[{}]\n\tkey = {}\n", entity, key);
    for (const auto& [svc, cap] : caps) out += fmt::format("\tcaps {} = \"{}\"\n", svc, cap);
    return out;
}

std::string generate_key() {
    unsigned char raw[28] = {};
    raw[0] = 1;  // CEPH_CRYPTO_AES, little endian u16
    auto now = static_cast<std::uint32_t>(std::time(nullptr));
    for (int i = 0; i < 4; ++i) raw[2 + i] = static_cast<unsigned char>(now >> (8 * i));
    raw[10] = 16;  // secret length, u16
    if (RAND_bytes(raw + 12, 16) != 1) fail(Errc::internal, "no random bytes for a Ceph key (OpenSSL RAND_bytes)");
    unsigned char b64[64] = {};
    int n = EVP_EncodeBlock(b64, raw, sizeof raw);
    return std::string(reinterpret_cast<char*>(b64), static_cast<std::size_t>(n));
}

bool valid_key(const std::string& key) {
    if (key.size() != 40) return false;
    unsigned char raw[64] = {};
    int n = EVP_DecodeBlock(raw, reinterpret_cast<const unsigned char*>(key.data()), static_cast<int>(key.size()));
    // 28 bytes encode to 40 characters with one '=' of padding: DecodeBlock says 30, the
    // last two are padding zeros.
    return n == 30 && raw[0] == 1 && raw[1] == 0 && raw[10] == 16 && raw[11] == 0;
}

}  // namespace hv::ceph
