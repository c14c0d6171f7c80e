// The cluster store: a consistent key/value store with revisions, leases, transactions and
// watches (docs/cluster.md). hv never implements consensus: the production backend is etcd 3.4
// (EtcdStore, over etcd's v3 JSON gateway with mutual TLS); MemoryStore is the in-process
// backend for unit tests. Both pass the same contract (tests/unit/store_contract_test.cpp).
//
// Errors are hv::Error: unavailable (no endpoint answers, no quorum), timeout (the store did
// not answer in time), not_found (an expired or unknown lease, an unknown member),
// invalid_input (a bad key or argument), internal (a malformed answer).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hv::cluster {

struct KeyValue {
    std::string key;
    std::string value;
    std::int64_t create_revision = 0;
    std::int64_t mod_revision = 0;
    std::int64_t version = 0;
    std::int64_t lease = 0;  // 0: none
};

// One condition of a transaction (etcd's Compare).
struct Compare {
    enum class Target { version, create_revision, mod_revision, value };
    enum class Result { equal, not_equal, greater, less };
    std::string key;
    Target target = Target::mod_revision;
    Result result = Result::equal;
    std::int64_t number = 0;  // for version / create_revision / mod_revision
    std::string value;        // for value

    // The key does not exist (create_revision == 0).
    static Compare absent(std::string key);
    // The key exists with exactly this mod_revision (a guarded update).
    static Compare mod_revision_is(std::string key, std::int64_t rev);
    static Compare value_is(std::string key, std::string value);
};

// One operation of a transaction.
struct Op {
    enum class Kind { put, del, get };
    Kind kind = Kind::put;
    std::string key;
    std::string value;         // put
    std::int64_t lease = 0;    // put: 0 = no lease
    bool prefix = false;       // del/get: every key starting with `key`

    static Op put(std::string key, std::string value, std::int64_t lease = 0);
    static Op del(std::string key, bool prefix = false);
    static Op get(std::string key, bool prefix = false);
};

struct TxnResult {
    bool succeeded = false;
    std::int64_t revision = 0;  // the store's revision after the transaction
    // One entry per Op of the branch that ran, in order: the keys a get returned (empty for
    // put and del).
    std::vector<std::vector<KeyValue>> responses;
};

struct ListResult {
    std::vector<KeyValue> kvs;  // sorted by key
    std::int64_t revision = 0;  // the store's revision the list was read at
};

struct WatchEvent {
    enum class Type { put, del };
    Type type = Type::put;
    KeyValue kv;  // for del: key and mod_revision (the deleting revision) only
};

// A running watch; destroying it (or cancel()) stops it. Callbacks never run after cancel()
// returns.
class Watch {
public:
    virtual ~Watch() = default;
    virtual void cancel() = 0;
};

struct WatchCallbacks {
    // Events in revision order, a batch of one revision or more. Runs on the store's watch
    // thread; it must not block for long and must not throw (a throw is logged and ignored).
    std::function<void(const std::vector<WatchEvent>&)> on_events;
    // The watch ended for good and will deliver nothing more: the requested revision was
    // compacted (re-list and watch again) or the store was closed. Reconnects after transient
    // failures are the store's job and are not reported here.
    std::function<void(const std::string& why)> on_error;
};

// etcd's cluster membership (what `etcdctl member list` shows).
struct StoreMember {
    std::uint64_t id = 0;
    std::string name;
    std::vector<std::string> peer_urls;
    std::vector<std::string> client_urls;
    bool learner = false;
};

struct StoreStatus {
    std::uint64_t member_id = 0;  // of the endpoint that answered
    std::uint64_t leader_id = 0;
    std::int64_t revision = 0;
    std::uint64_t raft_term = 0;
    std::string version;  // of etcd
    std::string endpoint; // which endpoint answered
};

class Store {
public:
    virtual ~Store() = default;

    virtual std::optional<KeyValue> get(const std::string& key) = 0;
    virtual ListResult list(const std::string& prefix) = 0;
    // Returns the revision of the write.
    virtual std::int64_t put(const std::string& key, const std::string& value, std::int64_t lease = 0) = 0;
    // Returns how many keys were deleted.
    virtual std::int64_t del(const std::string& key, bool prefix = false) = 0;
    virtual TxnResult txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                          const std::vector<Op>& failure = {}) = 0;

    // Leases: keys put with a lease vanish when it expires (ttl without a keepalive) or is
    // revoked. keepalive throws not_found when the lease is gone.
    virtual std::int64_t grant(std::chrono::seconds ttl) = 0;
    virtual void keepalive(std::int64_t lease) = 0;
    virtual void revoke(std::int64_t lease) = 0;

    // Watches every key starting with `prefix`, from `from_revision` (inclusive; 0 = from now).
    // The store reconnects and resumes by itself after transient failures.
    virtual std::unique_ptr<Watch> watch(const std::string& prefix, std::int64_t from_revision,
                                         WatchCallbacks callbacks) = 0;

    // etcd membership. MemoryStore keeps a list and fakes nothing else.
    virtual std::vector<StoreMember> members() = 0;
    // Adds a member with these peer URLs (as a learner when asked); returns its id and the
    // member list including it.
    virtual std::pair<std::uint64_t, std::vector<StoreMember>> member_add(const std::vector<std::string>& peer_urls,
                                                                           bool learner) = 0;
    virtual void member_remove(std::uint64_t id) = 0;
    virtual void member_promote(std::uint64_t id) = 0;
    virtual StoreStatus status() = 0;
};

// The first key after every key starting with `prefix` (etcd's range_end for a prefix).
std::string prefix_end(const std::string& prefix);

}  // namespace hv::cluster
