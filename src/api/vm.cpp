#include "hv/api/vm.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>
#include <utility>

#include "hv/api/json_reader.hpp"
#include "hv/api/net.hpp"
#include "hv/api/size.hpp"
#include "hv/error.hpp"
#include "hv/util/utf8.hpp"
#include "guest_json.hpp"

namespace hv::api {
using nlohmann::json;

std::string name_excerpt(const std::string& s, std::size_t max) {
    if (s.size() <= max) return s;
    std::size_t n = max;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // not inside a character
    return s.substr(0, n) + "...";
}

void check_name_chars(const std::string& name, const char* what) {
    // The name is quoted whole in the errors below: sanitized, so an error about a name that
    // is not UTF-8 can still be rendered.
    auto shown = util::sanitize_utf8(name_excerpt(name));
    if (!std::isalnum(static_cast<unsigned char>(name[0])))
        fail(Errc::invalid_input, "{} '{}' must start with an ASCII letter or digit", what, shown);
    for (std::size_t i = 0; i < name.size(); ++i) {
        char c = name[i];
        if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') continue;
        // The whole character, not one byte of it ("café" contains 'é').
        std::size_t n = util::utf8_sequence_length(name, i);
        std::string ch = n == 0 ? std::string("\xEF\xBF\xBD") : name.substr(i, n);
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ch = fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        fail(Errc::invalid_input,
             "{} '{}' contains '{}': only ASCII letters, digits, '-', '_' and '.' are allowed", what, shown, ch);
    }
}

void validate_name(const std::string& name, const char* what) {
    if (name.empty()) fail(Errc::invalid_input, "{} must not be empty", what);
    if (name.size() > kMaxNameLen)
        fail(Errc::invalid_input, "{} '{}' is too long ({} bytes, at most {})", what,
             util::sanitize_utf8(name_excerpt(name)), name.size(), kMaxNameLen);
    check_name_chars(name, what);
}

namespace {
const std::set<std::string> kBuses{"virtio", "sata", "scsi", "ide"};
const std::set<std::string> kFormats{"qcow2", "raw"};
const std::set<std::string> kDiskModes{"dependent", "independent-persistent", "independent-nonpersistent"};
const std::set<std::string> kCacheModes{"", "none", "writeback", "writethrough", "directsync", "unsafe"};
const std::set<std::string> kNicModels{"virtio", "e1000", "e1000e", "rtl8139"};

bool valid_mac(const std::string& m) {
    if (m.size() != 17) return false;
    for (std::size_t i = 0; i < m.size(); ++i) {
        if (i % 3 == 2) {
            if (m[i] != ':') return false;
        } else if (!std::isxdigit(static_cast<unsigned char>(m[i]))) {
            return false;
        }
    }
    // The first octet must be unicast.
    return (std::stoi(m.substr(0, 2), nullptr, 16) & 1) == 0;
}

bool valid_machine(const std::string& m) {
    if (m.empty() || m.size() > 64) return false;
    return std::all_of(m.begin(), m.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_'; });
}

void validate_cpus(int cpus) {
    if (cpus < 1 || cpus > kMaxCpus) fail(Errc::invalid_input, "cpus must be between 1 and {} (got {})", kMaxCpus, cpus);
}
void validate_memory(std::uint64_t m) {
    if (m < kMinMemory || m > kMaxMemory)
        fail(Errc::invalid_input, "memory must be between {} and {} (got {})", format_size(kMinMemory),
             format_size(kMaxMemory), format_size(m));
    if (m % (1ULL << 20) != 0) fail(Errc::invalid_input, "memory must be a whole number of MiB (got {} bytes)", m);
}
void validate_tags(const std::vector<std::string>& tags) {
    for (const auto& t : tags) validate_name(t, "tag");
}
void validate_description(const std::string& d) {
    if (d.size() > 4096) fail(Errc::invalid_input, "description is too long ({} bytes, at most 4096)", d.size());
}

}  // namespace

void validate(const NicSpec& n, const std::string& f) {
    if (!n.name.empty()) {
        validate_name(n.name, "nic name");
        if (n.name.size() > 15) fail(Errc::invalid_input, "{}.name '{}' is longer than 15 characters", f, n.name);
    }
    if (n.network.empty() == n.bridge.empty())
        fail(Errc::invalid_input, "{}: give exactly one of network= or bridge=", f);
    if (!n.network.empty()) validate_name(n.network, "network name");
    if (!n.bridge.empty()) validate_ifname(n.bridge, "bridge name");
    if (!kNicModels.count(n.model))
        fail(Errc::invalid_input, "{}.model '{}' is not one of virtio, e1000, e1000e, rtl8139", f, n.model);
    if (!n.mac.empty() && !valid_mac(n.mac))
        fail(Errc::invalid_input, "{}.mac '{}' is not a unicast MAC address like 52:54:00:12:34:56", f, n.mac);
    if (n.vlan != 0 && (n.vlan < 1 || n.vlan > 4094))
        fail(Errc::invalid_input, "{}.vlan {} is out of range: VLAN ids are 1..4094 (0 and 4095 are reserved)", f,
             n.vlan);
    if (!n.trunks.empty()) parse_vids(n.trunks);
    if ((n.vlan != 0 || !n.trunks.empty()) && n.bridge.empty())
        fail(Errc::invalid_input, "{}: vlan and trunks need bridge= (a VLAN-aware host bridge), not network=", f);
    if (n.mtu != 0 && (n.mtu < kMinMtu || n.mtu > kMaxMtu))
        fail(Errc::invalid_input, "{}.mtu {} is out of range ({}..{}, or 0 for the bridge's)", f, n.mtu, kMinMtu,
             kMaxMtu);
}

namespace {
// "10;20-30" or "10,20-30" -> "10,20-30" (sorted, merged); "" stays "".
std::string normalize_trunks(const std::string& text) {
    if (text.empty()) return text;
    std::string t = text;
    std::replace(t.begin(), t.end(), ';', ',');
    std::string out;
    for (auto [lo, hi] : parse_vids(t)) {
        if (!out.empty()) out += ',';
        out += lo == hi ? std::to_string(lo) : fmt::format("{}-{}", lo, hi);
    }
    return out;
}
}  // namespace

NicSpec apply_patch(NicSpec n, const NicPatch& p) {
    if (p.bridge) {
        n.bridge = *p.bridge;
        n.network.clear();
    }
    if (p.network) {
        n.network = *p.network;
        n.bridge.clear();
    }
    if (p.model) n.model = *p.model;
    if (p.vlan) n.vlan = *p.vlan;
    if (p.trunks) n.trunks = normalize_trunks(*p.trunks);
    if (p.mtu) n.mtu = *p.mtu;
    validate(n, n.name.empty() ? "nic" : n.name);
    return n;
}

namespace {
bool cpu_word(const std::string& w) {
    if (w.empty() || w.size() > 63) return false;
    for (unsigned char c : w)
        if (!std::isalnum(c) && c != '_' && c != '.' && c != '-') return false;
    return std::isalnum(static_cast<unsigned char>(w[0])) != 0;
}
}  // namespace

void validate(const CpuSpec& c, bool request) {
    static const std::set<std::string> modes{"", "host-passthrough", "host-model", "custom", "cluster"};
    if (!modes.count(c.mode) || (c.mode == "cluster" && !request))
        fail(Errc::invalid_input, "cpu.mode '{}' is not one of host-passthrough, host-model, custom{}", name_excerpt(c.mode),
             request ? ", cluster" : "");
    if (c.mode != "custom") {
        if (!c.model.empty() || !c.vendor.empty() || !c.features.empty())
            fail(Errc::invalid_input, "cpu: model, vendor and features go with mode custom (mode is '{}')", c.mode);
        return;
    }
    if (!cpu_word(c.model)) fail(Errc::invalid_input, "cpu.model '{}' is not a CPU model name (such as EPYC, Skylake-Server)", name_excerpt(c.model));
    if (!c.vendor.empty() && !cpu_word(c.vendor)) fail(Errc::invalid_input, "cpu.vendor '{}' is not a vendor name", name_excerpt(c.vendor));
    if (c.features.size() > 256) fail(Errc::invalid_input, "cpu: at most 256 features (got {})", c.features.size());
    std::set<std::string> seen;
    for (const auto& f : c.features) {
        if (f.size() < 2 || (f[0] != '+' && f[0] != '-') || !cpu_word(f.substr(1)))
            fail(Errc::invalid_input, "cpu feature '{}' is not +name (required) or -name (disabled)", name_excerpt(f));
        if (!seen.insert(f.substr(1)).second) fail(Errc::invalid_input, "cpu feature '{}' is named twice", name_excerpt(f.substr(1)));
    }
}

std::string describe(const CpuSpec& c) {
    if (c.mode.empty()) return "default";
    if (c.mode != "custom") return c.mode;
    std::string out = c.model;
    for (const auto& f : c.features) out += " " + f;
    return out;
}

void to_json(json& j, const CpuSpec& v) {
    j = json{{"mode", v.mode}};
    if (v.mode == "custom") {
        j["model"] = v.model;
        if (!v.vendor.empty()) j["vendor"] = v.vendor;
        j["features"] = v.features;
    }
}

CpuSpec cpu_from_json(const json& j, const std::string& path) {
    ObjectReader r(j, path);
    CpuSpec c;
    c.mode = r.req<std::string>("mode");
    c.model = r.opt<std::string>("model").value_or("");
    c.vendor = r.opt<std::string>("vendor").value_or("");
    c.features = r.opt<std::vector<std::string>>("features").value_or(std::vector<std::string>{});
    r.finish();
    return c;
}

CpuSpec parse_cpu_arg(const std::string& arg) {
    CpuSpec c;
    if (arg == "host") c.mode = "host-passthrough";
    else if (arg == "host-passthrough" || arg == "host-model" || arg == "cluster") c.mode = arg;
    else if (arg == "default") c.mode = "";
    else {
        c.mode = "custom";
        std::size_t at = 0;
        bool first = true;
        while (at <= arg.size()) {
            auto comma = arg.find(',', at);
            auto part = arg.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
            if (first) c.model = part;
            else c.features.push_back(part);
            first = false;
            if (comma == std::string::npos) break;
            at = comma + 1;
        }
    }
    validate(c, true);
    return c;
}

void validate(const VmSpec& s) {
    validate_name(s.name, "vm name");
    validate(s.cpu, true);
    validate_cpus(s.cpus);
    validate_memory(s.memory);
    validate_description(s.description);
    validate_tags(s.tags);
    if (!valid_machine(s.machine)) fail(Errc::invalid_input, "machine '{}' is not a valid machine type", s.machine);
    if (s.disks.size() > 26) fail(Errc::invalid_input, "at most 26 disks (got {})", s.disks.size());
    if (s.nics.size() > 32) fail(Errc::invalid_input, "at most 32 nics (got {})", s.nics.size());
    std::set<std::string> names;
    for (std::size_t i = 0; i < s.disks.size(); ++i) {
        const auto& d = s.disks[i];
        auto f = fmt::format("disks[{}]", i);
        if (!d.name.empty()) {
            validate_name(d.name, "disk name");
            if (!names.insert(d.name).second) fail(Errc::invalid_input, "{}: duplicate disk name '{}'", f, d.name);
        }
        if (!kBuses.count(d.bus)) fail(Errc::invalid_input, "{}.bus '{}' is not one of virtio, sata, scsi, ide", f, d.bus);
        if (!d.format.empty() && !kFormats.count(d.format)) fail(Errc::invalid_input, "{}.format '{}' is not one of qcow2, raw", f, d.format);
        validate_name(d.pool, "pool name");
        if (!kDiskModes.count(d.mode))
            fail(Errc::invalid_input, "{}.mode '{}' is not one of dependent, independent-persistent, "
                 "independent-nonpersistent", f, d.mode);
        if (!kCacheModes.count(d.cache))
            fail(Errc::invalid_input, "{}.cache '{}' is not one of none, writeback, writethrough, directsync, unsafe", f,
                 d.cache);
        if (d.limits.total_iops && (d.limits.read_iops || d.limits.write_iops))
            fail(Errc::invalid_input, "{}: total_iops cannot be combined with read_iops/write_iops", f);
        if (d.limits.total_bps && (d.limits.read_bps || d.limits.write_bps))
            fail(Errc::invalid_input, "{}: total_bps cannot be combined with read_bps/write_bps", f);
        if (!d.volume.empty()) validate_name(d.volume, "volume name");
        // A new volume needs a size; an existing one (volume= or path=) brings its own.
        if (d.volume.empty() && d.path.empty() && d.size == 0)
            fail(Errc::invalid_input, "{}: size is required (e.g. size=4G), or volume= an existing volume", f);
        if (d.size != 0 && d.size < MiB) fail(Errc::invalid_input, "{}.size must be at least 1M", f);
        if (d.size > (1ULL << 50)) fail(Errc::invalid_input, "{}.size is too large (at most 1P)", f);
        if (!d.path.empty() && d.path[0] != '/') fail(Errc::invalid_input, "{}.path must be absolute", f);
        if (d.path.find("..") != std::string::npos) fail(Errc::invalid_input, "{}.path must not contain '..'", f);
        if (d.source) {
            // One way to say each thing: a file disk is its `path`, `source` is for network ones.
            if (d.source->is_file()) fail(Errc::invalid_input, "{}.source: a file disk is given by path, not source", f);
            if (!d.path.empty()) fail(Errc::invalid_input, "{}: a disk with a network source has no path", f);
            validate(*d.source, f + ".source");
            // RBD images are raw; <transient/> (independent-nonpersistent) needs a local
            // overlay file, which libvirt makes only for file disks.
            if (!d.format.empty() && d.format != "raw") fail(Errc::invalid_input, "{}: a network (rbd) disk has format raw, not {}", f, d.format);
            if (d.mode == "independent-nonpersistent")
                fail(Errc::invalid_input, "{}: mode independent-nonpersistent needs a file disk (not a network one)", f);
        }
    }
    for (std::size_t i = 0; i < s.nics.size(); ++i) {
        validate(s.nics[i], fmt::format("nics[{}]", i));
        for (std::size_t k = 0; k < i; ++k) {
            if (!s.nics[i].name.empty() && s.nics[i].name == s.nics[k].name)
                fail(Errc::invalid_input, "nics[{}]: name '{}' is used twice", i, s.nics[i].name);
            if (!s.nics[i].mac.empty() && s.nics[i].mac == s.nics[k].mac)
                fail(Errc::invalid_input, "nics[{}]: mac {} is used twice", i, s.nics[i].mac);
        }
    }
    for (const auto* p : {&s.kernel, &s.initrd}) {
        if (!p->empty() && ((*p)[0] != '/' || p->find("..") != std::string::npos))
            fail(Errc::invalid_input, "kernel and initrd must be absolute paths without '..'");
    }
    if (s.kernel.empty() && (!s.initrd.empty() || !s.cmdline.empty()))
        fail(Errc::invalid_input, "initrd and cmdline need a kernel");
    if (s.cmdline.size() > 2048) fail(Errc::invalid_input, "cmdline is too long (at most 2048 bytes)");
    if (!s.cdrom.empty()) {
        if (s.cdrom[0] != '/') parse_volume_ref(s.cdrom, "cdrom");  // POOL:iso/NAME
        if (s.cdrom.find("..") != std::string::npos) fail(Errc::invalid_input, "cdrom must not contain '..'");
    }
}

void validate(const VmPatch& p) {
    if (p.cpus) validate_cpus(*p.cpus);
    if (p.memory) validate_memory(*p.memory);
    if (p.description) validate_description(*p.description);
    if (p.tags) validate_tags(*p.tags);
    if (p.cpu) validate(*p.cpu, true);
    if (!p.cpus && !p.memory && !p.description && !p.tags && !p.cpu) fail(Errc::invalid_input, "nothing to change");
}

std::string to_string(Firmware f) { return f == Firmware::uefi ? "uefi" : "bios"; }
Firmware firmware_from_string(const std::string& s) {
    if (s == "bios") return Firmware::bios;
    if (s == "uefi") return Firmware::uefi;
    fail(Errc::invalid_input, "firmware '{}' is not one of bios, uefi", s);
}

void to_json(json& j, Firmware v) { j = to_string(v); }

DiskSource source_of(const DiskSpec& d) { return d.source ? *d.source : DiskSource::file(d.path); }

void set_source(DiskSpec& d, DiskSource s) {
    if (s.is_file()) {
        d.path = std::move(s.path);
        d.source.reset();
    } else {
        d.path.clear();
        d.source = std::move(s);
    }
}

void to_json(json& j, const DiskSpec& v) {
    j = json{{"name", v.name},   {"size", v.size},         {"pool", v.pool},   {"volume", v.volume},
             {"format", v.format}, {"provision", v.provision}, {"bus", v.bus}, {"mode", v.mode},
             {"cache", v.cache}, {"discard", v.discard},   {"path", v.path},   {"owned", v.owned}};
    // Only network disks carry it: file disks serialize exactly as before sources existed.
    if (v.source) j["source"] = *v.source;
    const auto& l = v.limits;
    if (l.any())
        j["limits"] = json{{"total_iops", l.total_iops}, {"read_iops", l.read_iops}, {"write_iops", l.write_iops},
                           {"total_bps", l.total_bps},   {"read_bps", l.read_bps},   {"write_bps", l.write_bps}};
}
void to_json(json& j, const NicSpec& v) {
    j = json::object();
    if (!v.name.empty()) j["name"] = v.name;
    if (!v.network.empty()) j["network"] = v.network;
    if (!v.bridge.empty()) j["bridge"] = v.bridge;
    j["model"] = v.model;
    j["mac"] = v.mac;
    if (v.vlan) j["vlan"] = v.vlan;
    if (!v.trunks.empty()) j["trunks"] = v.trunks;
    if (v.mtu) j["mtu"] = v.mtu;
}
void to_json(json& j, const PortVlan& v) { j = json{{"vid", v.vid}, {"pvid", v.pvid}, {"untagged", v.untagged}}; }
void to_json(json& j, const NicState& v) {
    j = json{{"name", v.name}, {"mac", v.mac},     {"bridge", v.bridge},
             {"tap", v.tap},   {"vlan_aware", v.vlan_aware}, {"vlans", v.vlans}};
    if (!v.error.empty()) j["error"] = v.error;
}
void to_json(json& j, const NicPatch& v) {
    j = json::object();
    if (v.bridge) j["bridge"] = *v.bridge;
    if (v.network) j["network"] = *v.network;
    if (v.model) j["model"] = *v.model;
    if (v.vlan) j["vlan"] = *v.vlan;
    if (v.trunks) j["trunks"] = *v.trunks;
    if (v.mtu) j["mtu"] = *v.mtu;
}
void to_json(json& j, const VmSpec& v) {
    j = json{{"name", v.name},
             {"cpus", v.cpus},
             {"memory", v.memory},
             {"disks", v.disks},
             {"nics", v.nics},
             {"cdrom", v.cdrom},
             {"firmware", v.firmware},
             {"machine", v.machine},
             {"kernel", v.kernel},
             {"initrd", v.initrd},
             {"cmdline", v.cmdline},
             {"description", v.description},
             {"tags", v.tags}};
    if (v.is_template) j["template"] = true;
    if (!v.cpu.mode.empty()) j["cpu"] = v.cpu;
}
void to_json(json& j, const VmPatch& v) {
    j = json::object();
    if (v.cpus) j["cpus"] = *v.cpus;
    if (v.memory) j["memory"] = *v.memory;
    if (v.description) j["description"] = *v.description;
    if (v.tags) j["tags"] = *v.tags;
    if (v.cpu) j["cpu"] = *v.cpu;
}
void to_json(json& j, const VmInfo& v) {
    to_json(j, v.spec);
    detail::write_status(j, v);
    j["started_at"] = v.started_at;
    j["uptime"] = v.uptime;
    j["vnc"] = v.vnc;
}

DiskSpec disk_from_json(const json& j, const std::string& path, JsonOrigin origin) {
    ObjectReader r(j, path);
    DiskSpec d;
    d.name = r.opt<std::string>("name").value_or("");
    d.size = r.opt_size("size").value_or(0);
    d.pool = r.opt<std::string>("pool").value_or(d.pool);
    d.format = r.opt<std::string>("format").value_or(d.format);
    d.volume = r.opt<std::string>("volume").value_or("");
    if (auto p = r.opt<std::string>("provision")) d.provision = provision_from_string(*p);
    d.bus = r.opt<std::string>("bus").value_or(d.bus);
    d.mode = r.opt<std::string>("mode").value_or(d.mode);
    d.cache = r.opt<std::string>("cache").value_or("");
    d.discard = r.opt<bool>("discard").value_or(false);
    if (const auto* l = r.raw("limits")) {
        ObjectReader lr(*l, r.field("limits"));
        d.limits.total_iops = lr.opt<std::uint64_t>("total_iops").value_or(0);
        d.limits.read_iops = lr.opt<std::uint64_t>("read_iops").value_or(0);
        d.limits.write_iops = lr.opt<std::uint64_t>("write_iops").value_or(0);
        d.limits.total_bps = lr.opt_size("total_bps").value_or(0);
        d.limits.read_bps = lr.opt_size("read_bps").value_or(0);
        d.limits.write_bps = lr.opt_size("write_bps").value_or(0);
        lr.finish();
    }
    d.path = r.opt<std::string>("path").value_or("");
    if (const auto* src = r.raw("source")) {
        if (origin == JsonOrigin::request)
            fail(Errc::invalid_input, "field '{}' is set by hvd from the disk's pool; give pool and volume (or path)",
                 r.field("source"));
        d.source = disk_source_from_json(*src, r.field("source"));
    }
    d.owned = r.opt<bool>("owned").value_or(false);
    r.finish();
    return d;
}

NicSpec nic_from_json(const json& j, const std::string& path) {
    ObjectReader r(j, path);
    NicSpec n;
    n.name = r.opt<std::string>("name").value_or("");
    n.network = r.opt<std::string>("network").value_or("");
    n.bridge = r.opt<std::string>("bridge").value_or("");
    n.model = r.opt<std::string>("model").value_or(n.model);
    n.mac = r.opt<std::string>("mac").value_or("");
    if (r.has("vlan")) {
        n.vlan = read_int(r, "vlan", 0);
        if (n.vlan < 1 || n.vlan > 4094)
            fail(Errc::invalid_input, "{}: vlan {} is out of range: VLAN ids are 1..4094 (0 and 4095 are reserved)",
                 path, n.vlan);
    }
    n.trunks = normalize_trunks(r.opt<std::string>("trunks").value_or(""));
    n.mtu = read_int(r, "mtu", 0);
    r.finish();
    return n;
}

NicPatch nic_patch_from_json(const json& j) {
    ObjectReader r(j, "");
    NicPatch p;
    p.bridge = r.opt<std::string>("bridge");
    p.network = r.opt<std::string>("network");
    p.model = r.opt<std::string>("model");
    if (r.has("vlan")) p.vlan = read_int(r, "vlan", 0);
    p.trunks = r.opt<std::string>("trunks");
    if (r.has("mtu")) p.mtu = read_int(r, "mtu", 0);
    r.finish();
    if (p.bridge && p.network) fail(Errc::invalid_input, "give bridge= or network=, not both");
    if (p.vlan && *p.vlan != 0 && (*p.vlan < 1 || *p.vlan > 4094))
        fail(Errc::invalid_input, "vlan {} is out of range: VLAN ids are 1..4094 (0 = untagged)", *p.vlan);
    if (!p.bridge && !p.network && !p.model && !p.vlan && !p.trunks && !p.mtu)
        fail(Errc::invalid_input, "nothing to change: give bridge, network, model, vlan, trunks or mtu");
    return p;
}

namespace {
VmSpec spec_from_reader(ObjectReader& r, JsonOrigin origin) {
    VmSpec s;
    s.name = r.req<std::string>("name");
    s.cpus = read_int(r, "cpus", s.cpus);
    s.memory = r.opt_size("memory").value_or(s.memory);
    if (const auto* d = r.raw("disks")) {
        if (!d->is_array()) fail(Errc::invalid_input, "field 'disks' must be an array");
        for (std::size_t i = 0; i < d->size(); ++i) s.disks.push_back(disk_from_json((*d)[i], fmt::format("disks[{}]", i), origin));
    }
    s.nics = detail::read_nics(r);
    s.cdrom = r.opt<std::string>("cdrom").value_or("");
    if (auto f = r.opt<std::string>("firmware")) s.firmware = firmware_from_string(*f);
    s.machine = r.opt<std::string>("machine").value_or(s.machine);
    if (const auto* c = r.raw("cpu")) s.cpu = cpu_from_json(*c, "cpu");
    s.kernel = r.opt<std::string>("kernel").value_or("");
    s.initrd = r.opt<std::string>("initrd").value_or("");
    s.cmdline = r.opt<std::string>("cmdline").value_or("");
    detail::read_labels(r, s);
    if (origin == JsonOrigin::hvd) s.is_template = r.opt<bool>("template").value_or(false);
    return s;
}
}  // namespace

VmSpec vm_spec_from_json(const json& j, JsonOrigin origin) {
    ObjectReader r(j, "");
    VmSpec s = spec_from_reader(r, origin);
    r.finish();
    return s;
}

VmPatch vm_patch_from_json(const json& j) {
    ObjectReader r(j, "");
    VmPatch p;
    if (r.has("cpus")) p.cpus = read_int(r, "cpus", 0);
    else r.raw("cpus");
    p.memory = r.opt_size("memory");
    p.description = r.opt<std::string>("description");
    p.tags = r.opt<std::vector<std::string>>("tags");
    if (const auto* c = r.raw("cpu")) p.cpu = cpu_from_json(*c, "cpu");
    r.finish();
    return p;
}

NicState nic_state_from_json(const json& x) {
    // Lenient and never throwing (a field of another type keeps its default), and without
    // copying: json::value() threw type_error on {"name":5} and copied "vlans" recursively
    // (tests/fuzz/vm_json_fuzz).
    NicState n;
    if (!x.is_object()) return n;
    auto str = [](const json& o, const char* k) {
        auto it = o.find(k);
        return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    auto flag = [](const json& o, const char* k) {
        auto it = o.find(k);
        return it != o.end() && it->is_boolean() && it->get<bool>();
    };
    n.name = str(x, "name");
    n.mac = str(x, "mac");
    n.bridge = str(x, "bridge");
    n.tap = str(x, "tap");
    n.vlan_aware = flag(x, "vlan_aware");
    n.error = str(x, "error");
    if (auto vl = x.find("vlans"); vl != x.end() && vl->is_array())
        for (const auto& pv : *vl) {
            if (!pv.is_object()) continue;
            auto vid = pv.find("vid");
            int v = vid != pv.end() && vid->is_number_integer() && std::in_range<int>(vid->get<std::int64_t>())
                        ? vid->get<int>()
                        : 0;
            n.vlans.push_back({v, flag(pv, "pvid"), flag(pv, "untagged")});
        }
    return n;
}

VmInfo vm_info_from_json(const json& j) {
    ObjectReader r(j, "");
    VmInfo v;
    v.spec = spec_from_reader(r, JsonOrigin::hvd);
    detail::read_status(r, v);
    v.started_at = r.opt<std::int64_t>("started_at").value_or(0);
    v.uptime = r.opt<std::int64_t>("uptime").value_or(0);
    v.vnc = r.opt<std::string>("vnc").value_or("");
    // Output objects may gain fields in later API versions: clients ignore unknown ones.
    return v;
}

namespace detail {
std::vector<std::pair<std::string, std::string>> split_kv(const std::string& arg, const char* what, bool allow_empty) {
    std::vector<std::pair<std::string, std::string>> out;
    std::size_t start = 0;
    while (start <= arg.size()) {
        auto end = arg.find(',', start);
        if (end == std::string::npos) end = arg.size();
        std::string item = arg.substr(start, end - start);
        if (!item.empty()) {
            auto eq = item.find('=');
            if (eq == std::string::npos || eq == 0)
                fail(Errc::invalid_input, "{} option '{}' must be key=value", what, item);
            out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
        }
        start = end + 1;
    }
    if (out.empty() && !allow_empty) fail(Errc::invalid_input, "{} specification is empty", what);
    return out;
}
}  // namespace detail
using detail::split_kv;

DiskSpec parse_disk_arg(const std::string& arg) {
    json j = json::object();
    json limits = json::object();
    static const std::set<std::string> kLimitKeys{"total_iops", "read_iops", "write_iops",
                                                  "total_bps",  "read_bps",  "write_bps"};
    for (auto& [k, v] : split_kv(arg, "--disk")) {
        if (k == "owned" || k == "limits" || j.contains(k) || limits.contains(k))
            fail(Errc::invalid_input, "--disk: unknown or repeated key '{}'", k);
        if (kLimitKeys.count(k)) {
            if (k.ends_with("_iops")) {
                std::uint64_t n = 0;
                auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
                if (ec != std::errc() || p != v.data() + v.size())
                    fail(Errc::invalid_input, "--disk: {}={} is not a whole number", k, v);
                limits[k] = n;
            } else {
                limits[k] = v;  // a size such as 100M (bytes per second)
            }
        } else if (k == "discard") {
            if (v == "on" || v == "true" || v == "1" || v == "unmap") j[k] = true;
            else if (v == "off" || v == "false" || v == "0" || v == "ignore") j[k] = false;
            else fail(Errc::invalid_input, "--disk: discard={} is not on or off", v);
        } else {
            j[k] = v;
        }
    }
    if (!limits.empty()) j["limits"] = limits;
    return disk_from_json(j, "--disk");
}

namespace {
// "--net"-style k=v list -> JSON object; vlan and mtu are integers.
json nic_args_json(const std::string& arg, const char* what) {
    json j = json::object();
    for (auto& [k, v] : split_kv(arg, what)) {
        if (j.contains(k)) fail(Errc::invalid_input, "{}: repeated key '{}'", what, k);
        if (k == "vlan" || k == "mtu") {
            int x = 0;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
            if (ec != std::errc() || p != v.data() + v.size())
                fail(Errc::invalid_input, "{}: {}='{}' is not a number", what, k, v);
            j[k] = x;
        } else {
            j[k] = v;
        }
    }
    return j;
}
}  // namespace

NicSpec parse_nic_arg(const std::string& arg) { return nic_from_json(nic_args_json(arg, "--net"), "--net"); }

NicPatch parse_nic_patch_arg(const std::string& arg) { return nic_patch_from_json(nic_args_json(arg, "nic set")); }

}  // namespace hv::api
