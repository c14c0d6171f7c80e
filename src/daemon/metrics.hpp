// GET /v1/metrics: Prometheus text exposition format 0.0.4 (docs/observability.md).
// render_metrics() is a pure function of plain records (VM stats from libvirt's bulk call,
// container stats from the LXC driver and cgroup files, host facts, task counters), unit-tested on hand-made records; MetricsCache keeps the
// rendered text for a period so concurrent scrapes cost at most one collection per period.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "domain_stats.hpp"

namespace hv::daemon {

// Builds one exposition document: families keep the order they were first used in, each with
// its HELP and TYPE lines and all of its samples together.
class Exposition {
public:
    using Labels = std::vector<std::pair<std::string, std::string>>;
    enum class Type { counter, gauge };
    void add(const std::string& name, const std::string& help, Type type, const Labels& labels, double value);
    void add(const std::string& name, const std::string& help, Type type, const Labels& labels, std::uint64_t value);
    std::string text() const;

    // Label value / HELP text escaping of the format: \ -> \\, newline -> \n, and in label
    // values " -> \".
    static std::string escape_label_value(const std::string& s);
    static std::string escape_help(const std::string& s);
    // Go-compatible float text: "+Inf", "-Inf", "NaN", else the shortest exact decimal.
    static std::string format_value(double v);

private:
    struct Family {
        std::string name, help;
        Type type;
        std::vector<std::string> samples;
    };
    void sample(const std::string& name, const std::string& help, Type type, const Labels& labels, std::string value);
    std::vector<Family> families_;
};

struct PoolFacts {
    std::string name;
    bool active = false;
    std::uint64_t capacity = 0, used = 0, free = 0, committed = 0, volumes = 0;
};

struct MetricsSnapshot {
    std::string version;          // hv version (hv_build_info)
    double uptime_seconds = 0;    // since hvd started
    std::uint64_t escaped_exceptions = 0;  // util::escaped_exceptions(): bugs caught at an entry
    // Host
    int cpus = 0;
    std::uint64_t memory_total = 0, memory_available = 0;
    std::vector<PoolFacts> pools;
    // VMs: whether the bulk call worked this time (false: libvirt down; no hv_vm_* samples),
    // and the records.
    bool libvirt_up = false;
    double collect_seconds = 0;  // how long the statistics calls took (VM bulk call, containers)
    std::vector<virt::DomainStats> vms;
    // Containers (virt::container_stats records): with `containers` (hvd manages containers)
    // hv_lxc_up says whether the LXC connection answered (false: no hv_ct_* samples).
    bool containers = false;
    bool lxc_up = false;
    std::vector<virt::DomainStats> cts;
    // Tasks: held now by state (all five states, zeros included), finished since hvd started
    // by kind and state.
    std::vector<std::pair<std::string, std::uint64_t>> tasks_by_state;
    struct Finished {
        std::string kind, state;
        std::uint64_t count = 0;
    };
    std::vector<Finished> tasks_finished;
    // Migrations that left this host since hvd started (migrate::Migrator::counters), by kind
    // ("vm", "ct"): how many ended well / failed, and the seconds and downtime of those that did.
    struct Migrations {
        std::string kind;
        std::uint64_t ok = 0, failed = 0;
        double seconds = 0, downtime_seconds = 0;
    };
    std::vector<Migrations> migrations;
};

std::string render_metrics(const MetricsSnapshot& s);

// Adds the hv_vm_* families (label "vm") of `domains` (records of libvirt's bulk call).
void render_domains(Exposition& out, const std::string& prefix, const std::string& label,
                    const std::vector<virt::DomainStats>& domains);
// Adds the hv_ct_* families (label "ct") of container records (virt::container_stats fields).
void render_containers(Exposition& out, const std::vector<virt::DomainStats>& cts);

// The rendered text, recomputed when older than `period` (0: every time) by one caller at a
// time, outside the lock. Callers that arrive meanwhile get the previous text at once when
// there is one (a libvirt call stuck until keepalive gives up must not pile scrapes up on
// the request workers), else wait for the result. A render that throws is retried by the
// next caller.
class MetricsCache {
public:
    using Clock = std::chrono::steady_clock;
    MetricsCache(std::chrono::milliseconds period, std::function<std::string()> render,
                 std::function<Clock::time_point()> now = Clock::now)
        : period_(period), render_(std::move(render)), now_(std::move(now)) {}
    std::string get();

private:
    std::chrono::milliseconds period_;
    std::function<std::string()> render_;
    std::function<Clock::time_point()> now_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool rendering_ = false;
    bool have_ = false;
    Clock::time_point at_{};
    std::string text_;
};

}  // namespace hv::daemon
