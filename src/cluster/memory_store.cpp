#include "memory_store.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "hv/error.hpp"

namespace hv::cluster {
using Clock = std::chrono::steady_clock;

namespace {

bool has_prefix(const std::string& key, const std::string& prefix) { return key.compare(0, prefix.size(), prefix) == 0; }

// One watch: a queue of revision batches its thread delivers.
struct MemWatch {
    std::string prefix;
    WatchCallbacks cb;
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::vector<WatchEvent>> queue;
    std::string error;  // set: deliver it after the queue and end
    bool stop = false;
    std::thread thread;

    void push(std::vector<WatchEvent> batch) {
        std::lock_guard lock(m);
        queue.push_back(std::move(batch));
        cv.notify_one();
    }
    void end(std::string why) {
        std::lock_guard lock(m);
        if (error.empty()) error = std::move(why);
        cv.notify_one();
    }
    void run() {
        for (;;) {
            std::vector<WatchEvent> batch;
            std::string why;
            {
                std::unique_lock lock(m);
                cv.wait(lock, [&] { return stop || !queue.empty() || !error.empty(); });
                if (stop) return;
                if (!queue.empty()) {
                    batch = std::move(queue.front());
                    queue.pop_front();
                } else {
                    why = error;
                }
            }
            try {
                if (!batch.empty() && cb.on_events) cb.on_events(batch);
                if (!why.empty()) {
                    if (cb.on_error) cb.on_error(why);
                    return;
                }
            } catch (const std::exception& e) {
                spdlog::error("memory store watch {}: a callback threw: {}", prefix, e.what());
            } catch (...) {
                spdlog::error("memory store watch {}: a callback threw", prefix);
            }
            if (!why.empty()) return;
        }
    }
};

struct Lease {
    std::chrono::seconds ttl;
    Clock::time_point deadline;
    std::set<std::string> keys;
};

}  // namespace

struct MemoryStore::Impl {
    std::mutex m;
    std::map<std::string, KeyValue> kvs;
    std::int64_t revision = 1;  // etcd starts at 1
    std::int64_t compacted = 0;
    // Every event with its revision, oldest first (from compacted on).
    std::vector<WatchEvent> history;
    std::map<std::int64_t, Lease> leases;
    std::int64_t next_lease = 0x1000;
    std::vector<std::weak_ptr<MemWatch>> watches;
    std::vector<StoreMember> members{StoreMember{1, "memory", {"http://127.0.0.1:2380"}, {"http://127.0.0.1:2379"}, false}};
    std::mt19937_64 rng{std::random_device{}()};
    std::atomic<bool> available{true};

    std::mutex reaper_m;
    std::condition_variable reaper_cv;
    bool closing = false;
    std::thread reaper;

    void check() const {
        if (!available.load()) fail(Errc::unavailable, "memory store: unavailable (set_available(false))");
    }

    // Publishes the events of one revision to history and the watches. Called with m held.
    void publish(std::vector<WatchEvent> events) {
        if (events.empty()) return;
        history.insert(history.end(), events.begin(), events.end());
        std::vector<std::weak_ptr<MemWatch>> live;
        for (auto& w : watches) {
            auto sp = w.lock();
            if (!sp) continue;
            live.push_back(w);
            std::vector<WatchEvent> mine;
            for (const auto& e : events)
                if (has_prefix(e.kv.key, sp->prefix)) mine.push_back(e);
            if (!mine.empty()) sp->push(std::move(mine));
        }
        watches = std::move(live);
    }

    // The writes of one revision, applied to kvs; with m held.
    void do_put(const std::string& key, const std::string& value, std::int64_t lease, std::int64_t rev,
                std::vector<WatchEvent>& events) {
        auto& kv = kvs[key];
        if (kv.create_revision == 0) {
            kv.key = key;
            kv.create_revision = rev;
            kv.version = 0;
        }
        if (kv.lease != 0 && kv.lease != lease) {
            auto it = leases.find(kv.lease);
            if (it != leases.end()) it->second.keys.erase(key);
        }
        kv.value = value;
        kv.mod_revision = rev;
        kv.version += 1;
        kv.lease = lease;
        if (lease != 0) leases[lease].keys.insert(key);
        events.push_back(WatchEvent{WatchEvent::Type::put, kv});
    }

    std::vector<std::string> matching(const std::string& key, bool prefix) const {
        std::vector<std::string> out;
        if (!prefix) {
            if (kvs.count(key)) out.push_back(key);
            return out;
        }
        for (auto it = kvs.lower_bound(key); it != kvs.end() && has_prefix(it->first, key); ++it) out.push_back(it->first);
        return out;
    }

    void do_del(const std::string& key, bool prefix, std::int64_t rev, std::vector<WatchEvent>& events) {
        for (const auto& k : matching(key, prefix)) {
            auto it = kvs.find(k);
            if (it->second.lease != 0) {
                auto l = leases.find(it->second.lease);
                if (l != leases.end()) l->second.keys.erase(k);
            }
            WatchEvent e;
            e.type = WatchEvent::Type::del;
            e.kv.key = k;
            e.kv.mod_revision = rev;
            events.push_back(std::move(e));
            kvs.erase(it);
        }
    }

    void check_lease(std::int64_t lease) const {
        if (lease != 0 && !leases.count(lease)) fail(Errc::not_found, "memory store: lease {} not found", lease);
    }

    // Removes a lease and its keys (at a new revision when it held any); with m held.
    void drop_lease(std::int64_t id) {
        auto it = leases.find(id);
        if (it == leases.end()) return;
        auto keys = it->second.keys;
        leases.erase(it);
        if (keys.empty()) return;
        std::vector<WatchEvent> events;
        std::int64_t rev = revision + 1;
        for (const auto& k : keys) do_del(k, false, rev, events);
        if (!events.empty()) {
            revision = rev;
            publish(std::move(events));
        }
    }

    void reap() {
        std::unique_lock rl(reaper_m);
        while (!closing) {
            reaper_cv.wait_for(rl, std::chrono::milliseconds(50));
            if (closing) return;
            std::lock_guard lock(m);
            auto now = Clock::now();
            std::vector<std::int64_t> expired;
            for (const auto& [id, l] : leases)
                if (l.deadline <= now) expired.push_back(id);
            for (auto id : expired) drop_lease(id);
        }
    }
};

MemoryStore::MemoryStore() : impl_(std::make_shared<Impl>()) {
    impl_->reaper = std::thread([impl = impl_.get()] {
        try {
            impl->reap();
        } catch (const std::exception& e) {
            spdlog::error("memory store: the lease reaper failed: {}", e.what());
        }
    });
}

MemoryStore::~MemoryStore() {
    {
        std::lock_guard lock(impl_->reaper_m);
        impl_->closing = true;
    }
    impl_->reaper_cv.notify_all();
    impl_->reaper.join();
    std::lock_guard lock(impl_->m);
    for (auto& w : impl_->watches)
        if (auto sp = w.lock()) sp->end("the store was closed");
}

std::optional<KeyValue> MemoryStore::get(const std::string& key) {
    impl_->check();
    if (key.empty()) fail(Errc::invalid_input, "an empty key");
    std::lock_guard lock(impl_->m);
    auto it = impl_->kvs.find(key);
    if (it == impl_->kvs.end()) return std::nullopt;
    return it->second;
}

ListResult MemoryStore::list(const std::string& prefix) {
    impl_->check();
    std::lock_guard lock(impl_->m);
    ListResult r;
    r.revision = impl_->revision;
    for (const auto& k : impl_->matching(prefix, true)) r.kvs.push_back(impl_->kvs.at(k));
    return r;
}

std::int64_t MemoryStore::put(const std::string& key, const std::string& value, std::int64_t lease) {
    impl_->check();
    if (key.empty()) fail(Errc::invalid_input, "an empty key");
    std::lock_guard lock(impl_->m);
    impl_->check_lease(lease);
    std::vector<WatchEvent> events;
    impl_->do_put(key, value, lease, ++impl_->revision, events);
    impl_->publish(std::move(events));
    return impl_->revision;
}

std::int64_t MemoryStore::del(const std::string& key, bool prefix) {
    impl_->check();
    if (key.empty() && !prefix) fail(Errc::invalid_input, "an empty key");
    std::lock_guard lock(impl_->m);
    std::vector<WatchEvent> events;
    impl_->do_del(key, prefix, impl_->revision + 1, events);
    auto n = static_cast<std::int64_t>(events.size());
    if (n > 0) {
        ++impl_->revision;
        impl_->publish(std::move(events));
    }
    return n;
}

namespace {

template <typename T>
bool compare_with(T have, T want, Compare::Result r) {
    switch (r) {
        case Compare::Result::equal: return have == want;
        case Compare::Result::not_equal: return have != want;
        case Compare::Result::greater: return have > want;
        case Compare::Result::less: return have < want;
    }
    return false;
}

}  // namespace

TxnResult MemoryStore::txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                           const std::vector<Op>& failure) {
    impl_->check();
    auto check_ops = [](const std::vector<Op>& ops) {
        // etcd refuses a branch that writes a key twice ("duplicate key given in txn request").
        std::set<std::string> written;
        for (const auto& o : ops) {
            if (o.key.empty() && !(o.kind != Op::Kind::put && o.prefix)) fail(Errc::invalid_input, "an empty key");
            if (o.kind == Op::Kind::get) continue;
            if (o.kind == Op::Kind::put && !written.insert(o.key).second)
                fail(Errc::invalid_input, "memory store: duplicate key given in txn request");
        }
        for (const auto& o : ops)
            if (o.kind == Op::Kind::del)
                for (const auto& w : written)
                    if (o.prefix ? has_prefix(w, o.key) : w == o.key)
                        fail(Errc::invalid_input, "memory store: duplicate key given in txn request");
    };
    check_ops(success);
    check_ops(failure);
    for (const auto& c : compares)
        if (c.key.empty()) fail(Errc::invalid_input, "an empty key");

    std::lock_guard lock(impl_->m);
    bool ok = true;
    for (const auto& c : compares) {
        auto it = impl_->kvs.find(c.key);
        const KeyValue* kv = it == impl_->kvs.end() ? nullptr : &it->second;
        bool r;
        switch (c.target) {
            case Compare::Target::version: r = compare_with<std::int64_t>(kv ? kv->version : 0, c.number, c.result); break;
            case Compare::Target::create_revision:
                r = compare_with<std::int64_t>(kv ? kv->create_revision : 0, c.number, c.result);
                break;
            case Compare::Target::mod_revision: r = compare_with<std::int64_t>(kv ? kv->mod_revision : 0, c.number, c.result); break;
            case Compare::Target::value: r = kv && compare_with<std::string>(kv->value, c.value, c.result); break;
            default: r = false;
        }
        ok = ok && r;
    }
    const auto& ops = ok ? success : failure;
    for (const auto& o : ops)
        if (o.kind == Op::Kind::put) impl_->check_lease(o.lease);

    TxnResult res;
    res.succeeded = ok;
    std::vector<WatchEvent> events;
    std::int64_t rev = impl_->revision + 1;
    for (const auto& o : ops) {
        std::vector<KeyValue> got;
        switch (o.kind) {
            case Op::Kind::put: impl_->do_put(o.key, o.value, o.lease, rev, events); break;
            case Op::Kind::del: impl_->do_del(o.key, o.prefix, rev, events); break;
            case Op::Kind::get:
                for (const auto& k : impl_->matching(o.key, o.prefix)) got.push_back(impl_->kvs.at(k));
                break;
        }
        res.responses.push_back(std::move(got));
    }
    if (!events.empty()) {
        impl_->revision = rev;
        impl_->publish(std::move(events));
    }
    res.revision = impl_->revision;
    return res;
}

std::int64_t MemoryStore::grant(std::chrono::seconds ttl) {
    impl_->check();
    if (ttl.count() <= 0) fail(Errc::invalid_input, "lease ttl {} s is not positive", ttl.count());
    std::lock_guard lock(impl_->m);
    auto id = impl_->next_lease++;
    impl_->leases[id] = Lease{ttl, Clock::now() + ttl, {}};
    return id;
}

void MemoryStore::keepalive(std::int64_t lease) {
    impl_->check();
    std::lock_guard lock(impl_->m);
    auto it = impl_->leases.find(lease);
    if (it == impl_->leases.end() || it->second.deadline <= Clock::now())
        fail(Errc::not_found, "memory store: lease {} has expired or does not exist", lease);
    it->second.deadline = Clock::now() + it->second.ttl;
}

void MemoryStore::revoke(std::int64_t lease) {
    impl_->check();
    std::lock_guard lock(impl_->m);
    if (!impl_->leases.count(lease)) fail(Errc::not_found, "memory store: lease {} not found", lease);
    impl_->drop_lease(lease);
}

void MemoryStore::expire(std::int64_t lease) {
    std::lock_guard lock(impl_->m);
    impl_->drop_lease(lease);
}

void MemoryStore::compact(std::int64_t revision) {
    impl_->check();
    std::lock_guard lock(impl_->m);
    if (revision > impl_->revision)
        fail(Errc::invalid_input, "memory store: compaction revision {} is a future revision", revision);
    if (revision <= impl_->compacted)
        fail(Errc::invalid_input, "memory store: revision {} has been compacted already", revision);
    impl_->compacted = revision;
    auto& h = impl_->history;
    h.erase(std::remove_if(h.begin(), h.end(), [&](const WatchEvent& e) { return e.kv.mod_revision < revision; }), h.end());
}

void MemoryStore::set_available(bool available) { impl_->available.store(available); }

namespace {

class MemoryWatch final : public Watch {
public:
    explicit MemoryWatch(std::shared_ptr<MemWatch> w) : w_(std::move(w)) {}
    ~MemoryWatch() override { cancel(); }
    void cancel() override {
        {
            std::lock_guard lock(w_->m);
            w_->stop = true;
        }
        w_->cv.notify_all();
        if (!w_->thread.joinable()) return;
        if (w_->thread.get_id() == std::this_thread::get_id())
            w_->thread.detach();  // from its own callback: it ends when the callback returns
        else
            w_->thread.join();
    }

private:
    std::shared_ptr<MemWatch> w_;
};

}  // namespace

std::unique_ptr<Watch> MemoryStore::watch(const std::string& prefix, std::int64_t from_revision, WatchCallbacks callbacks) {
    impl_->check();
    if (from_revision < 0) fail(Errc::invalid_input, "watch from revision {}", from_revision);
    auto w = std::make_shared<MemWatch>();
    w->prefix = prefix;
    w->cb = std::move(callbacks);
    {
        std::lock_guard lock(impl_->m);
        if (from_revision > 0 && from_revision < impl_->compacted) {
            w->end(fmt::format("compacted: the history of {} from revision {} is gone (it now starts at {}); list again "
                               "and watch from there",
                               prefix, from_revision, impl_->compacted));
        } else {
            if (from_revision > 0) {
                std::vector<WatchEvent> batch;
                for (const auto& e : impl_->history) {
                    if (e.kv.mod_revision < from_revision || !has_prefix(e.kv.key, prefix)) continue;
                    if (!batch.empty() && batch.back().kv.mod_revision != e.kv.mod_revision) {
                        w->push(std::move(batch));
                        batch.clear();
                    }
                    batch.push_back(e);
                }
                if (!batch.empty()) w->push(std::move(batch));
            }
            impl_->watches.push_back(w);
        }
    }
    w->thread = std::thread([st = w] { st->run(); });
    return std::make_unique<MemoryWatch>(w);
}

std::vector<StoreMember> MemoryStore::members() {
    impl_->check();
    std::lock_guard lock(impl_->m);
    return impl_->members;
}

std::pair<std::uint64_t, std::vector<StoreMember>> MemoryStore::member_add(const std::vector<std::string>& peer_urls,
                                                                            bool learner) {
    impl_->check();
    if (peer_urls.empty()) fail(Errc::invalid_input, "a member needs at least one peer URL");
    std::lock_guard lock(impl_->m);
    for (const auto& m : impl_->members)
        for (const auto& u : m.peer_urls)
            if (std::find(peer_urls.begin(), peer_urls.end(), u) != peer_urls.end())
                fail(Errc::conflict, "memory store: peer URL {} is in use by member {:x}", u, m.id);
    StoreMember m;
    do m.id = impl_->rng();
    while (m.id == 0 || std::any_of(impl_->members.begin(), impl_->members.end(), [&](const StoreMember& x) { return x.id == m.id; }));
    m.peer_urls = peer_urls;
    m.learner = learner;
    impl_->members.push_back(m);
    return {m.id, impl_->members};
}

void MemoryStore::member_remove(std::uint64_t id) {
    impl_->check();
    std::lock_guard lock(impl_->m);
    auto& ms = impl_->members;
    auto it = std::find_if(ms.begin(), ms.end(), [&](const StoreMember& m) { return m.id == id; });
    if (it == ms.end()) fail(Errc::not_found, "memory store: member {:x} not found", id);
    ms.erase(it);
}

void MemoryStore::member_promote(std::uint64_t id) {
    impl_->check();
    std::lock_guard lock(impl_->m);
    for (auto& m : impl_->members)
        if (m.id == id) {
            if (!m.learner) fail(Errc::conflict, "memory store: member {:x} is not a learner", id);
            m.learner = false;
            return;
        }
    fail(Errc::not_found, "memory store: member {:x} not found", id);
}

StoreStatus MemoryStore::status() {
    impl_->check();
    std::lock_guard lock(impl_->m);
    StoreStatus s;
    s.member_id = 1;
    s.leader_id = 1;
    s.revision = impl_->revision;
    s.raft_term = 1;
    s.version = "memory";
    s.endpoint = "memory";
    return s;
}

}  // namespace hv::cluster
