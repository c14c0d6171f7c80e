#include "ceph_status.hpp"

#include <algorithm>
#include <limits>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "hv/api/size.hpp"
#include "hv/error.hpp"
#include "hv/util/utf8.hpp"

namespace hv::storage {
namespace {
using nlohmann::json;

const json& member(const json& j, const char* k) {
    static const json null;
    if (!j.is_object()) return null;
    auto it = j.find(k);
    return it == j.end() ? null : *it;
}
// A count: negative, fractional beyond range or not a number reads as 0 (or the maximum).
std::uint64_t count(const json& j, const char* k) {
    const auto& v = member(j, k);
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (v.is_number_integer()) return v.get<std::int64_t>() < 0 ? 0 : static_cast<std::uint64_t>(v.get<std::int64_t>());
    if (v.is_number_float()) {
        double d = v.get<double>();
        if (!(d >= 0)) return 0;
        if (d >= 1.8e19) return std::numeric_limits<std::uint64_t>::max();
        return static_cast<std::uint64_t>(d);
    }
    return 0;
}
int small(const json& j, const char* k) { return static_cast<int>(std::min<std::uint64_t>(count(j, k), 1u << 30)); }
std::string text(const json& j, const char* k) {
    const auto& v = member(j, k);
    return v.is_string() ? util::sanitize_utf8(v.get<std::string>().substr(0, 300)) : std::string();
}
}  // namespace

CephHealth parse_ceph_status(const std::string& in) {
    if (in.size() > 4 * 1024 * 1024) fail(Errc::invalid_input, "the Ceph status answer is larger than 4 MiB");
    json j = json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail(Errc::invalid_input, "the Ceph status answer is not a JSON object");
    CephHealth h;
    const auto& health = member(j, "health");
    h.status = text(health, "status");
    const auto& checks = member(health, "checks");
    if (checks.is_object())
        for (const auto& [name, c] : checks.items()) {
            auto msg = text(member(c, "summary"), "message");
            h.checks.push_back(msg.empty() ? util::sanitize_utf8(name.substr(0, 100)) : msg);
            if (h.checks.size() >= 32) break;
        }
    const auto& osd = member(j, "osdmap");
    h.osds = small(osd, "num_osds");
    h.osds_up = small(osd, "num_up_osds");
    h.osds_in = small(osd, "num_in_osds");
    const auto& pg = member(j, "pgmap");
    h.pgs = small(pg, "num_pgs");
    const auto& states = member(pg, "pgs_by_state");
    if (states.is_array())
        for (const auto& s : states) {
            std::string name = text(s, "state_name");
            int n = small(s, "count");
            auto add = [](int& to, int n) { to = static_cast<int>(std::min<long long>(static_cast<long long>(to) + n, 1 << 30)); };
            if (name == "active+clean") add(h.pgs_active_clean, n);
            // "active" as a whole word of the state ("active+undersized" is active,
            // "undersized+degraded+peered" is not).
            bool active = false;
            std::size_t pos = 0;
            while (pos <= name.size()) {
                auto plus = name.find('+', pos);
                if (name.substr(pos, plus == std::string::npos ? std::string::npos : plus - pos) == "active") active = true;
                if (plus == std::string::npos) break;
                pos = plus + 1;
            }
            if (!active) add(h.pgs_inactive, n);
        }
    h.degraded_objects = count(pg, "degraded_objects");
    h.degraded_total = count(pg, "degraded_total");
    h.recovering_bytes_per_sec = count(pg, "recovering_bytes_per_sec");
    h.bytes_total = count(pg, "bytes_total");
    h.bytes_used = count(pg, "bytes_used");
    h.bytes_avail = count(pg, "bytes_avail");
    const auto& q = member(j, "quorum_names");
    if (q.is_array())
        for (const auto& n : q) {
            if (n.is_string()) h.quorum_names.push_back(util::sanitize_utf8(n.get<std::string>().substr(0, 100)));
            if (h.quorum_names.size() >= 64) break;
        }
    return h;
}

CephTree parse_osd_tree(const std::string& in) {
    if (in.size() > 4 * 1024 * 1024) fail(Errc::invalid_input, "the Ceph osd tree answer is larger than 4 MiB");
    json j = json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail(Errc::invalid_input, "the Ceph osd tree answer is not a JSON object");
    const auto& nodes = member(j, "nodes");
    CephTree t;
    if (!nodes.is_array()) return t;
    std::map<long long, std::string> host_of;  // osd id -> host
    for (const auto& n : nodes) {
        if (text(n, "type") != "host") continue;
        const auto& ch = member(n, "children");
        if (!ch.is_array() || ch.empty()) continue;
        ++t.hosts_with_osds;
        for (const auto& c : ch)
            if (c.is_number_integer() && c.get<long long>() >= 0) host_of[c.get<long long>()] = text(n, "name");
        if (t.hosts_with_osds > 10000) break;
    }
    for (const auto& n : nodes) {
        if (text(n, "type") != "osd") continue;
        const auto& id = member(n, "id");
        if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() > (1 << 30)) continue;
        CephTreeOsd o;
        o.id = static_cast<int>(id.get<long long>());
        auto it = host_of.find(o.id);
        if (it != host_of.end()) o.host = it->second;
        o.up = text(n, "status") == "up";
        const auto& rw = member(n, "reweight");
        o.in = rw.is_number() && rw.get<double>() > 0;
        t.osds.push_back(o);
        if (t.osds.size() > 100000) break;
    }
    return t;
}

std::vector<std::string> health_words(const CephHealth& h) {
    std::vector<std::string> out;
    if (h.pgs_inactive > 0)
        out.push_back(fmt::format("I/O blocked: {} of {} placement groups are not active (fewer copies up than the "
                                  "pool's min_size); writes and reads to them wait",
                                  h.pgs_inactive, h.pgs));
    if (h.degraded_objects > 0) {
        double pct = h.degraded_total ? 100.0 * static_cast<double>(h.degraded_objects) / static_cast<double>(h.degraded_total) : 0;
        std::string rate = h.recovering_bytes_per_sec
                               ? fmt::format(", recovering at {}/s", api::format_size(h.recovering_bytes_per_sec))
                               : (h.osds_up < h.osds ? ", no recovery (nowhere to put the missing copies)" : std::string());
        out.push_back(fmt::format("degraded: {} of {} object copies missing ({:.1f}%){}", h.degraded_objects,
                                  h.degraded_total, pct, rate));
    }
    if (h.osds_up < h.osds)
        out.push_back(fmt::format("{} of {} OSDs down", h.osds - h.osds_up, h.osds));
    if (h.osds_in < h.osds)
        out.push_back(fmt::format("{} of {} OSDs out", h.osds - h.osds_in, h.osds));
    if (!h.status.empty() && h.status != "HEALTH_OK")
        for (const auto& c : h.checks) out.push_back("Ceph " + h.status + ": " + c);
    return out;
}

}  // namespace hv::storage
