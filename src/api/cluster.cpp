#include "hv/api/cluster.hpp"

#include <arpa/inet.h>

#include "hv/api/json_reader.hpp"
#include "hv/error.hpp"

namespace hv::api {
using nlohmann::json;

void check_cluster_name(const std::string& name, const char* what) {
    bool ok = !name.empty() && name.size() <= 32 && name[0] >= 'a' && name[0] <= 'z';
    for (char c : name) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
    if (!ok) fail(Errc::invalid_input, "{} must be 1-32 of a-z 0-9 - starting with a letter", what);
}

void check_address(const std::string& address, const char* what) {
    in_addr a4{};
    in6_addr a6{};
    if (inet_pton(AF_INET, address.c_str(), &a4) == 1 || inet_pton(AF_INET6, address.c_str(), &a6) == 1) return;
    fail(Errc::invalid_input, "{} must be an IPv4 or IPv6 address without a port", what);
}

namespace {
std::vector<std::string> string_list(ObjectReader& rd, const std::string& key) {
    const json* v = rd.raw(key);
    std::vector<std::string> out;
    if (!v) return out;
    if (!v->is_array()) fail(Errc::invalid_input, "field '{}' must be an array of strings", rd.field(key));
    for (const auto& e : *v) {
        if (!e.is_string()) fail(Errc::invalid_input, "field '{}' must be an array of strings", rd.field(key));
        out.push_back(e.get<std::string>());
    }
    return out;
}
}  // namespace

json to_json(const ClusterCreate& c) { return {{"name", c.name}, {"address", c.address}}; }
ClusterCreate cluster_create_from_json(const json& j) {
    ObjectReader rd(j, "");
    ClusterCreate c;
    c.name = rd.req<std::string>("name");
    c.address = rd.req<std::string>("address");
    rd.finish();
    check_cluster_name(c.name, "field 'name'");
    check_address(c.address, "field 'address'");
    return c;
}

json to_json(const TokenRequest& t) { return {{"ttl", t.ttl}}; }
TokenRequest token_request_from_json(const json& j) {
    ObjectReader rd(j, "");
    TokenRequest t;
    t.ttl = rd.opt<std::int64_t>("ttl").value_or(3600);
    rd.finish();
    if (t.ttl < 60 || t.ttl > 7 * 86400) fail(Errc::invalid_input, "field 'ttl' must be between 60 and 604800 seconds");
    return t;
}

json to_json(const TokenInfo& t) { return {{"token", t.token}, {"id", t.id}, {"expires", t.expires}}; }
TokenInfo token_info_from_json(const json& j) {
    ObjectReader rd(j, "");
    TokenInfo t;
    t.token = rd.req<std::string>("token");
    t.id = rd.req<std::string>("id");
    t.expires = rd.req<std::int64_t>("expires");
    rd.finish();
    return t;
}

json to_json(const JoinRequest& r) {
    json j{{"token", r.token}};
    if (!r.address.empty()) j["address"] = r.address;
    if (!r.member.empty()) j["member"] = r.member;
    return j;
}
JoinRequest join_request_from_json(const json& j) {
    ObjectReader rd(j, "");
    JoinRequest r;
    r.token = rd.req<std::string>("token");
    r.address = rd.opt<std::string>("address").value_or("");
    r.member = rd.opt<std::string>("member").value_or("");
    rd.finish();
    if (!r.address.empty()) check_address(r.address, "field 'address'");
    if (r.member.size() > 300) fail(Errc::invalid_input, "field 'member' is too long");
    if (r.address.empty() && r.member.empty())
        fail(Errc::invalid_input, "field 'address' is required when 'member' is not given");
    return r;
}

json to_json(const JoinOffer& o) {
    return {{"node", o.node}, {"address", o.address}, {"port", o.port}, {"csr_pem", o.csr_pem}, {"version", o.version}};
}
JoinOffer join_offer_from_json(const json& j) {
    ObjectReader rd(j, "");
    JoinOffer o;
    o.node = rd.req<std::string>("node");
    o.address = rd.req<std::string>("address");
    o.port = rd.req<int>("port");
    o.csr_pem = rd.req<std::string>("csr_pem");
    o.version = rd.req<std::string>("version");
    rd.finish();
    check_cluster_name(o.node, "field 'node'");
    check_address(o.address, "field 'address'");
    if (o.port < 1 || o.port > 65535) fail(Errc::invalid_input, "field 'port' must be between 1 and 65535");
    if (o.csr_pem.size() > 16384) fail(Errc::invalid_input, "field 'csr_pem' is too long");
    if (o.version.size() > 64) fail(Errc::invalid_input, "field 'version' is too long");
    return o;
}

json to_json(const JoinAnswer& a) {
    return {{"cluster", a.cluster},   {"ca_pem", a.ca_pem},   {"ca_key_pem", a.ca_key_pem},
            {"cert_pem", a.cert_pem}, {"voter", a.voter},     {"initial_cluster", a.initial_cluster},
            {"endpoints", a.endpoints}};
}
JoinAnswer join_answer_from_json(const json& j) {
    ObjectReader rd(j, "");
    JoinAnswer a;
    a.cluster = rd.req<std::string>("cluster");
    a.ca_pem = rd.req<std::string>("ca_pem");
    a.ca_key_pem = rd.req<std::string>("ca_key_pem");
    a.cert_pem = rd.req<std::string>("cert_pem");
    a.voter = rd.req<bool>("voter");
    a.initial_cluster = rd.opt<std::string>("initial_cluster").value_or("");
    a.endpoints = string_list(rd, "endpoints");
    rd.finish();
    return a;
}

json to_json(const MemberStatus& m) {
    json j{{"name", m.name},       {"address", m.address},           {"port", m.port},
           {"online", m.online},   {"since", m.since},               {"role", m.role},
           {"version", m.version}, {"clock_offset_ms", nullptr},     {"guests", m.guests},
           {"cpus", m.cpus},       {"memory_total", m.memory_total}, {"memory_used", m.memory_used},
           {"fingerprint", m.fingerprint}, {"cpu_model", m.cpu_model},
           {"cpu_features", m.cpu_features}};
    if (m.clock_offset_ms) j["clock_offset_ms"] = *m.clock_offset_ms;
    return j;
}
MemberStatus member_status_from_json(const json& j) {
    ObjectReader rd(j, "");
    MemberStatus m;
    m.name = rd.req<std::string>("name");
    m.address = rd.req<std::string>("address");
    m.port = rd.req<int>("port");
    m.online = rd.req<bool>("online");
    m.since = rd.req<std::int64_t>("since");
    m.role = rd.req<std::string>("role");
    m.version = rd.opt<std::string>("version").value_or("");
    m.clock_offset_ms = rd.opt<double>("clock_offset_ms");
    m.guests = rd.opt<int>("guests").value_or(0);
    m.cpus = rd.opt<int>("cpus").value_or(0);
    m.memory_total = rd.opt<std::uint64_t>("memory_total").value_or(0);
    m.memory_used = rd.opt<std::uint64_t>("memory_used").value_or(0);
    m.fingerprint = rd.opt<std::string>("fingerprint").value_or("");
    m.cpu_model = rd.opt<std::string>("cpu_model").value_or("");
    m.cpu_features = string_list(rd, "cpu_features");
    rd.finish();
    return m;
}

json to_json(const ClusterStatus& s) {
    json members = json::array();
    for (const auto& m : s.members) members.push_back(to_json(m));
    return {{"name", s.name},         {"node", s.node},       {"quorum", s.quorum}, {"reachable", s.reachable},
            {"voters", s.voters},     {"members", members},   {"warnings", s.warnings}};
}
ClusterStatus cluster_status_from_json(const json& j) {
    ObjectReader rd(j, "");
    ClusterStatus s;
    s.name = rd.req<std::string>("name");
    s.node = rd.req<std::string>("node");
    s.quorum = rd.req<bool>("quorum");
    s.reachable = rd.req<int>("reachable");
    s.voters = rd.req<int>("voters");
    if (const json* m = rd.raw("members")) {
        if (!m->is_array()) fail(Errc::invalid_input, "field 'members' must be an array");
        for (const auto& e : *m) s.members.push_back(member_status_from_json(e));
    }
    s.warnings = string_list(rd, "warnings");
    rd.finish();
    return s;
}

}  // namespace hv::api
