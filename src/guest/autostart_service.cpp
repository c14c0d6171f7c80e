#include "autostart_service.hpp"

#include <condition_variable>
#include <fstream>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "hv/util/atomic_file.hpp"
#include "hv/util/guard.hpp"
#include "hv/virt/domain_xml.hpp"

namespace hv::guest {
using nlohmann::json;
namespace as = autostart;

namespace {
std::optional<as::Settings> read_settings(GuestDriver& d, const std::string& name) {
    auto text = d.metadata(name, as::kNs);
    if (!text) return std::nullopt;
    try {
        return as::settings_from_json(json::parse(*text));
    } catch (const std::exception& e) {
        spdlog::warn("ignoring unreadable autostart metadata of '{}': {}", name, e.what());
        return std::nullopt;
    }
}

std::string read_line(const std::string& path) {
    std::ifstream in(path);
    std::string s;
    std::getline(in, s);
    return s;
}

// False (logged) when the file cannot be replaced durably; the old one is then unchanged.
bool write_file(const std::string& path, const std::string& text) {
    try {
        util::write_file_atomic(path, text);
        return true;
    } catch (const Error& e) {
        spdlog::warn("{}", e.what());
        return false;
    }
}

double steady_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The scheduler's driver over the guest layer: each call goes to the guest's kind's driver.
class GuestsDriver final : public as::AutostartDriver {
public:
    GuestsDriver(Guests& g, util::Progress& p, std::map<std::string, GuestKind> kinds)
        : g_(g), p_(p), kinds_(std::move(kinds)) {}
    ~GuestsDriver() override {
        // A cancelled run leaves start calls in flight: let them finish.
        for (auto& [_, t] : threads_) t.join();
    }
    double now() override { return steady_s(); }
    // Returns early when a start call finishes.
    void sleep_until(double t) override {
        double d = std::min(t - now(), 0.5);
        if (d <= 0) return;
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, std::chrono::duration<double>(d), [&] { return !done_.empty(); });
    }
    // A guest that cannot be asked (deleted meanwhile, its connection lost) is not running: its
    // start call then fails for it alone, never the whole run.
    bool running(const std::string& name) override {
        try {
            auto s = driver(name).find(name);
            return s && s->state == GuestState::running;
        } catch (const std::exception& e) {
            spdlog::debug("autostart: state of {}: {}", name, e.what());
            return false;
        }
    }
    void start(const std::string& name) override { driver(name).action(name, "start"); }
    // One thread per start call in flight (at most max_parallel), so the starts of a group overlap.
    void begin_start(const std::string& vm) override {
        if (auto it = threads_.find(vm); it != threads_.end()) {  // an earlier attempt's thread
            it->second.join();
            threads_.erase(it);
        }
        threads_.emplace(vm, std::thread([this, vm] {
            StartResult r{vm, "", 0};
            double t0 = steady_s();
            try {
                start(vm);
            } catch (const std::exception& e) {
                r.error = e.what();
                if (r.error.empty()) r.error = "start failed";
            } catch (...) {
                util::report_escaped("autostart start thread", "an exception that is not a std::exception");
                r.error = "start failed (internal error)";
            }
            r.duration = steady_s() - t0;
            std::lock_guard lk(mu_);
            done_.push_back(std::move(r));
            cv_.notify_all();
        }));
    }
    std::vector<StartResult> finished_starts() override {
        std::vector<StartResult> out;
        {
            std::lock_guard lk(mu_);
            out.swap(done_);
        }
        for (const auto& r : out) {
            if (auto it = threads_.find(r.vm); it != threads_.end()) {
                it->second.join();
                threads_.erase(it);
            }
        }
        return out;
    }
    bool ready(const std::string& name, const as::Settings& s) override {
        try {
            return driver(name).ready(name, s.wait_for);
        } catch (const std::exception& e) {
            spdlog::debug("autostart: readiness of {}: {}", name, e.what());
        }
        return false;
    }
    bool cancelled() override { return p_.cancelled(); }

private:
    GuestDriver& driver(const std::string& name) const {
        auto it = kinds_.find(name);
        return g_.driver(it == kinds_.end() ? GuestKind::vm : it->second);
    }

    Guests& g_;
    util::Progress& p_;
    std::map<std::string, GuestKind> kinds_;
    std::map<std::string, std::thread> threads_;  // scheduler thread only
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<StartResult> done_;  // guarded by mu_
};

// Times relative to the run's beginning (seconds), plus its wall-clock start.
json relative(const as::RunReport& r) {
    json j = r;
    for (auto& v : j["vms"]) {
        for (const char* k : {"started_at", "ready_at"})
            if (v[k].get<double>() >= 0) v[k] = std::round((v[k].get<double>() - r.began) * 1000) / 1000;
    }
    j["duration"] = std::round((r.finished - r.began) * 1000) / 1000;
    j.erase("began");
    j.erase("finished");
    return j;
}

// One VM's operation inside a host-wide task: its cancel check and its log lines (prefixed
// with the VM) go to the task; its status lines do not.
class ForwardCancel final : public util::Progress {
public:
    explicit ForwardCancel(util::Progress& p, std::string prefix = "") : p_(p), prefix_(std::move(prefix)) {}
    void update(int, const std::string&) override {}
    bool cancelled() const override { return p_.cancelled(); }
    void log(const std::string& line) override { p_.log(prefix_ + line); }

private:
    util::Progress& p_;
    std::string prefix_;
};

// Adds each guest's type and readiness gate (wait_for) to a run report, so a report says what
// each entry is and what was awaited; and the warnings (a kind left out).
void annotate(json& j, const AutostartGuests& g) {
    for (auto& v : j["vms"]) {
        auto name = v["name"].get<std::string>();
        if (auto it = g.kind.find(name); it != g.kind.end()) v["type"] = api::kind_noun(it->second);
        if (auto it = g.settings.find(name); it != g.settings.end()) v["wait_for"] = it->second.wait_for;
    }
    j["warnings"] = g.warnings;
}

struct BusyGuard {
    std::atomic<bool>& b;
    ~BusyGuard() { b = false; }
};
// Held by a task's closure: a task cancelled before it ran never calls its work (whose
// BusyGuard clears the flag as the run ends), so the closure's end clears it then; once the
// work ran, it leaves the flag alone (a later run may hold it by then).
struct BusyHold {
    explicit BusyHold(std::atomic<bool>& flag) : b(flag) {}
    std::atomic<bool>& b;
    std::atomic<bool> ran{false};
    ~BusyHold() {
        if (!ran) b = false;
    }
};
}  // namespace

AutostartService::AutostartService(Guests& guests, SubmitTask submit, Publisher publish, std::string state_dir,
                                   as::HostSettings defaults)
    : guests_(guests),
      submit_(std::move(submit)),
      publish_(std::move(publish)),
      state_dir_(std::move(state_dir)),
      defaults_(defaults),
      host_file_(state_dir_ + "/autostart-host.json"),
      host_(defaults) {
    std::ifstream in(host_file_);
    if (in) {
        try {
            std::stringstream ss;
            ss << in.rdbuf();
            host_ = as::host_settings_from_json(json::parse(ss.str()), defaults_);
            as::validate(host_);
        } catch (const std::exception& e) {
            spdlog::warn("{}: {}; using the configured autostart settings", host_file_, e.what());
            host_ = defaults_;
        }
    }
}

as::HostSettings AutostartService::host() const {
    std::lock_guard lk(mu_);
    return host_;
}

as::HostSettings AutostartService::set_host(const json& patch) {
    std::lock_guard lk(mu_);
    auto h = as::host_settings_from_json(patch, host_);
    as::validate(h);
    util::write_file_atomic(host_file_, json(h).dump(2) + "\n");
    host_ = h;
    return h;
}

AutostartGuests AutostartService::guests(bool with_ha) {
    AutostartGuests g;
    std::size_t asked = 0;
    std::optional<Error> down;
    for (auto* d : guests_.drivers()) {
        std::vector<GuestStatus> all;
        try {
            all = d->list();
        } catch (const Error& e) {
            // One kind's libvirt down must not stop the others' autostart.
            if (e.code() != Errc::unavailable) throw;
            g.missing = true;
            g.warnings.push_back(fmt::format("{}s skipped: {}", api::kind_noun(d->kind()), e.what()));
            down = e;
            continue;
        }
        ++asked;
        for (const auto& st : all) {
            const auto& name = st.ref.name;
            if (g.kind.count(name)) {  // only possible when defined behind hv's back
                spdlog::warn("autostart: {} '{}' has the name of a {}; autostart handles the {} only",
                             api::kind_noun(d->kind()), name, api::kind_noun(g.kind[name]), api::kind_noun(g.kind[name]));
                continue;
            }
            if (!with_ha && left_out_ && left_out_(name)) {
                g.warnings.push_back(fmt::format("{} '{}' is left to HA", api::kind_noun(d->kind()), name));
                continue;
            }
            try {
                g.settings[name] = read_settings(*d, name).value_or(as::Settings{});
                g.kind[name] = d->kind();
                g.state[name] = st.state;
            } catch (const Error& e) {
                if (e.code() != Errc::not_found) throw;  // deleted meanwhile
            }
        }
    }
    if (asked == 0 && down) throw *down;
    return g;
}

as::Settings AutostartService::get(GuestKind kind, const std::string& name) {
    return read_settings(guests_.driver(kind), name).value_or(as::Settings{});
}

as::Settings AutostartService::set(GuestKind kind, const std::string& name, const json& patch) {
    std::lock_guard lk(mu_);  // one change at a time, so two changes cannot make a cycle together
    auto& d = guests_.driver(kind);
    auto s = as::settings_from_json(patch, read_settings(d, name).value_or(as::Settings{}));
    as::validate(s, name, kind);
    auto everyone = guests();
    for (const auto& a : s.after)
        if (everyone.missing && !everyone.settings.count(a))
            fail(Errc::unavailable, "cannot check that '{}' (after) exists: {}", a, everyone.warnings.front());
    everyone.settings[name] = s;
    as::check_dependencies(everyone.settings, everyone.missing);
    d.set_metadata(name, as::kNs, as::kPrefix,
                   "<autostart format=\"json\">" + virt::xml_escape(json(s).dump()) + "</autostart>");
    return s;
}

json AutostartService::plan() {
    auto g = guests();
    as::check_dependencies(g.settings, g.missing);
    as::RunOptions o;
    o.host = host();
    auto r = as::plan(g.settings, o);
    json j = relative(r);
    annotate(j, g);
    j["host"] = o.host;
    for (auto& v : j["vms"]) {
        const auto& s = g.settings.at(v["name"].get<std::string>());
        v["up"] = s.up, v["after"] = s.after;
    }
    return j;
}

void AutostartService::publish_changes(const as::RunReport& r, const std::map<std::string, GuestKind>& kinds,
                                       util::Progress* log) {
    for (const auto& v : r.vms) {
        auto& last = last_state_[v.name];
        std::string now = v.state + (v.state == "pending" && v.attempts > 0 ? "/retry" : "");
        if (last == now) continue;
        last = now;
        auto kind = kinds.count(v.name) ? kinds.at(v.name) : GuestKind::vm;
        if (log) {
            std::string line = fmt::format("{}: {}", as::label(kind, v.name), v.state);
            if (v.attempts > 1) line += fmt::format(" (attempt {})", v.attempts);
            if (!v.waiting_on.empty()) line += "; waiting on " + v.waiting_on;
            if (!v.error.empty()) line += ": " + v.error;
            log->log(line);
        }
        publish_("autostart", api::guest_target(kind, v.name),
                     json{{"state", v.state}, {"waiting_on", v.waiting_on}, {"attempts", v.attempts},
                          {"error", v.error}, {"at", std::round((steady_s() - r.began) * 1000) / 1000}});
    }
}

api::TaskInfo AutostartService::run(bool boot_delay) {
    if (busy_.exchange(true)) fail(Errc::conflict, "an autostart run or stop-all is already in progress");
    try {
        auto guests = this->guests();
        as::check_dependencies(guests.settings, guests.missing);
        for (const auto& w : guests.warnings) spdlog::warn("autostart run: {}", w);
        as::RunOptions o;
        o.host = host();
        o.apply_boot_delay = boot_delay;
        auto hold = std::make_shared<BusyHold>(busy_);
        return submit_("autostart.run", "host", [this, guests, o, hold](util::Progress& p) {
            hold->ran = true;
            BusyGuard bg{busy_};
            const auto& vms = guests.settings;
            GuestsDriver d(guests_, p, guests.kind);
            std::map<GuestKind, std::size_t> per_kind;
            std::size_t n = 0;
            for (const auto& [name, s] : vms)
                if (s.enabled) ++per_kind[guests.kind.at(name)], ++n;
            std::vector<std::string> counts;
            for (auto* d : guests_.drivers())
                counts.push_back(fmt::format("{} {}", per_kind[d->kind()], api::kind_counted(d->kind())));
            for (const auto& w : guests.warnings) p.log("warning: " + w);
            p.log(fmt::format("{} autostart guest(s) ({}); boot delay {} s{}, at most {} booting at once, {} retries", n,
                              fmt::join(counts, ", "), o.host.boot_delay, o.apply_boot_delay ? "" : " (skipped)",
                              o.host.max_parallel, o.host.retries));
            last_state_.clear();
            auto r = as::run_start(vms, o, d, [&](const as::RunReport& rep) {
                std::size_t done = 0;
                std::string group;
                std::vector<std::string> waiting;
                for (const auto& v : rep.vms) {
                    if (v.state == "ready" || v.state == "already-running" || v.state == "failed") ++done;
                    else {
                        if (group.empty()) group = rep.groups[static_cast<std::size_t>(v.group)];
                        if (!v.waiting_on.empty()) waiting.push_back(v.name + ": " + v.waiting_on);
                    }
                }
                {
                    // Built outside the lock a fast route (status) takes, and swapped in.
                    json st = relative(rep);
                    annotate(st, guests);
                    st["running"] = true;
                    st["group"] = group;
                    std::lock_guard lk(status_mu_);
                    status_.swap(st);
                }
                publish_changes(rep, guests.kind, &p);  // task log and events: never under status_mu_
                int pct = rep.vms.empty() ? 100 : static_cast<int>(100 * done / rep.vms.size());
                p.update(pct, fmt::format("{}/{} guests done{}{}", done, rep.vms.size(),
                                          group.empty() ? "" : "; " + group,
                                          waiting.empty() ? "" : "; waiting: " + fmt::format("{}", fmt::join(waiting, ", "))));
            });
            json j = relative(r);
            annotate(j, guests);
            int failed = 0;
            for (const auto& v : r.vms) failed += v.state == "failed";
            j["failed"] = failed;
            p.log(fmt::format("{} guest(s) handled, {} failed, in {:.1f} s{}", r.vms.size(), failed,
                              r.finished - r.began, guests.warnings.empty() ? "" : "; " + fmt::format("{}", fmt::join(guests.warnings, "; "))));
            {
                std::lock_guard lk(status_mu_);
                status_ = j;
                status_["running"] = false;
            }
            return j;
        });
    } catch (...) {
        busy_ = false;
        throw;
    }
}

api::TaskInfo AutostartService::stop_all() {
    if (busy_.exchange(true)) fail(Errc::conflict, "an autostart run or stop-all is already in progress");
    try {
        // The running guests and their stop waves (again after the shutdown hook: it may have
        // moved guests away).
        struct Plan {
            AutostartGuests guests;
            std::map<std::string, as::Settings> running;
            std::vector<std::vector<std::string>> waves;
        };
        auto plan = [this](bool with_ha) {
            Plan pl{this->guests(with_ha), {}, {}};
            for (const auto& [name, st] : pl.guests.state) {
                if (st == GuestState::running || st == GuestState::paused || st == GuestState::shutting_down) {
                    auto s = pl.guests.settings.at(name);
                    if (!s.enabled) s.order = 0, s.after.clear();  // not autostarted: stopped first, default timeout
                    pl.running[name] = s;
                }
            }
            pl.waves = as::stop_waves(pl.running);
            return pl;
        };
        auto first = plan(false);
        for (const auto& w : first.guests.warnings) spdlog::warn("autostart stop-all: {}", w);
        int parallel = host().max_parallel;
        auto hold = std::make_shared<BusyHold>(busy_);
        return submit_("autostart.stop-all", "host", [this, first, plan, parallel, hold](util::Progress& p) {
            hold->ran = true;
            BusyGuard bg{busy_};
            double t0 = steady_s();
            json hook = nullptr;
            Plan pl = first;
            if (before_stop_all_) {
                // HA's shutdown policy; then this host's agent starts nothing: its HA guests
                // are stopped with the rest.
                try {
                    hook = before_stop_all_(p);
                } catch (const std::exception& e) {  // the guests are stopped all the same
                    hook = json{{"error", e.what()}};
                    p.log(fmt::format("warning: HA's shutdown policy failed: {}", e.what()));
                }
                pl = plan(true);
            }
            const auto& guests = pl.guests;
            const auto& running = pl.running;
            const auto& waves = pl.waves;
            for (const auto& w : guests.warnings) p.log("warning: " + w);
            p.log(fmt::format("stopping {} running guest(s) in {} wave(s), {} at once", running.size(), waves.size(),
                              parallel));
            json out = json::array();
            std::mutex out_mu;
            std::size_t done = 0, total = running.size();
            for (std::size_t w = 0; w < waves.size(); ++w) {
                const auto& wave = waves[w];
                for (std::size_t i = 0; i < wave.size(); i += static_cast<std::size_t>(parallel)) {
                    std::vector<std::thread> th;
                    for (std::size_t k = i; k < std::min(wave.size(), i + parallel); ++k) {
                        th.emplace_back([&, name = wave[k], w] { util::guarded("stop-all thread", [&] {
                            auto kind = guests.kind.at(name);
                            auto& d = guests_.driver(kind);
                            json r{{"name", name}, {"type", api::kind_noun(kind)}, {"wave", w}, {"forced", false},
                                   {"error", ""}, {"down", running.at(name).down},
                                   {"began_at", std::round((steady_s() - t0) * 1000) / 1000}};
                            publish_("autostart", api::guest_target(kind, name), json{{"state", "stopping"}});
                            try {
                                ForwardCancel fc(p, as::label(kind, name) + ": ");
                                bool forced = false;
                                // Paused: it cannot react to a shutdown request (ACPI, init).
                                auto st = d.find(name);
                                if (st && st->state == GuestState::paused) {
                                    d.action(name, "stop");
                                    forced = true;
                                } else {
                                    shutdown(d, name, running.at(name).down, true, fc, &forced);
                                }
                                r["forced"] = forced;
                            } catch (const std::exception& e) {
                                r["error"] = e.what();
                            }
                            r["stopped_at"] = std::round((steady_s() - t0) * 1000) / 1000;
                            publish_("autostart", api::guest_target(kind, name),
                                         json{{"state", r["error"].get<std::string>().empty() ? "stopped" : "failed"},
                                              {"forced", r["forced"]}});
                            p.log(r["error"].get<std::string>().empty()
                                      ? fmt::format("{}: stopped{}", as::label(kind, name),
                                                    r["forced"].get<bool>() ? " (powered off)" : "")
                                      : fmt::format("{}: {}", as::label(kind, name), r["error"].get<std::string>()));
                            std::lock_guard lk(out_mu);
                            out.push_back(r);
                            ++done;
                            p.update(static_cast<int>(100 * done / std::max<std::size_t>(1, total)),
                                     fmt::format("{}/{} guests stopped; wave {}/{}", done, total, w + 1, waves.size()));
                        }); });
                    }
                    for (auto& t : th) t.join();
                }
                if (p.cancelled()) fail(Errc::cancelled, "stop-all was cancelled");
            }
            json forced = json::array();
            for (const auto& r : out)
                if (r["forced"].get<bool>()) forced.push_back(r["name"]);
            json res{{"vms", out},
                     {"forced", forced},
                     {"warnings", guests.warnings},
                     {"duration", std::round((steady_s() - t0) * 1000) / 1000}};
            if (!hook.is_null()) res["ha"] = hook;
            return res;
        });
    } catch (...) {
        busy_ = false;
        throw;
    }
}

json AutostartService::status() const {
    std::lock_guard lk(status_mu_);
    json j = status_;
    if (!j.contains("running")) j["running"] = false;
    j["busy"] = busy_.load();
    return j;
}

bool AutostartService::at_daemon_start() {
    auto file = state_dir_ + "/boot_id";
    auto current = read_line("/proc/sys/kernel/random/boot_id");
    if (current.empty()) return false;
    auto saved = read_line(file);
    if (saved == current) {
        spdlog::info("autostart: same host boot as the last hvd start; not starting guests");
        return false;
    }
    write_file(file, current + "\n");
    if (saved.empty()) {
        // No record yet: a fresh install, whose VMs cannot have autostart settings yet.
        spdlog::info("autostart: recorded this host boot");
        return false;
    }
    spdlog::info("autostart: the host booted since hvd last ran; starting autostart guests");
    // The connections were started just before: give them a moment, so every kind comes along.
    // A kind still without its connection is reported as skipped by the run.
    for (auto* d : guests_.drivers())
        if (!d->wait_connected(std::chrono::seconds(5)))
            spdlog::warn("autostart: the libvirt connection of the {}s is not up; they will be skipped",
                         api::kind_noun(d->kind()));
    try {
        auto t = run(true);
        spdlog::info("autostart: task {}", t.id);
    } catch (const std::exception& e) {
        spdlog::error("autostart at host boot: {}", e.what());
    }
    return true;
}

}  // namespace hv::guest
