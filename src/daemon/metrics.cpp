#include "metrics.hpp"

#include <cmath>

#include <fmt/format.h>

namespace hv::daemon {

namespace {

struct Field {
    const char* libvirt;  // record field name (libvirt's for VMs) or suffix after "net.N." / "block.N."
    const char* suffix;   // appended to the prefix: "_cpu_seconds_total"
    Exposition::Type type;
    // libvirt unit -> base unit: KiB -> bytes multiplies (exact integers), ns -> s divides
    // (v / 1e9 prints 4.649376423 where v * 1e-9 would print 4.6493764230000005).
    std::uint64_t mul;
    double div;
    const char* help;
};

constexpr double kNs = 1e9;  // divisor
constexpr std::uint64_t kKiB = 1024;  // multiplier
using T = Exposition::Type;

const Field kScalars[] = {
    {"cpu.time", "_cpu_seconds_total", T::counter, 1, kNs, "CPU time used by the domain (all vCPUs and emulator threads)"},
    {"cpu.user", "_cpu_user_seconds_total", T::counter, 1, kNs, "User-mode CPU time of the domain"},
    {"cpu.system", "_cpu_system_seconds_total", T::counter, 1, kNs, "Kernel-mode CPU time of the domain"},
    {"vcpu.current", "_vcpus", T::gauge, 1, 1, "vCPUs online"},
    {"vcpu.maximum", "_vcpus_max", T::gauge, 1, 1, "Maximum vCPUs"},
    {"balloon.current", "_memory_bytes", T::gauge, kKiB, 1, "Memory the guest currently has (balloon size)"},
    {"balloon.maximum", "_memory_max_bytes", T::gauge, kKiB, 1, "Maximum memory of the guest"},
    {"balloon.rss", "_memory_rss_bytes", T::gauge, kKiB, 1, "Resident memory of the hypervisor process on the host"},
    {"balloon.available", "_memory_guest_total_bytes", T::gauge, kKiB, 1, "Memory the guest OS sees (guest-reported)"},
    {"balloon.usable", "_memory_guest_usable_bytes", T::gauge, kKiB, 1, "Memory the guest could use without swapping (guest-reported)"},
    {"balloon.unused", "_memory_guest_unused_bytes", T::gauge, kKiB, 1, "Memory the guest leaves unused (guest-reported)"},
};

// Containers (src/virt/ct_stats.hpp): CPU times in ns, memory and I/O in bytes already.
const Field kCtScalars[] = {
    {"cpu.time", "_cpu_seconds_total", T::counter, 1, kNs, "CPU time used by the container's processes (its cgroup)"},
    {"cpu.user", "_cpu_user_seconds_total", T::counter, 1, kNs, "User-mode CPU time of the container"},
    {"cpu.system", "_cpu_system_seconds_total", T::counter, 1, kNs, "Kernel-mode CPU time of the container"},
    {"memory.current", "_memory_bytes", T::gauge, 1, 1, "Memory the container's cgroup uses (anonymous, page cache, kernel)"},
    {"memory.max", "_memory_max_bytes", T::gauge, 1, 1, "Memory limit of the container's cgroup (absent when unlimited)"},
    {"memory.anon", "_memory_anon_bytes", T::gauge, 1, 1, "Anonymous memory of the container (cgroup v1: rss)"},
    {"memory.file", "_memory_file_bytes", T::gauge, 1, 1, "Page cache of the container (cgroup v1: cache)"},
    {"memory.swap", "_memory_swap_bytes", T::gauge, 1, 1, "Swap used by the container"},
    {"io.rd.bytes", "_io_read_bytes_total", T::counter, 1, 1, "Bytes the container read from block devices"},
    {"io.wr.bytes", "_io_write_bytes_total", T::counter, 1, 1, "Bytes the container wrote to block devices"},
    {"io.rd.reqs", "_io_read_requests_total", T::counter, 1, 1, "Read requests of the container on block devices"},
    {"io.wr.reqs", "_io_write_requests_total", T::counter, 1, 1, "Write requests of the container on block devices"},
};

const Field kDisk[] = {
    {"rd.bytes", "_disk_read_bytes_total", T::counter, 1, 1, "Bytes read by the guest from the disk"},
    {"wr.bytes", "_disk_write_bytes_total", T::counter, 1, 1, "Bytes written by the guest to the disk"},
    {"rd.reqs", "_disk_read_requests_total", T::counter, 1, 1, "Read requests of the guest on the disk"},
    {"wr.reqs", "_disk_write_requests_total", T::counter, 1, 1, "Write requests of the guest on the disk"},
    {"fl.reqs", "_disk_flush_requests_total", T::counter, 1, 1, "Flush requests of the guest on the disk"},
    {"rd.times", "_disk_read_seconds_total", T::counter, 1, kNs, "Time spent on reads"},
    {"wr.times", "_disk_write_seconds_total", T::counter, 1, kNs, "Time spent on writes"},
    {"capacity", "_disk_capacity_bytes", T::gauge, 1, 1, "Virtual size of the disk"},
    {"allocation", "_disk_allocation_bytes", T::gauge, 1, 1, "Highest allocated offset (qcow2) or allocated bytes of the disk"},
};

const Field kNic[] = {
    {"rx.bytes", "_net_rx_bytes_total", T::counter, 1, 1, "Bytes received by the guest on the interface"},
    {"tx.bytes", "_net_tx_bytes_total", T::counter, 1, 1, "Bytes sent by the guest on the interface"},
    {"rx.pkts", "_net_rx_packets_total", T::counter, 1, 1, "Packets received by the guest"},
    {"tx.pkts", "_net_tx_packets_total", T::counter, 1, 1, "Packets sent by the guest"},
    {"rx.errs", "_net_rx_errors_total", T::counter, 1, 1, "Receive errors"},
    {"tx.errs", "_net_tx_errors_total", T::counter, 1, 1, "Transmit errors"},
    {"rx.drop", "_net_rx_dropped_total", T::counter, 1, 1, "Received packets dropped"},
    {"tx.drop", "_net_tx_dropped_total", T::counter, 1, 1, "Sent packets dropped"},
};

// Integer units stay exact integers; seconds become floats.
void add_value(Exposition& out, const std::string& name, const Field& f, const Exposition::Labels& labels,
               std::uint64_t v) {
    if (f.div == 1) out.add(name, f.help, f.type, labels, v * f.mul);
    else out.add(name, f.help, f.type, labels, static_cast<double>(v) / f.div);
}

}  // namespace

std::string Exposition::escape_label_value(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string Exposition::escape_help(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string Exposition::format_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    return fmt::format("{}", v);
}

void Exposition::sample(const std::string& name, const std::string& help, Type type, const Labels& labels,
                        std::string value) {
    Family* fam = nullptr;
    for (auto& f : families_)
        if (f.name == name) fam = &f;
    if (!fam) fam = &families_.emplace_back(Family{name, help, type, {}});
    std::string line = name;
    if (!labels.empty()) {
        line += '{';
        for (std::size_t i = 0; i < labels.size(); ++i) {
            if (i) line += ',';
            line += labels[i].first + "=\"" + escape_label_value(labels[i].second) + '"';
        }
        line += '}';
    }
    line += ' ' + value;
    fam->samples.push_back(std::move(line));
}

void Exposition::add(const std::string& name, const std::string& help, Type type, const Labels& labels, double value) {
    sample(name, help, type, labels, format_value(value));
}

void Exposition::add(const std::string& name, const std::string& help, Type type, const Labels& labels,
                     std::uint64_t value) {
    sample(name, help, type, labels, std::to_string(value));
}

std::string Exposition::text() const {
    std::string out;
    for (const auto& f : families_) {
        out += "# HELP " + f.name + " " + escape_help(f.help) + "\n";
        out += "# TYPE " + f.name + (f.type == Type::counter ? " counter\n" : " gauge\n");
        for (const auto& s : f.samples) out += s + "\n";
    }
    return out;
}

namespace {

template <std::size_t N>
void render_kind(Exposition& out, const std::string& prefix, const std::string& label,
                 const std::vector<virt::DomainStats>& domains, const Field (&scalars)[N]) {
    for (const auto& d : domains) {
        Exposition::Labels id{{label, d.name}};
        out.add(prefix + "_state", "State of the domain (one sample per domain, value 1)", T::gauge,
                {{label, d.name}, {"state", d.state}}, std::uint64_t{1});
        for (const auto& f : scalars)
            if (auto it = d.values.find(f.libvirt); it != d.values.end())
                add_value(out, prefix + f.suffix, f, id, it->second);
        for (const auto& disk : d.disks)
            for (const auto& f : kDisk)
                if (auto it = disk.values.find(f.libvirt); it != disk.values.end())
                    add_value(out, prefix + f.suffix, f, {{label, d.name}, {"disk", disk.name}}, it->second);
        for (const auto& nic : d.nics)
            for (const auto& f : kNic)
                if (auto it = nic.values.find(f.libvirt); it != nic.values.end())
                    add_value(out, prefix + f.suffix, f, {{label, d.name}, {"nic", nic.name}}, it->second);
    }
}

}  // namespace

void render_domains(Exposition& out, const std::string& prefix, const std::string& label,
                    const std::vector<virt::DomainStats>& domains) {
    render_kind(out, prefix, label, domains, kScalars);
}

void render_containers(Exposition& out, const std::vector<virt::DomainStats>& cts) {
    render_kind(out, "hv_ct", "ct", cts, kCtScalars);
}

std::string render_metrics(const MetricsSnapshot& s) {
    Exposition out;
    out.add("hv_build_info", "hv version of this hvd (value 1)", T::gauge, {{"version", s.version}}, std::uint64_t{1});
    out.add("hv_daemon_uptime_seconds", "Seconds since hvd started", T::gauge, {}, s.uptime_seconds);
    out.add("hv_escaped_exceptions_total",
            "Unexpected exceptions caught at a request, task, thread or callback entry (bugs in hvd; it went on)",
            T::counter, {}, s.escaped_exceptions);
    out.add("hv_libvirt_up", "1 when the last statistics call to libvirt worked", T::gauge, {},
            std::uint64_t{s.libvirt_up ? 1u : 0u});
    if (s.containers)
        out.add("hv_lxc_up", "1 when the last statistics calls to libvirt's LXC driver worked (0: no hv_ct_* samples)",
                T::gauge, {}, std::uint64_t{s.lxc_up ? 1u : 0u});
    out.add("hv_metrics_collect_seconds", "Time the last libvirt statistics calls took", T::gauge, {}, s.collect_seconds);
    out.add("hv_host_cpus", "Logical CPUs of the host", T::gauge, {}, static_cast<std::uint64_t>(std::max(0, s.cpus)));
    out.add("hv_host_memory_bytes", "Memory of the host (MemTotal)", T::gauge, {}, s.memory_total);
    out.add("hv_host_memory_available_bytes", "Memory available for new work on the host (MemAvailable)", T::gauge, {},
            s.memory_available);
    for (const auto& p : s.pools) {
        Exposition::Labels l{{"pool", p.name}};
        out.add("hv_pool_active", "1 when the storage pool is usable", T::gauge, l, std::uint64_t{p.active ? 1u : 0u});
        out.add("hv_pool_capacity_bytes", "Size of the pool's filesystem", T::gauge, l, p.capacity);
        out.add("hv_pool_used_bytes", "Bytes used on the pool's filesystem (by anyone)", T::gauge, l, p.used);
        out.add("hv_pool_free_bytes", "Bytes available to hvd on the pool's filesystem", T::gauge, l, p.free);
        out.add("hv_pool_committed_bytes", "Sum of the virtual sizes of the pool's volumes", T::gauge, l, p.committed);
        out.add("hv_pool_volumes", "Volumes in the pool", T::gauge, l, p.volumes);
    }
    for (const auto& [state, n] : s.tasks_by_state)
        out.add("hv_tasks", "Tasks hvd holds (running and recent history) by state", T::gauge, {{"state", state}}, n);
    for (const auto& f : s.tasks_finished)
        out.add("hv_tasks_finished_total", "Tasks finished since hvd started, by kind and final state", T::counter,
                {{"kind", f.kind}, {"state", f.state}}, f.count);
    for (const auto& m : s.migrations) {
        const char* help = "Migrations of guests from this host since hvd started, by kind and result";
        out.add("hv_migrations_total", help, T::counter, {{"kind", m.kind}, {"result", "ok"}}, m.ok);
        out.add("hv_migrations_total", help, T::counter, {{"kind", m.kind}, {"result", "failed"}}, m.failed);
    }
    for (const auto& m : s.migrations)
        out.add("hv_migration_seconds_total", "Time the migrations that ended well took, from start to running there",
                T::counter, {{"kind", m.kind}}, m.seconds);
    for (const auto& m : s.migrations)
        out.add("hv_migration_downtime_seconds_total",
                "Time the guests of the migrations that ended well were paused (VMs) or stopped (containers)", T::counter,
                {{"kind", m.kind}}, m.downtime_seconds);
    render_domains(out, "hv_vm", "vm", s.vms);
    render_containers(out, s.cts);
    return out.text();
}

std::string MetricsCache::get() {
    std::unique_lock lk(mu_);
    for (;;) {
        if (have_ && period_.count() > 0 && now_() - at_ < period_) return text_;
        if (!rendering_) break;
        if (have_) return text_;  // stale by less than the time one render takes
        cv_.wait(lk);
        if (have_ && !rendering_) return text_;  // the render this caller waited for
    }
    rendering_ = true;
    lk.unlock();
    std::string text;
    try {
        text = render_();
    } catch (...) {
        lk.lock();
        rendering_ = false;
        cv_.notify_all();
        throw;
    }
    lk.lock();
    text_ = std::move(text);
    at_ = now_();
    have_ = true;
    rendering_ = false;
    cv_.notify_all();
    return text_;
}

}  // namespace hv::daemon
