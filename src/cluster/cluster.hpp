// The Cluster controller (docs/cluster.md): this host's membership and its view of the
// cluster. Desired and shared state lives in the store (etcd); this class keeps a cache fed by
// ONE watch on /hv/ (never polling), a lease that keeps /hv/alive/<node>, and two
// level-triggered loops: the guest-directory publisher (this host's guests -> /hv/guests/) and
// the alive refresher. Every write of a record is guarded by its mod_revision (or its absence),
// so a stale writer never overwrites a newer record.
//
// Store layout:
//   /hv/cluster               {name, created, ca_fingerprint}
//   /hv/members/<node>        {name, address, port, fingerprint, version, voter, etcd_id, joined}
//   /hv/alive/<node>          {since, cpus, memory_total, memory_used, clock_offset_ms, version, cpu}  (lease)
//   /hv/tokens/<id>           {expires, created_by, used_by?}  (lease: expiry + 1 day)
//   /hv/guests/<name>         {name, kind, uuid, owner, state, info, updated}
//   /hv/maintenance/<node>    {state: entering|in, since, moved: [{guest, to}], blockers, reason?}
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "hv/api/cluster.hpp"
#include "store.hpp"
#include "tls.hpp"

namespace hv::cluster {

class EtcdProcess;
class HttpsClient;
struct EtcdMemberConfig;

struct ClusterOptions {
    std::string state_dir;   // <hvd state_dir>/cluster: cluster.json, certificates, etcd/
    std::string node_name;   // this host's name in the cluster
    int port = 7443;         // hvd's TLS API port
    std::vector<std::string> endpoints;  // external etcd ("" = managed: hvd runs the member)
    std::string etcd_binary = "etcd";
    // External etcd: its CA and this host's client certificate + key (PEM files, read at each
    // connect). Empty: the managed member, reached with the host certificate of the cluster CA.
    std::string etcd_ca_file, etcd_cert_file, etcd_key_file;
    int etcd_client_port = 2379;
    int etcd_peer_port = 2380;
    int voters = 3;          // etcd voting members (3 or 5); later hosts are clients
    std::chrono::seconds lease_ttl{5};
    int clock_warn_ms = 500;
    std::chrono::milliseconds facts_period{10000};  // how often the host facts are read (capacity, clock)
    std::chrono::milliseconds store_timeout{3000};
    std::string version = "0";
};

// A guest as this host knows it (for the directory).
struct LocalGuest {
    std::string name;
    std::string kind;   // "vm" | "ct"
    std::string uuid;
    std::string state;
    nlohmann::json info;  // the wire object (VmInfo / CtInfo)
};

// A directory record of the store.
struct GuestRecord {
    std::string name;
    std::string kind;
    std::string uuid;
    std::string owner;
    std::string state;
    nlohmann::json info;
    std::int64_t updated = 0;
    std::int64_t mod_revision = 0;
};

struct HostFacts {
    int cpus = 0;
    std::uint64_t memory_total = 0;
    std::uint64_t memory_used = 0;
    std::optional<double> clock_offset_ms;
    // The CPU this host's hypervisor gives guests (api::CpuSpec JSON of VmManager::host_cpu), or null.
    nlohmann::json cpu;
};

struct LocalHooks {
    std::function<std::vector<LocalGuest>()> guests;                       // every local guest
    std::function<std::optional<LocalGuest>(const std::string&)> guest;    // one, nullopt: none here
    std::function<HostFacts()> facts;
    // Membership or identity changed (created, joined, left): the daemon (re)starts its TLS
    // listener with identity().
    std::function<void()> changed;
};

class Cluster {
public:
    Cluster(ClusterOptions o, LocalHooks hooks);
    ~Cluster();
    Cluster(const Cluster&) = delete;
    Cluster& operator=(const Cluster&) = delete;

    // Resumes membership from <state_dir>/cluster.json (after a restart): starts the managed
    // etcd member and the loops. Never throws: a store that cannot be reached is retried.
    void start();
    void stop();

    bool member() const;                 // in a cluster
    std::string node() const { return o_.node_name; }
    std::optional<TlsIdentity> identity() const;  // the host certificate, once a member
    int port() const { return o_.port; }
    std::string address() const;  // this host's cluster address ("" outside a cluster)

    // hvctl cluster create / token / join / leave / remove / status.
    api::ClusterStatus create(const api::ClusterCreate& c);
    api::TokenInfo token(const api::TokenRequest& r);
    api::ClusterStatus join(const api::JoinRequest& r);
    // On a member, for a joiner that presented the token's join certificate (CN "join:<id>").
    api::JoinAnswer accept_join(const std::string& token_id, const api::JoinOffer& offer);
    void leave();
    void remove(const std::string& node, bool force);
    api::ClusterStatus status();
    // GET /v1/cluster/hosts: the members (status().members), or this host alone outside a
    // cluster.
    std::vector<api::MemberStatus> hosts();

    // The guest directory. claim: the name is free in the whole cluster (one transaction), or
    // 409 naming the owner; 503 without quorum. end_claim: the create finished (the publisher
    // writes the record or drops the claim). touch: a local guest changed (an event).
    void claim(const std::string& name, const std::string& kind);
    void end_claim(const std::string& name);
    void touch(const std::string& name);

    // Cache reads (never the store): the owner of a guest, a member's "address:port",
    // whether it is online, every record of other hosts.
    std::optional<std::string> owner_of(const std::string& guest) const;
    std::optional<std::pair<std::string, int>> address_of(const std::string& node) const;
    bool online(const std::string& node) const;
    // The CPU (api::CpuSpec JSON) each online member published in its alive record, by node
    // (members that published none are left out).
    std::map<std::string, nlohmann::json> member_cpus() const;
    std::vector<GuestRecord> records() const;
    // GET /v1/{vms,cts} in a cluster: the wire objects of the guests of `kind` on the other
    // hosts, each with "host", "stale" while that host is offline and "uptime" as of now. Built
    // once per change of the directory or of the members online (and per second, for uptime),
    // under one lock; every list until then shares it.
    std::shared_ptr<const nlohmann::json> others(const std::string& kind) const;
    std::vector<std::string> member_names() const;

    // Tests: run on this store instead of etcd, as node `node` at `address`, already a
    // member of cluster `name` (no certificates, no etcd process).
    void attach_for_test(std::shared_ptr<Store> store, const std::string& name, const std::string& address);

    // A guest moves to another member (migration): hold() keeps the publisher from dropping
    // its record while it is on neither host; hand_over() writes the new owner (guarded by
    // the record's revision) and ends the hold; release() ends it without a change.
    void hold(const std::string& name);
    void hand_over(const std::string& name, const std::string& to);
    void release(const std::string& name);
    // Whether a create or a move of `name` runs on this host now (hold() or claim()).
    bool held(const std::string& name) const;
    // Host maintenance (docs/migration.md): the record of a member in maintenance (from the
    // cache), and its writes (this host's own record; put_maintenance replaces it).
    std::optional<nlohmann::json> maintenance(const std::string& node) const;
    void put_maintenance(const nlohmann::json& doc);
    void clear_maintenance();
    // The store, for the other controllers over it (src/ceph/): 409 outside a cluster.
    std::shared_ptr<Store> shared_store() const;
    // HA (src/ha/): the alive lease (0 while there is none), the steady-clock time at which the
    // last keepalive that succeeded was SENT (the watchdog is petted only after one sent since
    // its previous pet), and listeners called after every change the watch brought (on the
    // watch thread: they must only wake their own loop).
    std::int64_t lease_id() const;
    std::chrono::steady_clock::time_point last_keepalive_sent() const;
    void add_listener(std::function<void()> f);
    // Writes put in the same transaction as this host's alive key each time it comes online
    // (set before start(); called on the keepalive thread, without the cluster's lock). HA's
    // agent record: a host that was stopped on purpose ("frozen") is "active" again exactly
    // when it is online again, never one without the other.
    void add_online_ops(std::function<std::vector<Op>()> f);
    // At stop, the alive lease is left to expire instead of being revoked (HA: a watchdog that
    // could not be disarmed must fire before the host counts as gone).
    void keep_lease_at_stop() { keep_lease_ = true; }
    // 503 "no quorum: N of M members reachable" (or the store's own reason).
    [[noreturn]] void no_quorum(const std::string& why) const;

private:
    struct Membership {
        std::string cluster;
        std::string address;
        bool voter = false;
        std::vector<std::string> endpoints;  // etcd client URLs
    };

    api::JoinAnswer accept_join_(const std::string& token_id, const api::JoinOffer& offer);
    EtcdMemberConfig member_config(const std::string& address, const TlsIdentity& tls) const;
    void load_state();
    void save_state();
    void connect_store();
    void start_loops();
    void stop_loops();
    void lease_loop();
    void facts_loop();
    void publish_loop();
    void relist_and_watch();
    void on_events(const std::vector<WatchEvent>& evs);
    void follow_voters();
    void apply(const std::string& key, const std::string& value, std::int64_t mod_revision, bool deleted);
    bool publish_one(const std::string& name);
    void publish_all();
    nlohmann::json alive_doc();
    void write_member(bool voter, std::uint64_t etcd_id);
    std::string dir() const { return o_.state_dir; }
    Store& store() const;
    // The identity the store is reached with: the external etcd's files, or the host's.
    TlsIdentity store_identity() const;
    template <typename F>
    auto guarded_store(F&& f) const -> decltype(f());
    int reachable_voters() const;

    ClusterOptions o_;
    LocalHooks hooks_;
    mutable std::mutex mu_;  // everything below
    std::optional<Membership> m_;
    std::optional<TlsIdentity> id_;
    std::string ca_key_pem_;
    std::shared_ptr<Store> store_;
    std::unique_ptr<EtcdProcess> etcd_;
    std::unique_ptr<Watch> watch_;
    std::map<std::string, nlohmann::json> members_;      // node -> member doc
    std::map<std::string, nlohmann::json> alive_;        // node -> alive doc
    std::map<std::string, std::int64_t> offline_since_;  // node -> unix seconds seen gone
    std::map<std::string, GuestRecord> guests_;          // name -> record
    std::map<std::string, nlohmann::json> maintenance_;  // node -> its maintenance record
    std::uint64_t view_gen_ = 0;                          // guests_ or alive_ changed
    struct OthersCache {
        std::uint64_t gen = 0;
        std::int64_t second = 0;
        std::shared_ptr<const nlohmann::json> list;
    };
    mutable std::map<std::string, OthersCache> others_;  // kind -> the last list built
    std::set<std::string> claims_;                       // names this host is creating
    std::set<std::string> dirty_;                        // names to publish
    bool all_dirty_ = true;
    bool relist_ = false;
    std::int64_t lease_ = 0;
    std::atomic<std::int64_t> lease_seen_{0};          // lease_, readable from other threads
    std::atomic<std::int64_t> keepalive_sent_ns_{0};   // steady clock, of the last good keepalive
    std::vector<std::function<void()>> listeners_;     // set before start()
    std::vector<std::function<std::vector<Op>()>> online_ops_;  // set before start()
    std::atomic<bool> keep_lease_{false};
    std::int64_t since_ = 0;
    bool test_mode_ = false;
    std::atomic<bool> running_{false};
    std::condition_variable cv_;
    std::thread lease_thread_;
    std::thread publish_thread_;
    std::thread facts_thread_;
    HostFacts facts_;        // the last reading (facts_loop)
    bool facts_new_ = false;  // not yet in the alive key
    bool facts_read_ = false;  // the first reading is done (or failed)
};

}  // namespace hv::cluster
