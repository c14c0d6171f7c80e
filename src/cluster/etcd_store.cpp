#include "etcd_store.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "etcd_json.hpp"
#include "hv/error.hpp"
#include "https_client.hpp"

namespace hv::cluster {
namespace ej = etcd_json;
using nlohmann::json;

namespace {

struct Endpoint {
    std::string host;
    int port = 2379;
    std::string name() const {
        return "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    }
};

struct Answer {
    json body;
    std::string endpoint;  // the one that answered
};

std::vector<Endpoint> parse_endpoints(const std::vector<std::string>& urls) {
    std::vector<Endpoint> out;
    for (const auto& e : urls) {
        auto [host, port] = split_host_port(e, 2379);
        out.push_back(Endpoint{host, port});
    }
    if (out.empty()) fail(Errc::invalid_input, "etcd: no endpoints");
    return out;
}

struct WatchState;

// The endpoints and the client, shared by the store and its watch threads.
struct Gateway {
    // The store's watches, told when the store is destroyed.
    std::mutex watches_m;
    std::vector<std::weak_ptr<WatchState>> watches;

    HttpsClient client;
    // The endpoint that answered last: tried first.
    std::atomic<std::size_t> preferred{0};

    explicit Gateway(const EtcdOptions& o) : client(o.tls, o.timeout), endpoints_(parse_endpoints(o.endpoints)) {}

    // A copy: set_endpoints may replace the list while a request or a watch runs.
    std::vector<Endpoint> endpoints() const {
        std::lock_guard lk(ep_m_);
        return endpoints_;
    }
    void set_endpoints(std::vector<Endpoint> eps) {
        std::lock_guard lk(ep_m_);
        endpoints_ = std::move(eps);
    }

    // POST `path` to the endpoints in turn. `retriable`: the request may run twice (a read, or
    // an idempotent keepalive), so it may go to the next endpoint even when it may have reached
    // one; otherwise only a request that surely did not reach an endpoint is sent elsewhere.
    Answer call(const char* path, const std::string& body, bool retriable) {
        const auto endpoints = this->endpoints();
        const std::size_t n = endpoints.size();
        const std::size_t start = preferred.load() % n;
        std::vector<std::string> errors;
        bool all_timeouts = true;
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t idx = (start + i) % n;
            const Endpoint& ep = endpoints[idx];
            HttpsRequest req;
            req.method = "POST";
            req.target = path;
            req.body = body;
            HttpsResponse resp;
            bool applied = false;
            try {
                resp = client.request(ep.host, ep.port, req, &applied);
            } catch (const Error& e) {
                if (applied && !retriable)
                    fail(Errc::unavailable, "etcd {}: {} may have been applied, so it is not retried on another endpoint: {}",
                         ep.name(), path, e.what());
                errors.push_back(e.what());
                all_timeouts = all_timeouts && e.code() == Errc::timeout;
                continue;
            }
            try {
                auto j = ej::parse_answer(resp.body, resp.status);
                preferred.store(idx);
                return Answer{std::move(j), ep.name()};
            } catch (const Error& e) {
                // A member without a leader (or too slow) answered: a read may ask another.
                if (e.code() == Errc::unavailable && retriable && i + 1 < n) {
                    errors.push_back(ep.name() + ": " + e.what());
                    all_timeouts = false;
                    continue;
                }
                throw;
            }
        }
        std::string all;
        for (const auto& e : errors) all += (all.empty() ? "" : "; ") + e;
        if (all_timeouts) fail(Errc::timeout, "etcd: no endpoint answered {} in time: {}", path, all);
        fail(Errc::unavailable, "etcd: no endpoint answered {}: {}", path, all);
    }

private:
    mutable std::mutex ep_m_;
    std::vector<Endpoint> endpoints_;
};

}  // namespace

struct EtcdStore::Impl : Gateway {
    using Gateway::Gateway;
};

EtcdStore::EtcdStore(EtcdOptions o) : impl_(std::make_shared<Impl>(o)) {}

void EtcdStore::set_endpoints(const std::vector<std::string>& urls) { impl_->set_endpoints(parse_endpoints(urls)); }


std::optional<KeyValue> EtcdStore::get(const std::string& key) {
    auto a = impl_->call(ej::kRange, ej::range_request(key, false), true);
    auto r = ej::parse_range(a.body);
    for (auto& kv : r.kvs)
        if (kv.key == key) return std::move(kv);
    return std::nullopt;
}

ListResult EtcdStore::list(const std::string& prefix) {
    return ej::parse_range(impl_->call(ej::kRange, ej::range_request(prefix, true), true).body);
}

std::int64_t EtcdStore::put(const std::string& key, const std::string& value, std::int64_t lease) {
    return ej::parse_put(impl_->call(ej::kPut, ej::put_request(key, value, lease), false).body);
}

std::int64_t EtcdStore::del(const std::string& key, bool prefix) {
    return ej::parse_deleterange(impl_->call(ej::kDeleteRange, ej::deleterange_request(key, prefix), false).body);
}

TxnResult EtcdStore::txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                         const std::vector<Op>& failure) {
    auto read_only = [](const std::vector<Op>& ops) {
        return std::all_of(ops.begin(), ops.end(), [](const Op& o) { return o.kind == Op::Kind::get; });
    };
    bool retriable = read_only(success) && read_only(failure);
    return ej::parse_txn(impl_->call(ej::kTxn, ej::txn_request(compares, success, failure), retriable).body);
}

std::int64_t EtcdStore::grant(std::chrono::seconds ttl) {
    return ej::parse_lease_grant(impl_->call(ej::kLeaseGrant, ej::lease_grant_request(ttl.count()), false).body);
}

void EtcdStore::keepalive(std::int64_t lease) {
    auto ttl = ej::parse_keepalive(impl_->call(ej::kLeaseKeepalive, ej::lease_id_request(lease), true).body);
    if (ttl <= 0) fail(Errc::not_found, "etcd: lease {} has expired or does not exist", lease);
}

void EtcdStore::revoke(std::int64_t lease) {
    ej::header_revision(impl_->call(ej::kLeaseRevoke, ej::lease_id_request(lease), false).body);
}

std::vector<StoreMember> EtcdStore::members() {
    return ej::parse_member_list(impl_->call(ej::kMemberList, ej::empty_request(), true).body);
}

std::pair<std::uint64_t, std::vector<StoreMember>> EtcdStore::member_add(const std::vector<std::string>& peer_urls,
                                                                          bool learner) {
    return ej::parse_member_add(impl_->call(ej::kMemberAdd, ej::member_add_request(peer_urls, learner), false).body);
}

void EtcdStore::member_remove(std::uint64_t id) {
    ej::header_revision(impl_->call(ej::kMemberRemove, ej::member_id_request(id), false).body);
}

void EtcdStore::member_promote(std::uint64_t id) {
    ej::header_revision(impl_->call(ej::kMemberPromote, ej::member_id_request(id), false).body);
}

StoreStatus EtcdStore::status() {
    auto a = impl_->call(ej::kStatus, ej::empty_request(), true);
    auto s = ej::parse_status(a.body);
    s.endpoint = a.endpoint;
    return s;
}

void EtcdStore::compact(std::int64_t revision) {
    ej::header_revision(impl_->call(ej::kCompaction, ej::compaction_request(revision), false).body);
}

// --- watch ------------------------------------------------------------------------------------

namespace {

struct WatchState {
    std::shared_ptr<Gateway> store;
    std::string prefix;
    std::int64_t next = 0;  // the first revision not delivered yet; 0 until known ("from now")
    WatchCallbacks cb;
    std::atomic<bool> stop{false};       // end the stream: cancelled or the store closed
    std::atomic<bool> cancelled{false};  // cancel() was called: no more callbacks
    std::atomic<bool> closed{false};     // the store was destroyed: on_error, then end
    std::thread thread;
};

void report_error(WatchState& s, const std::string& why) {
    if (s.cancelled.load() || !s.cb.on_error) return;
    try {
        s.cb.on_error(why);
    } catch (const std::exception& e) {
        spdlog::error("etcd watch {}: on_error threw: {}", s.prefix, e.what());
    } catch (...) {
        spdlog::error("etcd watch {}: on_error threw", s.prefix);
    }
}

// Handles one line of the stream; returns false when the watch ended for good.
bool handle_line(WatchState& s, const std::string& line, bool& confirmed) {
    auto w = ej::parse_watch_line(line);
    if (w.canceled) {
        if (w.compact_revision > 0)
            report_error(s, fmt::format("compacted: the history of {} from revision {} is gone (it now starts at {}); "
                                        "list again and watch from there",
                                        s.prefix, s.next, w.compact_revision));
        else
            report_error(s, "etcd canceled the watch: " + (w.cancel_reason.empty() ? std::string("no reason given") : w.cancel_reason));
        return false;
    }
    if (w.created) {
        confirmed = true;
        if (s.next == 0) s.next = w.revision + 1;
    }
    std::vector<WatchEvent> batch;
    for (auto& e : w.events) {
        // After a resume etcd starts at `next`; anything older was delivered already.
        if (s.next > 0 && e.kv.mod_revision < s.next) continue;
        batch.push_back(std::move(e));
    }
    if (batch.empty() || s.stop.load()) return true;
    s.next = batch.back().kv.mod_revision + 1;
    if (s.cb.on_events) {
        try {
            s.cb.on_events(batch);
        } catch (const std::exception& e) {
            spdlog::error("etcd watch {}: on_events threw: {}", s.prefix, e.what());
        } catch (...) {
            spdlog::error("etcd watch {}: on_events threw", s.prefix);
        }
    }
    return true;
}

void watch_loop(WatchState& s) {
    auto& impl = *s.store;
    std::size_t ep = impl.preferred.load();
    auto backoff = std::chrono::milliseconds(100);
    while (!s.stop.load()) {
        const auto endpoints = impl.endpoints();
        ep %= endpoints.size();
        const Endpoint& e = endpoints[ep];
        bool ended = false;
        bool confirmed = false;
        try {
            HttpsRequest req;
            req.method = "POST";
            req.target = ej::kWatch;
            req.body = ej::watch_create_request(s.prefix, s.next);
            std::string pending;
            int status = impl.client.stream(
                e.host, e.port, req,
                [&](const std::string& chunk) {
                    pending += chunk;
                    std::size_t nl;
                    while ((nl = pending.find('\n')) != std::string::npos) {
                        std::string line = pending.substr(0, nl);
                        pending.erase(0, nl + 1);
                        if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
                        if (!handle_line(s, line, confirmed)) {
                            ended = true;
                            return false;
                        }
                    }
                    return !s.stop.load();
                },
                s.stop);
            if (!ended && !s.stop.load() && status != 200)
                spdlog::warn("etcd watch {}: {} answered HTTP {}", s.prefix, e.name(), status);
            else if (!ended && !s.stop.load())
                spdlog::info("etcd watch {}: {} ended the stream; resuming from revision {}", s.prefix, e.name(), s.next);
        } catch (const Error& err) {
            if (!s.stop.load())
                spdlog::warn("etcd watch {}: {}; resuming from revision {}", s.prefix, err.what(), s.next);
        }
        if (ended || s.stop.load()) return;
        if (confirmed) backoff = std::chrono::milliseconds(100);
        ep = ep + 1;
        auto until = std::chrono::steady_clock::now() + backoff;
        while (!s.stop.load() && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
}

class EtcdWatch final : public Watch {
public:
    explicit EtcdWatch(std::shared_ptr<WatchState> s) : s_(std::move(s)) {}
    ~EtcdWatch() override { cancel(); }
    void cancel() override {
        s_->cancelled.store(true);
        s_->stop.store(true);
        if (!s_->thread.joinable()) return;
        if (s_->thread.get_id() == std::this_thread::get_id())
            s_->thread.detach();  // cancelled from its own callback: it ends after the callback returns
        else
            s_->thread.join();
    }

private:
    std::shared_ptr<WatchState> s_;
};

}  // namespace

std::unique_ptr<Watch> EtcdStore::watch(const std::string& prefix, std::int64_t from_revision, WatchCallbacks callbacks) {
    if (from_revision < 0) fail(Errc::invalid_input, "watch from revision {}", from_revision);
    auto s = std::make_shared<WatchState>();
    s->store = impl_;
    s->prefix = prefix;
    s->cb = std::move(callbacks);
    s->next = from_revision;
    if (s->next == 0) {
        // "From now" is the revision of this call, so a watch that connects late (or resumes
        // before its first answer) misses nothing written after it.
        try {
            s->next = ej::header_revision(impl_->call(ej::kStatus, ej::empty_request(), true).body) + 1;
        } catch (const Error& e) {
            spdlog::warn("etcd watch {}: cannot read the current revision ({}); watching from the first answer", prefix,
                         e.what());
        }
    }
    {
        std::lock_guard lock(impl_->watches_m);
        auto& ws = impl_->watches;
        ws.erase(std::remove_if(ws.begin(), ws.end(), [](const std::weak_ptr<WatchState>& w) { return w.expired(); }), ws.end());
        ws.push_back(s);
    }
    // The thread holds its own reference, so a detached thread (cancel from a callback) is safe.
    s->thread = std::thread([st = s] {
        try {
            watch_loop(*st);
            if (st->closed.load()) report_error(*st, "the store was closed");
        } catch (const std::exception& e) {
            spdlog::error("etcd watch {}: {}", st->prefix, e.what());
            report_error(*st, std::string("the watch failed: ") + e.what());
        } catch (...) {
            spdlog::error("etcd watch {}: unknown failure", st->prefix);
            report_error(*st, "the watch failed");
        }
    });
    return std::make_unique<EtcdWatch>(s);
}

EtcdStore::~EtcdStore() {
    std::lock_guard lock(impl_->watches_m);
    for (auto& w : impl_->watches)
        if (auto s = w.lock()) {
            s->closed.store(true);
            s->stop.store(true);
        }
}

}  // namespace hv::cluster
