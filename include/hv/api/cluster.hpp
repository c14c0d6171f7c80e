// Wire model of the cluster (docs/api.md "Cluster"): what hvctl sends to its local hvd and
// what hvd's answer. from_json is strict (unknown fields -> invalid_input).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::api {

// POST /v1/cluster: this host becomes the first member of a new cluster.
struct ClusterCreate {
    // 1-32 of a-z 0-9 -, starting with a letter. Example: "prod".
    std::string name;
    // This host's address in the cluster network (IPv4 or IPv6, no port). Example: "10.0.0.1".
    std::string address;
};

// POST /v1/cluster/tokens
struct TokenRequest {
    // How long the token may be used, seconds (60 - 7 days). Default 3600.
    std::int64_t ttl = 3600;
};
struct TokenInfo {
    std::string token;    // "hvjoin1...." (single use)
    std::string id;       // its id (hvctl cluster status lists none; the store keeps /hv/tokens/<id>)
    std::int64_t expires = 0;  // unix seconds
};

// POST /v1/cluster/join (to the joining host's own hvd).
struct JoinRequest {
    std::string token;
    // This host's address in the cluster network. Example: "10.0.0.2". Empty: [cluster]
    // address, else the local address of the route to `member`.
    std::string address;
    // The member to ask first ("10.0.0.1" or "10.0.0.1:7443"); then the token's addresses.
    std::string member;
};

// POST /v1/cluster/join-request: host to host, over mutual TLS with the token's join
// certificate. Not for users.
struct JoinOffer {
    std::string node;     // the joining host's node name
    std::string address;
    int port = 7443;      // its TLS API port
    std::string csr_pem;  // for its host certificate
    std::string version;  // hv version
};
struct JoinAnswer {
    std::string cluster;
    std::string ca_pem;
    std::string ca_key_pem;   // every member can issue tokens
    std::string cert_pem;     // the joiner's host certificate
    bool voter = false;       // runs an etcd member (as learner first, then promoted)
    std::string initial_cluster;            // etcd --initial-cluster for a voter
    std::vector<std::string> endpoints;     // etcd client URLs of the voters
};

struct MemberStatus {
    std::string name;
    std::string address;
    int port = 7443;
    bool online = false;
    // Unix seconds: online since (the member's alive key) / offline since (when this host saw
    // it go; 0 = before this hvd started).
    std::int64_t since = 0;
    // "leader" | "voter" | "learner" | "client" (no etcd member on the host).
    std::string role;
    std::string version;
    std::optional<double> clock_offset_ms;  // the member's chrony offset (null: unknown)
    int guests = 0;                          // guests it owns in the directory
    int cpus = 0;
    std::uint64_t memory_total = 0;  // bytes
    std::uint64_t memory_used = 0;   // bytes
    std::string fingerprint;         // of its host certificate
    std::string cpu_model;           // the CPU model its hypervisor gives guests (host-model), "" unknown
    std::vector<std::string> cpu_features;  // and its features: "+name" required, "-name" disabled
};

struct ClusterStatus {
    std::string name;         // "" when this host is in no cluster
    std::string node;         // this host's node name
    bool quorum = false;      // the store answers writes
    int reachable = 0;        // voters whose etcd answers from here
    int voters = 0;
    std::vector<MemberStatus> members;
    std::vector<std::string> warnings;  // clock offsets above [cluster] clock_warn_ms, lost quorum
};

nlohmann::json to_json(const ClusterCreate& c);
ClusterCreate cluster_create_from_json(const nlohmann::json& j);
nlohmann::json to_json(const TokenRequest& t);
TokenRequest token_request_from_json(const nlohmann::json& j);
nlohmann::json to_json(const TokenInfo& t);
TokenInfo token_info_from_json(const nlohmann::json& j);
nlohmann::json to_json(const JoinRequest& r);
JoinRequest join_request_from_json(const nlohmann::json& j);
nlohmann::json to_json(const JoinOffer& o);
JoinOffer join_offer_from_json(const nlohmann::json& j);
nlohmann::json to_json(const JoinAnswer& a);
JoinAnswer join_answer_from_json(const nlohmann::json& j);
nlohmann::json to_json(const MemberStatus& m);
MemberStatus member_status_from_json(const nlohmann::json& j);
nlohmann::json to_json(const ClusterStatus& s);
ClusterStatus cluster_status_from_json(const nlohmann::json& j);

// Checks (invalid_input with the field named): a cluster or node name (1-32 of a-z 0-9 -,
// starting with a letter), an IP address without port.
void check_cluster_name(const std::string& name, const char* what);
void check_address(const std::string& address, const char* what);

}  // namespace hv::api
