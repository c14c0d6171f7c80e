// A request fuzzer against a live hvd: every route of `hvd --print-routes` gets a valid request
// and then mutated ones (wrong types, edge numbers, missing and extra fields, deep nesting, huge
// arrays and strings, invalid UTF-8, unicode, truncated and random bodies, path and query junk).
// Every request must get an HTTP answer, no 5xx but 501/503/507, a JSON error object with every
// 4xx/5xx; hvd must be alive at the end, and nothing a rejected request named may exist then
// (domains, containers, volumes and files in the pool, pools, bridges).
//
// Deterministic: a fixed seed (HV_FUZZ_SEED overrides), HV_FUZZ_N mutations per route (default
// 40: about 3,700 requests, ~25 s here). HV_FUZZ_UTF8=0 leaves out the invalid UTF-8 mutations. hvd runs in the private
// libvirtd's network namespace, so bridges it makes never appear next to the host's links.
// Routes that would start a guest or delete what the test stands on get names of things that
// do not exist (or junk) instead of the fixtures' names.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <sstream>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client over the Unix socket: one connection per request (Connection: close).
// ---------------------------------------------------------------------------------------

struct Wire {
    std::string method;
    std::string target;
    std::string body;
    std::string headers;  // extra header lines, each ending in \r\n
};

struct Answer {
    bool answered = false;  // a status line came back
    int status = 0;
    std::string head;
    std::string body;
    std::string failure;  // why there is no answer
};

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string dechunk(const std::string& b) {
    std::string out;
    std::size_t i = 0;
    while (i < b.size()) {
        auto eol = b.find("\r\n", i);
        if (eol == std::string::npos) break;
        std::size_t n = std::strtoul(b.substr(i, eol - i).c_str(), nullptr, 16);
        if (n == 0) break;
        out += b.substr(eol + 2, n);
        i = eol + 2 + n + 2;
    }
    return out;
}

Answer send_raw(const std::string& socket_path, const Wire& w, std::chrono::milliseconds timeout) {
    Answer a;
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", socket_path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        a.failure = std::string("connect: ") + std::strerror(errno);
        ::close(fd);
        return a;
    }
    std::string req = w.method + " " + w.target + " HTTP/1.1\r\nHost: hvd\r\n" +
                      (w.headers.find("Connection:") == std::string::npos ? "Connection: close\r\n" : "") + w.headers;
    if (!w.body.empty() || w.method == "POST" || w.method == "PUT" || w.method == "PATCH")
        req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(w.body.size()) + "\r\n";
    req += "\r\n" + w.body;
    // hvd may answer (413, 400) before it has read everything: a write error is not a failure,
    // a missing answer is.
    std::size_t off = 0;
    auto deadline = Clock::now() + timeout;
    std::string in;
    bool eof = false;
    auto remaining = [&] {
        return static_cast<int>(
            std::max<long long>(0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
    };
    while (off < req.size() && Clock::now() < deadline) {
        pollfd p{fd, POLLOUT | POLLIN, 0};
        if (::poll(&p, 1, remaining()) <= 0) break;
        if (p.revents & POLLIN) break;  // an early answer
        auto n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
    }
    std::size_t header_end = std::string::npos;
    std::optional<std::size_t> length;
    while (!eof && Clock::now() < deadline) {
        if (header_end != std::string::npos) {
            if (a.status == 101) break;  // the connection is the console's now
            if (length && in.size() >= header_end + 4 + *length) break;
        }
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, remaining()) <= 0) break;
        char buf[65536];
        auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            eof = true;
            break;
        }
        in.append(buf, static_cast<std::size_t>(n));
        while (header_end == std::string::npos) {
            header_end = in.find("\r\n\r\n");
            if (header_end == std::string::npos) break;
            if (in.rfind("HTTP/1.1 ", 0) != 0 || in.size() < 12) {
                a.failure = "not an HTTP status line: " + in.substr(0, 80);
                break;
            }
            a.status = std::atoi(in.c_str() + 9);
            if (a.status >= 100 && a.status < 200 && a.status != 101) {  // 100 Continue: skip it
                in.erase(0, header_end + 4);
                header_end = std::string::npos;
                continue;
            }
            a.head = in.substr(0, header_end);
            auto lh = lower(a.head);
            auto cl = lh.find("\r\ncontent-length:");
            if (cl != std::string::npos) length = std::strtoull(lh.c_str() + cl + 17, nullptr, 10);
        }
        if (!a.failure.empty()) break;
    }
    ::close(fd);
    if (header_end == std::string::npos) {
        if (a.failure.empty())
            a.failure = eof ? "connection closed without an answer (" + std::to_string(in.size()) + " bytes)"
                            : "no answer within " + std::to_string(timeout.count()) + " ms";
        return a;
    }
    a.answered = true;
    a.body = in.substr(header_end + 4);
    if (length && a.body.size() > *length) a.body.resize(*length);
    if (lower(a.head).find("transfer-encoding: chunked") != std::string::npos) a.body = dechunk(a.body);
    return a;
}

// Reproducer text: printable ASCII as it is, everything else \xNN; long runs cut.
std::string escaped(const std::string& s, std::size_t max = 600) {
    std::string out;
    for (std::size_t i = 0; i < s.size() && i < max; ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        }
    }
    if (s.size() > max) out += "...(" + std::to_string(s.size()) + " bytes)";
    return out;
}

// ---------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------

// Raw text that nlohmann cannot produce (invalid UTF-8, deep nesting) goes into the body
// through a marker string replaced after dump().
const std::string kMarker = "@@FUZZ-RAW@@";

struct Fuzzer {
    std::mt19937 rng;
    bool utf8 = true;

    explicit Fuzzer(unsigned seed, bool with_utf8) : rng(seed), utf8(with_utf8) {}

    std::size_t pick(std::size_t n) { return n == 0 ? 0 : rng() % n; }
    template <class T>
    const T& one(const std::vector<T>& v) {
        return v[pick(v.size())];
    }

    // Pointers of every node below the root.
    static void nodes(const json& j, const json::json_pointer& at, std::vector<json::json_pointer>& out) {
        if (j.is_object()) {
            for (auto it = j.begin(); it != j.end(); ++it) {
                auto p = at / it.key();
                out.push_back(p);
                nodes(*it, p, out);
            }
        } else if (j.is_array()) {
            for (std::size_t i = 0; i < j.size(); ++i) {
                auto p = at / i;
                out.push_back(p);
                nodes(j[i], p, out);
            }
        }
    }
    std::optional<json::json_pointer> any_node(const json& j) {
        std::vector<json::json_pointer> v;
        nodes(j, json::json_pointer(), v);
        if (v.empty()) return std::nullopt;
        return v[pick(v.size())];
    }
    // Where a string can go: an existing node, or a new key at the root.
    json::json_pointer string_slot(json& body) {
        if (!body.is_object() && !body.is_array()) body = json::object();
        std::vector<json::json_pointer> v;
        nodes(body, json::json_pointer(), v);
        std::vector<json::json_pointer> strings;
        for (const auto& p : v)
            if (body[p].is_string()) strings.push_back(p);
        if (!strings.empty() && pick(4) != 0) return strings[pick(strings.size())];
        if (!v.empty() && pick(2) == 0) return v[pick(v.size())];
        return json::json_pointer("/name");
    }

    json other_type(const json& old) {
        std::vector<json> all = {json(nullptr), json(true),     json(false),           json(0),
                                 json(-7),      json(3.25),     json("x"),             json(""),
                                 json::array(), json::object(), json::array({1, "a"}), json({{"k", "v"}})};
        for (int i = 0; i < 20; ++i) {
            auto c = one(all);
            if (c.type() != old.type()) return c;
        }
        return json(nullptr);
    }

    json edge_number() {
        static const std::vector<json> v = {json(-1),
                                            json(0),
                                            json(1),
                                            json(65536),
                                            json(2147483647),
                                            json(2147483648LL),
                                            json(-2147483649LL),
                                            json(std::numeric_limits<std::int64_t>::max()),
                                            json(std::numeric_limits<std::int64_t>::min()),
                                            json(std::numeric_limits<std::uint64_t>::max()),
                                            json(1e308),
                                            json(-1e308),
                                            json(0.5),
                                            json(-0.0),
                                            json(4.9e-324),
                                            json("-1"),
                                            json("0"),
                                            json("1.5"),
                                            json("99999999P"),
                                            json("18446744073709551616"),
                                            json("1e3G"),
                                            json("-1M"),
                                            json("M"),
                                            json("0x10"),
                                            json(" 1G"),
                                            json("16T"),
                                            json("1E")};
        return one(v);
    }

    std::string bad_utf8_bytes() {
        static const std::vector<std::string> v = {"\xff",         "\xfe\xff",     "\xc0\xaf",  "\xe0\x80\xaf",
                                                   "\xed\xa0\x80", "\xf4\x90\x80\x80", "caf\xe9", "\x80",
                                                   "a\xc3",        "\xf8\x88\x80\x80\x80"};
        return one(v);
    }
    std::string unicode_text() {
        static const std::vector<std::string> v = {"caf\xc3\xa9",         "\xe5\x90\x8d\xe5\x89\x8d",
                                                   "\xf0\x9f\x98\x80",     "a\xe2\x80\xae" "b",
                                                   "\xef\xbb\xbf" "bom",   "\xc2\xa0",
                                                   "Stra\xc3\x9f" "e",     "\xe2\x80\x8b"};
        return one(v);
    }
    // JSON text (goes through the marker): escapes nlohmann's dump would not write.
    std::string escape_text() {
        static const std::vector<std::string> v = {"\"\\u0000\"", "\"a\\u0000b\"", "\"\\ud800\"", "\"\\udc00x\"",
                                                   "\"\\ud83d\"", "\"\\u00\"",     "\"\\x41\"",   "\"\\/..\\/\""};
        return one(v);
    }

    // Replaces the marker in dump() output with raw text.
    static std::string with_raw(const json& body, const std::string& raw) {
        auto s = body.dump();
        auto q = "\"" + kMarker + "\"";
        auto at = s.find(q);
        if (at != std::string::npos) s.replace(at, q.size(), raw);
        return s;
    }
};

// ---------------------------------------------------------------------------------------
// The routes: valid example requests and what may be done with them
// ---------------------------------------------------------------------------------------

struct RouteInfo {
    std::string method, pattern, kind;
};

struct Names {
    std::string prefix;  // "fz<pid>-"
    std::string vm, ct, volume, iso, bridge, task;
    const std::string tmpl = "busybox.tar.gz";
    std::size_t counter = 0;
    std::string fresh() { return prefix + std::to_string(++counter); }
};

struct Example {
    json body;            // null: no body
    bool raw = false;     // streaming upload: `raw_body` is the body
    std::string raw_body;
    std::string query;    // "?purge=1"
    std::string headers;  // extra header lines
    bool destructive = false;  // never aimed at the fixtures
    std::string creates;  // "vm", "ct", "pool", "volume", "iso", "template", "bridge", ...: body/param name is fresh
};

bool is(const RouteInfo& r, const char* method, const char* pattern) { return r.method == method && r.pattern == pattern; }

// What a valid request of a route looks like (docs/api.md, the existing tests).
Example example(const RouteInfo& r, Names& n, const std::string& extra_pool_dir) {
    Example e;
    const auto& p = r.pattern;
    auto ends = [&](const char* s) { return p.size() >= std::strlen(s) && p.compare(p.size() - std::strlen(s), std::string::npos, s) == 0; };
    if (r.method == "DELETE") e.destructive = true;
    if (is(r, "POST", "/v1/vms")) {
        e.creates = "vm";
        e.body = {{"name", n.fresh()}, {"cpus", 1}, {"memory", "64M"}, {"disks", json::array({{{"size", "1M"}}})},
                  {"nics", json::array({{{"bridge", n.bridge}}})}, {"description", "fuzz"}, {"tags", {"fz"}}};
    } else if (is(r, "PATCH", "/v1/vms/{name}")) {
        e.body = {{"cpus", 1}, {"memory", "64M"}, {"description", "patched"}, {"tags", {"a", "b"}}};
    } else if (is(r, "DELETE", "/v1/vms/{name}")) {
        e.query = "?purge=1";
    } else if (is(r, "POST", "/v1/vms/{name}/start") || is(r, "POST", "/v1/cts/{name}/start") ||
               is(r, "POST", "/v1/autostart/run")) {
        e.destructive = true;  // would boot a guest
        if (is(r, "POST", "/v1/autostart/run")) e.body = {{"boot_delay", false}};
    } else if (ends("/shutdown")) {
        e.body = {{"timeout", 5}, {"force", true}};
    } else if (is(r, "POST", "/v1/vms/{name}/disks")) {
        e.creates = "disk";
        e.body = {{"name", "d" + std::to_string(++n.counter)}, {"size", "1M"}, {"bus", "virtio"}, {"cache", "none"}};
    } else if (is(r, "POST", "/v1/vms/{name}/nics")) {
        e.body = {{"bridge", n.bridge}, {"model", "virtio"}};
    } else if (is(r, "PATCH", "/v1/vms/{name}/nics/{nic}")) {
        e.body = {{"mtu", 1400}};
    } else if (is(r, "PUT", "/v1/vms/{name}/cdrom")) {
        e.body = {{"iso", "local:iso/" + n.iso}};
    } else if (is(r, "POST", "/v1/storage/pools")) {
        e.creates = "pool";
        e.body = {{"name", n.fresh()}, {"type", "dir"}, {"path", extra_pool_dir}, {"content", {"images", "iso"}}};
    } else if (is(r, "POST", "/v1/storage/pools/{pool}/volumes")) {
        e.creates = "volume";
        e.body = {{"name", n.fresh()}, {"size", "1M"}, {"format", "raw"}, {"provision", "thin"}};
    } else if (ends("/resize")) {
        e.body = {{"size", "2M"}};
    } else if (ends("/clone")) {
        e.creates = "volume";
        e.body = {{"target", n.fresh()}};
    } else if (is(r, "PUT", "/v1/time")) {
        e.body = {{"servers", {"127.0.0.1"}}, {"pools", {"pool.example.org"}}, {"iburst", true}};
    } else if (ends("/autostart") && r.method == "PUT") {
        e.body = {{"enabled", false}, {"order", 1},           {"up", 0},          {"down", 10},
                  {"wait_for", "running"}, {"wait_timeout", 30}, {"after", json::array()}};
    } else if (is(r, "PUT", "/v1/autostart/host")) {
        e.body = {{"boot_delay", 0}, {"max_parallel", 2}, {"retries", 0}, {"retry_delay", 1}};
    } else if (is(r, "POST", "/v1/cts")) {
        e.creates = "ct";
        e.body = {{"name", n.fresh()}, {"cpus", 1}, {"memory", "64M"}, {"template", "busybox"},
                  {"rootfs", {{"pool", "local"}}}, {"unprivileged", true}, {"description", "fz"}, {"tags", {"fz"}}};
    } else if (is(r, "PATCH", "/v1/cts/{name}")) {
        e.body = {{"cpus", 1}, {"memory", "64M"}, {"description", "x"}};
    } else if (ends("/exec")) {
        e.body = {{"command", {"echo", "hi"}}, {"timeout", 5}};
    } else if (is(r, "GET", "/v1/cts/{name}/console")) {
        e.headers = "Connection: Upgrade\r\nUpgrade: hv-console\r\n";
    } else if (is(r, "POST", "/v1/storage/pools/{pool}/templates/build")) {
        e.creates = "template";
        e.body = {{"kind", "busybox"}, {"replace", false}};
    } else if (r.kind == "streaming") {
        e.creates = ends("/isos/{name}") || p.find("/isos/") != std::string::npos ? "iso" : "template";
        e.raw = true;
        e.raw_body = std::string(4096, 'Z');
    } else if (is(r, "POST", "/v1/net/bridges")) {
        e.creates = "bridge";
        e.body = {{"name", n.fresh()}, {"mtu", 1400}, {"purpose", "storage"}, {"vlan_aware", false}};
    } else if (is(r, "PATCH", "/v1/net/bridges/{name}")) {
        e.body = {{"mtu", 1450}, {"purpose", "vm"}};
    } else if (is(r, "POST", "/v1/net/bonds")) {
        e.creates = "bond";
        e.body = {{"name", n.fresh()}, {"mode", "active-backup"}, {"miimon", 100}, {"members", json::array()}};
    } else if (is(r, "PATCH", "/v1/net/bonds/{name}")) {
        e.body = {{"miimon", 200}};
    } else if (is(r, "POST", "/v1/net/vlans")) {
        e.creates = "vlan";
        e.body = {{"name", n.fresh()}, {"parent", "lo"}, {"id", 100}};
    } else if (is(r, "PATCH", "/v1/net/vlans/{name}")) {
        e.body = {{"mtu", 1400}};
    } else if (is(r, "POST", "/v1/net/apply")) {
        e.body = {{"confirm_within", 60}};
    } else if (is(r, "GET", "/v1/tasks/{id}/log")) {
        e.query = "?after=0";
    } else if (is(r, "GET", "/v1/net/nics")) {
        e.query = "?all=1";
    }
    return e;
}

// A parameter's value in a valid request: the fixture, or something that does not exist (all
// a destructive route ever gets besides junk).
std::string param_value(const RouteInfo& r, const std::string& param, const Example& e, Fuzzer& f, Names& n) {
    const auto& p = r.pattern;
    std::string missing = n.prefix + "nosuch";
    bool fixture = !e.destructive && f.pick(5) != 0;
    if (param == "pool") return f.pick(6) == 0 ? missing : "local";
    if (param == "id") return fixture ? n.task : "t-999999";
    if (param == "disk") return fixture ? "disk0" : "nosuch";
    if (param == "nic") return fixture ? "net0" : "nosuch";
    if (p.rfind("/v1/vms/", 0) == 0) return fixture ? n.vm : missing;
    if (p.rfind("/v1/cts/", 0) == 0) return fixture ? n.ct : missing;
    if (p.find("/volumes/") != std::string::npos) return fixture ? n.volume : missing + ".raw";
    if (p.find("/isos/") != std::string::npos) {
        if (e.creates == "iso") return n.fresh() + ".iso";
        return fixture ? n.iso : missing + ".iso";
    }
    if (p.find("/templates/") != std::string::npos) {
        if (e.creates == "template") return n.fresh() + ".tar";
        return fixture ? n.tmpl : missing + ".tar";
    }
    if (p.find("/net/bridges/") != std::string::npos) return fixture ? n.bridge : "fznosuch";
    return missing;
}

std::string pct_encode_all(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
            out += static_cast<char>(c);
        } else {
            char b[4];
            std::snprintf(b, sizeof b, "%%%02X", c);
            out += b;
        }
    }
    return out;
}

std::string path_junk(Fuzzer& f) {
    std::vector<std::string> v = {"%00",        "a%00b",  "..",       "%2e%2e",        "../../etc/passwd",
                                  "a%2Fb",      "%",      "%zz",      "%C3%A9",        "caf%C3%A9",
                                  "%20",        "%0A",    "%0d%0a",   "-lead",         std::string(300, 'a'),
                                  std::string(4000, 'b'), "name;rm", "%2F", "+", "a+b", "%25FF"};
    if (f.utf8) v.insert(v.end(), {"%FF", "%C0%AF", "%ED%A0%80", "caf%E9", "%80"});
    return f.one(v);
}

std::string query_junk(Fuzzer& f) {
    std::vector<std::string> v = {"?purge=1&purge=0", "?force=maybe",  "?after=-1",  "?after=99999999999999999999",
                                  "?all=2",           "?=",             "?&&&",       "?%",
                                  "?a=%zz",           "?sha256=zz",     "?sha256=" + std::string(64, '0'),
                                  "?replace=1&replace=1", "?purge",     "?x=%00",     "?" + std::string(3000, 'q'),
                                  "?after=1e3",       "?force=%20"};
    if (f.utf8) v.insert(v.end(), {"?purge=%FF", "?%FF=1", "?after=%C0%AF", "?all=caf%E9"});
    return f.one(v);
}

std::string url_decoded(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

struct Request {
    Wire wire;
    std::string mutation;
    std::string created_name;  // the name a create would make, when it is one
};

// Builds the valid request (mutation "valid") or a mutated one.
Request build(const RouteInfo& r, Names& n, Fuzzer& f, const std::string& extra_pool_dir, bool valid) {
    Request q;
    auto e = example(r, n, extra_pool_dir);
    // Path with parameters filled in.
    std::vector<std::string> params;
    std::string path;
    std::size_t i = 0;
    while (i < r.pattern.size()) {
        auto open = r.pattern.find('{', i);
        if (open == std::string::npos) {
            path += r.pattern.substr(i);
            break;
        }
        auto close = r.pattern.find('}', open);
        path += r.pattern.substr(i, open - i);
        auto name = r.pattern.substr(open + 1, close - open - 1);
        params.push_back(name);
        path += "{" + name + "}";
        i = close + 1;
    }
    std::map<std::string, std::string> values;
    for (const auto& pn : params) values[pn] = pct_encode_all(param_value(r, pn, e, f, n));
    std::string query = e.query;
    json body = e.body;
    std::string raw;  // set: the body text as it is
    bool have_raw = false;
    q.wire.method = r.method;
    q.wire.headers = e.headers;
    q.mutation = "valid";

    if (!valid) {
        // Mutations that apply to every route; body ones apply to an empty object when the
        // route takes no body.
        enum {
            wrong_type, edge_number, drop_field, extra_field, deep_nest, huge_array, huge_string, bad_utf8_value,
            bad_utf8_key, json_escape, unicode, truncated, random_bytes, odd_body, dup_key, path_junk_m, query_junk_m,
            extra_segment, header_junk, count
        };
        int m = static_cast<int>(f.pick(count));
        if (!f.utf8 && (m == bad_utf8_value || m == bad_utf8_key || m == json_escape)) m = unicode;
        if (e.raw && m < truncated) m = random_bytes + static_cast<int>(f.pick(2));  // uploads: bytes only
        if (body.is_null() && !e.raw) body = json::object();
        auto target_node = [&]() -> std::optional<json::json_pointer> { return f.any_node(body); };
        switch (m) {
            case wrong_type:
                if (auto p = target_node()) {
                    body[*p] = f.other_type(body[*p]);
                    q.mutation = "wrong type at " + p->to_string();
                } else {
                    body = f.other_type(body);
                    q.mutation = "wrong type of the body";
                }
                break;
            case edge_number: {
                auto p = target_node().value_or(json::json_pointer("/size"));
                body[p] = f.edge_number();
                q.mutation = "edge number at " + p.to_string();
                break;
            }
            case drop_field:
                if (body.is_object() && !body.empty()) {
                    auto it = body.begin();
                    std::advance(it, static_cast<long>(f.pick(body.size())));
                    q.mutation = "missing " + it.key();
                    body.erase(it.key());
                } else {
                    q.mutation = "missing (nothing to drop)";
                }
                break;
            case extra_field: {
                auto p = target_node();
                if (p && body[*p].is_object() && f.pick(2) == 0) {
                    body[*p]["zz_unknown"] = 1;
                    q.mutation = "extra field in " + p->to_string();
                } else if (body.is_object()) {
                    body["zz_unknown"] = f.one(std::vector<json>{json(1), json("x"), json::object()});
                    q.mutation = "extra field";
                }
                break;
            }
            case deep_nest: {
                auto depth = f.one(std::vector<std::size_t>{64, 1000, 100000});
                auto p = target_node().value_or(json::json_pointer("/name"));
                body[p] = kMarker;
                raw = Fuzzer::with_raw(body, std::string(depth, '[') + "1" + std::string(depth, ']'));
                have_raw = true;
                q.mutation = "nesting " + std::to_string(depth) + " at " + p.to_string();
                break;
            }
            case huge_array: {
                auto p = target_node().value_or(json::json_pointer("/tags"));
                auto n_items = f.one(std::vector<std::size_t>{10000, 300000});
                json a = json::array();
                for (std::size_t k = 0; k < n_items; ++k) a.push_back(f.pick(2) ? json(k) : json("t" + std::to_string(k)));
                body[p] = std::move(a);
                q.mutation = "array of " + std::to_string(n_items) + " at " + p.to_string();
                break;
            }
            case huge_string: {
                auto p = f.string_slot(body);
                auto len = f.one(std::vector<std::size_t>{256, 70000, 3u << 20});
                body[p] = std::string(len, 'a');
                q.mutation = "string of " + std::to_string(len) + " at " + p.to_string();
                break;
            }
            case bad_utf8_value: {
                auto p = f.string_slot(body);
                body[p] = kMarker;
                raw = Fuzzer::with_raw(body, "\"a" + f.bad_utf8_bytes() + "z\"");
                have_raw = true;
                q.mutation = "invalid UTF-8 at " + p.to_string();
                break;
            }
            case bad_utf8_key: {
                if (!body.is_object()) body = json::object();
                auto s = body.dump();
                raw = "{\"k" + f.bad_utf8_bytes() + "\":1" + (s.size() > 2 ? "," + s.substr(1) : "}");
                have_raw = true;
                q.mutation = "invalid UTF-8 in a key";
                break;
            }
            case json_escape: {
                auto p = f.string_slot(body);
                body[p] = kMarker;
                raw = Fuzzer::with_raw(body, f.escape_text());
                have_raw = true;
                q.mutation = "escape at " + p.to_string();
                break;
            }
            case unicode: {
                auto p = f.string_slot(body);
                body[p] = f.unicode_text();
                q.mutation = "unicode at " + p.to_string();
                break;
            }
            case truncated: {
                auto s = e.raw ? e.raw_body : body.dump();
                raw = s.substr(0, f.pick(s.size()));
                have_raw = true;
                q.mutation = "truncated";
                break;
            }
            case random_bytes: {
                auto len = f.pick(f.pick(4) == 0 ? 70000 : 512) + 1;
                raw.resize(len);
                for (auto& c : raw) c = static_cast<char>(f.utf8 ? f.pick(256) : f.pick(128));
                have_raw = true;
                q.mutation = "random bytes";
                break;
            }
            case odd_body:
                raw = f.one(std::vector<std::string>{"", "null", "[]", "\"x\"", "0", "{", "}", "{}", "[{}]",
                                                     "{\"a\":1,}", "{'a':1}", "true", "-", "1e999", " \n\t ",
                                                     "{\"\":1}", "/*c*/{}", "NaN"});
                have_raw = true;
                q.mutation = "odd body";
                break;
            case dup_key:
                if (body.is_object() && !body.empty()) {
                    auto s = body.dump();
                    raw = "{" + json(body.begin().key()).dump() + ":" + f.other_type(body.begin().value()).dump() + "," +
                          s.substr(1);
                    have_raw = true;
                }
                q.mutation = "duplicate key";
                break;
            case path_junk_m:
                if (!values.empty()) {
                    auto it = values.begin();
                    std::advance(it, static_cast<long>(f.pick(values.size())));
                    it->second = path_junk(f);
                    q.mutation = "path junk in {" + it->first + "}";
                } else {
                    path += "/" + path_junk(f);
                    q.mutation = "path junk appended";
                }
                break;
            case query_junk_m:
                query = query_junk(f);
                q.mutation = "query junk";
                break;
            case extra_segment:
                path = f.one(std::vector<std::string>{path + "/", path + "//x", "/" + path, path + "/.",
                                                      path + "/..", path + "/%2e%2e/x", path + "?", path + "#frag"});
                q.mutation = "path shape";
                break;
            case header_junk:
                q.wire.headers += f.one(std::vector<std::string>{
                    "Content-Encoding: gzip\r\n", "Transfer-Encoding: identity\r\n", "Upgrade: hv-console\r\n",
                    "Connection: Upgrade\r\nUpgrade: h2c\r\n", "X-Junk: " + std::string(6000, 'h') + "\r\n",
                    "Expect: something\r\n", "Content-Type: text/plain\r\n", "Host: \r\n"});
                q.mutation = "header junk";
                break;
        }
    }
    for (const auto& [k, v] : values) {
        auto at = path.find("{" + k + "}");
        if (at != std::string::npos) path.replace(at, k.size() + 2, v);
    }
    q.wire.target = path + query;
    if (have_raw) {
        q.wire.body = raw;
    } else if (e.raw) {
        q.wire.body = e.raw_body;
    } else if (!body.is_null()) {
        q.wire.body = body.dump();
    }
    if (!e.creates.empty()) {
        auto j = json::parse(q.wire.body, nullptr, false);
        if (j.is_object() && j.contains("name") && j["name"].is_string()) q.created_name = j["name"];
        if (j.is_object() && j.contains("target") && j["target"].is_string()) q.created_name = j["target"];
        if (e.raw) q.created_name = url_decoded(values["name"]);
        if (r.pattern.ends_with("/templates/build") && j.is_object() && j.contains("kind") && j["kind"].is_string())
            q.created_name = j["kind"].get<std::string>() + ".tar.gz";
    }
    return q;
}

bool error_object(const std::string& body) {
    auto j = json::parse(body, nullptr, false);
    return j.is_object() && j.contains("error") && j["error"].is_object() && j["error"].contains("code") &&
           j["error"]["code"].is_string() && j["error"].contains("message") && j["error"]["message"].is_string();
}

// ---------------------------------------------------------------------------------------
// What exists (compared before and after)
// ---------------------------------------------------------------------------------------

std::set<std::string> lines(const std::string& s) {
    std::set<std::string> out;
    std::size_t i = 0;
    while (i < s.size()) {
        auto j = s.find('\n', i);
        if (j == std::string::npos) j = s.size();
        auto l = s.substr(i, j - i);
        while (!l.empty() && (l.back() == ' ' || l.back() == '\r')) l.pop_back();
        while (!l.empty() && l.front() == ' ') l.erase(0, 1);
        if (!l.empty()) out.insert(l);
        i = j + 1;
    }
    return out;
}

std::set<std::string> tree(const std::string& dir) {
    std::set<std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
        out.insert(it->path().string());
    return out;
}

struct Snapshot {
    std::set<std::string> domains, containers, libvirt_pools, hv_pools, files, links;
};

Snapshot snapshot(const Hvd& hvd, const std::vector<std::string>& dirs) {
    Snapshot s;
    auto d = virsh({"list", "--all", "--name"});
    REQUIRE(d.exit_code == 0);
    s.domains = lines(d.out);
    auto c = run({"virsh", "-q", "-c", lxc_uri(), "list", "--all", "--name"});
    REQUIRE(c.exit_code == 0);
    s.containers = lines(c.out);
    auto p = virsh({"pool-list", "--all", "--name"});
    REQUIRE(p.exit_code == 0);
    s.libvirt_pools = lines(p.out);
    for (const auto& pool : hvd.ctl_json({"storage", "pool", "list"})) s.hv_pools.insert(pool.value("name", ""));
    for (const auto& dir : dirs)
        for (const auto& f : tree(dir)) s.files.insert(f);
    auto l = in_libvirt_netns({"ip", "-o", "link", "show"});
    REQUIRE(l.exit_code == 0);
    for (const auto& line : lines(l.out)) {
        auto a = line.find(": ");
        auto b = line.find(':', a + 2);
        if (a != std::string::npos && b != std::string::npos) s.links.insert(line.substr(a + 2, b - a - 2));
    }
    return s;
}

std::vector<std::string> minus(const std::set<std::string>& a, const std::set<std::string>& b) {
    std::vector<std::string> out;
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
}

std::string last_line(std::string s) {
    while (!s.empty() && s.back() == '\n') s.pop_back();
    auto nl = s.rfind('\n');
    return nl == std::string::npos ? s : s.substr(nl + 1);
}

int env_int(const char* name, int dflt) {
    const char* v = std::getenv(name);
    return v && *v ? std::atoi(v) : dflt;
}

}  // namespace

TEST_CASE("request fuzzer: every route answers, no 5xx but 501/503/507, rejected creates leave nothing",
          "[integration][fuzz]") {
    const auto t0 = Clock::now();
    const unsigned seed = static_cast<unsigned>(env_int("HV_FUZZ_SEED", 20261202));
    const int per_route = env_int("HV_FUZZ_N", 40);
    const bool utf8 = env_int("HV_FUZZ_UTF8", 1) != 0;

    // Time routes point at a sources file of this test and a chronyc that always fails (PUT
    // answers 503 and restores the file); templates build offline only.
    char tmpl[] = "/tmp/hvfz-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string own = tmpl;
    struct RemoveDir {
        std::string d;
        ~RemoveDir() {
            std::error_code ec;
            fs::remove_all(d, ec);
        }
    } remove_own{own};
    fs::create_directories(own + "/sources");
    fs::create_directories(own + "/extra-pool");
    std::string config = "[time]\nchronyc = \"/bin/false\"\ncommand_address = \"" + own +
                         "/no-chronyd.sock\"\nsources_file = \"" + own +
                         "/sources/hv.sources\"\nservice = \"hv-fuzz-no-such-unit\"\n"
                         "[containers]\ndebian_mirror = \"http://127.0.0.1:9/debian\"\n";
    Hvd hvd(true, config, /*in_libvirt_netns=*/true);

    auto routes_out = run({env("HVD_BIN"), "--print-routes"});
    INFO(routes_out.describe());
    REQUIRE(routes_out.exit_code == 0);
    auto table = json::parse(routes_out.out, nullptr, false);
    REQUIRE(table.is_array());
    std::vector<RouteInfo> routes;
    for (const auto& r : table) routes.push_back({r.at("method"), r.at("pattern"), r.at("kind")});
    REQUIRE(routes.size() > 50);

    Names n;
    // Fixed width, so the bodies (and where a truncation cuts them) are the same in every run.
    n.prefix = fmt::format("fz{:05d}-", ::getpid() % 100000);
    const std::vector<std::string> watched_dirs = {hvd.pool_dir, own + "/extra-pool", own + "/sources"};
    const auto before = snapshot(hvd, watched_dirs);

    // Fixtures: a bridge (in the private namespace), a stopped VM with a disk and a NIC on it,
    // a stopped container from the busybox template, a volume, an ISO, and a finished task.
    n.bridge = n.prefix + "br";
    n.vm = hvd.vm("fzvm");
    n.volume = n.prefix + "vol";
    n.iso = n.prefix + "f.iso";
    REQUIRE(hvd.ctl({"net", "bridge", "create", n.bridge}).exit_code == 0);
    auto made = hvd.ctl({"vm", "create", n.vm, "--memory", "64M", "--disk", "size=1M", "--net", "bridge=" + n.bridge});
    INFO(made.describe());
    REQUIRE(made.exit_code == 0);
    n.ct = n.prefix + "ct";
    auto built = hvd.ctl({"ct", "template", "build", "busybox"});
    INFO(built.describe());
    REQUIRE(built.exit_code == 0);
    // The harness's temp dir is 0700: an unprivileged container's ids must reach their rootfs.
    fs::permissions(hvd.dir, fs::perms::others_exec, fs::perm_options::add);
    auto ct_made = hvd.ctl({"ct", "create", n.ct, "--template", "busybox"});
    INFO(ct_made.describe());
    REQUIRE(ct_made.exit_code == 0);
    REQUIRE(hvd.ctl({"storage", "volume", "create", "local", n.volume, "--size", "1M", "--format", "raw"}).exit_code ==
            0);
    auto up = send_raw(hvd.socket, {"PUT", "/v1/storage/pools/local/isos/" + n.iso, std::string(2048, 'I'), ""}, 30s);
    INFO(up.failure << up.head << up.body);
    REQUIRE(up.answered);
    REQUIRE(up.status == 201);
    auto tasks = hvd.ctl_json({"task", "list"});
    REQUIRE_FALSE(tasks.empty());
    n.task = tasks.back().value("id", "");

    Fuzzer f(seed, utf8);
    struct Failure {
        std::string why, mutation;
        Wire wire;
    };
    std::vector<Failure> failures;
    std::map<int, int> by_status;
    std::map<std::string, std::map<int, int>> by_route;
    std::map<std::string, std::string> accepted;  // created name -> kind, from 2xx creates
    std::set<std::string> rejected_names;         // names of creates that were refused
    int total = 0, restarts = 0;
    constexpr int kMaxRestarts = 20;
    bool stopped_early = false;
    std::vector<Failure> recent;  // the last two requests

    for (const auto& r : routes) {
        if (stopped_early) break;
        // Nothing the autostart run could start: the fixture VM's autostart goes back to off.
        if (is(r, "POST", "/v1/autostart/run")) {
            send_raw(hvd.socket, {"PUT", "/v1/vms/" + n.vm + "/autostart", R"({"enabled":false})", ""}, 30s);
            send_raw(hvd.socket, {"PUT", "/v1/cts/" + n.ct + "/autostart", R"({"enabled":false})", ""}, 30s);
        }
        const std::string key = r.method + " " + r.pattern;
        for (int k = 0; k <= per_route; ++k) {
            auto q = build(r, n, f, own + "/extra-pool", k == 0);
            auto a = send_raw(hvd.socket, q.wire, 40s);
            ++total;
            int st = a.answered ? a.status : 0;
            ++by_status[st];
            ++by_route[key][st];
            auto fail_with = [&](const std::string& why) { failures.push_back({why, q.mutation, q.wire}); };
            recent.push_back({"", q.mutation, q.wire});
            if (recent.size() > 2) recent.erase(recent.begin());
            if (!a.answered) {
                fail_with("no HTTP answer: " + a.failure);
            } else if (st >= 500 && st != 501 && st != 503 && st != 507) {
                fail_with("status " + std::to_string(st) + ": " + escaped(a.body, 300));
            } else if (st >= 400 && !error_object(a.body)) {
                fail_with("status " + std::to_string(st) + " without a JSON error object: " + escaped(a.body, 300));
            }
            if (!q.created_name.empty()) {
                if (st >= 200 && st < 300) accepted[q.created_name] = q.mutation;
                else rejected_names.insert(q.created_name);
            }
            if (!a.answered || total % 50 == 0) {
                // An hvd that drops a connection may be on its way out: give it a moment.
                if (!a.answered) wait_until([&] { return !hvd.running(); }, 2s, 20ms);
                if (!hvd.running()) {
                    int status = hvd.stop();
                    // The request before may have been the cause (a task it started).
                    if (recent.size() >= 2) {
                        auto prev = recent[recent.size() - 2];
                        prev.why = "(the request before the death below)";
                        failures.push_back(prev);
                    }
                    failures.push_back({"hvd died (exit status " + std::to_string(status) + ") at or before this request: " +
                                            last_line(hvd.log_tail(3)),
                                        q.mutation, q.wire});
                    stopped_early = ++restarts > kMaxRestarts;
                    hvd.start();
                    if (stopped_early) break;
                }
            }
        }
    }
    const auto fuzz_time = std::chrono::duration<double>(Clock::now() - t0).count();

    // Let the accepted tasks finish (creates, clones, builds) before looking at what exists.
    bool idle = wait_until(
        [&] {
            auto h = send_raw(hvd.socket, {"GET", "/v1/tasks", "", ""}, 10s);
            auto j = json::parse(h.body, nullptr, false);
            if (!j.is_array()) return false;
            for (const auto& t : j)
                if (t.value("state", "") == "pending" || t.value("state", "") == "running") return false;
            return true;
        },
        90s, 200ms);
    CHECK(idle);

    // hvd lives and answers.
    REQUIRE(hvd.running());
    auto list = hvd.ctl({"vm", "list"});
    INFO(list.describe());
    CHECK(list.exit_code == 0);

    // What hvd shows beyond the fixtures must come from accepted creates; remove it all.
    std::vector<std::string> leftovers;
    auto note = [&](const std::string& kind, const std::string& name) {
        auto stem = name.substr(0, name.find('.'));
        if (!accepted.count(name) && !accepted.count(stem)) leftovers.push_back(kind + " '" + escaped(name) + "' (no create of it succeeded)");
    };
    for (const auto& vm : hvd.ctl_json({"vm", "list"})) {
        std::string name = vm.value("name", "");
        if (name == n.vm || before.domains.count(name)) continue;
        note("vm", name);
        virsh({"destroy", name});
        auto d = hvd.ctl({"vm", "delete", name, "--purge"});
        if (d.exit_code != 0) leftovers.push_back("vm '" + escaped(name) + "' cannot be deleted: " + d.describe());
    }
    for (const auto& ct : hvd.ctl_json({"ct", "list"})) {
        std::string name = ct.value("name", "");
        if (name == n.ct || before.containers.count(name)) continue;
        note("container", name);
        hvd.ctl({"ct", "stop", name});
        hvd.ctl({"ct", "delete", name});
    }
    auto delete_http = [&](const std::string& what, const std::string& target) {
        auto h = send_raw(hvd.socket, {"DELETE", target, "", ""}, 60s);
        if (!h.answered || h.status != 200)
            leftovers.push_back(what + " cannot be deleted: " + std::to_string(h.status) + " " + escaped(h.body, 200));
    };
    for (const auto& pool : hvd.ctl_json({"storage", "pool", "list"})) {
        std::string pname = pool.value("name", "");
        for (const auto& v : hvd.ctl_json({"storage", "volume", "list", pname})) {
            std::string vname = v.value("name", "");
            if (vname == n.volume) continue;
            if (!v.value("used_by", json::array()).empty()) continue;  // the fixture VM's disks
            note("volume", vname);
            delete_http("volume " + pname + "/" + vname, "/v1/storage/pools/" + pct_encode_all(pname) + "/volumes/" +
                                                             pct_encode_all(vname));
        }
        for (const char* content : {"isos", "templates"}) {
            auto h = send_raw(hvd.socket, {"GET", "/v1/storage/pools/" + pct_encode_all(pname) + "/" + content, "", ""}, 30s);
            auto j = json::parse(h.body, nullptr, false);
            if (!j.is_array()) continue;
            for (const auto& file : j) {
                std::string fname = file.value("name", "");
                if (fname == n.iso || fname == n.tmpl) continue;
                note(content, fname);
                delete_http(std::string(content) + " " + fname, "/v1/storage/pools/" + pct_encode_all(pname) + "/" +
                                                                    content + "/" + pct_encode_all(fname));
            }
        }
        if (!before.hv_pools.count(pname)) {
            note("pool", pname);
            delete_http("pool " + pname, "/v1/storage/pools/" + pct_encode_all(pname));
        }
    }
    for (const auto& br : hvd.ctl_json({"net", "bridge", "list"})) {
        std::string name = br.value("name", "");
        if (name == n.bridge) continue;
        note("bridge", name);
        delete_http("bridge " + name, "/v1/net/bridges/" + pct_encode_all(name) + "?force=1");
    }
    // The fixtures go the same way (through hvd), then everything must be as it was.
    CHECK(hvd.ctl({"vm", "delete", n.vm, "--purge"}).exit_code == 0);
    CHECK(hvd.ctl({"storage", "volume", "delete", "local", n.volume}).exit_code == 0);
    delete_http("iso " + n.iso, "/v1/storage/pools/local/isos/" + n.iso);
    hvd.ctl({"ct", "stop", n.ct});
    CHECK(hvd.ctl({"ct", "delete", n.ct}).exit_code == 0);
    delete_http("template " + n.tmpl, "/v1/storage/pools/local/templates/" + n.tmpl);
    CHECK(hvd.ctl({"net", "bridge", "delete", n.bridge}).exit_code == 0);
    // The extra pool's directory was made by the test; what an accepted pool add put in it is fine.
    auto after = snapshot(hvd, {hvd.pool_dir, own + "/sources"});
    auto before_files = before.files;
    std::erase_if(before_files, [&](const std::string& p) { return p.rfind(own + "/extra-pool", 0) == 0; });
    for (const auto& d : minus(after.domains, before.domains)) leftovers.push_back("libvirt domain " + d);
    for (const auto& d : minus(after.containers, before.containers)) leftovers.push_back("LXC domain " + d);
    for (const auto& d : minus(after.libvirt_pools, before.libvirt_pools)) leftovers.push_back("libvirt pool " + d);
    for (const auto& d : minus(after.hv_pools, before.hv_pools)) leftovers.push_back("hv pool " + d);
    for (const auto& d : minus(after.files, before_files)) leftovers.push_back("file " + escaped(d));
    for (const auto& d : minus(after.links, before.links)) leftovers.push_back("link " + escaped(d));

    // Summary.
    const auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::ostringstream sum;
    sum << "request fuzzer: seed " << seed << ", " << routes.size() << " routes, " << per_route
        << " mutations each, " << total << " requests in " << fuzz_time << " s (" << secs << " s with setup and checks)"
        << (utf8 ? "" : ", invalid UTF-8 mutations OFF") << ", hvd restarts " << restarts
        << (stopped_early ? " (stopped early: too many)" : "") << "\n  by status:";
    for (const auto& [s, c] : by_status) sum << " " << (s ? std::to_string(s) : "none") << "=" << c;
    sum << "\n  accepted creates: " << accepted.size() << ", refused creates: " << rejected_names.size() << "\n";
    for (const auto& [route, m] : by_route) {
        sum << "  " << route << ":";
        for (const auto& [s, c] : m) sum << " " << (s ? std::to_string(s) : "none") << "=" << c;
        sum << "\n";
    }
    sum << "  failures: " << failures.size() << ", leftovers: " << leftovers.size() << "\n";
    for (const auto& fl : failures)
        sum << "  FAIL " << fl.why << "\n    mutation: " << fl.mutation << "\n    reproducer: " << fl.wire.method << " "
            << escaped(fl.wire.target, 200) << "\n    headers: " << escaped(fl.wire.headers, 200)
            << "\n    body: " << escaped(fl.wire.body, 400) << "\n";
    for (const auto& l : leftovers) sum << "  LEFTOVER " << l << "\n";
    std::cout << sum.str() << std::flush;

    CHECK(failures.empty());
    CHECK(leftovers.empty());
    CHECK(restarts == 0);
    CHECK_FALSE(stopped_early);
    CHECK(hvd.running());
    // fuzz_time is printed in the summary above, never asserted (speed lives in bench/).
}
