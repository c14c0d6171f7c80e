#include "autostart_routes.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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

#include "hv/api/json_reader.hpp"

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

bool write_file(const std::string& path, const std::string& text) {
    auto tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << text;
        if (!out) return false;
    }
    return std::rename(tmp.c_str(), path.c_str()) == 0;
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

class LibvirtDriver final : public as::AutostartDriver {
public:
    LibvirtDriver(ApiContext& c, util::Progress& p) : c_(c), p_(p) {
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
    bool running(const std::string& vm) override { return c_.vms.get(vm).state == api::VmState::running; }
    void start(const std::string& vm) override { c_.vms.action(vm, "start"); }
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
    ApiContext& c_;
    util::Progress& p_;
    std::string tcp_override_;
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

// Adds each VM's readiness gate (wait_for) to a run report, so a report says what was awaited.
void add_wait_for(json& j, const std::map<std::string, as::Settings>& vms) {
    for (auto& v : j["vms"])
        if (auto it = vms.find(v["name"].get<std::string>()); it != vms.end()) v["wait_for"] = it->second.wait_for;
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
    if (!write_file(host_file_, json(h).dump(2) + "\n")) fail(Errc::internal, "cannot write {}", host_file_);
    host_ = h;
    return h;
}

std::map<std::string, as::Settings> AutostartService::all() {
    std::map<std::string, as::Settings> out;
    for (const auto& v : c_.vms.list()) {
        try {
            auto d = c_.vms.connection().domain(v.spec.name);
            out[v.spec.name] = read_settings(d.get()).value_or(as::Settings{});
        } catch (const Error& e) {
            if (e.code() != Errc::not_found) throw;  // deleted meanwhile
        }
    }
    return out;
}

as::Settings AutostartService::get(const std::string& vm) {
    c_.vms.get(vm);  // 404 first
    auto d = c_.vms.connection().domain(vm);
    return read_settings(d.get()).value_or(as::Settings{});
}

as::Settings AutostartService::set(const std::string& vm, const json& patch) {
    std::lock_guard lk(mu_);  // one change at a time, so two changes cannot make a cycle together
    auto info = c_.vms.get(vm);
    auto d = c_.vms.connection().domain(vm);
    auto s = as::settings_from_json(patch, read_settings(d.get()).value_or(as::Settings{}));
    as::validate(s, vm);
    auto everyone = all();
    everyone[vm] = s;
    as::check_dependencies(everyone);
    std::string body = "<autostart format=\"json\">" + virt::xml_escape(json(s).dump()) + "</autostart>";
    bool live = info.state == api::VmState::running || info.state == api::VmState::paused ||
                info.state == api::VmState::shutting_down;
    unsigned flags = VIR_DOMAIN_AFFECT_CONFIG | (live ? static_cast<unsigned>(VIR_DOMAIN_AFFECT_LIVE) : 0u);
    if (virDomainSetMetadata(d.get(), VIR_DOMAIN_METADATA_ELEMENT, body.c_str(), as::kPrefix, as::kNs, flags) < 0)
        virt::throw_libvirt_error("cannot set autostart of vm '" + vm + "'");
    return s;
}

json AutostartService::plan() {
    auto vms = all();
    as::check_dependencies(vms);
    as::RunOptions o;
    o.host = host();
    auto r = as::plan(vms, o);
    json j = relative(r);
    j["host"] = o.host;
    for (auto& v : j["vms"]) {
        const auto& s = vms.at(v["name"].get<std::string>());
        v["wait_for"] = s.wait_for, v["up"] = s.up, v["after"] = s.after;
    }
    return j;
}

void AutostartService::publish_changes(const as::RunReport& r, util::Progress* log) {
    for (const auto& v : r.vms) {
        auto& last = last_state_[v.name];
        std::string now = v.state + (v.state == "pending" && v.attempts > 0 ? "/retry" : "");
        if (last == now) continue;
        last = now;
        if (log) {
            std::string line = fmt::format("vm {}: {}", v.name, v.state);
            if (v.attempts > 1) line += fmt::format(" (attempt {})", v.attempts);
            if (!v.waiting_on.empty()) line += "; waiting on " + v.waiting_on;
            if (!v.error.empty()) line += ": " + v.error;
            log->log(line);
        }
        bus_.publish("autostart", "vm/" + v.name,
                     json{{"state", v.state}, {"waiting_on", v.waiting_on}, {"attempts", v.attempts},
                          {"error", v.error}, {"at", std::round((steady_s() - r.began) * 1000) / 1000}});
    }
}

api::TaskInfo AutostartService::run(bool boot_delay) {
    if (busy_.exchange(true)) fail(Errc::conflict, "an autostart run or stop-all is already in progress");
    try {
        auto vms = all();
        as::check_dependencies(vms);
        as::RunOptions o;
        o.host = host();
        o.apply_boot_delay = boot_delay;
        return c_.tasks.submit("autostart.run", "host", [this, vms, o](util::Progress& p) {
            BusyGuard g{busy_};
            LibvirtDriver d(c_, p);
            std::size_t enabled = 0;
            for (const auto& [_, s] : vms) enabled += s.enabled;
            p.log(fmt::format("{} autostart VM(s); boot delay {} s{}, at most {} booting at once, {} retries", enabled,
                              o.host.boot_delay, o.apply_boot_delay ? "" : " (skipped)", o.host.max_parallel,
                              o.host.retries));
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
                    add_wait_for(status_, vms);
                    status_["running"] = true;
                    status_["group"] = group;
                    publish_changes(rep, &p);
                }
                int pct = rep.vms.empty() ? 100 : static_cast<int>(100 * done / rep.vms.size());
                p.update(pct, fmt::format("{}/{} VMs done{}{}", done, rep.vms.size(),
                                          group.empty() ? "" : "; " + group,
                                          waiting.empty() ? "" : "; waiting: " + fmt::format("{}", fmt::join(waiting, ", "))));
            });
            json j = relative(r);
            add_wait_for(j, vms);
            int failed = 0;
            for (const auto& v : r.vms) failed += v.state == "failed";
            j["failed"] = failed;
            p.log(fmt::format("{} VM(s) handled, {} failed, in {:.1f} s", r.vms.size(), failed, r.finished - r.began));
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
        auto settings = all();
        std::map<std::string, as::Settings> running;
        for (const auto& v : c_.vms.list()) {
            if (v.state == api::VmState::running || v.state == api::VmState::paused ||
                v.state == api::VmState::shutting_down) {
                auto s = settings.count(v.spec.name) ? settings[v.spec.name] : as::Settings{};
                if (!s.enabled) s.order = 0, s.after.clear();  // not autostarted: stopped first, default timeout
                running[v.spec.name] = s;
            }
        }
        auto waves = as::stop_waves(running);
        int parallel = host().max_parallel;
        return c_.tasks.submit("autostart.stop-all", "host", [this, running, waves, parallel](util::Progress& p) {
            BusyGuard g{busy_};
            double t0 = steady_s();
            p.log(fmt::format("stopping {} running VM(s) in {} wave(s), {} at once", running.size(), waves.size(),
                              parallel));
            json out = json::array();
            std::mutex out_mu;
            std::size_t done = 0, total = running.size();
            for (std::size_t w = 0; w < waves.size(); ++w) {
                const auto& wave = waves[w];
                for (std::size_t i = 0; i < wave.size(); i += static_cast<std::size_t>(parallel)) {
                    std::vector<std::thread> th;
                    for (std::size_t k = i; k < std::min(wave.size(), i + parallel); ++k) {
                        th.emplace_back([&, name = wave[k], w] {
                            json r{{"name", name}, {"wave", w}, {"forced", false}, {"error", ""},
                                   {"down", running.at(name).down},
                                   {"began_at", std::round((steady_s() - t0) * 1000) / 1000}};
                            bus_.publish("autostart", "vm/" + name, json{{"state", "stopping"}});
                            try {
                                ForwardCancel fc(p, "vm " + name + ": ");
                                bool forced = false;
                                if (c_.vms.get(name).state == api::VmState::paused) {
                                    c_.vms.action(name, "stop");
                                    forced = true;
                                } else {
                                    c_.vms.shutdown(name, running.at(name).down, true, fc, &forced);
                                }
                                r["forced"] = forced;
                            } catch (const std::exception& e) {
                                r["error"] = e.what();
                            }
                            r["stopped_at"] = std::round((steady_s() - t0) * 1000) / 1000;
                            bus_.publish("autostart", "vm/" + name,
                                         json{{"state", r["error"].get<std::string>().empty() ? "stopped" : "failed"},
                                              {"forced", r["forced"]}});
                            p.log(r["error"].get<std::string>().empty()
                                      ? fmt::format("vm {}: stopped{}", name, r["forced"].get<bool>() ? " (powered off)" : "")
                                      : fmt::format("vm {}: {}", name, r["error"].get<std::string>()));
                            std::lock_guard lk(out_mu);
                            out.push_back(r);
                            ++done;
                            p.update(static_cast<int>(100 * done / std::max<std::size_t>(1, total)),
                                     fmt::format("{}/{} VMs stopped; wave {}/{}", done, total, w + 1, waves.size()));
                        });
                    }
                    for (auto& t : th) t.join();
                }
                if (p.cancelled()) fail(Errc::cancelled, "stop-all was cancelled");
            }
            json forced = json::array();
            for (const auto& r : out)
                if (r["forced"].get<bool>()) forced.push_back(r["name"]);
            return json{{"vms", out}, {"forced", forced}, {"duration", std::round((steady_s() - t0) * 1000) / 1000}};
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
        spdlog::info("autostart: same host boot as the last hvd start; not starting VMs");
        return;
    }
    write_file(file, current + "\n");
    if (saved.empty()) {
        // No record yet: a fresh install, whose VMs cannot have autostart settings yet.
        spdlog::info("autostart: recorded this host boot");
        return;
    }
    spdlog::info("autostart: the host booted since hvd last ran; starting autostart VMs");
    try {
        auto t = run(true);
        spdlog::info("autostart: task {}", t.id);
    } catch (const std::exception& e) {
        spdlog::error("autostart at host boot: {}", e.what());
    }
}

void register_autostart_routes(Router& r, AutostartService& s) {
    r.add("GET", "/v1/vms/{name}/autostart", [&s](const Request& q) { return Response{200, s.get(q.param("name"))}; });
    r.add("PUT", "/v1/vms/{name}/autostart",
          [&s](const Request& q) { return Response{200, s.set(q.param("name"), q.json())}; });
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
