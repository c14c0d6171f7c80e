#include "autostart.hpp"

#include <algorithm>
#include <climits>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "hv/api/json_reader.hpp"
#include "hv/api/vm.hpp"
#include "hv/error.hpp"

namespace hv::guest::autostart {
using nlohmann::json;

std::string label(Kind k, const std::string& name) { return std::string(api::kind_name(k)) + " " + name; }

void to_json(json& j, const Settings& s) {
    j = json{{"enabled", s.enabled}, {"order", s.order},           {"up", s.up},      {"down", s.down},
             {"wait_for", s.wait_for}, {"wait_timeout", s.wait_timeout}, {"after", s.after}};
}
void to_json(json& j, const HostSettings& s) {
    j = json{{"boot_delay", s.boot_delay},
             {"max_parallel", s.max_parallel},
             {"retries", s.retries},
             {"retry_delay", s.retry_delay}};
}

namespace {
void range(const char* what, int v, int lo, int hi) {
    if (v < lo || v > hi) fail(Errc::invalid_input, "{} must be between {} and {} (got {})", what, lo, hi, v);
}
}  // namespace

Settings settings_from_json(const json& j, const Settings& base) {
    api::ObjectReader r(j, "");
    Settings s = base;
    s.enabled = r.opt<bool>("enabled").value_or(s.enabled);
    s.order = api::read_int(r, "order", s.order);
    s.up = api::read_int(r, "up", s.up);
    s.down = api::read_int(r, "down", s.down);
    s.wait_for = r.opt<std::string>("wait_for").value_or(s.wait_for);
    s.wait_timeout = api::read_int(r, "wait_timeout", s.wait_timeout);
    s.after = r.opt<std::vector<std::string>>("after").value_or(s.after);
    r.finish();
    return s;
}

HostSettings host_settings_from_json(const json& j, const HostSettings& base) {
    api::ObjectReader r(j, "");
    HostSettings h = base;
    h.boot_delay = api::read_int(r, "boot_delay", h.boot_delay);
    h.max_parallel = api::read_int(r, "max_parallel", h.max_parallel);
    h.retries = api::read_int(r, "retries", h.retries);
    h.retry_delay = api::read_int(r, "retry_delay", h.retry_delay);
    r.finish();
    return h;
}

int tcp_port(const std::string& w) {
    if (w.rfind("tcp:", 0) != 0) return 0;
    try {
        std::size_t pos = 0;
        int p = std::stoi(w.substr(4), &pos);
        if (pos != w.size() - 4) return -1;
        return p;
    } catch (...) {
        return -1;
    }
}

void validate(const Settings& s, const std::string& vm, Kind kind) {
    range("order", s.order, 0, 1000);
    range("up", s.up, 0, 86400);
    range("down", s.down, 0, 86400);
    range("wait_timeout", s.wait_timeout, 1, 86400);
    if (s.wait_for != "none" && s.wait_for != "running" && s.wait_for != "guest-agent") {
        int p = tcp_port(s.wait_for);
        if (p < 1 || p > 65535)
            fail(Errc::invalid_input, "wait_for '{}' is not one of none, running, guest-agent, tcp:PORT (1-65535)",
                 s.wait_for);
    }
    if (kind == Kind::ct && s.wait_for == "guest-agent")
        fail(Errc::invalid_input,
             "wait_for 'guest-agent' is for VMs: container '{}' has no QEMU guest agent (use running or tcp:PORT)", vm);
    std::set<std::string> seen;
    for (const auto& a : s.after) {
        api::validate_name(a, "after");
        if (a == vm) fail(Errc::invalid_input, "{} '{}' cannot start after itself", api::kind_noun(kind), vm);
        if (!seen.insert(a).second) fail(Errc::invalid_input, "after names '{}' twice", a);
    }
}

void validate(const HostSettings& h) {
    range("boot_delay", h.boot_delay, 0, 86400);
    range("max_parallel", h.max_parallel, 1, 1000);
    range("retries", h.retries, 0, 100);
    range("retry_delay", h.retry_delay, 0, 86400);
}

void check_dependencies(const std::map<std::string, Settings>& vms, bool allow_missing) {
    for (const auto& [name, s] : vms) {
        if (!s.enabled) continue;
        for (const auto& a : s.after) {
            auto it = vms.find(a);
            if (it == vms.end() && allow_missing) continue;
            if (it == vms.end()) fail(Errc::invalid_input, "'{}' starts after '{}', which does not exist", name, a);
            if (!it->second.enabled)
                fail(Errc::invalid_input, "'{}' starts after '{}', which does not have autostart enabled", name, a);
        }
    }
    // Depth-first search; the path on the stack names the cycle.
    std::map<std::string, int> color;  // 0 new, 1 on stack, 2 done
    std::vector<std::string> path;
    std::function<void(const std::string&)> visit = [&](const std::string& v) {
        color[v] = 1;
        path.push_back(v);
        for (const auto& a : vms.at(v).after) {
            if (!vms.count(a)) continue;  // missing (allow_missing): no edges from it
            if (color[a] == 1) {
                auto from = std::find(path.begin(), path.end(), a);
                std::vector<std::string> cyc(from, path.end());
                cyc.push_back(a);
                fail(Errc::conflict, "autostart dependencies form a cycle: {}", fmt::join(cyc, " -> "));
            }
            if (color[a] == 0) visit(a);
        }
        path.pop_back();
        color[v] = 2;
    };
    for (const auto& [name, s] : vms)
        if (s.enabled && color[name] == 0) visit(name);
}

namespace {
constexpr int kUnordered = INT_MAX;

// Group key of every VM: its own order (unordered last), raised to the latest group of its
// dependencies, so a dependency in a later group is waited for without a deadlock.
std::map<std::string, int> effective_keys(const std::map<std::string, Settings>& vms) {
    std::map<std::string, int> key;
    std::function<int(const std::string&)> k = [&](const std::string& v) -> int {
        if (auto it = key.find(v); it != key.end()) return it->second;
        const auto& s = vms.at(v);
        int r = s.order > 0 ? s.order : kUnordered;
        key[v] = r;  // cycles were refused earlier; this only stops a runaway
        for (const auto& a : s.after)
            if (vms.count(a)) r = std::max(r, k(a));
        key[v] = r;
        return r;
    };
    for (const auto& [name, _] : vms) k(name);
    return key;
}

// Depth inside the VM's group (1 + deepest dependency in the same group).
std::map<std::string, int> group_depths(const std::map<std::string, Settings>& vms,
                                        const std::map<std::string, int>& key) {
    std::map<std::string, int> depth;
    std::function<int(const std::string&)> dp = [&](const std::string& v) -> int {
        if (auto it = depth.find(v); it != depth.end()) return it->second;
        depth[v] = 0;
        int r = 0;
        for (const auto& a : vms.at(v).after)
            if (vms.count(a) && key.at(a) == key.at(v)) r = std::max(r, dp(a) + 1);
        depth[v] = r;
        return r;
    };
    for (const auto& [name, _] : vms) dp(name);
    return depth;
}

bool is_final(const std::string& st) { return st == "ready" || st == "already-running" || st == "failed"; }
bool is_ready(const std::string& st) { return st == "ready" || st == "already-running"; }
}  // namespace

void to_json(json& j, const VmRun& v) {
    j = json{{"name", v.name},       {"group", v.group},       {"state", v.state},
             {"waiting_on", v.waiting_on}, {"attempts", v.attempts}, {"started_at", v.started_at},
             {"ready_at", v.ready_at}, {"start_duration", v.start_duration}, {"error", v.error}};
}
void to_json(json& j, const RunReport& r) {
    j = json{{"groups", r.groups}, {"vms", r.vms}, {"began", r.began}, {"finished", r.finished}};
}

void AutostartDriver::begin_start(const std::string& vm) {
    double t0 = now();
    StartResult r{vm, "", 0};
    try {
        start(vm);
    } catch (const std::exception& e) {
        r.error = e.what();
        if (r.error.empty()) r.error = "start failed";
    }
    r.duration = now() - t0;
    done_.push_back(std::move(r));
}

std::vector<AutostartDriver::StartResult> AutostartDriver::finished_starts() { return std::exchange(done_, {}); }

RunReport run_start(const std::map<std::string, Settings>& all, const RunOptions& opt, AutostartDriver& d,
                    const std::function<void(const RunReport&)>& on_change) {
    std::map<std::string, Settings> vms;
    for (const auto& [n, s] : all)
        if (s.enabled) vms[n] = s;
    auto key = effective_keys(vms);
    auto depth = group_depths(vms, key);
    std::vector<int> keys;
    for (const auto& [_, k] : key) keys.push_back(k);
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());

    RunReport rep;
    for (int k : keys) rep.groups.push_back(k == kUnordered ? "unordered" : fmt::format("order {}", k));
    std::vector<std::string> names;
    for (const auto& [n, _] : vms) names.push_back(n);
    std::stable_sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
        return std::pair(key[a], depth[a]) < std::pair(key[b], depth[b]);
    });
    std::map<std::string, std::size_t> idx;
    for (const auto& n : names) {
        VmRun v;
        v.name = n;
        v.group = static_cast<int>(std::find(keys.begin(), keys.end(), key[n]) - keys.begin());
        idx[n] = rep.vms.size();
        rep.vms.push_back(v);
    }
    std::vector<double> next_try(rep.vms.size(), 0), attempt_at(rep.vms.size(), 0), final_at(rep.vms.size(), 0),
        call_at(rep.vms.size(), 0);

    rep.began = d.now();
    double open_at = rep.began + (opt.apply_boot_delay ? opt.host.boot_delay : 0);
    std::size_t cur = 0;  // the group being started
    auto notify = [&] {
        if (on_change) on_change(rep);
    };
    notify();
    for (;;) {
        if (d.cancelled()) fail(Errc::cancelled, "autostart run was cancelled");
        double now = d.now();
        bool changed = false;
        // Start calls that returned.
        for (auto& res : d.finished_starts()) {
            auto it = idx.find(res.vm);
            if (it == idx.end()) continue;
            std::size_t i = it->second;
            auto& v = rep.vms[i];
            if (v.state != "starting") continue;
            const auto& s = vms[v.name];
            changed = true;
            if (!res.error.empty()) {
                v.error = res.error;
                if (v.attempts <= opt.host.retries) {
                    v.state = "pending";
                    next_try[i] = now + opt.host.retry_delay;
                    v.waiting_on = "retry";
                } else {
                    v.state = "failed", v.waiting_on.clear(), final_at[i] = now;
                }
                continue;
            }
            v.error.clear();
            if (v.started_at < 0) v.started_at = call_at[i], v.start_duration = res.duration;
            attempt_at[i] = now;
            if (s.wait_for == "none") {
                v.state = "ready", v.waiting_on.clear(), v.ready_at = now, final_at[i] = now + s.up;
            } else {
                v.state = "waiting", v.waiting_on = s.wait_for;
            }
        }
        // Readiness of the VMs that were started.
        for (std::size_t i = 0; i < rep.vms.size(); ++i) {
            auto& v = rep.vms[i];
            if (v.state != "waiting") continue;
            const auto& s = vms[v.name];
            if (d.ready(v.name, s)) {
                v.state = "ready", v.ready_at = now, v.waiting_on.clear(), final_at[i] = now + s.up;
                changed = true;
            } else if (now - attempt_at[i] >= s.wait_timeout) {
                v.state = "failed", v.waiting_on.clear(), final_at[i] = now;
                v.error = fmt::format("not ready ({}) within {} s", s.wait_for, s.wait_timeout);
                changed = true;
            }
        }
        // Advance to the next group once every VM of this one is final.
        while (cur < keys.size()) {
            bool done = true;
            double until = open_at;
            for (std::size_t i = 0; i < rep.vms.size(); ++i) {
                if (rep.vms[i].group != static_cast<int>(cur)) continue;
                if (!is_final(rep.vms[i].state)) done = false;
                else until = std::max(until, final_at[i]);
            }
            if (!done) break;
            ++cur;
            open_at = until;
            changed = true;
        }
        if (cur >= keys.size()) break;
        int active = 0;
        for (const auto& v : rep.vms)
            if (v.state == "starting" || v.state == "waiting") ++active;
        for (std::size_t i = 0; i < rep.vms.size(); ++i) {
            auto& v = rep.vms[i];
            if (v.group != static_cast<int>(cur) || v.state != "pending") continue;
            const auto& s = vms[v.name];
            std::string wait;
            bool dep_failed = false;
            for (const auto& a : s.after) {
                if (!idx.count(a)) {  // not among the enabled guests: unreachable (check_dependencies)
                    dep_failed = true;
                    v.error = fmt::format("not started: '{}' (after) is not available", a);
                    continue;
                }
                const auto& dv = rep.vms[idx[a]];
                if (dv.state == "failed") {
                    dep_failed = true;
                    v.error = fmt::format("not started: '{}' (after) failed", a);
                } else if (!is_ready(dv.state)) {
                    wait = "after " + a;
                }
            }
            if (dep_failed) {
                v.state = "failed", v.waiting_on.clear(), final_at[i] = now, changed = true;
                continue;
            }
            if (wait.empty() && now < open_at) wait = fmt::format("{} s delay", static_cast<int>(open_at - now + 0.999));
            if (wait.empty() && now < next_try[i]) wait = "retry";
            if (wait.empty() && active >= opt.host.max_parallel) wait = "max_parallel";
            if (!wait.empty()) {
                if (v.waiting_on != wait) v.waiting_on = wait, changed = true;
                continue;
            }
            v.waiting_on.clear();
            changed = true;
            if (v.attempts == 0 && d.running(v.name)) {
                v.state = "already-running", v.ready_at = now, final_at[i] = now;
                continue;
            }
            ++v.attempts;
            v.state = "starting", v.waiting_on = "start call";
            call_at[i] = now;
            ++active;
            d.begin_start(v.name);
        }
        if (changed) {
            notify();
            continue;  // re-check at once: a new state may unlock more
        }
        // Nothing to do now: sleep until the next time something can change.
        double wake = now + 3600;
        bool polling = false;
        for (std::size_t i = 0; i < rep.vms.size(); ++i) {
            const auto& v = rep.vms[i];
            if (v.state == "waiting" || v.state == "starting") polling = true;
            if (v.state == "pending" && next_try[i] > now) wake = std::min(wake, next_try[i]);
        }
        if (open_at > now) wake = std::min(wake, open_at);
        if (polling) wake = std::min(wake, now + opt.poll_interval);
        d.sleep_until(wake);
    }
    rep.finished = d.now();
    notify();
    return rep;
}

namespace {
class SimDriver final : public AutostartDriver {
public:
    double now() override { return t_; }
    void sleep_until(double t) override { t_ = std::max(t_, t); }
    bool running(const std::string&) override { return false; }
    void start(const std::string&) override {}
    bool ready(const std::string&, const Settings&) override { return true; }

private:
    double t_ = 0;
};
}  // namespace

RunReport plan(const std::map<std::string, Settings>& vms, const RunOptions& opt) {
    SimDriver d;
    return run_start(vms, opt, d);
}

std::vector<std::vector<std::string>> stop_waves(const std::map<std::string, Settings>& vms) {
    auto key = effective_keys(vms);
    auto depth = group_depths(vms, key);
    std::map<std::pair<int, int>, std::vector<std::string>, std::greater<>> waves;
    for (const auto& [n, _] : vms) waves[{key[n], depth[n]}].push_back(n);
    std::vector<std::vector<std::string>> out;
    for (auto& [_, w] : waves) out.push_back(std::move(w));
    return out;
}

}  // namespace hv::guest::autostart
