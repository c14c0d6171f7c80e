#include "ha_service.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "autostart_service.hpp"
#include "cluster.hpp"
#include "guest.hpp"
#include "hv/error.hpp"
#include "hv/storage/pool_manager.hpp"
#include "hv/util/guard.hpp"
#include "hv/util/progress.hpp"
#include "vm_manager.hpp"

namespace hv::ha {
using nlohmann::json;
using cluster::Compare;
using cluster::Op;

namespace {
constexpr const char* kPrefix = "/hv/ha/";
constexpr const char* kResources = "/hv/ha/resources/";
constexpr const char* kStatus = "/hv/ha/status/";
constexpr const char* kGroups = "/hv/ha/groups/";
constexpr const char* kManager = "/hv/ha/manager";
constexpr const char* kFence = "/hv/ha/fence/";
constexpr const char* kAgent = "/hv/ha/agent/";
constexpr const char* kSettings = "/hv/ha/settings";
constexpr const char* kMaintenancePrefix = "/hv/maintenance/";  // the migrator's record (src/cluster/cluster.hpp)
constexpr const char* kGuestDir = "/hv/guests/";
constexpr const char* kAlive = "/hv/alive/";    // the members' alive keys (src/cluster: on their leases)

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct Doc {
    json j;
    std::int64_t rev = 0;        // mod_revision
    std::int64_t created = 0;    // create_revision
    std::int64_t lease = 0;
};

std::string s(const json& j, const char* k) { return j.is_object() && j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; }
std::int64_t n(const json& j, const char* k) {
    return j.is_object() && j.contains(k) && j[k].is_number_integer() ? j[k].get<std::int64_t>() : 0;
}
}  // namespace

struct HaService::View {
    std::map<std::string, Doc> resources, status, groups, fences, agents;
    std::map<std::string, Doc> directory;  // /hv/guests/<name> of the guests under HA
    std::optional<Doc> manager;
    std::int64_t revision = 0;
    // The members whose alive key exists, read from the store after /hv/ha/ (not from the
    // cluster's watch, which may lag: a host's agent writes "active" only after its alive key,
    // so reading the agents first and the alive keys second never sees an active agent of a
    // host that is online without its key).
    std::set<std::string> alive;
    bool online(const std::string& node) const { return alive.count(node) > 0; }
    std::optional<Doc> dir(const std::string& guest) const {
        auto it = directory.find(guest);
        return it == directory.end() ? std::nullopt : std::optional<Doc>(it->second);
    }
};

void check_timing(const Options& o) {
    using namespace std::chrono;
    auto need = kPetWindow + seconds(o.watchdog_timeout) + kFenceMargin;
    if (need > seconds(o.lease_ttl))
        fail(Errc::invalid_input,
             "[ha] watchdog_timeout = {} s with [cluster] lease_ttl = {} s: a fenced host must be dead before its lease can "
             "expire, which needs pet window {} ms + watchdog {} s + margin {} ms <= lease_ttl (docs/ha.md)",
             o.watchdog_timeout, o.lease_ttl, kPetWindow.count(), o.watchdog_timeout, kFenceMargin.count());
}

HaService::HaService(Options o, cluster::Cluster& cluster, guest::Guests& guests, virt::VmManager& vms,
                     storage::PoolManager& pools, guest::AutostartService& autostart)
    : o_(std::move(o)), cluster_(cluster), guests_(guests), vms_(vms), pools_(pools), autostart_(autostart),
      wd_(o_.watchdog, o_.watchdog_timeout) {
    check_timing(o_);
    cluster_.add_listener([this] { trigger(); });
    // "active" in the alive key's transaction: a host back from a planned stop never counts
    // as frozen once it is online (if it fails right after, it is fenced and its guests
    // recovered), and never as active while it is not online (docs/ha.md).
    cluster_.add_online_ops([this] {
        {
            std::lock_guard lk(mu_);
            if (quit_) return std::vector<cluster::Op>{};  // stopping: "frozen" is (about to be) written
        }
        json doc = agent_doc(false);
        {
            std::lock_guard wl(write_mu_);
            agent_written_ = json();  // the loop writes it again once it knows more
        }
        trigger();
        return std::vector<cluster::Op>{cluster::Op::put(kAgent + cluster_.node(), doc.dump())};
    });
}

HaService::~HaService() { stop(); }

void HaService::start() {
    std::lock_guard lk(mu_);
    if (started_) return;
    started_ = true;
    active_since_ = now_s();
    loop_ = std::thread([this] { util::guarded("ha loop", [this] { loop(); }); });
    wd_thread_ = std::thread([this] { util::guarded("ha watchdog", [this] { watchdog_loop(); }); });
}

void HaService::stop() {
    {
        std::lock_guard lk(mu_);
        if (!started_ || quit_) return;
        quit_ = true;
        cv_.notify_all();
    }
    if (loop_.joinable()) loop_.join();
    if (wd_thread_.joinable()) wd_thread_.join();
    // Planned stop: say so before the lease goes (the manager freezes, not recovers), then
    // the magic close. A host that cannot say it keeps its watchdog armed: it fires.
    bool said = false;
    util::guarded("ha freeze", [&] {
        if (!cluster_.member()) return;
        write_agent(true);
        said = true;
    });
    std::lock_guard lk(mu_);
    if (said || !wd_.armed()) {
        wd_.disarm();
    } else {
        // The lease must then run out (not be revoked): the manager fences only after it did,
        // and by then the watchdog fired.
        cluster_.keep_lease_at_stop();
        spdlog::warn("ha: could not record the planned stop; the watchdog stays armed and will fire");
    }
}

void HaService::trigger() {
    std::lock_guard lk(mu_);
    dirty_ = true;
    cv_.notify_all();
}

bool HaService::managed(const std::string& guest) const {
    std::lock_guard lk(mu_);
    // Before the first reading of the store, a member cannot tell: nothing is left to
    // autostart that HA may own elsewhere.
    if (!read_once_ && cluster_.member()) return true;
    return managed_.count(guest) > 0;
}

void HaService::loop() {
    std::unique_lock lk(mu_);
    while (!quit_) {
        // Readiness gates and failed passes are looked at again each second; otherwise a pass
        // runs on a change the watch brought.
        bool waiting = !started_at_.empty();
        cv_.wait_for(lk, std::chrono::seconds(waiting ? 1 : 30), [&] { return dirty_ || quit_; });
        if (quit_) break;
        dirty_ = false;
        lk.unlock();
        bool ok = false;
        util::guarded("ha pass", [&] { ok = pass(); });
        lk.lock();
        if (!ok && !quit_) {
            cv_.wait_for(lk, std::chrono::seconds(1), [&] { return quit_; });
            dirty_ = true;
        }
    }
}

// ---- reading the store ---------------------------------------------------------------------

namespace {
HaService::View read_view(cluster::Store& st) {
    HaService::View v;
    auto all = st.list(kPrefix);
    v.revision = all.revision;
    for (const auto& kv : all.kvs) {
        json j = json::parse(kv.value, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
            spdlog::warn("ha: {} is not a JSON object; ignored", kv.key);
            continue;
        }
        Doc d{std::move(j), kv.mod_revision, kv.create_revision, kv.lease};
        auto under = [&](const char* p, std::map<std::string, Doc>& m) {
            if (kv.key.rfind(p, 0) != 0) return false;
            m[kv.key.substr(std::string(p).size())] = d;
            return true;
        };
        if (kv.key == kManager) v.manager = d;
        else if (under(kResources, v.resources) || under(kStatus, v.status) || under(kGroups, v.groups) ||
                 under(kFence, v.fences) || under(kAgent, v.agents)) {
        }
    }
    return v;
}

std::optional<Doc> read_one(cluster::Store& st, const std::string& key) {
    auto kv = st.get(key);
    if (!kv) return std::nullopt;
    json j = json::parse(kv->value, nullptr, false);
    if (j.is_discarded()) return std::nullopt;
    return Doc{std::move(j), kv->mod_revision, kv->create_revision, kv->lease};
}
}  // namespace

bool HaService::pass() {
    if (!cluster_.member()) {
        std::lock_guard lk(mu_);
        managed_.clear();
        want_armed_ = false;
        return true;
    }
    auto store = cluster_.shared_store();
    View v = read_view(*store);
    // The directory records of the guests under HA, once per pass (act and manage both ask).
    for (const auto& [g, d] : v.resources)
        if (auto rec = read_one(*store, kGuestDir + g)) v.directory[g] = *rec;
    for (const auto& kv : store->list(kAlive).kvs) v.alive.insert(kv.key.substr(std::strlen(kAlive)));
    {
        std::lock_guard lk(mu_);
        managed_.clear();
        for (const auto& [g, d] : v.resources) managed_.insert(g);
        read_once_ = true;
    }
    bool ok = act(v);
    ok = manage(v) && ok;
    // After a boot: the maintenance the last shutdown entered (policy "migrate") is left, once
    // this host is online again (its guests come back to it).
    std::function<void()> resume;
    {
        std::lock_guard lk(mu_);
        if (resume_ && cluster_.lease_id() != 0) resume.swap(resume_);
    }
    if (resume) {
        auto rec = read_one(*store, std::string(kMaintenancePrefix) + cluster_.node());
        if (rec && s(rec->j, "reason") == "host shutdown") {
            spdlog::info("ha: this host entered maintenance at its last shutdown (policy migrate): leaving it, its guests "
                         "come back");
            resume();
        }
    }
    return ok;
}

api::HaSettings HaService::settings() const {
    if (!cluster_.member()) return {};
    auto rec = read_one(*cluster_.shared_store(), kSettings);
    if (!rec) return {};
    try {
        return api::ha_settings_from_json(rec->j);
    } catch (const Error& e) {
        spdlog::warn("ha: {} is not valid ({}); the defaults apply", kSettings, e.what());
        return {};
    }
}

nlohmann::json HaService::put_settings(const nlohmann::json& patch) {
    if (!cluster_.member()) fail(Errc::conflict, "HA settings are the cluster's: this host is in no cluster");
    auto next = api::ha_settings_from_json(patch, settings());
    cluster_.shared_store()->put(kSettings, api::to_json(next).dump());
    spdlog::info("ha: settings: shutdown_policy {}", next.shutdown_policy);
    return api::to_json(next);
}

nlohmann::json HaService::host_shutdown(util::Progress& progress, const MaintenanceFn& maintenance) {
    if (!cluster_.member()) return json{{"policy", nullptr}, {"why", "this host is in no cluster"}};
    // The host goes down whatever happens here: a store that cannot be read means freeze.
    std::string policy = "freeze";
    json out = json::object();
    try {
        policy = settings().shutdown_policy;
    } catch (const std::exception& e) {
        out["error"] = fmt::format("the HA settings could not be read ({}): freeze", e.what());
        progress.log(out["error"].get<std::string>());
    }
    out["policy"] = policy;
    if (policy == "migrate") {
        progress.log("HA shutdown policy migrate: this host enters maintenance, its running guests move live");
        try {
            out["maintenance"] = maintenance(progress);
        } catch (const std::exception& e) {
            // What could not move is frozen below and stopped with the host, like under freeze.
            out["error"] = e.what();
            progress.log(fmt::format("maintenance: {}; what is still here is frozen", e.what()));
        }
    }
    shutting_down_ = true;
    util::guarded("ha: freezing for the host shutdown", [&] { write_agent(true); });
    progress.log("HA: this host's agent is frozen: its HA guests are stopped with it, not recovered elsewhere");
    trigger();
    return out;
}

void HaService::after_boot(std::function<void()> resume) {
    {
        std::lock_guard lk(mu_);
        resume_ = std::move(resume);
    }
    trigger();
}

// ---- the local agent -----------------------------------------------------------------------

nlohmann::json HaService::agent_doc(bool frozen) {
    json pools = pools_.shared_names();
    std::lock_guard lk(mu_);
    frozen = frozen || shutting_down_;
    return {{"node", cluster_.node()},
            {"state", frozen ? "frozen" : "active"},
            {"since", frozen ? now_s() : active_since_},
            {"shutdown", shutting_down_.load()},
            {"watchdog", {{"ok", wd_error_.empty()}, {"what", wd_.what().empty() ? wd_.path() : wd_.what()},
                          {"armed", wd_.armed()}, {"error", wd_error_}}},
            {"pools", pools},
            {"cleaned", cleaned_},
            {"ready", ready_},
            {"failed", failed_},
            {"migrate_failed", migrate_failed_}};
}

void HaService::write_agent(bool frozen) {
    auto store = cluster_.shared_store();
    json doc = agent_doc(frozen);
    std::lock_guard wl(write_mu_);
    if (doc == agent_written_) return;
    store->put(kAgent + cluster_.node(), doc.dump());
    if (!agent_written_.is_object() || agent_written_.value("state", "") != doc.value("state", ""))
        spdlog::info("ha: the agent of this host is {}", doc.value("state", ""));
    agent_written_ = doc;
}

bool HaService::act(const View& v) {
    const std::string me = cluster_.node();
    // Not before this host's alive key is in the store (Cluster::lease_id() is set once its put
    // succeeded): an "active" agent record of a host that is not online tells the manager it
    // failed (not frozen) and gets it fenced. Seen at the restart of a frozen host: its new hvd
    // wrote "active" before its alive key, and the manager recovered guests whose QEMUs ran on.
    if (cluster_.lease_id() == 0) {
        if (!waiting_alive_) spdlog::info("ha: the agent waits for this host's alive key");
        waiting_alive_ = true;
        return false;
    }
    waiting_alive_ = false;
    auto store = cluster_.shared_store();
    auto& vm = guests_.driver(api::GuestKind::vm);
    const bool fenced_here = v.fences.count(me) > 0;
    bool ok = true, arm = false, stale_left = false;
    std::set<std::string> live;
    for (const auto& res_entry : v.resources) {
        const std::string& name = res_entry.first;
        const Doc& r = res_entry.second;
        live.insert(name);
        auto dir = v.dir(name);
        std::string owner = dir ? s(dir->j, "owner") : "";
        if (owner.empty() && v.status.count(name)) owner = s(v.status.at(name).j, "host");
        std::optional<guest::GuestStatus> local;
        try {
            local = vm.find(name);
        } catch (const Error& e) {
            spdlog::warn("ha: {}: {}", name, e.what());
            ok = false;
            continue;
        }
        const bool running = local && local->state != api::GuestState::stopped && local->state != api::GuestState::crashed;
        const json st = v.status.count(name) ? v.status.at(name).j : json::object();
        if (owner != me) {
            // Another host has it: the manager recovered it there while this host was fenced,
            // or relocated it after its start failed here. What is left here is a stale copy.
            // Without a fence of this host, a running copy is a migration on its way and is
            // left alone; a stopped one that the status also places elsewhere goes.
            bool relocated = local && !running && s(st, "host") == owner;
            if (local && (fenced_here || relocated) && !owner.empty()) {
                bool gone = util::guarded("ha: removing a stale copy", [&] {
                    if (running) vm.power_off(name);
                    util::NullProgress np;
                    vm.remove(name, false, np);
                    spdlog::warn("ha: vm {} runs on {} now; removed the stale copy here (disks kept)", name, owner);
                });
                if (!gone) stale_left = true;
            }
            std::lock_guard lk(mu_);
            ready_.erase(name), failed_.erase(name), attempts_.erase(name), started_at_.erase(name);
            continue;
        }
        if (s(r.j, "state") != "started") {
            std::lock_guard lk(mu_);
            ready_.erase(name), started_at_.erase(name);
            continue;
        }
        arm = true;
        std::string why_not;
        {
            std::lock_guard lk(mu_);
            if (failed_.count(name)) continue;  // the manager relocates it or marks it error
            if (!wd_.armed()) why_not = wd_error_.empty() ? "the watchdog is not armed yet" : wd_error_;
        }
        if (!why_not.empty()) {
            ok = false;  // the watchdog thread arms it; again in a second
            continue;
        }
        try {
            if (!local && s(st, "state") != "recovery") {
                // Not here although the directory names this host, and not assigned here by a
                // recovery: on its way out (a live migration undefines it here a moment before
                // the directory names the destination) or removed outside hv. Never defined
                // again from the stored definition: that could make a second copy. (A delete
                // through hv takes it out of HA: requested("deleted").)
                continue;
            }
            if (shutting_down_ && !running) continue;  // the host shuts down: stopped with it (frozen)
            if (!local) {
                std::string xml = s(r.j, "xml");
                if (xml.empty()) fail(Errc::internal, "no stored definition");
                vms_.define_from(name, xml);
                spdlog::info("ha: vm {} defined here from its stored definition", name);
            }
            if (!running) {
                vm.action(name, "start");
                std::lock_guard lk(mu_);
                started_at_[name] = std::chrono::steady_clock::now();
                ready_.erase(name);
                spdlog::info("ha: vm {} started here", name);
            } else {
                std::lock_guard lk(mu_);
                if (!ready_.count(name) && !started_at_.count(name)) started_at_[name] = std::chrono::steady_clock::now();
            }
            // The manager's failback: a live migration to the group's better host (a task; the
            // directory follows the guest there, and that host's agent reports it ready).
            if (running && !shutting_down_ && s(st, "state") == "migrate" && s(st, "host") == me) {
                const std::string to = s(st, "target");
                MigrateFn go;
                {
                    std::lock_guard lk(mu_);
                    if (migrate_ && !to.empty() && to != me && !migrating_.count(name) && !migrate_failed_.count(name)) {
                        migrating_.insert(name);
                        go = migrate_;
                    }
                }
                if (go && !util::guarded("ha: starting a failback", [&] {
                        spdlog::info("ha: vm {}: failback to {} (live migration)", name, to);
                        go(name, to);
                    }))
                    migration_done(name, "the migration could not be started");
            }
            // The readiness gate of its autostart settings ("running" without any).
            auto settings = autostart_.get(api::GuestKind::vm, name);
            std::string gate = settings.wait_for == "none" ? "running" : settings.wait_for;
            std::chrono::steady_clock::time_point t0;
            {
                std::lock_guard lk(mu_);
                if (ready_.count(name)) continue;
                t0 = started_at_[name];
            }
            if (vm.ready(name, gate)) {
                std::lock_guard lk(mu_);
                ready_[name] = now_s();
                started_at_.erase(name);
                attempts_.erase(name);
                spdlog::info("ha: vm {} is ready ({})", name, gate);
            } else if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(settings.wait_timeout)) {
                fail(Errc::timeout, "not ready ({}) after {} s", gate, settings.wait_timeout);
            }
        } catch (const Error& e) {
            std::lock_guard lk(mu_);
            int tries = ++attempts_[name];
            started_at_.erase(name);
            int max = static_cast<int>(n(r.j, "max_restart")) + 1;
            spdlog::warn("ha: vm {}: start {} of {} failed: {}", name, tries, max, e.what());
            if (tries >= max) failed_[name] = e.what();
            ok = false;
        }
    }
    {
        std::lock_guard lk(mu_);
        want_armed_ = arm;
        for (auto it = ready_.begin(); it != ready_.end();) it = live.count(it->first) ? std::next(it) : ready_.erase(it);
        for (auto it = failed_.begin(); it != failed_.end();) it = live.count(it->first) ? std::next(it) : failed_.erase(it);
        for (auto it = migrate_failed_.begin(); it != migrate_failed_.end();)
            it = live.count(it->first) ? std::next(it) : migrate_failed_.erase(it);
    }
    cv_.notify_all();
    // After a fence of this host: "cleaned" tells the manager that no stale copy is left here,
    // so it may lift the storage fence.
    if (fenced_here && !stale_left) cleaned_ = n(v.fences.at(me).j, "since");
    write_agent(false);
    return ok && !stale_left;
}

// Pets only after a keepalive that succeeded and was sent after the previous pet, and at most
// kPetWindow after it was sent (docs/ha.md: the inequality).
void HaService::watchdog_loop() {
    std::chrono::steady_clock::time_point last_used{};
    std::unique_lock lk(mu_);
    while (!quit_) {
        cv_.wait_for(lk, std::chrono::milliseconds(200), [&] { return quit_; });
        if (quit_) break;
        if (want_armed_ && !wd_.armed()) {
            try {
                wd_.arm();
                wd_error_.clear();
                last_used = std::chrono::steady_clock::now();
            } catch (const Error& e) {
                if (wd_error_ != e.what()) spdlog::error("ha: {}: this host cannot run HA guests", e.what());
                wd_error_ = e.what();
            }
            dirty_ = true;
            cv_.notify_all();
            continue;
        }
        if (!want_armed_ && wd_.armed()) {
            wd_.disarm();
            dirty_ = true;
            continue;
        }
        if (!wd_.armed()) continue;
        auto sent = cluster_.last_keepalive_sent();
        auto now = std::chrono::steady_clock::now();
        if (sent > last_used && now - sent <= kPetWindow) {
            if (!wd_.pet()) spdlog::error("ha: petting the watchdog failed");
            last_used = sent;
        }
    }
}

// ---- the manager ---------------------------------------------------------------------------

bool HaService::manage(const View& v) {
    const std::string me = cluster_.node();
    auto store = cluster_.shared_store();
    const std::int64_t lease = cluster_.lease_id();
    if (lease == 0) return true;  // offline: never act
    if (!v.manager) {
        json doc{{"node", me}, {"since", now_s()}};
        auto r = store->txn({Compare::absent(kManager)}, {Op::put(kManager, doc.dump(), lease)});
        if (r.succeeded) spdlog::info("ha: this host is the HA manager now");
        return true;  // the next pass (the watch brings the key) manages
    }
    if (s(v.manager->j, "node") != me || v.manager->lease != lease) return true;
    const Compare mine{kManager, Compare::Target::create_revision, Compare::Result::equal, v.manager->created, {}};
    bool ok = true;

    // A host back after a fence: lifted once its agent reported in (stale copies removed) after it.
    for (const auto& [node, f] : v.fences) {
        if (!v.online(node)) continue;
        auto a = v.agents.find(node);
        if (a == v.agents.end() || s(a->second.j, "state") != "active" || n(a->second.j, "cleaned") < n(f.j, "since")) continue;
        try {
            for (const auto& p : f.j.value("pools", json::array()))
                if (p.is_string()) pools_.pool(p.get<std::string>())->unfence_clients(s(f.j, "address"));
            store->txn({mine, Compare::mod_revision_is(kFence + node, f.rev)}, {Op::del(kFence + node)});
            spdlog::info("ha: host {} is back and clean: its fence is lifted", node);
        } catch (const Error& e) {
            // Tried again at the next change (not every second: a key without the right stays so).
            if (unfence_errors_[node] != e.what()) spdlog::warn("ha: lifting the fence of {}: {}", node, e.what());
            unfence_errors_[node] = e.what();
        }
    }

    // A host's priority in the guest's group (-1: not in it, or no group).
    auto prio_of = [&](const Doc& r, const std::string& h) {
        auto it = v.groups.find(s(r.j, "group"));
        if (it == v.groups.end()) return -1;
        auto hosts = it->second.j.value("hosts", json::object());
        return hosts.contains(h) && hosts[h].is_number_integer() ? hosts[h].get<int>() : -1;
    };
    // Candidate hosts for a guest, best first.
    auto choose = [&](const std::string& guest, const Doc& r, const std::string& exclude, std::string& why) {
        std::vector<std::string> pools;
        for (const auto& d : r.j.value("disks", json::array())) pools.push_back(s(d, "pool"));
        const Doc* g = nullptr;
        if (auto it = v.groups.find(s(r.j, "group")); it != v.groups.end()) g = &it->second;
        std::map<std::string, int> load;
        for (const auto& [gn, st] : v.status) ++load[s(st.j, "host")];
        std::vector<std::tuple<int, int, std::string>> cands;
        std::vector<std::string> reasons;
        for (const auto& h : cluster_.member_names()) {
            if (h == exclude) continue;
            auto no = [&](const std::string& w) { reasons.push_back(h + ": " + w); };
            if (!v.online(h)) { no("offline"); continue; }
            if (cluster_.maintenance(h)) { no("in maintenance"); continue; }
            if (v.fences.count(h)) { no("fenced"); continue; }
            auto a = v.agents.find(h);
            if (a == v.agents.end() || s(a->second.j, "state") != "active") { no("no HA agent"); continue; }
            if (!a->second.j.value("watchdog", json::object()).value("ok", false)) { no("no watchdog"); continue; }
            auto have = a->second.j.value("pools", json::array());
            std::string missing;
            for (const auto& p : pools)
                if (std::find(have.begin(), have.end(), p) == have.end()) missing = p;
            if (!missing.empty()) { no("no pool " + missing); continue; }
            int prio = g ? prio_of(r, h) : 0;
            if (g && prio < 0 && g->j.value("restricted", false)) { no("not in group " + s(g->j, "name")); continue; }
            cands.emplace_back(-prio, load[h], h);
        }
        std::sort(cands.begin(), cands.end());
        why = reasons.empty() ? "no other member" : fmt::format("{}", fmt::join(reasons, "; "));
        (void)guest;
        return cands.empty() ? std::optional<std::string>() : std::get<2>(cands.front());
    };

    // Failback (a group without nofailback): a host of higher priority than the guest's that
    // could take it. Equal priorities never move a guest (no ping-pong on load).
    auto failback_to = [&](const std::string& name, const Doc& r, const std::string& host) -> std::optional<std::string> {
        auto it = v.groups.find(s(r.j, "group"));
        if (it == v.groups.end() || it->second.j.value("nofailback", false)) return std::nullopt;
        std::string why;
        auto best = choose(name, r, "", why);
        if (!best || *best == host || prio_of(r, *best) <= prio_of(r, host)) return std::nullopt;
        return best;
    };

    // Fences `node` for the guests on `pools`: the lease is gone (its watchdog fired: the
    // inequality), then the storage fence of each pool that has one. True once recorded.
    auto fence = [&](const std::string& node, const std::set<std::string>& pools, std::string& why) {
        if (v.fences.count(node)) return true;
        auto addr = cluster_.address_of(node);
        if (!addr) {
            why = "its address is unknown";
            return false;
        }
        json storage = json::array(), fenced_pools = json::array();
        for (const auto& p : pools) {
            try {
                std::string done = pools_.pool(p)->fence_clients(addr->first);
                if (!done.empty()) storage.push_back(done), fenced_pools.push_back(p);
            } catch (const Error& e) {
                why = fmt::format("storage fence of pool {} failed: {}", p, e.what());
                return false;
            }
        }
        json wd = json::object();
        if (auto a = v.agents.find(node); a != v.agents.end()) wd = a->second.j.value("watchdog", json::object());
        bool had_wd = wd.value("armed", false);
        if (!had_wd && storage.empty()) {
            why = "it had no armed watchdog and its storage has no fence: it cannot be fenced, its guests stay";
            return false;
        }
        if (storage.empty()) storage.push_back("watchdog only: the file storage has no fence");
        json doc{{"node", node},   {"address", addr->first}, {"since", now_s()},
                 {"storage", storage}, {"pools", fenced_pools}, {"watchdog", wd.value("what", "")}};
        auto r = store->txn({mine, Compare::absent(kFence + node)}, {Op::put(kFence + node, doc.dump())});
        if (r.succeeded) spdlog::warn("ha: host {} fenced: lease gone; {}", node, fmt::format("{}", fmt::join(storage, "; ")));
        return r.succeeded;
    };

    for (const auto& res_entry : v.resources) {
        const std::string& name = res_entry.first;
        const Doc& r = res_entry.second;
        json st = v.status.count(name) ? v.status.at(name).j : json::object();
        const std::int64_t st_rev = v.status.count(name) ? v.status.at(name).rev : 0;
        auto dir = v.dir(name);
        std::string host = dir ? s(dir->j, "owner") : s(st, "host");
        if (host.empty()) host = s(r.j, "enabled_on");
        json want = st;
        auto set = [&](const std::string& state, const std::string& h, const std::string& why) {
            if (s(want, "state") != state || s(want, "host") != h) want["since"] = now_s();
            want["state"] = state;
            want["host"] = h;
            want["why"] = why;
            if (state != "migrate") want.erase("target");
        };
        if (!want.contains("restarts")) want["restarts"] = 0;
        if (!want.contains("relocates")) want["relocates"] = 0;
        std::vector<Op> extra;
        std::vector<Compare> guards{mine};
        // The directory record names the new host (state "recovering") in the same
        // transaction as the status, guarded by its revision.
        auto hand_over = [&](const std::string& to) {
            json d = dir->j;
            d["owner"] = to;
            d["state"] = "recovering";
            extra.push_back(Op::put(kGuestDir + name, d.dump()));
            guards.push_back(Compare::mod_revision_is(kGuestDir + name, dir->rev));
        };
        auto agent = v.agents.find(host);
        const bool alive = v.online(host);
        if (s(r.j, "state") == "stopped") {
            set("stopped", host, "requested stopped: HA does not start it");
        } else if (alive && agent != v.agents.end() && agent->second.j.value("failed", json::object()).contains(name)) {
            std::string err = agent->second.j["failed"][name].is_string() ? agent->second.j["failed"][name].get<std::string>() : "";
            if (n(want, "relocates") < n(r.j, "max_relocate")) {
                std::string why;
                if (auto to = choose(name, r, host, why); to && dir) {
                    want["relocates"] = n(want, "relocates") + 1;
                    set("recovery", *to, fmt::format("start failed on {} ({}): relocated to {}", host, err, *to));
                    hand_over(*to);
                } else {
                    set("error", host, fmt::format("start failed on {} ({}); no host to relocate to: {}", host, err, why));
                }
            } else {
                set("error", host, fmt::format("start failed on {} ({}) after {} restarts and {} relocations", host, err,
                                               n(r.j, "max_restart"), n(want, "relocates")));
            }
        } else if (alive && agent != v.agents.end() && s(agent->second.j, "state") == "frozen") {
            set("freeze", host, fmt::format("{} shuts down (HA shutdown policy): its guests are frozen, stopped with it and "
                                            "started there again when it is back, not recovered", host));
        } else if (alive) {
            bool ready = agent != v.agents.end() && agent->second.j.value("ready", json::object()).contains(name);
            auto mfail = agent != v.agents.end() ? agent->second.j.value("migrate_failed", json::object()) : json::object();
            std::optional<std::string> back;
            if (ready && !mfail.contains(name)) back = failback_to(name, r, host);
            if (back) {
                set("migrate", host, fmt::format("failback: {} has a higher priority in group {} than {}", *back,
                                                 s(r.j, "group"), host));
                want["target"] = *back;
            } else if (ready && mfail.contains(name) && mfail[name].is_string())
                set("started", host, fmt::format("running and ready on {} (failback failed: {})", host,
                                                 mfail[name].get<std::string>()));
            else if (ready) set("started", host, "running and ready on " + host);
            else if (s(want, "state") == "recovery" && s(want, "host") == host) {
                // keeps its why (what it recovers from) until ready
            } else set("started", host, "starting on " + host);
        } else if (agent != v.agents.end() && s(agent->second.j, "state") == "frozen") {
            set("freeze", host, fmt::format("{} stopped hvd on purpose (planned restart): its guests are frozen, not recovered",
                                            host));
        } else {
            std::set<std::string> pools;
            for (const auto& d : r.j.value("disks", json::array())) pools.insert(s(d, "pool"));
            std::string why;
            if (!fence(host, pools, why)) {
                set("fence", host, fmt::format("{} is gone; fencing it: {}", host, why.empty() ? "in progress" : why));
                ok = ok && why.empty();
            } else if (auto to = choose(name, r, host, why); !to) {
                set("recovery", host, fmt::format("{} is fenced; no host can take the guest: {}", host, why));
            } else if (dir) {
                want["restarts"] = n(want, "restarts") + 1;
                set("recovery", *to, fmt::format("{} failed and is fenced: restarting on {}", host, *to));
                hand_over(*to);
            } else {
                set("error", host, "its directory record is gone");
            }
        }
        if (want == st) continue;
        guards.push_back(st_rev ? Compare::mod_revision_is(kStatus + name, st_rev) : Compare::absent(kStatus + name));
        extra.push_back(Op::put(kStatus + name, want.dump()));
        auto res = store->txn(guards, extra);
        if (!res.succeeded) ok = false;  // something moved: the next pass sees it
        else spdlog::info("ha: {}: {} on {} ({})", name, s(want, "state"), s(want, "host"), s(want, "why"));
    }
    // Status of guests no longer under HA.
    for (const auto& [name, d] : v.status)
        if (!v.resources.count(name)) store->txn({mine, Compare::mod_revision_is(kStatus + name, d.rev)}, {Op::del(kStatus + name)});
    return ok;
}

void HaService::set_migrate(MigrateFn f) {
    std::lock_guard lk(mu_);
    migrate_ = std::move(f);
}

void HaService::migration_done(const std::string& vm, const std::string& error) {
    {
        std::lock_guard lk(mu_);
        migrating_.erase(vm);
        if (!error.empty()) migrate_failed_[vm] = error;
    }
    if (!error.empty()) spdlog::warn("ha: vm {}: failback failed: {}", vm, error);
    trigger();
}

// ---- the routes ----------------------------------------------------------------------------

nlohmann::json HaService::enable(const std::string& guest, const api::HaEnable& e) {
    if (!cluster_.member()) fail(Errc::conflict, "HA needs a cluster: this host is in none (hvctl cluster create or join)");
    if (cluster_.member_names().size() < 2)
        fail(Errc::conflict, "HA on a one-host cluster: there is no other host to restart '{}' on; join another host first", guest);
    auto info = vms_.get(guest);  // 404 for no such vm
    json disks = json::array();
    for (const auto& d : info.spec.disks) {
        auto p = pools_.get(d.pool);
        if (!storage::shared_pool(p))
            fail(Errc::conflict,
                 "disk {} of vm '{}' is on pool '{}' ({}), which only this host reaches: HA needs every disk on rbd or a "
                 "--shared pool",
                 d.name, guest, d.pool, p.spec.type);
        disks.push_back({{"disk", d.name}, {"pool", d.pool}, {"type", p.spec.type}});
    }
    auto store = cluster_.shared_store();
    if (!e.group.empty() && !store->get(kGroups + e.group)) fail(Errc::not_found, "no HA group '{}'", e.group);
    {
        std::lock_guard lk(mu_);
        if (!wd_error_.empty()) fail(Errc::conflict, "this host cannot run HA guests: {}", wd_error_);
    }
    json doc{{"guest", guest},
             {"kind", "vm"},
             {"state", e.state},
             {"group", e.group},
             {"max_restart", e.max_restart},
             {"max_relocate", e.max_relocate},
             {"xml", vms_.definition(guest)},
             {"disks", disks},
             {"enabled_on", cluster_.node()},
             {"enabled", now_s()}};
    auto old = store->get(kResources + guest);
    auto cmp = old ? Compare::mod_revision_is(kResources + guest, old->mod_revision) : Compare::absent(kResources + guest);
    if (!store->txn({cmp}, {Op::put(kResources + guest, doc.dump())}).succeeded)
        fail(Errc::conflict, "the HA settings of '{}' changed meanwhile; try again", guest);
    trigger();
    json out = doc;
    out.erase("xml");
    return out;
}

void HaService::requested(const std::string& guest, const std::string& action) {
    std::string want = action == "start"                          ? "started"
                       : (action == "stop" || action == "shutdown") ? "stopped"
                       : action == "deleted"                        ? "deleted"
                                                                    : "";
    if (want.empty() || !cluster_.member()) return;
    {
        std::lock_guard lk(mu_);
        if (!managed_.count(guest)) return;
    }
    auto store = cluster_.shared_store();
    if (want == "deleted") {
        // Deleted by its admin (on its host, through hv): out of HA, never defined again from
        // the stored definition. A failure here is logged (the delete itself succeeded).
        util::guarded("ha: taking a deleted guest out of HA", [&] {
            if (store->del(kResources + guest) > 0) spdlog::warn("ha: vm {} was deleted: taken out of HA", guest);
        });
        trigger();
        return;
    }
    auto kv = store->get(kResources + guest);
    if (!kv) return;
    json doc = json::parse(kv->value, nullptr, false);
    if (!doc.is_object() || s(doc, "state") == want) return;
    doc["state"] = want;
    if (!store->txn({Compare::mod_revision_is(kResources + guest, kv->mod_revision)}, {Op::put(kResources + guest, doc.dump())})
             .succeeded)
        fail(Errc::conflict, "the HA settings of '{}' changed meanwhile; try again", guest);
    spdlog::info("ha: {} requested {} (vm {})", guest, want, action);
    trigger();
}

void HaService::disable(const std::string& guest) {
    auto store = cluster_.shared_store();
    if (store->del(kResources + guest) == 0) fail(Errc::not_found, "'{}' is not under HA", guest);
    trigger();
}

nlohmann::json HaService::status() {
    auto store = cluster_.shared_store();
    View v = read_view(*store);
    json guests = json::array();
    for (const auto& res_entry : v.resources) {
        const std::string& name = res_entry.first;
        const Doc& r = res_entry.second;
        json st = v.status.count(name) ? v.status.at(name).j : json::object();
        json storage_fence = json::array();
        for (const auto& d : r.j.value("disks", json::array()))
            storage_fence.push_back(s(d, "type") == "rbd" ? fmt::format("{}: Ceph blocklist", s(d, "disk"))
                                                          : fmt::format("{}: none (file pool: watchdog only)", s(d, "disk")));
        guests.push_back({{"guest", name},
                          {"kind", s(r.j, "kind")},
                          {"requested", s(r.j, "state")},
                          {"group", s(r.j, "group")},
                          {"max_restart", n(r.j, "max_restart")},
                          {"max_relocate", n(r.j, "max_relocate")},
                          {"state", st.empty() ? "pending" : s(st, "state")},
                          {"host", s(st, "host")},
                          {"since", n(st, "since")},
                          {"why", st.empty() ? "the HA manager has not seen it yet" : s(st, "why")},
                          {"restarts", n(st, "restarts")},
                          {"relocates", n(st, "relocates")},
                          {"fencing", storage_fence}});
    }
    json hosts = json::array();
    for (const auto& h : cluster_.member_names()) {
        json a = v.agents.count(h) ? v.agents.at(h).j : json::object();
        hosts.push_back({{"host", h},
                         {"online", cluster_.online(h)},
                         {"agent", a.empty() ? "none" : s(a, "state")},
                         {"watchdog", a.value("watchdog", json::object())},
                         {"fenced", v.fences.count(h) ? v.fences.at(h).j : json(nullptr)}});
    }
    return {{"manager", v.manager ? json(s(v.manager->j, "node")) : json(nullptr)},
            {"guests", guests},
            {"hosts", hosts},
            {"timing",
             {{"lease_ttl_s", o_.lease_ttl},
              {"watchdog_timeout_s", o_.watchdog_timeout},
              {"pet_window_ms", kPetWindow.count()},
              {"margin_ms", kFenceMargin.count()}}}};
}

nlohmann::json HaService::put_group(const api::HaGroup& g) {
    auto members = cluster_.member_names();
    for (const auto& [h, p] : g.hosts)
        if (std::find(members.begin(), members.end(), h) == members.end())
            fail(Errc::not_found, "group '{}': no member '{}' in the cluster", g.name, h);
    auto store = cluster_.shared_store();
    if (!store->txn({Compare::absent(kGroups + g.name)}, {Op::put(kGroups + g.name, api::to_json(g).dump())}).succeeded)
        fail(Errc::conflict, "HA group '{}' exists already", g.name);
    trigger();
    return api::to_json(g);
}

void HaService::delete_group(const std::string& name) {
    auto store = cluster_.shared_store();
    for (const auto& kv : store->list(kResources).kvs) {
        json j = json::parse(kv.value, nullptr, false);
        if (s(j, "group") == name)
            fail(Errc::conflict, "HA group '{}' is used by '{}'", name, kv.key.substr(std::string(kResources).size()));
    }
    if (store->del(kGroups + name) == 0) fail(Errc::not_found, "no HA group '{}'", name);
    trigger();
}

nlohmann::json HaService::groups() {
    auto store = cluster_.shared_store();
    json out = json::array();
    for (const auto& kv : store->list(kGroups).kvs) {
        json j = json::parse(kv.value, nullptr, false);
        if (j.is_object()) out.push_back(j);
    }
    return out;
}

}  // namespace hv::ha
