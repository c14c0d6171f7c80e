#include "etcd_json.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <type_traits>

namespace hv::cluster::etcd_json {
using nlohmann::json;

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

[[noreturn]] void malformed(std::string_view what) {
    fail(Errc::internal, "malformed answer from etcd: {}", what);
}

const json& empty_object() {
    static const json e = json::object();
    return e;
}

// A member of an object, or nullptr when absent (or null: the gateway never sends null, but a
// null is as good as absent).
const json* member(const json& obj, const char* name) {
    if (!obj.is_object()) malformed("expected an object");
    auto it = obj.find(name);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

template <typename T>
T integer(const json& obj, const char* name) {
    const json* v = member(obj, name);
    if (!v) return 0;
    if (v->is_number_unsigned()) {
        auto u = v->get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) malformed(std::string(name) + " out of range");
        return static_cast<T>(u);
    }
    if (v->is_number_integer()) {
        auto i = v->get<std::int64_t>();
        if constexpr (std::is_unsigned_v<T>) {
            if (i < 0) malformed(std::string(name) + " is negative");
        }
        return static_cast<T>(i);
    }
    if (!v->is_string()) malformed(std::string(name) + " is not an integer");
    const auto& s = v->get_ref<const std::string&>();
    T out = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size())
        malformed(std::string(name) + " is not an integer: \"" + s.substr(0, 40) + "\"");
    return out;
}

std::int64_t i64(const json& obj, const char* name) { return integer<std::int64_t>(obj, name); }
std::uint64_t u64(const json& obj, const char* name) { return integer<std::uint64_t>(obj, name); }

bool boolean(const json& obj, const char* name) {
    const json* v = member(obj, name);
    if (!v) return false;
    if (!v->is_boolean()) malformed(std::string(name) + " is not a boolean");
    return v->get<bool>();
}

std::string string(const json& obj, const char* name) {
    const json* v = member(obj, name);
    if (!v) return {};
    if (!v->is_string()) malformed(std::string(name) + " is not a string");
    return v->get<std::string>();
}

const json& object(const json& obj, const char* name) {
    const json* v = member(obj, name);
    if (!v) return empty_object();
    if (!v->is_object()) malformed(std::string(name) + " is not an object");
    return *v;
}

const json& array(const json& obj, const char* name) {
    static const json e = json::array();
    const json* v = member(obj, name);
    if (!v) return e;
    if (!v->is_array()) malformed(std::string(name) + " is not an array");
    return *v;
}

std::vector<std::string> strings(const json& obj, const char* name) {
    std::vector<std::string> out;
    for (const auto& s : array(obj, name)) {
        if (!s.is_string()) malformed(std::string(name) + " holds a non-string");
        out.push_back(s.get<std::string>());
    }
    return out;
}

std::string bytes(const json& obj, const char* name) { return base64_decode(string(obj, name)); }

KeyValue key_value(const json& j) {
    if (!j.is_object()) malformed("a key-value is not an object");
    KeyValue kv;
    kv.key = bytes(j, "key");
    if (kv.key.empty()) malformed("a key-value without a key");
    kv.value = bytes(j, "value");
    kv.create_revision = i64(j, "create_revision");
    kv.mod_revision = i64(j, "mod_revision");
    kv.version = i64(j, "version");
    kv.lease = i64(j, "lease");
    return kv;
}

std::vector<KeyValue> kvs(const json& answer) {
    std::vector<KeyValue> out;
    for (const auto& k : array(answer, "kvs")) out.push_back(key_value(k));
    // etcd answers a range in key order; anything posing as it may not, and callers (prefix
    // lists, txn reads) rely on the order.
    std::sort(out.begin(), out.end(), [](const KeyValue& a, const KeyValue& b) { return a.key < b.key; });
    return out;
}

StoreMember store_member(const json& j) {
    if (!j.is_object()) malformed("a member is not an object");
    StoreMember m;
    m.id = u64(j, "ID");
    if (m.id == 0) malformed("a member without an ID");
    m.name = string(j, "name");
    m.peer_urls = strings(j, "peerURLs");
    m.client_urls = strings(j, "clientURLs");
    m.learner = boolean(j, "isLearner");
    return m;
}

std::string s64(std::int64_t v) { return std::to_string(v); }

// A prefix range; the empty prefix is every key ("\0" to "\0").
json range_json(const std::string& key, bool prefix) {
    json j = {{"key", base64_encode(prefix && key.empty() ? std::string(1, '\0') : key)}};
    if (prefix) j["range_end"] = base64_encode(prefix_end(key));
    return j;
}

json op_json(const Op& o) {
    switch (o.kind) {
        case Op::Kind::put: {
            json p = {{"key", base64_encode(o.key)}, {"value", base64_encode(o.value)}};
            if (o.lease != 0) p["lease"] = s64(o.lease);
            return {{"request_put", p}};
        }
        case Op::Kind::del:
            return {{"request_delete_range", range_json(o.key, o.prefix)}};
        case Op::Kind::get:
            return {{"request_range", range_json(o.key, o.prefix)}};
    }
    fail(Errc::invalid_input, "unknown transaction operation");
}

json compare_json(const Compare& c) {
    json j = {{"key", base64_encode(c.key)}};
    switch (c.result) {
        case Compare::Result::equal: j["result"] = "EQUAL"; break;
        case Compare::Result::not_equal: j["result"] = "NOT_EQUAL"; break;
        case Compare::Result::greater: j["result"] = "GREATER"; break;
        case Compare::Result::less: j["result"] = "LESS"; break;
    }
    switch (c.target) {
        case Compare::Target::version: j["target"] = "VERSION"; j["version"] = s64(c.number); break;
        case Compare::Target::create_revision: j["target"] = "CREATE"; j["create_revision"] = s64(c.number); break;
        case Compare::Target::mod_revision: j["target"] = "MOD"; j["mod_revision"] = s64(c.number); break;
        case Compare::Target::value: j["target"] = "VALUE"; j["value"] = base64_encode(c.value); break;
    }
    return j;
}

// Single keys are never empty (etcd: "key is not provided"); the empty prefix is every key.
void check_key(const std::string& key, bool prefix = false) {
    if (key.empty() && !prefix) fail(Errc::invalid_input, "an empty key");
}

Errc errc_of_grpc(int code, const std::string& message) {
    if (message.find("no leader") != std::string::npos || message.find("timed out") != std::string::npos ||
        message.find("leader changed") != std::string::npos)
        return Errc::unavailable;
    switch (code) {
        case 5: return Errc::not_found;            // NOT_FOUND: lease, member
        case 3: return Errc::invalid_input;        // INVALID_ARGUMENT
        case 11: return Errc::invalid_input;       // OUT_OF_RANGE: compacted / future revision
        case 6:                                    // ALREADY_EXISTS
        case 9:                                    // FAILED_PRECONDITION: promote a voter
        case 10: return Errc::conflict;            // ABORTED
        case 1:                                    // CANCELLED
        case 4:                                    // DEADLINE_EXCEEDED
        case 7:                                    // PERMISSION_DENIED
        case 8:                                    // RESOURCE_EXHAUSTED: too many requests
        case 14:                                   // UNAVAILABLE: no leader, timed out, stopped
        case 16: return Errc::unavailable;         // UNAUTHENTICATED
        default: return Errc::internal;
    }
}

}  // namespace

std::string base64_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        std::uint32_t n = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8) | std::uint8_t(in[i + 2]);
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += kAlphabet[(n >> 6) & 63];
        out += kAlphabet[n & 63];
    }
    if (i + 1 == in.size()) {
        std::uint32_t n = std::uint8_t(in[i]) << 16;
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += "==";
    } else if (i + 2 == in.size()) {
        std::uint32_t n = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8);
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += kAlphabet[(n >> 6) & 63];
        out += '=';
    }
    return out;
}

std::string base64_decode(std::string_view in) {
    static const auto table = [] {
        std::array<int, 256> t{};
        t.fill(-1);
        for (int i = 0; i < 64; ++i) t[static_cast<std::uint8_t>(kAlphabet[i])] = i;
        return t;
    }();
    if (in.size() % 4 != 0) malformed("base64 of a length not a multiple of 4");
    std::string out;
    out.reserve(in.size() / 4 * 3);
    for (std::size_t i = 0; i < in.size(); i += 4) {
        bool last = i + 4 == in.size();
        int pad = 0;
        std::uint32_t n = 0;
        for (std::size_t k = 0; k < 4; ++k) {
            char c = in[i + k];
            int v;
            if (c == '=' && last && k >= 2) {
                if (k == 2 && in[i + 3] != '=') malformed("bad base64 padding");
                ++pad;
                v = 0;
            } else {
                if (pad) malformed("bad base64 padding");
                v = table[static_cast<std::uint8_t>(c)];
                if (v < 0) malformed("not base64");
            }
            n = (n << 6) | static_cast<std::uint32_t>(v);
        }
        out += static_cast<char>((n >> 16) & 0xff);
        if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
        if (pad < 1) out += static_cast<char>(n & 0xff);
    }
    return out;
}

std::string range_request(const std::string& key, bool prefix) {
    check_key(key, prefix);
    return range_json(key, prefix).dump();
}

std::string put_request(const std::string& key, const std::string& value, std::int64_t lease) {
    check_key(key);
    json j = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (lease != 0) j["lease"] = s64(lease);
    return j.dump();
}

std::string deleterange_request(const std::string& key, bool prefix) {
    check_key(key, prefix);
    return range_json(key, prefix).dump();
}

std::string txn_request(const std::vector<Compare>& compares, const std::vector<Op>& success,
                        const std::vector<Op>& failure) {
    json c = json::array(), s = json::array(), f = json::array();
    for (const auto& x : compares) {
        check_key(x.key);
        c.push_back(compare_json(x));
    }
    for (const auto& x : success) {
        check_key(x.key, x.kind != Op::Kind::put && x.prefix);
        s.push_back(op_json(x));
    }
    for (const auto& x : failure) {
        check_key(x.key, x.kind != Op::Kind::put && x.prefix);
        f.push_back(op_json(x));
    }
    return json{{"compare", c}, {"success", s}, {"failure", f}}.dump();
}

std::string compaction_request(std::int64_t revision) {
    if (revision <= 0) fail(Errc::invalid_input, "compaction revision {} is not positive", revision);
    return json{{"revision", s64(revision)}, {"physical", true}}.dump();
}

std::string lease_grant_request(std::int64_t ttl_seconds) {
    if (ttl_seconds <= 0) fail(Errc::invalid_input, "lease ttl {} s is not positive", ttl_seconds);
    return json{{"TTL", s64(ttl_seconds)}}.dump();
}

std::string lease_id_request(std::int64_t lease) {
    if (lease <= 0) fail(Errc::not_found, "lease {} does not exist", lease);
    return json{{"ID", s64(lease)}}.dump();
}

std::string watch_create_request(const std::string& prefix, std::int64_t start_revision) {
    json c = range_json(prefix, true);
    if (start_revision > 0) c["start_revision"] = s64(start_revision);
    return json{{"create_request", c}}.dump();
}

std::string member_add_request(const std::vector<std::string>& peer_urls, bool learner) {
    if (peer_urls.empty()) fail(Errc::invalid_input, "a member needs at least one peer URL");
    return json{{"peerURLs", peer_urls}, {"isLearner", learner}}.dump();
}

std::string member_id_request(std::uint64_t id) { return json{{"ID", std::to_string(id)}}.dump(); }

std::string empty_request() { return "{}"; }

std::optional<Error> error_of_reply(const json& j) {
    if (!j.is_object()) return std::nullopt;
    auto it = j.find("error");
    if (it == j.end()) return std::nullopt;
    try {
        std::string message;
        int code = 2;
        if (it->is_string()) {  // unary: {"error":"...","message":"...","code":5}
            message = string(j, "message");
            if (message.empty()) message = it->get<std::string>();
            code = static_cast<int>(integer<std::int32_t>(j, "code"));
        } else if (it->is_object()) {  // stream: {"error":{"grpc_code":14,"message":"..."}}
            message = string(*it, "message");
            code = static_cast<int>(integer<std::int32_t>(*it, "grpc_code"));
        } else {
            malformed("error is neither a string nor an object");
        }
        if (message.empty()) message = "error code " + std::to_string(code);
        return Error(errc_of_grpc(code, message), "etcd: " + message);
    } catch (const Error& e) {
        return e;
    }
}

namespace {
// A proxy in front of etcd (or the gateway itself) failing is etcd being unreachable.
Errc errc_of_status(int status) {
    if (status == 502 || status == 503) return Errc::unavailable;
    if (status == 504) return Errc::timeout;
    return errc_from_http_status(status);
}
}  // namespace

json parse_answer(std::string_view body, int http_status) {
    json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    bool ok_status = http_status >= 200 && http_status < 300;
    if (j.is_discarded()) {
        std::string shown(body.substr(0, 200));
        if (!ok_status) fail(errc_of_status(http_status), "etcd answered HTTP {}: {}", http_status, shown);
        malformed("not JSON: " + shown);
    }
    if (auto e = error_of_reply(j)) throw *e;
    if (!ok_status) fail(errc_of_status(http_status), "etcd answered HTTP {}: {}", http_status, j.dump().substr(0, 200));
    if (!j.is_object()) malformed("not a JSON object");
    return j;
}

std::int64_t header_revision(const json& answer) { return i64(object(answer, "header"), "revision"); }

ListResult parse_range(const json& answer) {
    ListResult r;
    r.revision = header_revision(answer);
    r.kvs = kvs(answer);
    return r;
}

std::int64_t parse_put(const json& answer) {
    auto rev = header_revision(answer);
    if (rev <= 0) malformed("a put without a revision");
    return rev;
}

std::int64_t parse_deleterange(const json& answer) {
    header_revision(answer);
    auto n = i64(answer, "deleted");
    if (n < 0) malformed("a negative deleted count");
    return n;
}

TxnResult parse_txn(const json& answer) {
    TxnResult r;
    r.revision = header_revision(answer);
    r.succeeded = boolean(answer, "succeeded");
    for (const auto& resp : array(answer, "responses")) {
        if (!resp.is_object()) malformed("a txn response is not an object");
        if (const json* range = member(resp, "response_range")) {
            if (!range->is_object()) malformed("response_range is not an object");
            r.responses.push_back(kvs(*range));
        } else if (const json* put = member(resp, "response_put")) {
            if (!put->is_object()) malformed("response_put is not an object");
            r.responses.emplace_back();
        } else if (const json* del = member(resp, "response_delete_range")) {
            if (!del->is_object()) malformed("response_delete_range is not an object");
            r.responses.emplace_back();
        } else {
            malformed("a txn response of an unknown kind");
        }
    }
    return r;
}

std::int64_t parse_lease_grant(const json& answer) {
    header_revision(answer);
    if (auto err = string(answer, "error"); !err.empty()) fail(Errc::unavailable, "etcd: {}", err);
    auto id = i64(answer, "ID");
    if (id <= 0) malformed("a lease grant without an ID");
    return id;
}

std::int64_t parse_keepalive(const json& answer) {
    const json& r = object(answer, "result");
    header_revision(r);
    return i64(r, "TTL");
}

std::vector<StoreMember> parse_member_list(const json& answer) {
    std::vector<StoreMember> out;
    for (const auto& m : array(answer, "members")) out.push_back(store_member(m));
    return out;
}

std::pair<std::uint64_t, std::vector<StoreMember>> parse_member_add(const json& answer) {
    const json* m = member(answer, "member");
    if (!m) malformed("member add without the member");
    auto added = store_member(*m);
    return {added.id, parse_member_list(answer)};
}

StoreStatus parse_status(const json& answer) {
    StoreStatus s;
    const json& h = object(answer, "header");
    s.member_id = u64(h, "member_id");
    s.revision = i64(h, "revision");
    s.leader_id = u64(answer, "leader");
    s.raft_term = u64(answer, "raftTerm");
    s.version = string(answer, "version");
    if (s.member_id == 0) malformed("status without a member id");
    return s;
}

WatchResponse parse_watch_line(std::string_view line) {
    json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) malformed("a watch line that is not JSON: " + std::string(line.substr(0, 200)));
    if (!j.is_object()) malformed("a watch line that is not an object");
    if (auto e = error_of_reply(j)) throw *e;
    const json* result = member(j, "result");
    if (!result || !result->is_object()) malformed("a watch line without a result");
    WatchResponse w;
    w.revision = header_revision(*result);
    w.created = boolean(*result, "created");
    w.canceled = boolean(*result, "canceled");
    w.compact_revision = i64(*result, "compact_revision");
    w.cancel_reason = string(*result, "cancel_reason");
    std::int64_t last = 0;
    for (const auto& e : array(*result, "events")) {
        if (!e.is_object()) malformed("a watch event is not an object");
        WatchEvent ev;
        auto type = string(e, "type");
        if (type.empty() || type == "PUT")
            ev.type = WatchEvent::Type::put;
        else if (type == "DELETE")
            ev.type = WatchEvent::Type::del;
        else
            malformed("a watch event of type " + type.substr(0, 40));
        const json* kv = member(e, "kv");
        if (!kv) malformed("a watch event without kv");
        ev.kv = key_value(*kv);
        if (ev.kv.mod_revision <= 0 || ev.kv.mod_revision < last) malformed("watch events out of revision order");
        last = ev.kv.mod_revision;
        w.events.push_back(std::move(ev));
    }
    return w;
}

}  // namespace hv::cluster::etcd_json
