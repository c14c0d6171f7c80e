// Libvirt domain XML from a VmSpec, built as text: the output is small, fixed in shape and
// compared byte-for-byte with golden files (tests/data), so a DOM library would add nothing
// but a dependency. Every value that comes from a user goes through xml_escape.
// Reading (metadata, live XML) uses boost::property_tree, because libvirt re-serializes what
// we wrote (other prefix, whitespace, quotes, entities) and a real parser copes with all of it.
#include "hv/virt/domain_xml.hpp"

#include <algorithm>

#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string_view>

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "hv/error.hpp"

namespace hv::virt {
namespace {

using boost::property_tree::ptree;

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// "q35", "pc-q35-7.2".
bool is_q35(const std::string& machine) { return machine == "q35" || starts_with(machine, "pc-q35"); }
// "pc", "pc-i440fx-7.2", and old names such as "pc-1.3".
bool is_i440fx(const std::string& machine) { return machine == "pc" || (starts_with(machine, "pc-") && !is_q35(machine)); }

// Empty PCIe root ports for hot-plugging disks (virtio, or a virtio-scsi controller) on q35.
constexpr int kHotplugPorts = 4;

constexpr const char* kVirtioScsiController = "<controller type='scsi' index='0' model='virtio-scsi'/>";

// Same scheme as libvirt's virDiskNameFromIndex: 0 -> "a", 25 -> "z", 26 -> "aa".
std::string disk_letters(int index) {
    std::string out;
    for (int i = index; i >= 0; i = i / 26 - 1) out.insert(out.begin(), static_cast<char>('a' + i % 26));
    return out;
}

// Target device names, allocated in order per prefix. sata and scsi disks are both "sd".
class TargetNames {
public:
    std::string next(const std::string& prefix) { return prefix + disk_letters(used_[prefix]++); }

private:
    std::map<std::string, int> used_;
};

// Indented lines; the whole document uses two spaces per level.
class Lines {
public:
    void add(int depth, std::string_view text) {
        out_.append(static_cast<std::size_t>(depth) * 2, ' ');
        out_.append(text);
        out_.push_back('\n');
    }
    // A multi-line block (e.g. metadata_xml's output), re-indented to `depth`.
    void block(int depth, std::string_view text) {
        std::size_t start = 0;
        while (start < text.size()) {
            auto end = text.find('\n', start);
            if (end == std::string_view::npos) end = text.size();
            add(depth, text.substr(start, end - start));
            start = end + 1;
        }
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

std::string serial_log_path(const std::string& dir, const std::string& name) {
    std::string d = dir;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    if (d != "/") d += '/';
    return d + name + ".serial.log";
}

// Fails when the disks and the machine type cannot work together in QEMU.
void check_buses(const api::VmSpec& spec) {
    int ide = 0;
    for (std::size_t i = 0; i < spec.disks.size(); ++i) {
        const auto& d = spec.disks[i];
        if (d.path.empty() && !d.source)
            fail(Errc::internal, "disks[{}] ('{}') has no source: it must be set before the domain XML is generated", i,
                 d.name);
        check_disk(d, spec.machine, fmt::format("disks[{}] ('{}')", i, d.name));
        if (d.bus == "ide") ++ide;
    }
    // i440fx has one IDE controller with two buses of two units; the CD/DVD drive takes one.
    if (!spec.cdrom.empty() && is_i440fx(spec.machine)) ++ide;
    if (ide > 4)
        fail(Errc::invalid_input, "at most 4 IDE devices fit on machine '{}' ({} requested, the CD/DVD drive included)",
             spec.machine, ide);
}

// <source> of a disk (and for a network disk the <auth> after it), every value escaped:
//   file     <source file='PATH'/>
//   network  <source protocol='rbd' name='POOL/IMAGE'><host name='..' port='..'/>...</source>
//            <auth username='..'><secret type='ceph' uuid='..'/></auth>
// <auth> as a child of <disk> is the placement every libvirt reads (and writes back, before
// <source>); libvirt >= 3.9 also reads it inside <source>.
void add_source(Lines& x, int depth, const api::DiskSource& s) {
    const auto e = [](const std::string& v) { return xml_escape(v); };
    if (s.is_file()) {
        x.add(depth, fmt::format("<source file='{}'/>", e(s.path)));
        return;
    }
    const auto open = fmt::format("<source protocol='{}' name='{}'", e(s.protocol), e(s.name));
    if (s.hosts.empty()) {
        x.add(depth, open + "/>");
    } else {
        x.add(depth, open + ">");
        for (const auto& h : s.hosts) {
            if (h.port) x.add(depth + 1, fmt::format("<host name='{}' port='{}'/>", e(h.name), h.port));
            else x.add(depth + 1, fmt::format("<host name='{}'/>", e(h.name)));
        }
        x.add(depth, "</source>");
    }
    if (s.auth) {
        x.add(depth, fmt::format("<auth username='{}'>", e(s.auth->username)));
        x.add(depth + 1, fmt::format("<secret type='{}' uuid='{}'/>", e(s.auth->secret_type), e(s.auth->secret_uuid)));
        x.add(depth, "</auth>");
    }
}

const char* disk_type(const api::DiskSource& s) { return s.is_file() ? "file" : "network"; }

// Lines' text without its trailing newline (single device elements).
std::string element(Lines& x) {
    auto out = x.take();
    if (!out.empty()) out.pop_back();
    return out;
}

// ---- reading ----------------------------------------------------------------------------

std::optional<ptree> parse_xml(const std::string& text) {
    try {
        std::istringstream in(text);
        ptree pt;
        boost::property_tree::read_xml(in, pt);
        return pt;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::string_view prefix_of(std::string_view qname) {
    auto colon = qname.find(':');
    return colon == std::string_view::npos ? std::string_view{} : qname.substr(0, colon);
}
std::string_view local_name(std::string_view qname) {
    auto colon = qname.find(':');
    return colon == std::string_view::npos ? qname : qname.substr(colon + 1);
}

std::string attr(const ptree& element, const std::string& name) {
    if (auto attrs = element.get_child_optional("<xmlattr>")) {
        if (auto v = attrs->get_optional<std::string>(ptree::path_type(name, '\0'))) return *v;
    }
    return {};
}

// Namespace URI bound to an element's prefix, looked up on the element and then on its
// ancestors (innermost first); nullopt when nothing declares it. Enough for the shapes libvirt
// produces; not a full namespace processor.
std::optional<std::string> namespace_of(std::string_view qname, std::initializer_list<const ptree*> scopes) {
    std::string decl = "xmlns";
    if (auto p = prefix_of(qname); !p.empty()) decl += ":" + std::string(p);
    for (const ptree* scope : scopes) {
        if (auto attrs = scope->get_child_optional("<xmlattr>")) {
            if (auto v = attrs->get_optional<std::string>(ptree::path_type(decl, '\0'))) return *v;
        }
    }
    return std::nullopt;
}

// libvirt's virDomainGetMetadata strips the namespace from the element it returns (it was
// selected by URI), so an undeclared namespace is accepted; a different declared one is not.
bool in_metadata_ns(const std::optional<std::string>& ns) { return !ns || *ns == kMetadataNs; }

// The document element (first child that is neither a comment nor text).
const ptree::value_type* document_element(const ptree& doc) {
    for (const auto& child : doc) {
        if (child.first != "<xmlcomment>" && child.first != "<xmltext>") return &child;
    }
    return nullptr;
}

}  // namespace

std::string xml_escape_text(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '&') out += "&amp;";
        else if (c == '<') out += "&lt;";
        else if (c == '>') out += "&gt;";
        else out += c;
    }
    return out;
}

std::string xml_escape(const std::string& s) {
    std::string out;
    out.reserve(s.size() + s.size() / 8);
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        switch (ch) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            // As character references these survive both attribute-value normalization and
            // CR/LF normalization, so the same function is right for text and attributes.
            case '\t': out += "&#9;"; break;
            case '\n': out += "&#10;"; break;
            case '\r': out += "&#13;"; break;
            default:
                // Other C0 controls cannot appear in XML 1.0 at all, not even as references:
                // replace them (U+FFFD) so the document stays loadable by libvirt.
                if (c < 0x20) out += "\xEF\xBF\xBD";
                else out += ch;
        }
    }
    return out;
}

std::string target_prefix(const std::string& bus) {
    if (bus == "virtio") return "vd";
    if (bus == "ide") return "hd";
    return "sd";  // sata, scsi
}

std::string free_target(const std::string& bus, const std::set<std::string>& used) {
    const auto prefix = target_prefix(bus);
    for (int i = 0;; ++i)
        if (auto name = prefix + disk_letters(i); !used.count(name)) return name;
}

std::string cdrom_bus(const std::string& machine) {
    // SATA on q35 (its built-in AHCI); IDE on i440fx, which has IDE but no AHCI.
    return is_i440fx(machine) ? "ide" : "sata";
}

bool hotpluggable_bus(const std::string& bus) { return bus == "virtio" || bus == "scsi"; }

void check_disk(const api::DiskSpec& d, const std::string& machine, const std::string& what) {
    if (d.bus == "ide" && is_q35(machine))
        fail(Errc::invalid_input,
             "{}: bus ide needs machine type pc (i440fx); machine '{}' has no IDE controller "
             "in QEMU, use bus sata or virtio instead",
             what, machine);
    // Checked by api::validate too; repeated here because this is what reaches libvirt.
    if (d.mode != "dependent" && d.mode != "independent-persistent" && d.mode != "independent-nonpersistent")
        fail(Errc::invalid_input, "{}: mode '{}' is not one of dependent, independent-persistent, independent-nonpersistent",
             what, d.mode);
    if (d.mode == "independent-nonpersistent" && !api::source_of(d).is_file())
        fail(Errc::invalid_input, "{}: mode independent-nonpersistent needs a file disk: libvirt makes its overlay only "
             "for files, not for network (rbd) disks", what);
    if (!d.cache.empty() && d.cache != "none" && d.cache != "writeback" && d.cache != "writethrough" &&
        d.cache != "directsync" && d.cache != "unsafe")
        fail(Errc::invalid_input, "{}: cache '{}' is not one of none, writeback, writethrough, directsync, unsafe", what,
             d.cache);
    // libvirt 9.0 + QEMU 7.2 take <transient/> (independent-nonpersistent) on every bus hv
    // offers (virtio, sata, scsi, ide), with any cache mode, discard and <iotune>, cold and
    // hot-plugged (tried against libvirtd 9.0.0). Its limits are the overlay's: only file
    // disks that are not read-only and not CD/DVD (checked above for network disks), no
    // shareBacking (hv never sets it), and no block jobs on that disk (so it must be excluded
    // from snapshots: hv always adds snapshot='no').
}

std::string disk_device_xml(const api::DiskSpec& d, const std::string& dev) {
    const auto e = [](const std::string& s) { return xml_escape(s); };
    Lines x;
    // snapshot='no': independent disks are left out of (external) snapshots.
    const auto src = api::source_of(d);
    x.add(0, fmt::format("<disk type='{}' device='disk'{}>", disk_type(src), d.mode == "dependent" ? "" : " snapshot='no'"));
    if (d.format.empty()) fail(Errc::internal, "disk {} has no format (its pool gives one before the XML is made)", d.name);
    std::string driver = fmt::format("<driver name='qemu' type='{}'", e(d.format));
    if (!d.cache.empty()) driver += fmt::format(" cache='{}'", e(d.cache));
    if (d.discard) driver += " discard='unmap'";
    x.add(1, driver + "/>");
    add_source(x, 1, src);
    x.add(1, fmt::format("<target dev='{}' bus='{}'/>", e(dev), e(d.bus)));
    if (d.limits.any()) {
        const auto& l = d.limits;
        x.add(1, "<iotune>");
        // libvirt's own element order.
        const std::pair<const char*, std::uint64_t> items[] = {
            {"total_bytes_sec", l.total_bps}, {"read_bytes_sec", l.read_bps}, {"write_bytes_sec", l.write_bps},
            {"total_iops_sec", l.total_iops}, {"read_iops_sec", l.read_iops}, {"write_iops_sec", l.write_iops}};
        for (const auto& [name, v] : items)
            if (v) x.add(2, fmt::format("<{0}>{1}</{0}>", name, v));
        x.add(1, "</iotune>");
    }
    // Writes go to an overlay that libvirt creates at start and deletes at power off.
    if (d.mode == "independent-nonpersistent") x.add(1, "<transient/>");
    x.add(0, "</disk>");
    return element(x);
}

std::string disk_detach_xml(const api::DiskSource& src, const std::string& dev, const std::string& bus) {
    Lines x;
    x.add(0, fmt::format("<disk type='{}' device='disk'>", disk_type(src)));
    add_source(x, 1, src);
    x.add(1, fmt::format("<target dev='{}' bus='{}'/>", xml_escape(dev), xml_escape(bus)));
    x.add(0, "</disk>");
    return element(x);
}

std::string cdrom_device_xml(const std::string& path, const std::string& bus, const std::string& dev) {
    const auto e = [](const std::string& s) { return xml_escape(s); };
    Lines x;
    x.add(0, "<disk type='file' device='cdrom'>");
    x.add(1, "<driver name='qemu' type='raw'/>");
    if (!path.empty()) add_source(x, 1, api::DiskSource::file(path));
    x.add(1, fmt::format("<target dev='{}' bus='{}'/>", e(dev), e(bus)));
    x.add(1, "<readonly/>");
    x.add(0, "</disk>");
    return element(x);
}

std::string metadata_xml(const api::VmSpec& spec) {
    // ASCII-only JSON (ensure_ascii) keeps the stored text independent of any encoding handling
    // between here and libvirt; `replace` keeps a stray invalid UTF-8 byte from throwing here.
    // JSON escapes every control character itself, so in element content only & < > need
    // escaping; quotes stay literal, which keeps the golden files readable.
    const std::string json =
        nlohmann::json(spec).dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace);
    return fmt::format("<{0}:vm xmlns:{0}=\"{1}\">\n  <{0}:spec format=\"json\">{2}</{0}:spec>\n</{0}:vm>",
                       kMetadataPrefix, kMetadataNs, xml_escape_text(json));
}

std::string domain_xml(const api::VmSpec& spec, const DomainXmlOptions& opts, const std::string& uuid) {
    if (opts.domain_type != "qemu" && opts.domain_type != "kvm")
        fail(Errc::internal, "domain type '{}' is not one of qemu, kvm", opts.domain_type);
    check_buses(spec);

    const auto e = [](const std::string& s) { return xml_escape(s); };
    Lines x;

    x.add(0, fmt::format("<domain type='{}'>", opts.domain_type));
    x.add(1, fmt::format("<name>{}</name>", e(spec.name)));
    if (!uuid.empty()) x.add(1, fmt::format("<uuid>{}</uuid>", e(uuid)));
    if (!spec.description.empty()) x.add(1, fmt::format("<description>{}</description>", e(spec.description)));
    x.add(1, "<metadata>");
    x.block(2, metadata_xml(spec));
    x.add(1, "</metadata>");
    const auto kib = spec.memory / 1024;
    x.add(1, fmt::format("<memory unit='KiB'>{}</memory>", kib));
    x.add(1, fmt::format("<currentMemory unit='KiB'>{}</currentMemory>", kib));
    x.add(1, fmt::format("<vcpu placement='static'>{}</vcpu>", spec.cpus));

    // UEFI: libvirt picks an OVMF build from the firmware descriptors. Secure boot is excluded
    // so that unsigned kernels, ISOs and direct kernel boot work (Debian's first choice would
    // otherwise be OVMF with Microsoft keys enrolled).
    if (spec.firmware == api::Firmware::uefi) x.add(1, "<os firmware='efi'>");
    else x.add(1, "<os>");
    x.add(2, fmt::format("<type arch='x86_64' machine='{}'>hvm</type>", e(spec.machine)));
    if (spec.firmware == api::Firmware::uefi) {
        x.add(2, "<firmware>");
        x.add(3, "<feature enabled='no' name='secure-boot'/>");
        x.add(2, "</firmware>");
    }
    if (!spec.kernel.empty()) {
        x.add(2, fmt::format("<kernel>{}</kernel>", e(spec.kernel)));
        if (!spec.initrd.empty()) x.add(2, fmt::format("<initrd>{}</initrd>", e(spec.initrd)));
        if (!spec.cmdline.empty()) x.add(2, fmt::format("<cmdline>{}</cmdline>", e(spec.cmdline)));
    } else {
        // The first disk first; a blank disk falls through to the CD/DVD (installs).
        x.add(2, "<boot dev='hd'/>");
        if (!spec.cdrom.empty()) x.add(2, "<boot dev='cdrom'/>");
    }
    x.add(1, "</os>");

    x.add(1, "<features>");
    x.add(2, "<acpi/>");
    x.add(2, "<apic/>");
    x.add(1, "</features>");
    // The spec's CPU; by default: kvm the host CPU as is, qemu (TCG) no <cpu>, QEMU's
    // default model (qemu64).
    if (auto cpu = cpu_element(spec.cpu, opts); !cpu.empty()) x.block(1, cpu);
    x.add(1, "<clock offset='utc'/>");
    x.add(1, "<on_poweroff>destroy</on_poweroff>");
    x.add(1, "<on_reboot>restart</on_reboot>");
    x.add(1, "<on_crash>destroy</on_crash>");

    x.add(1, "<devices>");
    TargetNames targets;
    bool scsi = false;
    for (const auto& d : spec.disks) {
        scsi = scsi || d.bus == "scsi";
        x.block(2, disk_device_xml(d, targets.next(target_prefix(d.bus))));
    }
    if (!spec.cdrom.empty()) {
        const std::string bus = cdrom_bus(spec.machine);
        x.block(2, cdrom_device_xml(spec.cdrom, bus, targets.next(target_prefix(bus))));
    }
    if (scsi) x.add(2, kVirtioScsiController);
    // q35: every PCIe device sits on its own pcie-root-port, and libvirt by itself leaves one
    // port free, so only one disk could ever be hot-plugged (none after a cold-attached scsi
    // controller took it). hv lays out the ports itself: one per endpoint libvirt places on a
    // port (virtio disks, NICs, the virtio-scsi controller, and the four it always has: USB
    // xHCI, virtio-serial for the agent channel, balloon, rng; the video is integrated at
    // 00:01.0) plus kHotplugPorts empty ones. libvirt adds ports itself if this count is short.
    if (is_q35(spec.machine)) {
        int endpoints = 4 + static_cast<int>(spec.nics.size()) + (scsi ? 1 : 0);
        for (const auto& d : spec.disks) endpoints += d.bus == "virtio" ? 1 : 0;
        x.add(2, "<controller type='pci' index='0' model='pcie-root'/>");
        for (int i = 0; i < endpoints + kHotplugPorts; ++i) x.add(2, "<controller type='pci' model='pcie-root-port'/>");
    }

    for (const auto& n : spec.nics) x.block(2, nic_device_xml(n));

    x.add(2, "<serial type='pty'>");
    x.add(3, "<target port='0'/>");
    if (!opts.serial_log_dir.empty())
        x.add(3, fmt::format("<log file='{}' append='off'/>", e(serial_log_path(opts.serial_log_dir, spec.name))));
    x.add(2, "</serial>");
    x.add(2, "<console type='pty'>");
    x.add(3, "<target type='serial' port='0'/>");
    x.add(2, "</console>");
    x.add(2, "<channel type='unix'>");
    x.add(3, "<target type='virtio' name='org.qemu.guest_agent.0'/>");
    x.add(2, "</channel>");
    x.add(2, "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'>");
    x.add(3, "<listen type='address' address='127.0.0.1'/>");
    x.add(2, "</graphics>");
    // virtio-vga on every machine type: SeaBIOS and OVMF both drive it.
    x.add(2, "<video>");
    x.add(3, "<model type='virtio' heads='1' primary='yes'/>");
    x.add(2, "</video>");
    x.add(2, "<memballoon model='virtio'/>");
    x.add(2, "<rng model='virtio'>");
    x.add(3, "<backend model='random'>/dev/urandom</backend>");
    x.add(2, "</rng>");
    x.add(1, "</devices>");
    x.add(0, "</domain>");
    return x.take();
}

std::string cpu_xml(const api::CpuSpec& cpu) {
    const auto e = [](const std::string& s) { return xml_escape(s); };
    if (cpu.mode.empty()) return "";
    if (cpu.mode == "host-passthrough" || cpu.mode == "host-model") return fmt::format("<cpu mode='{}'/>", e(cpu.mode));
    if (cpu.mode != "custom") fail(Errc::internal, "cpu mode '{}' has no XML (it is resolved at create)", cpu.mode);
    Lines x;
    x.add(0, "<cpu mode='custom' match='exact' check='partial'>");
    x.add(1, fmt::format("<model fallback='forbid'>{}</model>", e(cpu.model)));
    if (!cpu.vendor.empty()) x.add(1, fmt::format("<vendor>{}</vendor>", e(cpu.vendor)));
    for (const auto& f : cpu.features)
        if (f.size() > 1)
            x.add(1, fmt::format("<feature policy='{}' name='{}'/>", f[0] == '-' ? "disable" : "require", e(f.substr(1))));
    x.add(0, "</cpu>");
    return element(x);
}

std::string cpu_element(const api::CpuSpec& cpu, const DomainXmlOptions& opts) {
    if (!cpu.mode.empty()) return cpu_xml(cpu);
    return opts.domain_type == "kvm" ? "<cpu mode='host-passthrough'/>" : "";
}

std::string with_cpu_element(const std::string& xml, const std::string& element) {
    // libvirt's own XML: one <cpu> child of <domain> (its children are <model>, <feature>,
    // <topology>, <numa>: no nested <cpu>); <metadata> may hold anything, so it is skipped.
    auto is_cpu_tag = [&](std::size_t at) {
        if (xml.compare(at, 4, "<cpu") != 0 || at + 4 >= xml.size()) return false;
        char c = xml[at + 4];
        return c == ' ' || c == '>' || c == '/' || c == '\n' || c == '\t';
    };
    const auto md_begin = xml.find("<metadata>");
    const auto md_end = md_begin == std::string::npos ? std::string::npos : xml.find("</metadata>", md_begin);
    if (md_begin != std::string::npos && md_end == std::string::npos)
        fail(Errc::internal, "the domain's XML has an unclosed <metadata>");
    std::size_t start = std::string::npos;
    for (auto at = xml.find("<cpu"); at != std::string::npos; at = xml.find("<cpu", at + 1)) {
        if (md_begin != std::string::npos && at > md_begin && at < md_end) continue;
        if (is_cpu_tag(at)) {
            start = at;
            break;
        }
    }
    // The indentation of the line the element starts on, and where that line begins.
    auto line_of = [&](std::size_t at) {
        auto bol = xml.rfind('\n', at);
        bol = bol == std::string::npos ? 0 : bol + 1;
        return std::pair{bol, xml.substr(bol, at - bol)};
    };
    auto indented = [&](const std::string& indent) {
        std::string out;
        std::size_t from = 0;
        while (from < element.size()) {
            auto nl = element.find('\n', from);
            if (nl == std::string::npos) nl = element.size();
            out += indent + element.substr(from, nl - from) + "\n";
            from = nl + 1;
        }
        return out;
    };
    if (start == std::string::npos) {
        if (element.empty()) return xml;
        auto before = xml.find("<clock");
        if (before == std::string::npos) before = xml.rfind("</domain>");
        if (before == std::string::npos) fail(Errc::internal, "the domain's XML has no </domain>");
        auto [bol, indent] = line_of(before);
        if (indent.find_first_not_of(" \t") != std::string::npos) bol = before;  // not at a line's start
        return xml.substr(0, bol) + indented("  ") + xml.substr(bol);
    }
    auto close = xml.find('>', start);
    if (close == std::string::npos) fail(Errc::internal, "the domain's <cpu> element is not closed");
    std::size_t end = close + 1;
    if (xml[close - 1] != '/') {
        auto tail = xml.find("</cpu>", close);
        if (tail == std::string::npos) fail(Errc::internal, "the domain's <cpu> element has no </cpu>");
        end = tail + 6;
    }
    auto [bol, indent] = line_of(start);
    if (indent.find_first_not_of(" \t") != std::string::npos)
        fail(Errc::internal, "the domain's <cpu> element does not start a line");
    std::size_t eol = end < xml.size() && xml[end] == '\n' ? end + 1 : end;
    return xml.substr(0, bol) + indented(indent) + xml.substr(eol);
}

std::optional<api::CpuSpec> parse_cpu_xml(const std::string& xml) {
    auto doc = parse_xml(xml);
    if (!doc) return std::nullopt;
    const ptree* cpu = nullptr;
    if (auto c = doc->get_child_optional("cpu")) cpu = &*c;
    else if (auto caps = doc->get_child_optional("domainCapabilities.cpu"))
        for (const auto& [name, mode] : *caps)
            if (name == "mode" && attr(mode, "name") == "host-model" && attr(mode, "supported") == "yes") cpu = &mode;
    if (!cpu) return std::nullopt;
    api::CpuSpec out;
    out.mode = "custom";
    for (const auto& [name, child] : *cpu) {
        if (name == "model") out.model = child.data();
        else if (name == "vendor") out.vendor = child.data();
        else if (name == "feature") {
            auto policy = attr(child, "policy");
            auto fname = attr(child, "name");
            if (fname.empty()) continue;
            if (policy == "disable" || policy == "forbid") out.features.push_back("-" + fname);
            else if (policy == "require" || policy == "force" || policy.empty()) out.features.push_back("+" + fname);
        }
    }
    if (out.model.empty()) return std::nullopt;
    return out;
}

std::optional<api::VmSpec> spec_from_metadata(const std::string& element_xml) {
    auto doc = parse_xml(element_xml);
    if (!doc) return std::nullopt;
    const auto* root = document_element(*doc);
    if (!root || local_name(root->first) != "vm") return std::nullopt;
    if (!in_metadata_ns(namespace_of(root->first, {&root->second}))) return std::nullopt;

    for (const auto& [name, child] : root->second) {
        if (local_name(name) != "spec") continue;
        if (!in_metadata_ns(namespace_of(name, {&child, &root->second}))) continue;
        if (auto format = attr(child, "format"); !format.empty() && format != "json") return std::nullopt;
        try {
            return api::vm_spec_from_json(nlohmann::json::parse(child.data()), api::JsonOrigin::hvd);
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    return std::nullopt;
}

std::optional<MetadataElement> read_metadata_element(const std::string& element_xml) {
    auto doc = parse_xml(element_xml);
    if (!doc) return std::nullopt;
    const auto* root = document_element(*doc);
    if (!root) return std::nullopt;
    MetadataElement out;
    out.text = root->second.data();
    if (auto attrs = root->second.get_child_optional("<xmlattr>"))
        for (const auto& [k, v] : *attrs) out.attributes[k] = v.data();
    return out;
}

std::string random_mac() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    auto v = rng();
    return fmt::format("52:54:00:{:02x}:{:02x}:{:02x}", v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff);
}

std::string nic_device_xml(const api::NicSpec& n) {
    const auto e = [](const std::string& s) { return xml_escape(s); };
    const bool bridge = !n.bridge.empty();
    Lines x;
    x.add(0, fmt::format("<interface type='{}'>", bridge ? "bridge" : "network"));
    if (!n.mac.empty()) x.add(1, fmt::format("<mac address='{}'/>", e(n.mac)));
    if (bridge) x.add(1, fmt::format("<source bridge='{}'/>", e(n.bridge)));
    else x.add(1, fmt::format("<source network='{}'/>", e(n.network)));
    x.add(1, fmt::format("<model type='{}'/>", e(n.model)));
    if (n.mtu) x.add(1, fmt::format("<mtu size='{}'/>", n.mtu));
    x.add(0, "</interface>");
    return element(x);
}

LiveFacts parse_live_xml(const std::string& domain_xml) {
    LiveFacts facts;
    auto doc = parse_xml(domain_xml);
    if (!doc) return facts;
    auto devices = doc->get_child_optional("domain.devices");
    if (!devices) return facts;
    for (const auto& [name, dev] : *devices) {
        if (name == "interface") {
            XmlNic n;
            n.type = attr(dev, "type");
            for (const auto& [cname, child] : dev) {
                if (cname == "mac") n.mac = attr(child, "address");
                else if (cname == "source") {
                    n.bridge = attr(child, "bridge");
                    n.network = attr(child, "network");
                } else if (cname == "target") n.tap = attr(child, "dev");
                else if (cname == "model") n.model = attr(child, "type");
            }
            std::transform(n.mac.begin(), n.mac.end(), n.mac.begin(), [](unsigned char c) { return std::tolower(c); });
            facts.nics.push_back(std::move(n));
            continue;
        }
        if (!facts.vnc.empty() || name != "graphics" || attr(dev, "type") != "vnc") continue;
        const std::string port = attr(dev, "port");
        char* end = nullptr;
        const long p = std::strtol(port.c_str(), &end, 10);
        if (port.empty() || *end != '\0' || p <= 0 || p > 65535) continue;
        std::string listen = attr(dev, "listen");
        if (listen.empty()) {
            for (const auto& [lname, l] : dev) {
                if (lname == "listen" && attr(l, "type") == "address" && !attr(l, "address").empty()) {
                    listen = attr(l, "address");
                    break;
                }
            }
        }
        if (listen.empty()) listen = "127.0.0.1";  // QEMU's and libvirt's default vnc_listen
        if (listen.find(':') != std::string::npos) listen = "[" + listen + "]";
        facts.vnc = fmt::format("{}:{}", listen, p);
    }
    return facts;
}

DeviceFacts parse_devices(const std::string& domain_xml) {
    DeviceFacts facts;
    auto doc = parse_xml(domain_xml);
    if (!doc) fail(Errc::internal, "cannot parse the domain XML from libvirt");
    auto devices = doc->get_child_optional("domain.devices");
    if (!devices) return facts;
    for (const auto& [name, dev] : *devices) {
        if (name == "controller") {
            if (attr(dev, "type") == "scsi") {
                facts.scsi_controller = true;
                if (attr(dev, "model") == "virtio-scsi") facts.virtio_scsi = true;
            }
            continue;
        }
        if (name != "disk") continue;
        XmlDisk d;
        d.type = attr(dev, "type");
        d.device = attr(dev, "device");
        d.snapshot = attr(dev, "snapshot");
        for (const auto& [cname, child] : dev) {
            if (cname == "target") {
                d.target = attr(child, "dev");
                d.bus = attr(child, "bus");
            } else if (cname == "source") {
                d.source = attr(child, "file");
                d.protocol = attr(child, "protocol");
                d.name = attr(child, "name");
            } else if (cname == "alias") {
                d.alias = attr(child, "name");
            } else if (cname == "transient") {
                d.transient = true;
            } else if (cname == "readonly") {
                d.readonly = true;
            } else if (cname == "driver") {
                d.format = attr(child, "type");
            } else if (cname == "backingStore") {
                // A transient disk's live source is the overlay; the volume is its backing file.
                if (auto src = child.get_child_optional("source")) d.backing = attr(*src, "file");
            }
        }
        facts.disks.push_back(std::move(d));
    }
    return facts;
}

std::string relocate_source(const std::string& xml, const std::string& attr, const std::string& from, const std::string& to,
                            int* in_metadata) {
    std::string text = xml;
    const std::string needle = "<source " + attr + "='" + xml_escape(from) + "'";
    auto pos = text.find(needle);
    if (from.empty() || pos == std::string::npos || text.find(needle, pos + 1) != std::string::npos)
        fail(Errc::internal, "the source {} is not once in the definition", from);
    text.replace(pos, needle.size(), "<source " + attr + "='" + xml_escape(to) + "'");
    const std::string a = xml_escape_text(nlohmann::json(from).dump()), b = xml_escape_text(nlohmann::json(to).dump());
    int n = 0;
    auto md_begin = text.find("<metadata>");
    auto md_end = text.find("</metadata>");
    for (auto at = md_begin == std::string::npos ? md_begin : text.find(a, md_begin);
         at != std::string::npos && md_end != std::string::npos && at < md_end; at = text.find(a, at + b.size())) {
        text.replace(at, a.size(), b);
        md_end = text.find("</metadata>");
        ++n;
    }
    if (in_metadata) *in_metadata = n;
    return text;
}

}  // namespace hv::virt
