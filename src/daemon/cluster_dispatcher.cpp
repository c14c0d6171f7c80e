#include "cluster_dispatcher.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "https_client.hpp"
#include "hv/api/guest.hpp"
#include "hv/error.hpp"

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
std::string encode_path(const std::string& p) {
    std::string out;
    for (unsigned char c : p) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/')
            out += static_cast<char>(c);
        else
            out += fmt::format("%{:02X}", c);
    }
    return out;
}
}  // namespace

std::string request_target(const Request& req) {
    std::string t = encode_path(req.path);
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
    if (!req.forwarded_by.empty() || !c_.member()) return std::nullopt;
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

Response ClusterDispatcher::forward(const std::string& node, const Request& req) const {
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
    c_.claim(name, std::string(api::kind_name(kind)));
}

void ClusterDirectory::end_claim(const std::string& name) { c_.end_claim(name); }

std::string ClusterDirectory::self() const { return c_.member() ? c_.node() : std::string(); }

json ClusterDirectory::others(guest::GuestKind kind) const {
    json out = json::array();
    if (!c_.member()) return out;
    const std::string k(api::kind_name(kind)), self = c_.node();
    for (const auto& r : c_.records()) {
        if (r.owner == self || r.kind != k || !r.info.is_object() || r.info.empty()) continue;
        json info = r.info;
        info["host"] = r.owner;
        if (!c_.online(r.owner)) info["stale"] = true;
        out.push_back(std::move(info));
    }
    return out;
}

}  // namespace hv::daemon
