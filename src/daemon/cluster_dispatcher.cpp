#include "cluster_dispatcher.hpp"

#include <cstdlib>
#include <ctime>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include "https_client.hpp"
#include "tls_relay.hpp"
#include "hv/api/guest.hpp"
#include "hv/error.hpp"
#include "hv/util/guard.hpp"

namespace hv::daemon {
using nlohmann::json;

namespace {
std::string encode(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            out += static_cast<char>(c);
        else
            out += fmt::format("%{:02X}", c);
    }
    return out;
}
}  // namespace

std::string request_target(const Request& req) {
    std::string t = req.path;  // as it arrived (still percent-encoded; checked by split_target)
    char sep = '?';
    for (const auto& [k, v] : req.query) {
        t += sep + encode(k) + "=" + encode(v);
        sep = '&';
    }
    return t;
}

ClusterDispatcher::ClusterDispatcher(cluster::Cluster& c, std::chrono::seconds timeout) : c_(c), timeout_(timeout) {}
ClusterDispatcher::~ClusterDispatcher() = default;

void ClusterDispatcher::admit(const Request& req) const {
    const bool join_route = req.method == "POST" && req.path == "/v1/cluster/join-request";
    if (req.peer_subject.empty()) {
        if (join_route) fail(Errc::forbidden, "the join request is made between hosts over TLS; use hvctl cluster join");
        return;
    }
    if (req.peer_subject.rfind("host:", 0) == 0) return;
    if (req.peer_subject.rfind("join:", 0) == 0) {
        if (!join_route) fail(Errc::forbidden, "a join certificate may only ask to join");
        return;
    }
    fail(Errc::forbidden, "certificate '{}' is not a cluster host's", req.peer_subject);
}

std::optional<std::string> ClusterDispatcher::owner(const Request& req) const {
    if (!req.forwarded_by.empty()) return std::nullopt;
    if (!c_.member()) {
        if (auto h = req.query.find("host"); h != req.query.end() && !h->second.empty() && h->second != c_.node())
            fail(Errc::not_found, "no host named '{}': this host ({}) is in no cluster", h->second, c_.node());
        return std::nullopt;
    }
    const std::string self = c_.node();
    const std::string& r = req.resource;
    std::optional<std::string> node;
    if (r.rfind("guest:", 0) == 0) {
        node = c_.owner_of(r.substr(6));
    } else if (r.rfind("task:", 0) == 0) {
        auto at = r.find('@');
        if (at != std::string::npos) node = r.substr(at + 1);
    } else if (auto h = req.query.find("host"); h != req.query.end() && !h->second.empty()) {
        node = h->second;
        if (*node != self && !c_.address_of(*node))
            fail(Errc::not_found, "no host named '{}' in the cluster (hvctl cluster status)", *node);
    }
    if (!node || *node == self) return std::nullopt;
    return node;
}

std::shared_ptr<cluster::HttpsClient> ClusterDispatcher::client() const {
    auto id = c_.identity();
    if (!id) fail(Errc::unavailable, "this host has no cluster certificate");
    std::lock_guard lk(mu_);
    if (!client_ || client_cert_ != id->cert_pem) {
        // Forwarded work may take as long as a request may (the owner answers 504 itself).
        client_ = std::make_shared<cluster::HttpsClient>(*id, std::chrono::milliseconds(timeout_) + std::chrono::seconds(5));
        client_cert_ = id->cert_pem;
    }
    return client_;
}

std::pair<std::string, int> ClusterDispatcher::reachable(const std::string& node, const Request& req) const {
    auto addr = c_.address_of(node);
    if (!addr) fail(Errc::unavailable, "host {} is not (or no longer) a member of the cluster", node);
    if (!c_.online(node)) fail(Errc::unavailable, "host {} is offline: {} cannot be done now", node, req.resource);
    return *addr;
}

namespace {
std::string request_head(const Request& req, const std::string& self, const std::string& host,
                         const std::vector<std::string>& extra) {
    std::string h = fmt::format("{} {} HTTP/1.1\r\nHost: {}\r\nX-Hv-Forwarded-By: {}\r\nX-Request-Id: {}\r\n", req.method,
                                request_target(req), host, self, req.request_id);
    for (const auto& e : extra) h += e + "\r\n";
    return h + "\r\n";
}

// "HTTP/1.1 409 Conflict\r\nContent-Length: 12\r\n..." -> status and lower-case headers.
int parse_head(const std::string& head, std::map<std::string, std::string>& headers) {
    auto sp = head.find(' ');
    if (head.rfind("HTTP/1.", 0) != 0 || sp == std::string::npos || head.size() < sp + 4)
        fail(Errc::internal, "the owner host answered something that is not HTTP");
    int status = std::atoi(head.substr(sp + 1, 3).c_str());
    std::size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos + 2 < head.size()) {
        auto next = head.find("\r\n", pos + 2);
        auto line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
        auto colon = line.find(':');
        if (colon != std::string::npos) {
            std::string k = line.substr(0, colon), v = line.substr(colon + 1);
            for (auto& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            while (!v.empty() && v.front() == ' ') v.erase(0, 1);
            headers[k] = v;
        }
        pos = next;
    }
    return status;
}

// The rest of an answer with Content-Length (hvd's answers always have one).
std::string read_body(cluster::TlsConnection& c, const std::map<std::string, std::string>& headers, std::string rest) {
    auto it = headers.find("content-length");
    std::size_t want = it == headers.end() ? 0 : static_cast<std::size_t>(std::strtoull(it->second.c_str(), nullptr, 10));
    if (want > (64u << 20)) fail(Errc::internal, "the owner host's answer is too large");
    char buf[8192];
    while (rest.size() < want) {
        auto n = c.read_some(buf, sizeof buf);
        if (n == 0) break;
        rest.append(buf, n);
    }
    rest.resize(std::min(rest.size(), want));
    return rest;
}

Response error_from(int status, const std::map<std::string, std::string>& headers, const std::string& body) {
    Response r;
    r.status = status;
    r.body = body;
    auto ct = headers.find("content-type");
    r.content_type = ct != headers.end() ? ct->second : "application/json";
    return r;
}
}  // namespace

// An upload: the body goes on as it arrives (chunked), the owner's answer comes back.
Response ClusterDispatcher::forward_stream(const std::string& node, const Request& req) const {
    auto [host, port] = reachable(node, req);
    auto id = c_.identity();
    if (!id) fail(Errc::unavailable, "this host has no cluster certificate");
    cluster::TlsConnection conn(*id, host, port, std::chrono::seconds(60));
    conn.write_all(request_head(req, c_.node(), host, {"Transfer-Encoding: chunked", "Content-Type: application/octet-stream"}));
    std::vector<char> buf(1 << 20);
    bool sent = true;
    try {
        for (;;) {
            std::size_t n = req.read_body(buf.data(), buf.size());
            if (n == 0) break;
            conn.write_all(fmt::format("{:x}\r\n", n));
            conn.write_all(buf.data(), n);
            conn.write_all("\r\n", 2);
        }
        conn.write_all("0\r\n\r\n", 5);
    } catch (const Error& e) {
        // The owner may have refused early (and closed): its answer says why, if there is one.
        sent = false;
        spdlog::debug("forwarding an upload to {}: {}", node, e.what());
    }
    std::string rest;
    std::string head;
    try {
        head = conn.read_header(rest);
    } catch (const Error& e) {
        if (!sent) fail(Errc::unavailable, "forwarding the upload to host {} failed: {}", node, e.what());
        throw;
    }
    std::map<std::string, std::string> headers;
    int status = parse_head(head, headers);
    return error_from(status, headers, read_body(conn, headers, rest));
}

namespace {
// Sends the request head to `node` and reads the answer's head: `want` or the refusal thrown.
// `rest`: what came after the head.
std::shared_ptr<cluster::TlsConnection> open_relay(const cluster::TlsIdentity& id, const std::string& host, int port,
                                                   const std::string& request, int want, std::string& head,
                                                   std::string& rest) {
    auto conn = std::make_shared<cluster::TlsConnection>(id, host, port, std::chrono::seconds(30));
    conn->write_all(request);
    head = conn->read_header(rest);
    std::map<std::string, std::string> headers;
    int status = parse_head(head, headers);
    if (status != want) {
        auto body = json::parse(read_body(*conn, headers, rest), nullptr, false);
        std::string msg = body.is_object() && body.contains("error") && body["error"].is_object()
                              ? body["error"].value("message", "")
                              : fmt::format("HTTP {}", status);
        Errc code = body.is_object() && body.contains("error") && body["error"].is_object()
                        ? errc_from_name(body["error"].value("code", ""))
                        : errc_from_http_status(status);
        fail(code, "{}", msg);
    }
    return conn;
}

void write_fd(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
        auto n = ::write(fd, s.data() + off, s.size() - off);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
    }
}

// The client's socket and the owner's connection, relayed both ways until either side closes,
// on a thread of its own (a takeover runs on the I/O thread, which must not wait for it).
// `ahead`: the owner's bytes that came with its head; `pending`: the client's.
Takeover relay_takeover(std::shared_ptr<cluster::TlsConnection> conn, std::string ahead) {
    return [conn = std::move(conn), ahead = std::move(ahead)](int fd, std::string pending) {
        std::thread([conn, ahead, fd, pending = std::move(pending)] {
            util::guarded("relaying a forwarded connection", [&] {
                write_fd(fd, ahead);
                if (!pending.empty()) conn->write_all(pending);
                conn->relay(fd);
            });
            ::close(fd);
        }).detach();
    };
}
}  // namespace

Takeover ClusterDispatcher::forward_events(const std::string& node, const Request& req) const {
    auto [host, port] = reachable(node, req);
    auto id = c_.identity();
    if (!id) fail(Errc::unavailable, "this host has no cluster certificate");
    std::string head, rest;
    auto conn = open_relay(*id, host, port, request_head(req, c_.node(), host, {}), 200, head, rest);
    // The owner's head and chunks go to the client unchanged.
    return relay_takeover(std::move(conn), head + rest);
}

Takeover ClusterDispatcher::forward_upgrade(const std::string& node, const Request& req, const std::string& protocol) const {
    auto [host, port] = reachable(node, req);
    auto id = c_.identity();
    if (!id) fail(Errc::unavailable, "this host has no cluster certificate");
    std::string head, rest;
    auto conn = open_relay(*id, host, port, request_head(req, c_.node(), host, {"Connection: Upgrade", "Upgrade: " + protocol}),
                           101, head, rest);
    // This host writes the 101 itself; what the owner sent after its own goes first.
    return relay_takeover(std::move(conn), rest);
}

Response ClusterDispatcher::forward(const std::string& node, const Request& req) const {
    if (req.read_body) return forward_stream(node, req);
    auto addr = c_.address_of(node);
    if (!addr) fail(Errc::unavailable, "host {} is not (or no longer) a member of the cluster", node);
    if (!c_.online(node)) {
        if (req.method == "GET" && req.resource.rfind("guest:", 0) == 0) {
            std::string name = req.resource.substr(6);
            for (const auto& r : c_.records())
                if (r.name == name && !r.info.empty()) {
                    json info = r.info;
                    info["host"] = node;
                    info["stale"] = true;
                    return Response{200, info};
                }
        }
        fail(Errc::unavailable, "host {} is offline: {} cannot be done now", node, req.resource);
    }
    cluster::HttpsRequest out;
    out.method = req.method;
    out.target = request_target(req);
    out.body = req.body;
    out.headers["X-Hv-Forwarded-By"] = c_.node();
    out.headers["X-Request-Id"] = req.request_id;
    bool maybe = false;
    cluster::HttpsResponse res;
    try {
        res = client()->request(addr->first, addr->second, out, &maybe);
    } catch (const Error& e) {
        fail(e.code(), "forwarding to host {}: {}{}", node, e.what(),
             maybe ? " (the request may have been carried out there: check with hvctl task list)" : "");
    }
    Response r;
    r.status = res.status;
    r.body = std::move(res.body);
    auto ct = res.headers.find("content-type");
    r.content_type = ct != res.headers.end() ? ct->second : "application/json";
    return r;
}

void ClusterDirectory::claim(guest::GuestKind kind, const std::string& name) {
    // No new guests on a host in maintenance (docs/migration.md).
    if (c_.member() && c_.maintenance(c_.node()))
        fail(Errc::conflict, "host {} is in maintenance: no new guests here (hvctl host maintenance exit {})", c_.node(),
             c_.node());
    c_.claim(name, std::string(api::kind_name(kind)));
}

void ClusterDirectory::end_claim(const std::string& name) { c_.end_claim(name); }

std::string ClusterDirectory::self() const { return c_.member() ? c_.node() : std::string(); }

json ClusterDirectory::others(guest::GuestKind kind) const {
    if (!c_.member()) return json::array();
    return *c_.others(std::string(api::kind_name(kind)));
}

}  // namespace hv::daemon
