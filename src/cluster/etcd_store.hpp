// The etcd backend of Store: etcd 3.4's v3 JSON gateway (/v3/kv/range, /v3/kv/txn,
// /v3/watch, /v3/lease/*, /v3/cluster/member/*) over HTTPS with a client certificate.
// Endpoints are tried in order; a request that may have reached an endpoint is never retried
// on another unless it is read-only (a txn may have applied). The watch runs on its own thread,
// resumes from the last revision seen + 1 after a broken connection, and reports compaction
// through on_error. Why JSON over Beast and not gRPC: docs/cluster.md ("The store").
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "store.hpp"
#include "tls.hpp"

namespace hv::cluster {

struct EtcdOptions {
    std::vector<std::string> endpoints;  // "https://10.0.0.1:2379" or "10.0.0.1:2379"
    TlsIdentity tls;
    std::chrono::milliseconds timeout{5000};  // per request
};

class EtcdStore final : public Store {
public:
    explicit EtcdStore(EtcdOptions o);
    ~EtcdStore() override;

    std::optional<KeyValue> get(const std::string& key) override;
    ListResult list(const std::string& prefix) override;
    std::int64_t put(const std::string& key, const std::string& value, std::int64_t lease = 0) override;
    std::int64_t del(const std::string& key, bool prefix = false) override;
    TxnResult txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                  const std::vector<Op>& failure = {}) override;
    std::int64_t grant(std::chrono::seconds ttl) override;
    void keepalive(std::int64_t lease) override;
    void revoke(std::int64_t lease) override;
    std::unique_ptr<Watch> watch(const std::string& prefix, std::int64_t from_revision,
                                 WatchCallbacks callbacks) override;
    std::vector<StoreMember> members() override;
    std::pair<std::uint64_t, std::vector<StoreMember>> member_add(const std::vector<std::string>& peer_urls,
                                                                   bool learner) override;
    void member_remove(std::uint64_t id) override;
    void member_promote(std::uint64_t id) override;
    StoreStatus status() override;

    // Replaces the endpoints (the voters changed); requests and watches running keep theirs
    // until they end.
    void set_endpoints(const std::vector<std::string>& urls);

    // Compacts the history up to `revision` (tests of the watch's compaction path).
    void compact(std::int64_t revision);

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace hv::cluster
