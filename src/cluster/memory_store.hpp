// The in-process Store for unit tests: the same semantics as etcd for keys, revisions,
// transactions, leases (expiring on the steady clock, checked by a reaper thread every
// 50 ms) and watches (delivered in revision order on one thread per watch). Membership is a
// plain list. set_available(false) makes every call fail with unavailable (a lost quorum).
#pragma once

#include <memory>

#include "store.hpp"

namespace hv::cluster {

class MemoryStore final : public Store {
public:
    MemoryStore();
    ~MemoryStore() override;

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

    // Tests: every call fails with unavailable while false; expire a lease now; forget history
    // up to a revision (a later watch from before it gets on_error "compacted").
    void set_available(bool available);
    void expire(std::int64_t lease);
    void compact(std::int64_t revision);

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace hv::cluster
