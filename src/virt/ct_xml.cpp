// LXC domain XML from a CtSpec, built as text like domain_xml.cpp (small, fixed shape,
// golden-tested); user values go through xml_escape. Reading uses boost::property_tree.
#include "hv/virt/ct_xml.hpp"

#include <sstream>

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "hv/error.hpp"
#include "hv/virt/domain_xml.hpp"

namespace hv::virt {
namespace {
using boost::property_tree::ptree;

// CFS period of the CPU limit: the quota is `cpus` times this.
constexpr long kCpuPeriodUs = 100000;

std::string local_name(const std::string& n) {
    auto c = n.find(':');
    return c == std::string::npos ? n : n.substr(c + 1);
}

std::optional<ptree> parse(const std::string& xml) {
    try {
        std::istringstream in(xml);
        ptree t;
        boost::property_tree::read_xml(in, t);
        return t;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::string attr(const ptree& t, const char* name) { return t.get<std::string>(std::string("<xmlattr>.") + name, ""); }

}  // namespace

std::string ct_metadata_xml(const api::CtSpec& spec) {
    const std::string json =
        nlohmann::json(spec).dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace);
    return fmt::format("<{0}:ct xmlns:{0}=\"{1}\">\n  <{0}:spec format=\"json\">{2}</{0}:spec>\n</{0}:ct>",
                       kCtMetadataPrefix, kCtMetadataNs, xml_escape_text(json));
}

std::optional<api::CtSpec> ct_spec_from_metadata(const std::string& element_xml) {
    auto doc = parse(element_xml);
    if (!doc || doc->empty()) return std::nullopt;
    const auto& [rname, root] = *doc->begin();
    if (local_name(rname) != "ct") return std::nullopt;
    for (const auto& [name, child] : root) {
        if (local_name(name) != "spec") continue;
        try {
            return api::ct_spec_from_json(nlohmann::json::parse(child.data()));
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    return std::nullopt;
}

std::string ct_domain_xml(const api::CtSpec& spec) {
    if (spec.rootfs.path.empty() || spec.rootfs.path[0] != '/')
        fail(Errc::internal, "container '{}': rootfs path is not set", spec.name);
    const auto e = [](const std::string& s) { return xml_escape(s); };
    const auto kib = spec.memory / 1024;
    std::string x;
    auto add = [&x](int depth, const std::string& line) {
        x.append(static_cast<std::size_t>(depth) * 2, ' ');
        x += line;
        x += '\n';
    };
    add(0, "<domain type='lxc'>");
    add(1, fmt::format("<name>{}</name>", e(spec.name)));
    if (!spec.description.empty()) add(1, fmt::format("<description>{}</description>", e(spec.description)));
    add(1, "<metadata>");
    std::istringstream md(ct_metadata_xml(spec));
    for (std::string line; std::getline(md, line);) add(2, line);
    add(1, "</metadata>");
    add(1, fmt::format("<memory unit='KiB'>{}</memory>", kib));
    add(1, fmt::format("<currentMemory unit='KiB'>{}</currentMemory>", kib));
    add(1, "<memtune>");
    add(2, fmt::format("<hard_limit unit='KiB'>{}</hard_limit>", kib));
    add(1, "</memtune>");
    add(1, fmt::format("<vcpu>{}</vcpu>", spec.cpus));
    add(1, "<cputune>");
    add(2, fmt::format("<shares>{}</shares>", 1024 * spec.cpus));
    add(2, fmt::format("<period>{}</period>", kCpuPeriodUs));
    add(2, fmt::format("<quota>{}</quota>", kCpuPeriodUs * spec.cpus));
    add(1, "</cputune>");
    add(1, "<os>");
    add(2, "<type>exe</type>");
    add(2, "<init>/sbin/init</init>");
    add(1, "</os>");
    if (spec.unprivileged) {
        add(1, "<idmap>");
        add(2, fmt::format("<uid start='0' target='{}' count='{}'/>", api::kUnprivilegedBase, api::kUnprivilegedCount));
        add(2, fmt::format("<gid start='0' target='{}' count='{}'/>", api::kUnprivilegedBase, api::kUnprivilegedCount));
        add(1, "</idmap>");
    }
    add(1, "<features>");
    add(2, "<privnet/>");
    add(1, "</features>");
    add(1, "<clock offset='utc'/>");
    add(1, "<on_poweroff>destroy</on_poweroff>");
    add(1, "<on_reboot>restart</on_reboot>");
    add(1, "<on_crash>destroy</on_crash>");
    add(1, "<devices>");
    add(2, "<filesystem type='mount' accessmode='passthrough'>");
    add(3, fmt::format("<source dir='{}'/>", e(spec.rootfs.path)));
    add(3, "<target dir='/'/>");
    add(2, "</filesystem>");
    for (const auto& n : spec.nics) {
        if (n.mac.empty()) fail(Errc::internal, "container '{}': a NIC has no MAC address", spec.name);
        if (!n.network.empty()) {
            add(2, "<interface type='network'>");
            add(3, fmt::format("<source network='{}'/>", e(n.network)));
        } else {
            add(2, "<interface type='bridge'>");
            add(3, fmt::format("<source bridge='{}'/>", e(n.bridge)));
        }
        add(3, fmt::format("<mac address='{}'/>", e(n.mac)));
        add(2, "</interface>");
    }
    add(2, "<console type='pty'>");
    add(3, "<target type='lxc' port='0'/>");
    add(2, "</console>");
    add(1, "</devices>");
    add(0, "</domain>");
    return x;
}


}  // namespace hv::virt
