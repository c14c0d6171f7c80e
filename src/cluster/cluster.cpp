#include "cluster.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "etcd_process.hpp"
#include "etcd_store.hpp"
#include "https_client.hpp"
#include "hv/error.hpp"
#include "hv/util/atomic_file.hpp"
#include "hv/util/guard.hpp"
#include "hv/util/reverter.hpp"
#include "pki.hpp"

namespace hv::cluster {
using nlohmann::json;
namespace fs = std::filesystem;

namespace {
constexpr const char* kClusterKey = "/hv/cluster";
constexpr const char* kMembers = "/hv/members/";
constexpr const char* kAlive = "/hv/alive/";
constexpr const char* kTokens = "/hv/tokens/";
constexpr const char* kGuests = "/hv/guests/";
constexpr const char* kMaintenance = "/hv/maintenance/";

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string random_id() {
    std::random_device rd;
    return fmt::format("{:08x}{:08x}", rd(), rd());
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(Errc::internal, "cannot read {}", path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::optional<json> parse(const std::string& key, const std::string& value) {
    json j = json::parse(value, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        spdlog::warn("cluster: ignoring {}: not a JSON object", key);
        return std::nullopt;
    }
    return j;
}

std::string str(const json& j, const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
std::int64_t num(const json& j, const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
}
// A member's published CPU (api::CpuSpec JSON) into its status; strings only.
void set_cpu(api::MemberStatus& m, const json& cpu) {
    m.cpu_model = str(cpu, "model");
    if (auto it = cpu.find("features"); it != cpu.end() && it->is_array())
        for (const auto& f : *it)
            if (f.is_string()) m.cpu_features.push_back(f.get<std::string>());
}
bool flag(const json& j, const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_boolean() && it->get<bool>();
}

std::string peer_url(const std::string& address, int port) {
    return address.find(':') != std::string::npos ? fmt::format("https://[{}]:{}", address, port)
                                                   : fmt::format("https://{}:{}", address, port);
}

bool transient(const Error& e) { return e.code() == Errc::unavailable || e.code() == Errc::timeout; }

// etcd refuses member changes while a member started or joined in the last 5 s is not yet
// "connected long enough" (its strict reconfig check answers "unhealthy cluster"): a member
// change waits that out, up to 20 s.
template <typename F>
auto reconfig(F&& f) -> decltype(f()) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
        try {
            return f();
        } catch (const Error& e) {
            if (std::string(e.what()).find("unhealthy cluster") == std::string::npos ||
                std::chrono::steady_clock::now() > until)
                throw;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
}

// The local address the kernel would use to reach `host` (no packet is sent).
std::string route_source(const std::string& host) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST;
    addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), "9", &hints, &res) != 0 || !res)
        fail(Errc::invalid_input, "member address '{}' is not an IP address", host);
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
    int fd = ::socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(Errc::internal, "socket: {}", std::strerror(errno));
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    bool ok = ::connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
              ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0;
    ::close(fd);
    if (!ok) fail(Errc::unavailable, "no route to {}: give this host's address with --address", host);
    char buf[INET6_ADDRSTRLEN] = {};
    const void* a = ss.ss_family == AF_INET6 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr)
                                             : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&ss)->sin_addr);
    ::inet_ntop(ss.ss_family, a, buf, sizeof buf);
    return buf;
}
}  // namespace

Cluster::Cluster(ClusterOptions o, LocalHooks hooks) : o_(std::move(o)), hooks_(std::move(hooks)) {}

Cluster::~Cluster() { stop(); }

bool Cluster::member() const {
    std::lock_guard lk(mu_);
    return m_.has_value();
}

std::string Cluster::address() const {
    std::lock_guard lk(mu_);
    return m_ ? m_->address : std::string();
}

std::optional<TlsIdentity> Cluster::identity() const {
    std::lock_guard lk(mu_);
    return id_;
}

Store& Cluster::store() const {
    std::lock_guard lk(mu_);
    if (!store_) fail(Errc::conflict, "this host is not in a cluster (hvctl cluster create or join)");
    return *store_;
}

std::optional<json> Cluster::maintenance(const std::string& node) const {
    std::lock_guard lk(mu_);
    auto it = maintenance_.find(node);
    if (it == maintenance_.end()) return std::nullopt;
    return it->second;
}

void Cluster::put_maintenance(const json& doc) {
    std::string key = kMaintenance + o_.node_name;
    guarded_store([&] { return store().put(key, doc.dump()); });
    std::lock_guard lk(mu_);
    maintenance_[o_.node_name] = doc;  // at once (the watch brings it too)
}

void Cluster::clear_maintenance() {
    std::string key = kMaintenance + o_.node_name;
    guarded_store([&] { return store().del(key); });
    std::lock_guard lk(mu_);
    maintenance_.erase(o_.node_name);
}

void Cluster::hold(const std::string& name) {
    std::lock_guard lk(mu_);
    if (!claims_.insert(name).second) fail(Errc::conflict, "'{}' is being created or moved on this host already", name);
}

bool Cluster::held(const std::string& name) const {
    std::lock_guard lk(mu_);
    return claims_.count(name) > 0;
}

void Cluster::release(const std::string& name) {
    {
        std::lock_guard lk(mu_);
        claims_.erase(name);
        dirty_.insert(name);
    }
    cv_.notify_all();
}

void Cluster::hand_over(const std::string& name, const std::string& to) {
    std::string key = kGuests + name;
    for (int attempt = 0; attempt < 5; ++attempt) {
        auto kv = guarded_store([&] { return store().get(key); });
        json doc = kv ? json::parse(kv->value, nullptr, false) : json::object();
        if (!doc.is_object()) doc = json::object();
        doc["name"] = name;
        doc["owner"] = to;
        doc["updated"] = now_s();
        if (!doc.contains("kind")) doc["kind"] = "vm";
        auto cmp = kv ? Compare::mod_revision_is(key, kv->mod_revision) : Compare::absent(key);
        if (guarded_store([&] { return store().txn({cmp}, {Op::put(key, doc.dump())}); }).succeeded) break;
    }
    release(name);
}

std::shared_ptr<Store> Cluster::shared_store() const {
    std::lock_guard lk(mu_);
    if (!store_) fail(Errc::conflict, "this host is not in a cluster (hvctl cluster create or join)");
    return store_;
}

template <typename F>
auto Cluster::guarded_store(F&& f) const -> decltype(f()) {
    try {
        return f();
    } catch (const Error& e) {
        if (transient(e)) no_quorum(e.what());
        throw;
    }
}

int Cluster::reachable_voters() const {
    std::vector<std::string> urls;
    {
        std::lock_guard lk(mu_);
        if (test_mode_ || !m_) return 0;
        urls = m_->endpoints;
    }
    std::optional<HttpsClient> made;
    try {
        made.emplace(store_identity(), std::chrono::milliseconds(700));
    } catch (const Error&) {
        return 0;
    }
    HttpsClient& probe = *made;
    int n = 0;
    for (const auto& u : urls) {
        try {
            auto [host, port] = split_host_port(u, o_.etcd_client_port);
            HttpsRequest r;
            r.target = "/health";
            probe.request(host, port, r);
            ++n;  // any answer: the member is reachable (a member without a leader says so)
        } catch (...) {
        }
    }
    return n;
}

void Cluster::no_quorum(const std::string& why) const {
    int voters = 0;
    {
        std::lock_guard lk(mu_);
        for (const auto& [n, m] : members_) voters += flag(m, "voter") ? 1 : 0;
        if (m_ && !test_mode_) voters = std::max<int>(voters, static_cast<int>(m_->endpoints.size()));
    }
    if (test_mode_) fail(Errc::unavailable, "no quorum: the cluster store is unreachable ({})", why);
    int up = reachable_voters();
    if (!o_.endpoints.empty())
        fail(Errc::unavailable, "no quorum: the external etcd answers on {} of its {} endpoints; cluster-wide changes are "
                                "refused until it is back ({})",
             up, o_.endpoints.size(), why);
    fail(Errc::unavailable, "no quorum: {} of {} members reachable; cluster-wide changes are refused until quorum "
                            "returns ({})",
         up, voters, why);
}

// ---- persistent membership (<state_dir>/cluster) ------------------------------------------

void Cluster::load_state() {
    std::string path = dir() + "/cluster.json";
    if (!fs::exists(path)) return;
    json j = json::parse(read_file(path), nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail(Errc::internal, "{} is not valid JSON", path);
    Membership m;
    m.cluster = str(j, "cluster");
    m.address = str(j, "address");
    m.voter = flag(j, "voter");
    if (j.contains("endpoints") && j["endpoints"].is_array())
        for (const auto& e : j["endpoints"])
            if (e.is_string()) m.endpoints.push_back(e.get<std::string>());
    TlsIdentity id{read_file(dir() + "/ca.crt"), read_file(dir() + "/host.crt"), read_file(dir() + "/host.key")};
    std::string ca_key = read_file(dir() + "/ca.key");
    std::lock_guard lk(mu_);
    m_ = m;
    id_ = id;
    ca_key_pem_ = ca_key;
}

void Cluster::save_state() {
    json j;
    {
        std::lock_guard lk(mu_);
        j = {{"cluster", m_->cluster}, {"address", m_->address}, {"voter", m_->voter}, {"endpoints", m_->endpoints}};
    }
    // Written last by create and join: its presence means "a member" at the next start.
    util::write_file_atomic(dir() + "/cluster.json", j.dump(2) + "\n", 0600);
}

TlsIdentity Cluster::store_identity() const {
    if (!o_.etcd_ca_file.empty())
        return TlsIdentity{read_file(o_.etcd_ca_file), read_file(o_.etcd_cert_file), read_file(o_.etcd_key_file)};
    std::lock_guard lk(mu_);
    if (!id_) fail(Errc::unavailable, "this host has no cluster certificate");
    return *id_;
}

void Cluster::connect_store() {
    std::vector<std::string> eps;
    {
        std::lock_guard lk(mu_);
        eps = m_->endpoints;
    }
    TlsIdentity id = store_identity();
    auto s = std::make_shared<EtcdStore>(EtcdOptions{eps, id, o_.store_timeout});
    std::lock_guard lk(mu_);
    store_ = std::move(s);
}

// The managed member of this host: its files under <state_dir>/cluster, the configured ports.
EtcdMemberConfig Cluster::member_config(const std::string& address, const TlsIdentity& tls) const {
    EtcdMemberConfig ec;
    ec.binary = o_.etcd_binary;
    ec.name = o_.node_name;
    ec.data_dir = dir() + "/etcd";
    ec.log_file = dir() + "/etcd.log";
    ec.tls_dir = dir() + "/etcd-tls";
    ec.address = address;
    ec.client_port = o_.etcd_client_port;
    ec.peer_port = o_.etcd_peer_port;
    ec.tls = tls;
    return ec;
}

void Cluster::start() {
    util::guarded("cluster start", [&] {
        load_state();
        if (!member()) {
            spdlog::info("cluster: this host is in no cluster");
            return;
        }
        {
            std::lock_guard lk(mu_);
            spdlog::info("cluster: member {} of cluster {} at {}", o_.node_name, m_->cluster, m_->address);
        }
        bool voter;
        {
            std::lock_guard lk(mu_);
            voter = m_->voter;
        }
        if (voter && o_.endpoints.empty()) {
            EtcdMemberConfig ec;
            {
                std::lock_guard lk(mu_);
                ec = member_config(m_->address, *id_);
            }
            // The data dir holds the membership; etcd ignores the initial flags then.
            ec.existing = true;
            ec.initial_cluster = o_.node_name + "=" + peer_url(ec.address, ec.peer_port);
            auto p = std::make_unique<EtcdProcess>(ec);
            // A member that cannot start is the supervisor's to retry; the store is reached
            // through the other members meanwhile.
            util::guarded("starting the local etcd member", [&] { p->start(); });
            std::lock_guard lk(mu_);
            etcd_ = std::move(p);
        }
        connect_store();
        start_loops();
    });
}

void Cluster::stop() {
    stop_loops();
    std::unique_ptr<EtcdProcess> e;
    {
        std::lock_guard lk(mu_);
        e = std::move(etcd_);
    }
    e.reset();  // stops the member
}

void Cluster::attach_for_test(std::shared_ptr<Store> store, const std::string& name, const std::string& address) {
    {
        std::lock_guard lk(mu_);
        store_ = std::move(store);
        m_ = Membership{name, address, true, {}};
        test_mode_ = true;
    }
    write_member(true, 0);
    start_loops();
}

// ---- loops ----------------------------------------------------------------------------------

void Cluster::start_loops() {
    if (running_.exchange(true)) return;
    {
        std::lock_guard lk(mu_);
        all_dirty_ = true;
    }
    lease_thread_ = std::thread([this] { util::guarded("cluster lease loop", [this] { lease_loop(); }); });
    publish_thread_ = std::thread([this] { util::guarded("cluster publisher", [this] { publish_loop(); }); });
    facts_thread_ = std::thread([this] { util::guarded("cluster host facts", [this] { facts_loop(); }); });
}

// The host's facts (capacity, clock offset: chronyc may take a while) are read here, every
// 10 s, never on the lease thread: a slow reading must not delay the keepalive. Each new
// reading goes into the alive key at the next beat.
void Cluster::facts_loop() {
    while (running_) {
        HostFacts f;
        bool ok = false;
        if (hooks_.facts) ok = util::guarded("host facts", [&] { f = hooks_.facts(); });
        std::unique_lock lk(mu_);
        if (ok) {
            facts_ = f;
            facts_new_ = true;
        }
        facts_read_ = true;
        cv_.notify_all();
        cv_.wait_for(lk, o_.facts_period, [this] { return !running_; });
    }
}

void Cluster::stop_loops() {
    if (!running_.exchange(false)) return;
    cv_.notify_all();
    if (lease_thread_.joinable()) lease_thread_.join();
    if (publish_thread_.joinable()) publish_thread_.join();
    if (facts_thread_.joinable()) facts_thread_.join();
    std::unique_ptr<Watch> w;
    {
        std::lock_guard lk(mu_);
        w = std::move(watch_);
    }
    if (w) w->cancel();
}

json Cluster::alive_doc() {
    HostFacts f;
    {
        std::lock_guard lk(mu_);
        f = facts_;
        facts_new_ = false;
    }
    json j{{"since", since_},
           {"cpus", f.cpus},
           {"memory_total", f.memory_total},
           {"memory_used", f.memory_used},
           {"version", o_.version},
           {"clock_offset_ms", nullptr}};
    if (f.clock_offset_ms) j["clock_offset_ms"] = *f.clock_offset_ms;
    if (f.cpu.is_object()) j["cpu"] = f.cpu;
    return j;
}

std::map<std::string, json> Cluster::member_cpus() const {
    std::lock_guard lk(mu_);
    std::map<std::string, json> out;
    for (const auto& [n, a] : alive_)
        if (members_.count(n) && a.is_object() && a.contains("cpu") && a["cpu"].is_object()) out[n] = a["cpu"];
    return out;
}

// Keeps /hv/alive/<node> on a lease: granted, renewed every ttl/3, its value (capacity, clock
// offset) refreshed every few renewals. A lost lease (expired while cut off) is granted anew.
void Cluster::lease_loop() {
    // ttl/5: the HA watchdog (docs/ha.md) is petted after each beat and tolerates two lost ones.
    auto period = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(300), o_.lease_ttl / 5);
    int beat = 0;
    std::string last_error;
    {
        // The first alive key carries the host's capacity: the first reading is waited for
        // (briefly: a reading that hangs must not keep the host offline).
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, std::chrono::seconds(3), [this] { return facts_read_ || !running_; });
    }
    while (running_) {
        try {
            Store& s = store();
            const auto sent = std::chrono::steady_clock::now();
            if (lease_ == 0) {
                lease_seen_ = 0;
                lease_ = s.grant(o_.lease_ttl);
                if (since_ == 0) since_ = now_s();
                std::vector<Op> ops{Op::put(kAlive + o_.node_name, alive_doc().dump(), lease_)};
                for (const auto& f : online_ops_)
                    util::guarded("cluster online ops", [&] {
                        for (auto& op : f()) ops.push_back(std::move(op));
                    });
                try {
                    s.txn({}, ops);
                } catch (const Error&) {
                    lease_ = 0;  // not online: a new lease and the whole transaction again (this one expires)
                    throw;
                }
                beat = 0;
                spdlog::info("cluster: online as {} (lease {:x}, ttl {} s)", o_.node_name, lease_, o_.lease_ttl.count());
            } else {
                s.keepalive(lease_);
                bool fresh;
                {
                    std::lock_guard lk(mu_);
                    fresh = facts_new_;
                }
                if (fresh || ++beat % 10 == 0) s.put(kAlive + o_.node_name, alive_doc().dump(), lease_);
            }
            lease_seen_ = lease_;
            keepalive_sent_ns_ = sent.time_since_epoch().count();
            last_error.clear();
        } catch (const Error& e) {
            if (e.code() == Errc::not_found) lease_ = 0, lease_seen_ = 0;  // expired: grant a new one now
            if (e.what() != last_error) spdlog::warn("cluster: keeping this host alive: {}", e.what());
            last_error = e.what();
            if (e.code() == Errc::not_found) continue;
        }
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, period, [this] { return !running_; });
    }
    // Leaving or stopping: the alive key goes now, not at the lease's expiry (best effort).
    if (lease_ != 0 && !keep_lease_) {
        std::shared_ptr<Store> s;
        {
            std::lock_guard lk(mu_);
            s = store_;
        }
        if (s) util::guarded("revoking the alive lease", [&] {
            try {
                s->revoke(lease_);
            } catch (const Error&) {
            }
        });
        lease_ = 0;
    }
}

void Cluster::relist_and_watch() {
    Store& s = store();
    auto all = s.list("/hv/");
    {
        std::lock_guard lk(mu_);
        std::set<std::string> alive_before;
        for (const auto& [n, a] : alive_) alive_before.insert(n);
        members_.clear();
        alive_.clear();
        guests_.clear();
        maintenance_.clear();
        ++view_gen_;
        for (const auto& kv : all.kvs) apply(kv.key, kv.value, kv.mod_revision, false);
        for (const auto& n : alive_before)
            if (!alive_.count(n)) offline_since_[n] = now_s();
        all_dirty_ = true;
    }
    WatchCallbacks cb;
    cb.on_events = [this](const std::vector<WatchEvent>& evs) { on_events(evs); };
    cb.on_error = [this](const std::string& why) {
        spdlog::warn("cluster: the watch on the store ended ({}); listing again", why);
        std::lock_guard lk(mu_);
        relist_ = true;
        cv_.notify_all();
    };
    auto w = s.watch("/hv/", all.revision + 1, std::move(cb));
    std::unique_ptr<Watch> old;
    {
        std::lock_guard lk(mu_);
        old = std::move(watch_);
        watch_ = std::move(w);
    }
    for (const auto& l : listeners_) util::guarded("cluster listener", [&] { l(); });
    if (old) old->cancel();
}

void Cluster::on_events(const std::vector<WatchEvent>& evs) {
    bool membership = false;
    {
        std::lock_guard lk(mu_);
        for (const auto& ev : evs) {
            if (ev.kv.key.rfind(kMembers, 0) == 0) membership = true;
            apply(ev.kv.key, ev.kv.value, ev.kv.mod_revision, ev.type == WatchEvent::Type::del);
        }
    }
    cv_.notify_all();
    for (const auto& l : listeners_) util::guarded("cluster listener", [&] { l(); });
    if (membership) follow_voters();
    if (membership && hooks_.changed) util::guarded("cluster change hook", [&] { hooks_.changed(); });
}

// A managed cluster's store endpoints are its voters' client URLs, as the member records
// say now: a host that joined early (or created the cluster) learns of the voters that came
// after it, so it fails over to them when its own member is down. Kept in cluster.json for
// the next start. External etcd: the configured endpoints, never changed.
void Cluster::follow_voters() {
    util::guarded("following the store's voters", [&] {
        std::vector<std::string> urls;
        std::shared_ptr<Store> st;
        {
            std::lock_guard lk(mu_);
            if (!m_ || test_mode_ || !o_.endpoints.empty()) return;
            for (const auto& [n, m] : members_)
                if (flag(m, "voter") && !str(m, "address").empty())
                    urls.push_back(peer_url(str(m, "address"), o_.etcd_client_port));
            // The record of a voter may lag its promotion (or be gone for a moment): only a
            // list that still holds this host's own member (when it is a voter) replaces the old.
            if (urls.empty() || urls == m_->endpoints) return;
            if (m_->voter && std::find(urls.begin(), urls.end(), peer_url(m_->address, o_.etcd_client_port)) == urls.end())
                return;
            spdlog::info("cluster: store endpoints now {}", fmt::join(urls, ", "));
            m_->endpoints = urls;
            st = store_;
        }
        save_state();
        if (auto* etcd = dynamic_cast<EtcdStore*>(st.get())) etcd->set_endpoints(urls);
    });
}

// Under mu_.
void Cluster::apply(const std::string& key, const std::string& value, std::int64_t rev, bool deleted) {
    auto tail = [&](const char* prefix) { return key.substr(std::string(prefix).size()); };
    ++view_gen_;
    if (key.rfind(kMaintenance, 0) == 0) {
        auto n = tail(kMaintenance);
        if (deleted) maintenance_.erase(n);
        else if (auto j = parse(key, value)) maintenance_[n] = *j;
        return;
    }
    if (key.rfind(kMembers, 0) == 0) {
        auto n = tail(kMembers);
        if (deleted) {
            members_.erase(n);
            if (n == o_.node_name) spdlog::warn("cluster: this host was removed from the cluster by another member");
        } else if (auto j = parse(key, value)) {
            members_[n] = *j;
        }
    } else if (key.rfind(kAlive, 0) == 0) {
        auto n = tail(kAlive);
        if (deleted) {
            alive_.erase(n);
            offline_since_[n] = now_s();
            if (n != o_.node_name) spdlog::warn("cluster: member {} is offline", n);
        } else if (auto j = parse(key, value)) {
            if (!alive_.count(n) && n != o_.node_name) spdlog::info("cluster: member {} is online", n);
            alive_[n] = *j;
            offline_since_.erase(n);
        }
    } else if (key.rfind(kGuests, 0) == 0) {
        auto n = tail(kGuests);
        if (deleted) {
            auto it = guests_.find(n);
            if (it != guests_.end() && it->second.owner == o_.node_name) dirty_.insert(n);
            guests_.erase(n);
            // A local guest whose record someone deleted is published again (level-triggered).
            dirty_.insert(n);
        } else if (auto j = parse(key, value)) {
            GuestRecord r;
            r.name = n;
            r.kind = str(*j, "kind");
            r.uuid = str(*j, "uuid");
            r.owner = str(*j, "owner");
            r.state = str(*j, "state");
            r.info = j->contains("info") ? (*j)["info"] : json::object();
            r.updated = num(*j, "updated");
            r.mod_revision = rev;
            if (r.owner == o_.node_name) dirty_.insert(n);  // checked against the local guest
            guests_[n] = std::move(r);
        }
    }
}

void Cluster::publish_loop() {
    bool watching = false;
    std::string last_error;
    while (running_) {
        try {
            bool relist;
            {
                std::lock_guard lk(mu_);
                relist = relist_ || !watching;
                relist_ = false;
            }
            if (relist) {
                relist_and_watch();
                watching = true;
            }
            bool all;
            std::set<std::string> names;
            {
                std::lock_guard lk(mu_);
                all = all_dirty_;
                all_dirty_ = false;
                names.swap(dirty_);
            }
            if (all) {
                for (const auto& g : hooks_.guests ? hooks_.guests() : std::vector<LocalGuest>{}) names.insert(g.name);
                std::lock_guard lk(mu_);
                for (const auto& [n, r] : guests_)
                    if (r.owner == o_.node_name) names.insert(n);
            }
            std::set<std::string> again;
            for (const auto& n : names) {
                try {
                    if (!publish_one(n)) again.insert(n);
                } catch (const Error& e) {
                    again.insert(n);
                    throw;
                }
            }
            if (!again.empty()) {
                std::lock_guard lk(mu_);
                dirty_.insert(again.begin(), again.end());
            }
            last_error.clear();
        } catch (const Error& e) {
            if (e.what() != last_error) spdlog::warn("cluster: publishing this host's guests: {}", e.what());
            last_error = e.what();
            {
                std::lock_guard lk(mu_);
                all_dirty_ = true;  // everything again once the store answers
            }
            if (!watching) {
                std::unique_lock lk(mu_);
                cv_.wait_for(lk, std::chrono::seconds(1), [this] { return !running_; });
                continue;
            }
            std::unique_lock lk(mu_);
            cv_.wait_for(lk, std::chrono::seconds(1), [this] { return !running_; });
            continue;
        }
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, std::chrono::seconds(30),
                     [this] { return !running_ || !dirty_.empty() || all_dirty_ || relist_; });
    }
}

// Brings /hv/guests/<name> in line with the local guest. False: the guarded write lost a race
// (the watch brings the newer record; the name is published again).
bool Cluster::publish_one(const std::string& name) {
    std::optional<LocalGuest> local;
    if (hooks_.guest) local = hooks_.guest(name);
    std::optional<GuestRecord> rec;
    bool claiming;
    {
        std::lock_guard lk(mu_);
        if (auto it = guests_.find(name); it != guests_.end()) rec = it->second;
        claiming = claims_.count(name) > 0;
    }
    std::string key = kGuests + name;
    Store& s = store();
    if (local) {
        if (rec && rec->owner != o_.node_name) {
            spdlog::warn("cluster: guest {} exists here and is owned by {} in the directory; leaving it", name,
                         rec->owner);
            return true;
        }
        if (rec && rec->state == local->state && rec->uuid == local->uuid && rec->info == local->info &&
            rec->kind == local->kind)
            return true;
        json doc{{"name", name},   {"kind", local->kind},   {"uuid", local->uuid}, {"owner", o_.node_name},
                 {"state", local->state}, {"info", local->info}, {"updated", now_s()}};
        auto cmp = rec ? Compare::mod_revision_is(key, rec->mod_revision) : Compare::absent(key);
        return s.txn({cmp}, {Op::put(key, doc.dump())}).succeeded;
    }
    // "recovering": HA gave this host a guest of a failed one; it is defined here next.
    if (claiming || !rec || rec->owner != o_.node_name || rec->state == "recovering") return true;
    return s.txn({Compare::mod_revision_is(key, rec->mod_revision)}, {Op::del(key)}).succeeded;
}

// ---- the guest directory ------------------------------------------------------------------

void Cluster::claim(const std::string& name, const std::string& kind) {
    if (!member()) return;
    std::string key = kGuests + name;
    json doc{{"name", name},     {"kind", kind},       {"uuid", ""},           {"owner", o_.node_name},
             {"state", "creating"}, {"info", json::object()}, {"updated", now_s()}};
    // Marked as claiming before the transaction: the watch may bring the new record to the
    // publisher at once, and without the mark it would delete it (no local guest yet).
    bool fresh;
    {
        std::lock_guard lk(mu_);
        fresh = claims_.insert(name).second;
    }
    if (!fresh) fail(Errc::conflict, "'{}' is being created on this host already", name);
    util::Reverter unmark;
    unmark.add([this, &name] {
        std::lock_guard lk(mu_);
        claims_.erase(name);
    });
    guarded_store([&] {
        Store& s = store();
        auto r = s.txn({Compare::absent(key)}, {Op::put(key, doc.dump())}, {Op::get(key)});
        if (r.succeeded) return;
        std::string owner, okind;
        std::int64_t rev = 0;
        if (!r.responses.empty() && !r.responses[0].empty()) {
            if (auto j = parse(key, r.responses[0][0].value)) {
                owner = str(*j, "owner");
                okind = str(*j, "kind");
            }
            rev = r.responses[0][0].mod_revision;
        }
        // (This host's claims_ holds the name now, so its own "creating" record of a create that
        // died with hvd is recognised by the owner alone.)
        bool mine_stale = owner == o_.node_name;
        // A record of this host without a local guest or a create (a create that died with
        // hvd): the local check (Guests::claim) already found no guest, so it is taken over.
        if (mine_stale && (!hooks_.guest || !hooks_.guest(name))) {
            if (s.txn({Compare::mod_revision_is(key, rev)}, {Op::put(key, doc.dump())}).succeeded) return;
        }
        fail(Errc::conflict, "the name '{}' is taken in the cluster: a {} on host {}", name,
             okind.empty() ? "guest" : okind, owner.empty() ? "?" : owner);
    });
    unmark.release();
}

void Cluster::end_claim(const std::string& name) {
    std::lock_guard lk(mu_);
    if (!claims_.erase(name)) return;
    dirty_.insert(name);
    cv_.notify_all();
}

void Cluster::touch(const std::string& name) {
    std::lock_guard lk(mu_);
    if (!m_) return;
    dirty_.insert(name);
    cv_.notify_all();
}

std::optional<std::string> Cluster::owner_of(const std::string& guest) const {
    std::lock_guard lk(mu_);
    auto it = guests_.find(guest);
    if (it == guests_.end()) return std::nullopt;
    return it->second.owner;
}

std::optional<std::pair<std::string, int>> Cluster::address_of(const std::string& node) const {
    std::lock_guard lk(mu_);
    auto it = members_.find(node);
    if (it == members_.end()) return std::nullopt;
    return std::make_pair(str(it->second, "address"), static_cast<int>(num(it->second, "port")));
}

std::int64_t Cluster::lease_id() const { return lease_seen_; }

std::chrono::steady_clock::time_point Cluster::last_keepalive_sent() const {
    return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(keepalive_sent_ns_.load()));
}

void Cluster::add_listener(std::function<void()> f) { listeners_.push_back(std::move(f)); }
void Cluster::add_online_ops(std::function<std::vector<Op>()> f) { online_ops_.push_back(std::move(f)); }

bool Cluster::online(const std::string& node) const {
    std::lock_guard lk(mu_);
    return alive_.count(node) > 0;
}

std::vector<GuestRecord> Cluster::records() const {
    std::lock_guard lk(mu_);
    std::vector<GuestRecord> out;
    for (const auto& [n, r] : guests_) out.push_back(r);
    return out;
}

std::shared_ptr<const json> Cluster::others(const std::string& kind) const {
    const std::int64_t now = now_s();
    std::lock_guard lk(mu_);
    auto& c = others_[kind];
    if (c.list && c.gen == view_gen_ && c.second == now) return c.list;
    auto out = std::make_shared<json>(json::array());
    for (const auto& [n, r] : guests_) {
        if (r.owner == o_.node_name || r.kind != kind || !r.info.is_object() || r.info.empty()) continue;
        json info = r.info;
        info["host"] = r.owner;
        if (!alive_.count(r.owner)) info["stale"] = true;
        // Uptime as of now, not as of the record (the owner computes it the same way).
        if (auto sa = info.find("started_at"); sa != info.end() && sa->is_number_integer() && sa->get<std::int64_t>() > 0)
            info["uptime"] = std::max<std::int64_t>(0, now - sa->get<std::int64_t>());
        out->push_back(std::move(info));
    }
    c = OthersCache{view_gen_, now, out};
    return c.list;
}

std::vector<std::string> Cluster::member_names() const {
    std::lock_guard lk(mu_);
    std::vector<std::string> out;
    for (const auto& [n, m] : members_) out.push_back(n);
    return out;
}

// ---- membership ---------------------------------------------------------------------------

void Cluster::write_member(bool voter, std::uint64_t etcd_id) {
    std::string fp;
    std::string address;
    {
        std::lock_guard lk(mu_);
        if (id_) fp = pki::fingerprint(id_->cert_pem);
        address = m_->address;
    }
    json doc{{"name", o_.node_name}, {"address", address}, {"port", o_.port},   {"fingerprint", fp},
             {"version", o_.version}, {"voter", voter},    {"etcd_id", std::to_string(etcd_id)}, {"joined", now_s()}};
    store().put(kMembers + o_.node_name, doc.dump());
}

api::ClusterStatus Cluster::create(const api::ClusterCreate& c) {
    api::check_cluster_name(o_.node_name, "this host's node name ([cluster] node_name)");
    if (member()) fail(Errc::conflict, "this host is already a member of a cluster (hvctl cluster leave first)");
    util::Reverter undo;
    fs::create_directories(dir());
    ::chmod(dir().c_str(), 0700);
    undo.add([this] {
        std::error_code ec;
        fs::remove_all(dir(), ec);
    });
    auto ca = pki::make_ca("hv cluster " + c.name);
    pki::Names names;
    names.ips = {c.address, "127.0.0.1"};
    names.dns = {o_.node_name};
    auto host = pki::issue(ca, "host:" + o_.node_name, names);
    util::write_file_atomic(dir() + "/ca.crt", ca.cert_pem, 0644);
    util::write_file_atomic(dir() + "/ca.key", ca.key_pem, 0600);
    util::write_file_atomic(dir() + "/host.crt", host.cert_pem, 0644);
    util::write_file_atomic(dir() + "/host.key", host.key_pem, 0600);
    TlsIdentity id{ca.cert_pem, host.cert_pem, host.key_pem};
    Membership m{c.name, c.address, o_.endpoints.empty(), o_.endpoints};
    if (o_.endpoints.empty()) {
        m.endpoints = {peer_url(c.address, o_.etcd_client_port)};
        EtcdMemberConfig ec = member_config(c.address, id);
        ec.existing = false;
        ec.cluster_token = "hv-" + c.name + "-" + random_id();
        auto p = std::make_unique<EtcdProcess>(ec);
        p->start();
        if (!p->wait_healthy(std::chrono::seconds(30)))
            fail(Errc::unavailable, "the local etcd member did not become healthy within 30 s (see {}/etcd.log)", dir());
        std::lock_guard lk(mu_);
        etcd_ = std::move(p);
    }
    undo.add([this] {
        std::unique_ptr<EtcdProcess> e;
        std::lock_guard lk(mu_);
        e = std::move(etcd_);
        store_.reset();
        m_.reset();
        id_.reset();
    });
    {
        std::lock_guard lk(mu_);
        m_ = m;
        id_ = id;
        ca_key_pem_ = ca.key_pem;
    }
    connect_store();
    json cdoc{{"name", c.name}, {"created", now_s()}, {"ca_fingerprint", pki::fingerprint(ca.cert_pem)}};
    auto r = store().txn({Compare::absent(kClusterKey)}, {Op::put(kClusterKey, cdoc.dump())});
    if (!r.succeeded) fail(Errc::conflict, "the store already holds a cluster (an external etcd in use by another hv cluster?)");
    write_member(m.voter, 0);
    save_state();
    undo.release();
    start_loops();
    spdlog::info("cluster: created cluster {} with this host ({}) at {}", c.name, o_.node_name, c.address);
    if (hooks_.changed) util::guarded("cluster change hook", [&] { hooks_.changed(); });
    return status();
}

api::TokenInfo Cluster::token(const api::TokenRequest& r) {
    if (!member()) fail(Errc::conflict, "this host is not in a cluster (hvctl cluster create or join)");
    pki::KeyPair ca;
    std::string cluster;
    {
        std::lock_guard lk(mu_);
        ca = {id_->ca_pem, ca_key_pem_};
        cluster = m_->cluster;
    }
    pki::JoinToken t;
    t.cluster = cluster;
    t.id = random_id();
    t.expires = now_s() + r.ttl;
    t.ca_pem = ca.cert_pem;
    t.ca_fingerprint = pki::fingerprint(ca.cert_pem);
    auto jc = pki::issue(ca, "join:" + t.id, {}, 0, static_cast<int>((r.ttl + 3599) / 3600));
    t.cert_pem = jc.cert_pem;
    t.key_pem = jc.key_pem;
    guarded_store([&] {
        Store& s = store();
        // From the store, not the cache (right after create the watch may not have listed
        // yet); online members first: the joiner tries them in order.
        auto members = s.list(kMembers).kvs;
        for (int pass = 0; pass < 2; ++pass)
            for (const auto& kv : members)
                if (auto m = parse(kv.key, kv.value)) {
                    std::string n = str(*m, "name");
                    bool up;
                    {
                        std::lock_guard lk(mu_);
                        up = alive_.count(n) > 0 || n == o_.node_name;
                    }
                    if (up != (pass == 0)) continue;
                    std::string a = str(*m, "address");
                    t.addresses.push_back(a.find(':') != std::string::npos ? fmt::format("[{}]:{}", a, num(*m, "port"))
                                                                           : fmt::format("{}:{}", a, num(*m, "port")));
                }
        if (t.addresses.empty()) fail(Errc::internal, "the store lists no members");
        auto lease = s.grant(std::chrono::seconds(r.ttl + 86400));
        json doc{{"expires", t.expires}, {"created_by", o_.node_name}, {"created", now_s()}};
        s.put(kTokens + t.id, doc.dump(), lease);
    });
    return api::TokenInfo{pki::encode_token(t), t.id, t.expires};
}

api::JoinAnswer Cluster::accept_join(const std::string& token_id, const api::JoinOffer& offer) {
    try {
        return accept_join_(token_id, offer);
    } catch (const Error& e) {
        spdlog::warn("cluster: join of {} ({}) refused: {}", offer.node, offer.address, e.what());
        throw;
    }
}

api::JoinAnswer Cluster::accept_join_(const std::string& token_id, const api::JoinOffer& offer) {
    if (!member()) fail(Errc::conflict, "this host is not in a cluster");
    std::string tkey = kTokens + token_id, mkey = kMembers + offer.node;
    api::JoinAnswer a;
    util::Reverter undo;
    guarded_store([&] {
        Store& s = store();
        auto tok = s.get(tkey);
        if (!tok) fail(Errc::invalid_input, "join token {} is unknown or expired", token_id);
        auto doc = parse(tkey, tok->value).value_or(json::object());
        if (doc.contains("used_by"))
            fail(Errc::conflict, "join token {} was already used (by {}); ask for a new one with hvctl cluster token",
                 token_id, str(doc, "used_by"));
        if (num(doc, "expires") < now_s()) fail(Errc::invalid_input, "join token {} has expired", token_id);
        if (s.get(mkey)) fail(Errc::conflict, "a member named '{}' is already in the cluster", offer.node);
        int voters = 0;
        std::vector<std::string> endpoints;
        for (const auto& kv : s.list(kMembers).kvs)
            if (auto m = parse(kv.key, kv.value); m && flag(*m, "voter")) {
                ++voters;
                endpoints.push_back(peer_url(str(*m, "address"), o_.etcd_client_port));
            }
        a.voter = o_.endpoints.empty() && voters < o_.voters;
        a.endpoints = o_.endpoints.empty() ? endpoints : o_.endpoints;
        doc["used_by"] = offer.node;
        doc["used_at"] = now_s();
        json mdoc{{"name", offer.node},   {"address", offer.address}, {"port", offer.port},
                  {"fingerprint", ""},   {"version", offer.version}, {"voter", a.voter},
                  {"etcd_id", "0"},      {"joined", now_s()}};
        auto r = s.txn({Compare::mod_revision_is(tkey, tok->mod_revision), Compare::absent(mkey)},
                       {Op::put(tkey, doc.dump(), tok->lease), Op::put(mkey, mdoc.dump())});
        if (!r.succeeded) fail(Errc::conflict, "join token {} was used at the same moment by another host", token_id);
        // A join that fails from here leaves the token unused and no member record.
        undo.add([this, mkey, tkey, tdoc = tok->value, lease = tok->lease] {
            try {
                store().txn({}, {Op::del(mkey), Op::put(tkey, tdoc, lease)});
            } catch (...) {
            }
        });
        pki::KeyPair ca;
        {
            std::lock_guard lk(mu_);
            ca = {id_->ca_pem, ca_key_pem_};
            a.cluster = m_->cluster;
        }
        pki::Names names;
        names.ips = {offer.address, "127.0.0.1"};
        names.dns = {offer.node};
        a.cert_pem = pki::sign_csr(ca, offer.csr_pem, "host:" + offer.node, names);
        a.ca_pem = ca.cert_pem;
        a.ca_key_pem = ca.key_pem;
        mdoc["fingerprint"] = pki::fingerprint(a.cert_pem);
        if (a.voter) {
            auto added = reconfig([&] { return s.member_add({peer_url(offer.address, o_.etcd_peer_port)}, true); });
            auto& id = added.first;
            auto& list = added.second;
            undo.add([this, id = added.first] {
                try {
                    store().member_remove(id);
                } catch (...) {
                }
            });
            std::string ic;
            for (const auto& m : list) {
                std::string n = m.id == id ? offer.node : m.name;
                for (const auto& u : m.peer_urls) ic += (ic.empty() ? "" : ",") + n + "=" + u;
            }
            a.initial_cluster = ic;
            mdoc["etcd_id"] = std::to_string(id);
        }
        s.put(mkey, mdoc.dump());
    });
    undo.release();
    spdlog::info("cluster: {} joins at {} ({})", offer.node, offer.address, a.voter ? "etcd voter" : "store client");
    return a;
}

api::ClusterStatus Cluster::join(const api::JoinRequest& r) {
    api::check_cluster_name(o_.node_name, "this host's node name ([cluster] node_name)");
    if (member()) fail(Errc::conflict, "this host is already a member of a cluster (hvctl cluster leave first)");
    auto t = pki::decode_token(r.token);
    if (t.expires < now_s()) fail(Errc::invalid_input, "the join token has expired; ask for a new one with hvctl cluster token");
    api::JoinRequest req = r;
    if (!req.member.empty()) {
        auto [mhost, mport] = split_host_port(req.member, 7443);
        auto first = fmt::format("{}:{}", mhost, mport);
        t.addresses.erase(std::remove(t.addresses.begin(), t.addresses.end(), first), t.addresses.end());
        t.addresses.insert(t.addresses.begin(), first);
        if (req.address.empty()) req.address = route_source(mhost);
    }
    const api::JoinRequest& rq = req;
    auto key = pki::make_key();
    api::JoinOffer offer{o_.node_name, rq.address, o_.port, pki::make_csr(key, "host:" + o_.node_name), o_.version};
    HttpsClient client(TlsIdentity{t.ca_pem, t.cert_pem, t.key_pem}, std::chrono::seconds(60));
    std::optional<api::JoinAnswer> answer;
    std::string errors;
    for (const auto& addr : t.addresses) {
        bool answered = false;
        try {
            auto [host, port] = split_host_port(addr, 7443);
            HttpsRequest req;
            req.method = "POST";
            req.target = "/v1/cluster/join-request";
            req.body = api::to_json(offer).dump();
            bool maybe = false;
            auto res = client.request(host, port, req, &maybe);
            json body = json::parse(res.body, nullptr, false);
            if (res.status != 200) {
                answered = true;  // the member decided: its reason is final, no other member is asked
                std::string msg = body.is_object() && body.contains("error") && body["error"].is_object()
                                      ? str(body["error"], "message")
                                      : res.body.substr(0, 200);
                auto code = body.is_object() && body.contains("error") && body["error"].is_object()
                                ? errc_from_name(str(body["error"], "code"))
                                : errc_from_http_status(res.status);
                fail(code, "{} refused the join: {}", addr, msg);
            }
            answer = api::join_answer_from_json(body);
            break;
        } catch (const Error& e) {
            if (answered || !transient(e)) throw;
            errors += fmt::format("{}{}", errors.empty() ? "" : "; ", e.what());
        }
    }
    if (!answer) fail(Errc::unavailable, "no member of the cluster answered: {}", errors);
    if (answer->ca_pem != t.ca_pem) fail(Errc::internal, "the member answered with another CA than the token's");
    util::Reverter undo;
    fs::create_directories(dir());
    ::chmod(dir().c_str(), 0700);
    undo.add([this] {
        std::error_code ec;
        fs::remove_all(dir(), ec);
    });
    util::write_file_atomic(dir() + "/ca.crt", answer->ca_pem, 0644);
    util::write_file_atomic(dir() + "/ca.key", answer->ca_key_pem, 0600);
    util::write_file_atomic(dir() + "/host.crt", answer->cert_pem, 0644);
    util::write_file_atomic(dir() + "/host.key", key, 0600);
    TlsIdentity id{answer->ca_pem, answer->cert_pem, key};
    Membership m{answer->cluster, rq.address, answer->voter, answer->endpoints};
    if (answer->voter) {
        // Its own member last: it is a learner until promoted, and learners refuse requests.
        m.endpoints.push_back(peer_url(rq.address, o_.etcd_client_port));
        EtcdMemberConfig ec = member_config(rq.address, id);
        ec.initial_cluster = answer->initial_cluster;
        ec.existing = true;
        auto p = std::make_unique<EtcdProcess>(ec);
        p->start();  // healthy only once promoted (below): a learner serves no requests
        std::lock_guard lk(mu_);
        etcd_ = std::move(p);
    }
    undo.add([this] {
        std::unique_ptr<EtcdProcess> e;
        std::lock_guard lk(mu_);
        e = std::move(etcd_);
        store_.reset();
        m_.reset();
        id_.reset();
    });
    {
        std::lock_guard lk(mu_);
        m_ = m;
        id_ = id;
        ca_key_pem_ = answer->ca_key_pem;
    }
    connect_store();
    if (answer->voter) {
        // A learner first (it cannot cost the cluster its quorum while it catches up), then a
        // voter once etcd lets it be promoted.
        auto peer = peer_url(rq.address, o_.etcd_peer_port);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        for (;;) {
            std::string why;
            try {
                for (const auto& sm : store().members())
                    if (std::find(sm.peer_urls.begin(), sm.peer_urls.end(), peer) != sm.peer_urls.end()) {
                        if (sm.learner) store().member_promote(sm.id);
                        why.clear();
                        goto promoted;
                    }
                why = "this member is not in etcd's member list";
            } catch (const Error& e) {
                why = e.what();
            }
            if (std::chrono::steady_clock::now() > deadline)
                fail(Errc::unavailable, "the local etcd member could not be promoted to a voter: {}", why);
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
    promoted:
        EtcdProcess* p;
        {
            std::lock_guard lk(mu_);
            p = etcd_.get();
        }
        if (p && !p->wait_healthy(std::chrono::seconds(60)))
            fail(Errc::unavailable, "the local etcd member is not healthy 60 s after its promotion (see {}/etcd.log)", dir());
    }
    // The member record the accepting member wrote is completed with this host's fingerprint.
    std::string mkey = kMembers + o_.node_name;
    auto cur = store().get(mkey);
    if (!cur) fail(Errc::internal, "the member record {} is missing after the join", mkey);
    auto mdoc = parse(mkey, cur->value).value_or(json::object());
    mdoc["fingerprint"] = pki::fingerprint(answer->cert_pem);
    store().put(mkey, mdoc.dump());
    save_state();
    undo.release();
    start_loops();
    spdlog::info("cluster: joined cluster {} as {} ({})", m.cluster, o_.node_name, m.voter ? "etcd voter" : "store client");
    if (hooks_.changed) util::guarded("cluster change hook", [&] { hooks_.changed(); });
    return status();
}

void Cluster::leave() {
    if (!member()) fail(Errc::conflict, "this host is not in a cluster");
    std::string mkey = kMembers + o_.node_name;
    guarded_store([&] {
        Store& s = store();
        int others = 0;
        for (const auto& kv : s.list(kMembers).kvs)
            if (kv.key != mkey) ++others;
        std::vector<Op> ops{Op::del(mkey), Op::del(kAlive + o_.node_name)};
        bool voter;
        std::string address;
        {
            std::lock_guard lk(mu_);
            for (const auto& [n, r] : guests_)
                if (r.owner == o_.node_name) ops.push_back(Op::del(kGuests + n));
            voter = m_->voter;
            address = m_->address;
        }
        if (others == 0) ops = {Op::del("/hv/", true)};  // the last member: the cluster ends
        s.txn({}, ops);
        if (others > 0 && voter && !test_mode_) {
            auto peer = peer_url(address, o_.etcd_peer_port);
            for (const auto& sm : s.members())
                if (std::find(sm.peer_urls.begin(), sm.peer_urls.end(), peer) != sm.peer_urls.end())
                    reconfig([&] { s.member_remove(sm.id); });
        }
    });
    stop();
    {
        std::lock_guard lk(mu_);
        store_.reset();
        m_.reset();
        id_.reset();
        members_.clear();
        alive_.clear();
        guests_.clear();
        maintenance_.clear();
        ++view_gen_;
        claims_.clear();
        dirty_.clear();
        offline_since_.clear();
    }
    if (!test_mode_) {
        std::error_code ec;
        fs::remove_all(dir(), ec);
    }
    spdlog::info("cluster: this host left the cluster");
    if (hooks_.changed) util::guarded("cluster change hook", [&] { hooks_.changed(); });
}

void Cluster::remove(const std::string& node, bool force) {
    if (!member()) fail(Errc::conflict, "this host is not in a cluster");
    if (node == o_.node_name) fail(Errc::invalid_input, "to take this host out of the cluster, use hvctl cluster leave");
    std::string mkey = kMembers + node;
    guarded_store([&] {
        Store& s = store();
        auto rec = s.get(mkey);
        if (!rec) fail(Errc::not_found, "no member named '{}' in the cluster", node);
        auto doc = parse(mkey, rec->value).value_or(json::object());
        bool up = s.get(kAlive + node).has_value();
        if (up && !force)
            fail(Errc::conflict, "member {} is online: run hvctl cluster leave on it, or remove it with --force", node);
        std::vector<Op> ops{Op::del(mkey), Op::del(kAlive + node)};
        int owned = 0;
        for (const auto& kv : s.list(kGuests).kvs)
            if (auto g = parse(kv.key, kv.value); g && str(*g, "owner") == node) {
                ++owned;
                ops.push_back(Op::del(kv.key));
            }
        if (owned > 0 && !force)
            fail(Errc::conflict, "member {} owns {} guest(s) in the directory; remove it with --force to drop them", node,
                 owned);
        if (!s.txn({Compare::mod_revision_is(mkey, rec->mod_revision)}, ops).succeeded)
            fail(Errc::conflict, "member {} changed at the same moment; try again", node);
        if (flag(doc, "voter") && !test_mode_) {
            auto peer = peer_url(str(doc, "address"), o_.etcd_peer_port);
            for (const auto& sm : s.members())
                if (std::find(sm.peer_urls.begin(), sm.peer_urls.end(), peer) != sm.peer_urls.end())
                    reconfig([&] { s.member_remove(sm.id); });
        }
    });
    spdlog::info("cluster: member {} removed{}", node, force ? " (forced)" : "");
}

api::ClusterStatus Cluster::status() {
    api::ClusterStatus st;
    st.node = o_.node_name;
    if (!member()) return st;
    std::shared_ptr<Store> s;
    {
        std::lock_guard lk(mu_);
        st.name = m_->cluster;
        s = store_;
    }
    // Quorum: a linearizable read answers only with a leader. Roles from etcd's member list.
    std::vector<StoreMember> sm;
    std::uint64_t leader = 0;
    int probed = -1;
    try {
        if (!s) fail(Errc::unavailable, "the store is not connected");
        s->get(kClusterKey);
        st.quorum = true;
        if (!test_mode_) {
            sm = s->members();
            leader = s->status().leader_id;
        }
    } catch (const Error& e) {
        st.warnings.push_back(fmt::format("no quorum: the store refuses writes ({})", e.what()));
        probed = reachable_voters();
    }
    std::lock_guard lk(mu_);
    std::vector<double> offsets;
    for (const auto& [n, m] : members_) {
        api::MemberStatus ms;
        ms.name = n;
        ms.address = str(m, "address");
        ms.port = static_cast<int>(num(m, "port"));
        ms.version = str(m, "version");
        ms.fingerprint = str(m, "fingerprint");
        bool voter = flag(m, "voter");
        st.voters += voter ? 1 : 0;
        ms.role = voter ? "voter" : "client";
        auto peer = peer_url(ms.address, o_.etcd_peer_port);
        for (const auto& e : sm)
            if (std::find(e.peer_urls.begin(), e.peer_urls.end(), peer) != e.peer_urls.end())
                ms.role = e.id == leader ? "leader" : e.learner ? "learner" : "voter";
        if (auto a = alive_.find(n); a != alive_.end()) {
            ms.online = true;
            ms.since = num(a->second, "since");
            ms.cpus = static_cast<int>(num(a->second, "cpus"));
            ms.memory_total = static_cast<std::uint64_t>(num(a->second, "memory_total"));
            ms.memory_used = static_cast<std::uint64_t>(num(a->second, "memory_used"));
            if (a->second.contains("clock_offset_ms") && a->second["clock_offset_ms"].is_number()) {
                ms.clock_offset_ms = a->second["clock_offset_ms"].get<double>();
                offsets.push_back(*ms.clock_offset_ms);
            }
            if (!str(a->second, "version").empty()) ms.version = str(a->second, "version");
            if (a->second.contains("cpu") && a->second["cpu"].is_object()) set_cpu(ms, a->second["cpu"]);
        } else {
            auto o = offline_since_.find(n);
            ms.since = o == offline_since_.end() ? 0 : o->second;
        }
        for (const auto& [g, r] : guests_) ms.guests += r.owner == n ? 1 : 0;
        if (ms.clock_offset_ms && std::abs(*ms.clock_offset_ms) > o_.clock_warn_ms)
            st.warnings.push_back(fmt::format("member {}: clock offset {:.0f} ms (above {} ms)", n, *ms.clock_offset_ms,
                                              o_.clock_warn_ms));
        st.members.push_back(std::move(ms));
    }
    if (offsets.size() > 1) {
        auto [lo, hi] = std::minmax_element(offsets.begin(), offsets.end());
        if (*hi - *lo > o_.clock_warn_ms)
            st.warnings.push_back(fmt::format("clocks of the members differ by {:.0f} ms (above {} ms)", *hi - *lo,
                                              o_.clock_warn_ms));
    }
    st.reachable = 0;
    if (probed >= 0) {
        st.reachable = probed;
    } else {
        for (const auto& ms : st.members) st.reachable += (ms.role != "client" && ms.online) ? 1 : 0;
    }
    return st;
}

std::vector<api::MemberStatus> Cluster::hosts() {
    if (member()) return status().members;
    api::MemberStatus m;
    m.name = o_.node_name;
    m.online = true;
    m.role = "standalone";
    m.version = o_.version;
    HostFacts f;
    if (hooks_.facts) f = hooks_.facts();
    m.cpus = f.cpus;
    m.memory_total = f.memory_total;
    m.memory_used = f.memory_used;
    m.clock_offset_ms = f.clock_offset_ms;
    if (f.cpu.is_object()) set_cpu(m, f.cpu);
    if (hooks_.guests) m.guests = static_cast<int>(hooks_.guests().size());
    return {m};
}

}  // namespace hv::cluster
