#include "hv/util/guard.hpp"
#include "autostart_routes.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include "ct_manager.hpp"
#include "hv/api/json_reader.hpp"
#include "hv/util/atomic_file.hpp"

namespace hv::daemon {
using nlohmann::json;
namespace as = autostart;

namespace {
std::optional<as::Settings> read_settings(virDomainPtr d) {
    auto xml = virt::get_metadata(d, as::kNs, VIR_DOMAIN_AFFECT_CONFIG);
    if (!xml) return std::nullopt;
    auto el = virt::read_metadata_element(*xml);
    if (!el) return std::nullopt;
    try {
        return as::settings_from_json(json::parse(el->text));
    } catch (const std::exception& e) {
        spdlog::warn("ignoring unreadable autostart metadata: {}", e.what());
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

// Non-blocking connect with a timeout: true when something accepts on addr:port.
bool tcp_open(const std::string& addr, int port, int timeout_ms) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) return false;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool ok = false;
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    if (rc == 0) {
        ok = true;
    } else if (errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, timeout_ms) == 1) {
            int err = 0;
            socklen_t len = sizeof err;
            ok = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
        }
    }
    ::close(fd);
    return ok;
}

// tcp:PORT of a container: connects from inside its network namespace (that of its init,
// `init_pid`) to each IPv4 address it has there, 127.0.0.1 first, so a listener on any of them
// or on 0.0.0.0 counts, and nothing outside the container does. setns() changes only the
// calling thread's namespace, so a short-lived thread does it; a socket keeps the namespace it
// was made in.
bool tcp_open_in_netns(std::int64_t init_pid, int port, int timeout_ms) {
    if (init_pid <= 0) return false;
    int ns = ::open(fmt::format("/proc/{}/ns/net", init_pid).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) return false;
    bool ok = false;
    std::thread([&] { util::guarded("tcp gate thread", [&] {
        if (::setns(ns, CLONE_NEWNET) != 0) {
            spdlog::debug("autostart: cannot enter the network namespace of pid {}: {}", init_pid, std::strerror(errno));
            return;
        }
        std::vector<std::string> addrs{"127.0.0.1"};
        ifaddrs* ifs = nullptr;
        if (::getifaddrs(&ifs) == 0) {
            char buf[INET_ADDRSTRLEN];
            for (auto* i = ifs; i; i = i->ifa_next)
                if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
                    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf) &&
                    std::find(addrs.begin(), addrs.end(), buf) == addrs.end())
                    addrs.emplace_back(buf);
            ::freeifaddrs(ifs);
        }
        for (const auto& a : addrs)
            if ((ok = tcp_open(a, port, timeout_ms))) return;
    }); }).join();
    ::close(ns);
    return ok;
}

// IPv4 addresses of a VM: DHCP leases of libvirt networks, then the guest agent.
std::vector<std::string> vm_addresses(virDomainPtr d) {
    std::vector<std::string> out;
    for (unsigned src : {VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT}) {
        virDomainInterfacePtr* ifs = nullptr;
        int n = virDomainInterfaceAddresses(d, &ifs, src, 0);
        for (int i = 0; i < n; ++i) {
            for (unsigned k = 0; k < ifs[i]->naddrs; ++k)
                if (ifs[i]->addrs[k].type == VIR_IP_ADDR_TYPE_IPV4 && ifs[i]->addrs[k].addr &&
                    std::string(ifs[i]->addrs[k].addr) != "127.0.0.1")
                    out.emplace_back(ifs[i]->addrs[k].addr);
            virDomainInterfaceFree(ifs[i]);
        }
        free(ifs);
        if (!out.empty()) break;
    }
    return out;
}

// One driver for both kinds: each call goes to VmManager or CtManager by the guest's kind.
class LibvirtDriver final : public as::AutostartDriver {
public:
    LibvirtDriver(ApiContext& c, util::Progress& p, std::map<std::string, as::Kind> kinds)
        : c_(c), p_(p), kinds_(std::move(kinds)) {
        // For tests: HV_AUTOSTART_TCP_ADDRESS replaces the VM's address for tcp:PORT gates.
        if (const char* a = std::getenv("HV_AUTOSTART_TCP_ADDRESS")) tcp_override_ = a;
    }
    ~LibvirtDriver() override {
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
    bool running(const std::string& vm) override {
        try {
            return state(vm) == api::VmState::running;
        } catch (const std::exception& e) {
            spdlog::debug("autostart: state of {}: {}", vm, e.what());
            return false;
        }
    }
    void start(const std::string& vm) override {
        if (is_ct(vm)) c_.cts->action(vm, "start");
        else c_.vms.action(vm, "start");
    }
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
    bool ready(const std::string& vm, const as::Settings& s) override {
        try {
            if (is_ct(vm)) {
                auto info = c_.cts->get(vm);
                if (info.state != api::VmState::running) return false;
                if (s.wait_for == "running") return true;
                int port = as::tcp_port(s.wait_for);  // guest-agent: refused when set; never ready
                return port > 0 && tcp_open_in_netns(info.init_pid, port, 1000);
            }
            if (c_.vms.get(vm).state != api::VmState::running) return false;
            if (s.wait_for == "running") return true;
            auto d = c_.vms.connection().domain(vm);
            if (s.wait_for == "guest-agent") {
                char* r = virDomainQemuAgentCommand(d.get(), R"({"execute":"guest-ping"})", 2, 0);
                if (!r) return false;
                free(r);
                return true;
            }
            int port = as::tcp_port(s.wait_for);
            auto addrs = tcp_override_.empty() ? vm_addresses(d.get()) : std::vector<std::string>{tcp_override_};
            for (const auto& a : addrs)
                if (tcp_open(a, port, 1000)) return true;
        } catch (const std::exception& e) {
            spdlog::debug("autostart: readiness of {}: {}", vm, e.what());
        }
        return false;
    }
    bool cancelled() override { return p_.cancelled(); }

private:
    bool is_ct(const std::string& name) const {
        auto it = kinds_.find(name);
        return it != kinds_.end() && it->second == as::Kind::container;
    }
    api::VmState state(const std::string& name) const {
        return is_ct(name) ? c_.cts->get(name).state : c_.vms.get(name).state;
    }

    ApiContext& c_;
    util::Progress& p_;
    std::map<std::string, as::Kind> kinds_;
    std::string tcp_override_;  // VMs only: a container's port is checked in its own namespace
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
        if (auto it = g.kind.find(name); it != g.kind.end()) v["type"] = as::type_name(it->second);
        if (auto it = g.settings.find(name); it != g.settings.end()) v["wait_for"] = it->second.wait_for;
    }
    j["warnings"] = g.warnings;
}

struct BusyGuard {
    std::atomic<bool>& b;
    ~BusyGuard() { b = false; }
};
}  // namespace

AutostartService::AutostartService(ApiContext& c, EventBus& bus, as::HostSettings defaults)
    : c_(c), bus_(bus), defaults_(defaults), host_file_(c.config.state_dir + "/autostart-host.json"), host_(defaults) {
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

AutostartGuests AutostartService::guests() {
    AutostartGuests g;
    for (const auto& v : c_.vms.list()) {
        try {
            auto d = c_.vms.connection().domain(v.spec.name);
            g.settings[v.spec.name] = read_settings(d.get()).value_or(as::Settings{});
            g.kind[v.spec.name] = as::Kind::vm;
            g.state[v.spec.name] = v.state;
        } catch (const Error& e) {
            if (e.code() != Errc::not_found) throw;  // deleted meanwhile
        }
    }
    if (!c_.cts) return g;
    try {
        for (const auto& ct : c_.cts->list()) {
            const auto& name = ct.spec.name;
            if (g.kind.count(name)) {  // only possible when defined behind hv's back
                spdlog::warn("autostart: container '{}' has the name of a VM; autostart handles the VM only", name);
                continue;
            }
            try {
                auto d = c_.cts->connection().domain(name);
                g.settings[name] = read_settings(d.get()).value_or(as::Settings{});
                g.kind[name] = as::Kind::container;
                g.state[name] = ct.state;
            } catch (const Error& e) {
                if (e.code() != Errc::not_found) throw;
            }
        }
    } catch (const Error& e) {
        if (e.code() != Errc::unavailable) throw;
        // VM autostart must not depend on the LXC driver.
        for (auto it = g.kind.begin(); it != g.kind.end();) {
            if (it->second == as::Kind::container) {
                g.settings.erase(it->first), g.state.erase(it->first);
                it = g.kind.erase(it);
            } else {
                ++it;
            }
        }
        g.cts_missing = true;
        g.warnings.push_back(fmt::format("containers skipped: {}", e.what()));
    }
    return g;
}

namespace {
// The domain of a guest of that kind (404 naming the kind when there is none).
virt::DomainHandle guest_domain(ApiContext& c, as::Kind kind, const std::string& name) {
    if (kind == as::Kind::vm) {
        c.vms.get(name);  // 404 first, from the cache
        return c.vms.connection().domain(name);
    }
    if (!c.cts) fail(Errc::unavailable, "containers are not available in this hvd");
    return c.cts->connection().domain(name);
}
}  // namespace

as::Settings AutostartService::get(as::Kind kind, const std::string& name) {
    auto d = guest_domain(c_, kind, name);
    return read_settings(d.get()).value_or(as::Settings{});
}

as::Settings AutostartService::set(as::Kind kind, const std::string& name, const json& patch) {
    std::lock_guard lk(mu_);  // one change at a time, so two changes cannot make a cycle together
    auto d = guest_domain(c_, kind, name);
    auto s = as::settings_from_json(patch, read_settings(d.get()).value_or(as::Settings{}));
    as::validate(s, name, kind);
    auto everyone = guests();
    for (const auto& a : s.after)
        if (everyone.cts_missing && !everyone.settings.count(a))
            fail(Errc::unavailable, "cannot check that '{}' (after) exists: {}", a, everyone.warnings.front());
    everyone.settings[name] = s;
    as::check_dependencies(everyone.settings, everyone.cts_missing);
    std::string body = "<autostart format=\"json\">" + virt::xml_escape(json(s).dump()) + "</autostart>";
    int st = 0, reason = 0;
    if (virDomainGetState(d.get(), &st, &reason, 0) < 0) virt::throw_libvirt_error("cannot read the state of '" + name + "'");
    bool live = st == VIR_DOMAIN_RUNNING || st == VIR_DOMAIN_BLOCKED || st == VIR_DOMAIN_PAUSED || st == VIR_DOMAIN_SHUTDOWN;
    unsigned flags = VIR_DOMAIN_AFFECT_CONFIG | (live ? static_cast<unsigned>(VIR_DOMAIN_AFFECT_LIVE) : 0u);
    if (virDomainSetMetadata(d.get(), VIR_DOMAIN_METADATA_ELEMENT, body.c_str(), as::kPrefix, as::kNs, flags) < 0)
        virt::throw_libvirt_error(fmt::format("cannot set autostart of {} '{}'", as::type_name(kind), name));
    return s;
}

json AutostartService::plan() {
    auto g = guests();
    as::check_dependencies(g.settings, g.cts_missing);
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

void AutostartService::publish_changes(const as::RunReport& r, const std::map<std::string, as::Kind>& kinds,
                                       util::Progress* log) {
    for (const auto& v : r.vms) {
        auto& last = last_state_[v.name];
        std::string now = v.state + (v.state == "pending" && v.attempts > 0 ? "/retry" : "");
        if (last == now) continue;
        last = now;
        auto kind = kinds.count(v.name) ? kinds.at(v.name) : as::Kind::vm;
        if (log) {
            std::string line = fmt::format("{}: {}", as::label(kind, v.name), v.state);
            if (v.attempts > 1) line += fmt::format(" (attempt {})", v.attempts);
            if (!v.waiting_on.empty()) line += "; waiting on " + v.waiting_on;
            if (!v.error.empty()) line += ": " + v.error;
            log->log(line);
        }
        bus_.publish("autostart", as::target(kind, v.name),
                     json{{"state", v.state}, {"waiting_on", v.waiting_on}, {"attempts", v.attempts},
                          {"error", v.error}, {"at", std::round((steady_s() - r.began) * 1000) / 1000}});
    }
}

api::TaskInfo AutostartService::run(bool boot_delay) {
    if (busy_.exchange(true)) fail(Errc::conflict, "an autostart run or stop-all is already in progress");
    try {
        auto guests = this->guests();
        as::check_dependencies(guests.settings, guests.cts_missing);
        for (const auto& w : guests.warnings) spdlog::warn("autostart run: {}", w);
        as::RunOptions o;
        o.host = host();
        o.apply_boot_delay = boot_delay;
        return c_.tasks.submit("autostart.run", "host", [this, guests, o](util::Progress& p) {
            BusyGuard bg{busy_};
            const auto& vms = guests.settings;
            LibvirtDriver d(c_, p, guests.kind);
            std::size_t n_vm = 0, n_ct = 0;
            for (const auto& [name, s] : vms)
                if (s.enabled) ++(guests.kind.at(name) == as::Kind::container ? n_ct : n_vm);
            for (const auto& w : guests.warnings) p.log("warning: " + w);
            p.log(fmt::format("{} autostart guest(s) ({} VM(s), {} container(s)); boot delay {} s{}, at most {} "
                              "booting at once, {} retries",
                              n_vm + n_ct, n_vm, n_ct, o.host.boot_delay, o.apply_boot_delay ? "" : " (skipped)",
                              o.host.max_parallel, o.host.retries));
            {
                std::lock_guard lk(status_mu_);
                last_state_.clear();
            }
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
                    std::lock_guard lk(status_mu_);
                    status_ = relative(rep);
                    annotate(status_, guests);
                    status_["running"] = true;
                    status_["group"] = group;
                    publish_changes(rep, guests.kind, &p);
                }
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
                              r.finished - r.began, guests.warnings.empty() ? "" : "; containers skipped"));
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
        auto guests = this->guests();
        for (const auto& w : guests.warnings) spdlog::warn("autostart stop-all: {}", w);
        std::map<std::string, as::Settings> running;
        for (const auto& [name, st] : guests.state) {
            if (st == api::VmState::running || st == api::VmState::paused || st == api::VmState::shutting_down) {
                auto s = guests.settings.at(name);
                if (!s.enabled) s.order = 0, s.after.clear();  // not autostarted: stopped first, default timeout
                running[name] = s;
            }
        }
        auto waves = as::stop_waves(running);
        int parallel = host().max_parallel;
        return c_.tasks.submit("autostart.stop-all", "host", [this, running, waves, parallel, guests](util::Progress& p) {
            BusyGuard bg{busy_};
            double t0 = steady_s();
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
                            bool ct = kind == as::Kind::container;
                            json r{{"name", name}, {"type", as::type_name(kind)}, {"wave", w}, {"forced", false},
                                   {"error", ""}, {"down", running.at(name).down},
                                   {"began_at", std::round((steady_s() - t0) * 1000) / 1000}};
                            bus_.publish("autostart", as::target(kind, name), json{{"state", "stopping"}});
                            try {
                                ForwardCancel fc(p, as::label(kind, name) + ": ");
                                bool forced = false;
                                // Paused: it cannot react to a shutdown request; containers get the
                                // request through their init (CtManager::shutdown), VMs through ACPI.
                                auto st = ct ? c_.cts->get(name).state : c_.vms.get(name).state;
                                if (st == api::VmState::paused) {
                                    if (ct) c_.cts->action(name, "stop");
                                    else c_.vms.action(name, "stop");
                                    forced = true;
                                } else if (ct) {
                                    c_.cts->shutdown(name, running.at(name).down, true, fc, &forced);
                                } else {
                                    c_.vms.shutdown(name, running.at(name).down, true, fc, &forced);
                                }
                                r["forced"] = forced;
                            } catch (const std::exception& e) {
                                r["error"] = e.what();
                            }
                            r["stopped_at"] = std::round((steady_s() - t0) * 1000) / 1000;
                            bus_.publish("autostart", as::target(kind, name),
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
            return json{{"vms", out},
                        {"forced", forced},
                        {"warnings", guests.warnings},
                        {"duration", std::round((steady_s() - t0) * 1000) / 1000}};
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

void AutostartService::at_daemon_start() {
    auto file = c_.config.state_dir + "/boot_id";
    auto current = read_line("/proc/sys/kernel/random/boot_id");
    if (current.empty()) return;
    auto saved = read_line(file);
    if (saved == current) {
        spdlog::info("autostart: same host boot as the last hvd start; not starting guests");
        return;
    }
    write_file(file, current + "\n");
    if (saved.empty()) {
        // No record yet: a fresh install, whose VMs cannot have autostart settings yet.
        spdlog::info("autostart: recorded this host boot");
        return;
    }
    spdlog::info("autostart: the host booted since hvd last ran; starting autostart guests");
    // The LXC connection was started just before: give it a moment, so containers come along.
    // Without it the run starts the VMs and reports the containers as skipped.
    if (c_.cts && !c_.cts->connection().wait_connected(std::chrono::seconds(5)))
        spdlog::warn("autostart: the LXC connection is not up; containers will be skipped");
    try {
        auto t = run(true);
        spdlog::info("autostart: task {}", t.id);
    } catch (const std::exception& e) {
        spdlog::error("autostart at host boot: {}", e.what());
    }
}

void register_autostart_routes(Router& r, AutostartService& s) {
    for (auto [k, path] : {std::pair{as::Kind::vm, "/v1/vms/{name}/autostart"},
                           std::pair{as::Kind::container, "/v1/cts/{name}/autostart"}}) {
        as::Kind kind = k;  // a variable, not a structured binding: clang 14 cannot capture those
        r.add("GET", path, [&s, kind](const Request& q) { return Response{200, s.get(kind, q.param("name"))}; });
        r.add("PUT", path, [&s, kind](const Request& q) { return Response{200, s.set(kind, q.param("name"), q.json())}; });
    }
    r.add("GET", "/v1/autostart/host", [&s](const Request&) { return Response{200, s.host()}; });
    r.add("PUT", "/v1/autostart/host", [&s](const Request& q) { return Response{200, s.set_host(q.json())}; });
    r.add("GET", "/v1/autostart/plan", [&s](const Request&) { return Response{200, s.plan()}; });
    r.add("GET", "/v1/autostart/status", [&s](const Request&) { return Response{200, s.status()}; }, true);
    r.add("POST", "/v1/autostart/run", [&s](const Request& q) {
        auto body = q.json();  // the reader keeps a reference
        api::ObjectReader rd(body, "");
        bool delay = rd.opt<bool>("boot_delay").value_or(false);
        rd.finish();
        return Response{202, s.run(delay)};
    });
    r.add("POST", "/v1/autostart/stop-all", [&s](const Request& q) {
        auto body = q.json();  // the reader keeps a reference
        api::ObjectReader rd(body, "");
        rd.finish();
        return Response{202, s.stop_all()};
    });
}

}  // namespace hv::daemon
