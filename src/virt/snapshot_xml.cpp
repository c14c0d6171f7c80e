#include "hv/virt/snapshot_xml.hpp"

#include <charconv>
#include <sstream>
#include <string_view>

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <fmt/format.h>

#include "hv/error.hpp"
#include "hv/util/utf8.hpp"

namespace hv::virt {
using boost::property_tree::ptree;

namespace {

std::string attr(const ptree& element, const std::string& name) {
    if (auto attrs = element.get_child_optional("<xmlattr>")) {
        if (auto v = attrs->get_optional<std::string>(ptree::path_type(name, '\0'))) return *v;
    }
    return {};
}

// Text of a direct child element ("" when absent).
std::string child_text(const ptree& element, const char* name) {
    if (auto c = element.get_child_optional(ptree::path_type(name, '\0'))) return c->get_value<std::string>();
    return {};
}

std::string_view local_name(std::string_view qname) {
    auto colon = qname.find(':');
    return colon == std::string_view::npos ? qname : qname.substr(colon + 1);
}

// The namespace URI an element's prefix is bound to on that element or its parent (the shapes
// libvirt writes metadata in); nullopt when neither declares it.
std::optional<std::string> namespace_of(std::string_view qname, const ptree& element, const ptree& parent) {
    std::string decl = "xmlns";
    if (auto colon = qname.find(':'); colon != std::string_view::npos) decl += ":" + std::string(qname.substr(0, colon));
    for (const ptree* scope : {&element, &parent}) {
        if (auto attrs = scope->get_child_optional("<xmlattr>")) {
            if (auto v = attrs->get_optional<std::string>(ptree::path_type(decl, '\0'))) return *v;
        }
    }
    return std::nullopt;
}

std::string trimmed(std::string s) {
    auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    auto e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

}  // namespace

std::string snapshot_marker_xml(bool memory) {
    return fmt::format("<snapshot memory=\"{}\"/>", memory ? "yes" : "no");
}

std::string snapshot_create_xml(const SnapshotCreateXml& x) {
    std::string out = "<domainsnapshot>\n";
    out += "  <name>" + xml_escape_text(x.name) + "</name>\n";
    if (!x.description.empty()) out += "  <description>" + xml_escape_text(x.description) + "</description>\n";
    out += fmt::format("  <memory snapshot='{}'/>\n", x.memory_state ? "internal" : "no");
    if (!x.disks.empty()) {
        out += "  <disks>\n";
        for (const auto& d : x.disks)
            out += fmt::format("    <disk name='{}' snapshot='{}'/>\n", xml_escape(d.target), d.internal ? "internal" : "no");
        out += "  </disks>\n";
    }
    out += "</domainsnapshot>\n";
    return out;
}

std::vector<SnapshotDiskXml> snapshot_disks(const DeviceFacts& devices, bool active,
                                            const std::function<std::string(const XmlDisk&)>& describe) {
    std::vector<SnapshotDiskXml> out;
    for (const auto& d : devices.disks) {
        if (d.device != "disk" || d.readonly) continue;
        const std::string what = describe(d);
        if (d.type == "network")
            fail(Errc::unsupported, "{} is a {} network disk: internal snapshots need qcow2 files (hv takes no {} snapshots yet)",
                 what, d.protocol.empty() ? "" : d.protocol, d.protocol.empty() ? "network" : d.protocol);
        if (d.type != "file" && d.type != "block")
            fail(Errc::unsupported, "{} is a '{}' disk: internal snapshots need qcow2 files", what, d.type);
        if (d.format != "qcow2")
            fail(Errc::unsupported, "{} is {}: internal snapshots need qcow2 (convert it, or detach it for the snapshot)",
                 what, d.format.empty() ? "of an unknown format" : "'" + d.format + "'");
        if (d.snapshot == "no" || d.transient) {
            if (active)
                fail(Errc::unsupported,
                     "{} is independent: a running VM's internal snapshot covers every disk; stop the VM to snapshot "
                     "without it",
                     what);
            if (d.transient) continue;  // libvirt takes no snapshot of a transient disk at all
            out.push_back({d.target, false});
            continue;
        }
        out.push_back({d.target, true});
    }
    return out;
}

std::optional<SnapshotFacts> parse_snapshot_xml(const std::string& xml) {
    ptree doc;
    try {
        std::istringstream in(xml);
        boost::property_tree::read_xml(in, doc);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    auto root = doc.get_child_optional("domainsnapshot");
    if (!root) return std::nullopt;
    SnapshotFacts f;
    f.name = util::sanitize_utf8(trimmed(child_text(*root, "name")));
    if (f.name.empty()) return std::nullopt;
    f.description = util::sanitize_utf8(child_text(*root, "description"));
    f.state = util::sanitize_utf8(trimmed(child_text(*root, "state")));
    if (auto p = root->get_child_optional("parent")) f.parent = util::sanitize_utf8(trimmed(child_text(*p, "name")));
    auto t = trimmed(child_text(*root, "creationTime"));
    std::int64_t created = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), created);
    if (ec == std::errc() && end == t.data() + t.size() && created >= 0) f.created = created;
    if (auto m = root->get_child_optional("memory")) f.memory_location = util::sanitize_utf8(attr(*m, "snapshot"));
    if (auto md = root->get_child_optional("domain.metadata")) {
        for (const auto& [qname, el] : *md) {
            if (local_name(qname) != "snapshot" || namespace_of(qname, el, *md) != std::optional<std::string>(kSnapshotNs))
                continue;
            auto m = attr(el, "memory");
            if (m == "yes") f.hv_memory = true;
            else if (m == "no") f.hv_memory = false;
        }
    }
    return f;
}

api::SnapshotInfo snapshot_info(const SnapshotFacts& f, bool current) {
    api::SnapshotInfo s;
    s.name = f.name;
    s.parent = f.parent;
    s.description = f.description;
    s.created = f.created;
    s.current = current;
    s.memory = f.hv_memory.value_or(f.memory_location == "internal" || f.memory_location == "external");
    if (f.state == "shutoff" || f.state == "shutdown") s.state = "stopped";
    else if (f.state == "pmsuspended") s.state = "suspended";
    else s.state = f.state;
    return s;
}

}  // namespace hv::virt
