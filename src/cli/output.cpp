#include <algorithm>
#include "output.hpp"

#include <ctime>
#include <iostream>

#include <fmt/format.h>

#include "hv/api/size.hpp"
#include "yaml.hpp"

namespace hv::cli {
using nlohmann::json;

namespace {
std::string dump(const json& j, int indent) { return j.dump(indent, ' ', false, json::error_handler_t::replace); }
std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
    return out;
}

std::string progress_text(int p) { return p < 0 ? "-" : fmt::format("{}%", p); }

std::string vm_uptime(const api::VmInfo& vm) {
    bool up = vm.state == api::VmState::running || vm.state == api::VmState::paused ||
              vm.state == api::VmState::shutting_down;
    if (!up) return "-";
    return vm.uptime > 0 ? format_duration(vm.uptime) : "0s";
}

// "running", or "running (booted)" with the reason libvirt gave.
template <typename Info>
std::string state_text(const Info& guest) {
    return guest.reason.empty() ? api::to_string(guest.state)
                                : fmt::format("{} ({})", api::to_string(guest.state), guest.reason);
}

std::string nic_text(const api::NicSpec& n, bool model) {
    std::string s = (n.name.empty() ? "" : n.name + "  ") + (n.network.empty() ? "bridge=" + n.bridge : "network=" + n.network);
    if (model) s += "  " + n.model;
    if (!n.mac.empty()) s += "  " + n.mac;
    if (n.vlan) s += fmt::format("  vlan={}", n.vlan);
    if (!n.trunks.empty()) s += "  trunks=" + n.trunks;
    if (n.mtu) s += fmt::format("  mtu={}", n.mtu);
    return s;
}

// "tap=vnet0 on vmbr0, VLANs 100 (PVID, untagged), 10, 20-30 tagged" from the live state.
std::string nic_live_text(const api::NicState& st) {
    if (!st.error.empty()) return "tap=" + or_dash(st.tap) + ": " + st.error;
    std::string s = "tap=" + or_dash(st.tap) + (st.bridge.empty() ? "" : " on " + st.bridge);
    if (!st.vlan_aware) return s + (st.bridge.empty() ? "" : " (no VLAN filtering)");
    std::vector<std::string> parts;
    std::vector<std::pair<int, int>> tagged;
    for (const auto& v : st.vlans) {
        if (v.pvid || v.untagged) {
            parts.push_back(fmt::format("{} ({}{}{})", v.vid, v.pvid ? "PVID" : "", v.pvid && v.untagged ? ", " : "",
                                        v.untagged ? "untagged" : ""));
            continue;
        }
        if (!tagged.empty() && tagged.back().second + 1 == v.vid) tagged.back().second = v.vid;
        else tagged.emplace_back(v.vid, v.vid);
    }
    for (auto [lo, hi] : tagged) parts.push_back(lo == hi ? std::to_string(lo) : fmt::format("{}-{}", lo, hi));
    return s + ", VLANs " + (parts.empty() ? "none" : join(parts, ", ")) + (tagged.empty() ? "" : " (others tagged)");
}

// "total_iops=2000,read_bps=200 MiB/s" or "-".
std::string limits_text(const api::IoLimits& l) {
    std::vector<std::string> parts;
    auto iops = [&](const char* k, std::uint64_t v) {
        if (v) parts.push_back(fmt::format("{}={}", k, v));
    };
    auto bps = [&](const char* k, std::uint64_t v) {
        if (v) parts.push_back(fmt::format("{}={}/s", k, api::format_size(v)));
    };
    iops("total_iops", l.total_iops);
    iops("read_iops", l.read_iops);
    iops("write_iops", l.write_iops);
    bps("total_bps", l.total_bps);
    bps("read_bps", l.read_bps);
    bps("write_bps", l.write_bps);
    return parts.empty() ? "-" : join(parts, ",");
}

// The disks of `vm show`: one row each, with the path below when hv did not make the volume.
std::string disks_text(const std::vector<api::DiskSpec>& disks, bool no_headers) {
    std::vector<Row> rows;
    for (const auto& d : disks) {
        std::string volume = d.volume.empty() ? or_dash(d.path) : d.pool + ":" + d.volume;
        if (!d.owned && !d.path.empty()) volume += " (attached)";
        rows.push_back({or_dash(d.name), d.size ? api::format_size(d.size) : "-", d.format, d.bus, volume,
                        api::to_string(d.provision), d.mode, d.cache.empty() ? "default" : d.cache,
                        d.discard ? "unmap" : "off", limits_text(d.limits)});
    }
    std::string table =
        render_table({"NAME", "SIZE", "FORMAT", "BUS", "VOLUME", "PROVISION", "MODE", "CACHE", "DISCARD", "LIMITS"}, rows, no_headers);
    std::string out;
    std::size_t start = 0;
    while (start < table.size()) {
        auto end = table.find('\n', start);
        out += "  " + table.substr(start, end - start + 1);
        start = end + 1;
    }
    return out;
}
}  // namespace

std::string nics_text(const std::vector<api::NicSpec>& nics, const std::vector<api::NicState>& live, bool model) {
    if (nics.empty()) return "";
    std::string out = "nics:\n";
    for (const auto& n : nics) {
        out += "  " + nic_text(n, model) + "\n";
        for (const auto& st : live)
            if (st.name == n.name && !n.name.empty()) out += "    " + nic_live_text(st) + "\n";
    }
    return out;
}

void print_error(const std::string& message) { std::cerr << "error: " << message << std::endl; }

namespace {
bool g_yaml = false;
}

void set_structured_format(const std::string& format) { g_yaml = format == "yaml"; }

void print_json(const json& j) {
    if (g_yaml) std::cout << to_yaml(j) << std::flush;
    else std::cout << dump(j, 2) << "\n" << std::flush;
}

void print_json_line(const json& j) {
    if (g_yaml) std::cout << "---\n" << to_yaml(j) << std::flush;
    else std::cout << dump(j, -1) << std::endl;
}

void print_line(const std::string& text) { std::cout << text << "\n" << std::flush; }

void print_table(const Globals& g, const Row& headers, const std::vector<Row>& rows) {
    std::cout << render_table(headers, rows, g.no_headers) << std::flush;
}

void print_vm_list(const Globals& g, const std::vector<api::VmInfo>& vms) {
    if (g.json()) return print_json(json(vms));
    std::vector<Row> rows;
    // In a cluster every VM has its owner host: a HOST column ("(stale)" while it is offline).
    bool cluster = std::any_of(vms.begin(), vms.end(), [](const api::VmInfo& v) { return !v.host.empty(); });
    for (const auto& vm : vms) {
        Row r{vm.spec.name, api::to_string(vm.state), std::to_string(vm.spec.cpus), api::format_size(vm.spec.memory),
              vm_uptime(vm)};
        if (cluster) r.insert(r.begin() + 1, vm.host + (vm.stale ? " (stale)" : ""));
        rows.push_back(std::move(r));
    }
    if (cluster) print_table(g, {"NAME", "HOST", "STATE", "CPUS", "MEMORY", "UPTIME"}, rows);
    else print_table(g, {"NAME", "STATE", "CPUS", "MEMORY", "UPTIME"}, rows);
}

void print_vm(const Globals& g, const api::VmInfo& vm) {
    if (g.json()) return print_json(json(vm));
    const auto& s = vm.spec;
    std::vector<std::pair<std::string, std::string>> kv{
        {"name", s.name},
        {"uuid", or_dash(vm.uuid)},
        {"state", state_text(vm)},
        {"managed", vm.managed ? "yes" : "no (defined outside hv)"},
        {"cpus", std::to_string(s.cpus)},
        {"cpu", s.cpu.mode == "custom" ? fmt::format("{}{} ({} feature flags)", s.cpu.model,
                                                     s.cpu.vendor.empty() ? "" : ", " + s.cpu.vendor, s.cpu.features.size())
                : s.cpu.mode.empty() ? "default (the host's: host-passthrough on KVM, qemu64 on TCG)"
                                     : s.cpu.mode},
        {"memory", api::format_size(s.memory)},
        {"firmware", api::to_string(s.firmware)},
        {"machine", s.machine},
        {"uptime", vm_uptime(vm)},
        {"vnc", or_dash(vm.vnc)},
        {"cdrom", or_dash(s.cdrom)},
    };
    if (!s.kernel.empty()) {
        kv.emplace_back("kernel", s.kernel);
        kv.emplace_back("initrd", or_dash(s.initrd));
        kv.emplace_back("cmdline", or_dash(s.cmdline));
    }
    kv.emplace_back("description", or_dash(s.description));
    kv.emplace_back("tags", s.tags.empty() ? "-" : join(s.tags, ", "));
    if (s.disks.empty()) kv.emplace_back("disks", "-");
    if (s.nics.empty()) kv.emplace_back("nics", "-");
    std::string out = render_kv(kv);
    if (!s.disks.empty()) out += "disks:\n" + disks_text(s.disks, g.no_headers);
    out += nics_text(s.nics, vm.interfaces, true);
    std::cout << out << std::flush;
}

void print_ct_list(const Globals& g, const std::vector<api::CtInfo>& cts) {
    if (g.json()) return print_json(json(cts));
    std::vector<Row> rows;
    // The HOST column of a cluster, as in print_vm_list.
    bool cluster = std::any_of(cts.begin(), cts.end(), [](const api::CtInfo& c) { return !c.host.empty(); });
    for (const auto& c : cts) {
        Row r{c.spec.name, api::to_string(c.state), std::to_string(c.spec.cpus), api::format_size(c.spec.memory),
              c.spec.unprivileged ? "yes" : "no"};
        if (cluster) r.insert(r.begin() + 1, c.host + (c.stale ? " (stale)" : ""));
        rows.push_back(std::move(r));
    }
    if (cluster) print_table(g, {"NAME", "HOST", "STATE", "CPUS", "MEMORY", "UNPRIVILEGED"}, rows);
    else print_table(g, {"NAME", "STATE", "CPUS", "MEMORY", "UNPRIVILEGED"}, rows);
}

void print_ct(const Globals& g, const api::CtInfo& c) {
    if (g.json()) return print_json(json(c));
    const auto& s = c.spec;
    std::vector<std::pair<std::string, std::string>> kv{
        {"name", s.name},
        {"type", "container (lxc)"},
        {"uuid", or_dash(c.uuid)},
        {"state", state_text(c)},
        {"managed", c.managed ? "yes" : "no (defined outside hv)"},
        {"unprivileged", s.unprivileged ? fmt::format("yes (ids 0-{} -> {}-{})", api::kUnprivilegedCount - 1,
                                                      api::kUnprivilegedBase,
                                                      api::kUnprivilegedBase + api::kUnprivilegedCount - 1)
                                        : "no (privileged: container root is host root)"},
        {"cpus", std::to_string(s.cpus)},
        {"memory", api::format_size(s.memory)},
        {"template", or_dash(s.tmpl)},
        {"rootfs", s.rootfs.path.empty() ? "-" : fmt::format("{}:{} ({})", s.rootfs.pool, s.rootfs.volume, s.rootfs.path)},
        {"rootfs size", s.rootfs.size ? fmt::format("{} ({})", api::format_size(s.rootfs.size), c.rootfs_quota) : "-"},
    };
    if (c.init_pid) {
        kv.emplace_back("init pid", std::to_string(c.init_pid));
        kv.emplace_back("memory limit", c.memory_limit ? api::format_size(c.memory_limit) : "-");
        kv.emplace_back("cpu shares", std::to_string(c.cpu_shares));
        kv.emplace_back("cpu quota", c.cpu_quota > 0 ? fmt::format("{} us per 100 ms", c.cpu_quota) : "none");
    }
    if (s.nics.empty()) kv.emplace_back("nics", "-");
    kv.emplace_back("description", or_dash(s.description));
    kv.emplace_back("tags", s.tags.empty() ? "-" : join(s.tags, ", "));
    // Not render_kv: the values are printed as they are (a description keeps trailing blanks).
    std::size_t w = 0;
    for (const auto& [k, _] : kv) w = std::max(w, k.size());
    for (const auto& [k, v] : kv) print_line(fmt::format("{:<{}}  {}", k + ":", w + 1, v));
    if (!s.nics.empty()) std::cout << nics_text(s.nics, c.interfaces, false) << std::flush;
}

void print_task_list(const Globals& g, const std::vector<api::TaskInfo>& tasks) {
    if (g.json()) return print_json(json(tasks));
    std::vector<Row> rows;
    for (const auto& t : tasks) {
        std::string msg = t.error ? t.error->message : t.message;
        rows.push_back({t.id, t.kind, t.target, api::to_string(t.state), progress_text(t.progress),
                        format_time_ms(t.created_at), msg});
    }
    print_table(g, {"ID", "KIND", "TARGET", "STATE", "PROGRESS", "CREATED", "MESSAGE"}, rows);
}

void print_task(const Globals& g, const api::TaskInfo& t) {
    if (g.json()) return print_json(json(t));
    std::vector<std::pair<std::string, std::string>> kv{
        {"id", t.id},
        {"kind", t.kind},
        {"target", t.target},
        {"state", api::to_string(t.state)},
        {"progress", progress_text(t.progress)},
        {"message", or_dash(t.message)},
        {"created", format_time_ms(t.created_at)},
        {"started", format_time_ms(t.started_at)},
        {"finished", format_time_ms(t.finished_at)},
    };
    if (t.error) kv.emplace_back("error", fmt::format("{}: {}", errc_name(t.error->code), t.error->message));
    if (!t.result.is_null()) kv.emplace_back("result", dump(t.result, -1));
    std::cout << render_kv(kv) << std::flush;
}

void print_host(const Globals& g, const api::HostInfo& h) {
    if (g.json()) return print_json(json(h));
    std::string libvirt = h.libvirt_connected ? fmt::format("{} (libvirt {}, QEMU {})", h.libvirt_uri,
                                                            or_dash(h.libvirt_version), or_dash(h.qemu_version))
                                              : fmt::format("{} (not connected)", h.libvirt_uri);
    std::string accel = h.accel;
    if (!h.accel_config.empty() && h.accel_config != h.accel) accel += fmt::format(" (configured: {})", h.accel_config);
    std::cout << render_kv({
                     {"hostname", h.hostname},
                     {"version", h.version},
                     {"libvirt", libvirt},
                     {"accel", accel},
                     {"accel reason", or_dash(h.accel_reason)},
                     {"cpus", std::to_string(h.cpus)},
                     {"memory", fmt::format("{} total, {} available", api::format_size(h.memory_total),
                                            api::format_size(h.memory_available))},
                     {"image dir", fmt::format("{} ({} free)", h.image_dir, api::format_size(h.image_dir_free))},
                     {"vms", fmt::format("{} ({} running)", h.vms_total, h.vms_running)},
                     {"daemon uptime", format_duration(h.daemon_uptime)},
                     {"net features", h.net_features.empty() ? "-" : join(h.net_features, ", ")},
                     {"net features missing", h.net_features_missing.empty() ? "none" : join(h.net_features_missing, ", ")},
                 })
              << std::flush;
}

std::string task_log_line_text(const api::TaskLogLine& l) {
    return fmt::format("{}.{:03}  {}", format_time_ms(l.time), l.time > 0 ? l.time % 1000 : 0, l.message);
}

void print_task_log_lines(const api::TaskLog& l) {
    if (l.dropped) print_line(fmt::format("({} older lines not kept)", l.dropped));
    for (const auto& line : l.lines) print_line(task_log_line_text(line));
}

std::string format_time_ms(std::int64_t ms) {
    if (ms <= 0) return "-";
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

std::string event_line(const api::Event& e) {
    std::string details;
    const json& d = e.data;
    if (e.type == "task" && d.is_object()) {
        api::TaskInfo t = api::task_info_from_json(d);
        details = fmt::format("{} {} {}", t.kind, t.target, api::to_string(t.state));
        if (t.progress >= 0 && !api::is_final(t.state)) details += fmt::format(" {}%", t.progress);
        if (t.error) details += ": " + t.error->message;
        else if (!t.message.empty()) details += ": " + t.message;
    } else if (e.type == "vm.lifecycle" && d.is_object() && d.contains("state")) {
        auto str = [&](const char* k) { return d.contains(k) && d[k].is_string() ? d[k].get<std::string>() : std::string(); };
        details = str("event").empty() ? str("state") : fmt::format("{}: {}", str("event"), str("state"));
        if (!str("reason").empty()) details += fmt::format(" ({})", str("reason"));
    } else if (d.is_object()) {
        for (const auto& [k, v] : d.items())
            details += fmt::format("{}{}={}", details.empty() ? "" : " ", k, v.is_string() ? v.get<std::string>() : dump(v, -1));
    } else if (!d.is_null()) {
        details = d.is_string() ? d.get<std::string>() : dump(d, -1);
    }
    std::string line = fmt::format("{}  {}{}  {}", format_time_ms(e.time), e.host.empty() ? "" : e.host + "  ", e.type,
                                   or_dash(e.target));
    if (!details.empty()) line += "  " + details;
    return line;
}

}  // namespace hv::cli
