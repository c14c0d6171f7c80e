// The cluster's side of hvd's transport (docs/cluster.md): the Dispatcher in front of the
// router (who may call what over TLS, which host runs a request, forwarding it there) and the
// guest directory adapter the guest layer claims names through.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>

#include "cluster.hpp"
#include "guest.hpp"
#include "http_server.hpp"

namespace hv::cluster {
class HttpsClient;
}

namespace hv::daemon {

class ClusterDispatcher final : public Dispatcher {
public:
    ClusterDispatcher(cluster::Cluster& c, std::chrono::seconds timeout);
    ~ClusterDispatcher() override;
    // Unix socket: everything but the host-to-host join request. "host:<node>": everything.
    // "join:<id>": only POST /v1/cluster/join-request. Anything else: 403.
    void admit(const Request& req) const override;
    // guest:{name} -> the directory's owner; task:{id} -> the host in "t-...@host";
    // host (and pool:) with ?host=NAME -> that member. Forwarded requests run here.
    std::optional<std::string> owner(const Request& req) const override;
    // HTTPS with the host certificate; the owner's answer unchanged. An offline owner: GET of
    // one of its guests answers the directory's last known record (stale), the rest 503.
    Response forward(const std::string& node, const Request& req) const override;
    Takeover forward_events(const std::string& node, const Request& req) const override;
    Takeover forward_upgrade(const std::string& node, const Request& req, const std::string& protocol) const override;

private:
    std::shared_ptr<cluster::HttpsClient> client() const;
    std::pair<std::string, int> reachable(const std::string& node, const Request& req) const;
    Response forward_stream(const std::string& node, const Request& req) const;
    cluster::Cluster& c_;
    std::chrono::seconds timeout_;
    mutable std::mutex mu_;
    mutable std::shared_ptr<cluster::HttpsClient> client_;
    mutable std::string client_cert_;
};

class ClusterDirectory final : public guest::Guests::Directory {
public:
    explicit ClusterDirectory(cluster::Cluster& c) : c_(c) {}
    void claim(guest::GuestKind kind, const std::string& name) override;
    void end_claim(const std::string& name) override;
    std::string self() const override;
    nlohmann::json others(guest::GuestKind kind) const override;
    bool held(const std::string& name) const override { return c_.held(name); }

private:
    cluster::Cluster& c_;
};

// "/v1/vms?host=h2&x=a b" from a request's path and query (encoded again).
std::string request_target(const Request& req);

}  // namespace hv::daemon
