// Libvirt domain XML generated from a VmSpec, and the hv metadata inside it.
// hv's own settings (the whole VmSpec as hv understands it) live in the domain's <metadata>
// under kMetadataNs, so libvirt stays the single source of truth: hvd keeps no VM database.
// Golden files: tests/data/<case>.json -> <case>.xml (HV_REGENERATE_GOLDEN=1 rewrites them).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "hv/api/vm.hpp"

namespace hv::virt {

inline constexpr const char* kMetadataNs = "http://hv.dev/xmlns/vm/1";
inline constexpr const char* kMetadataPrefix = "hv";

struct DomainXmlOptions {
    // "qemu" (TCG) or "kvm".
    std::string domain_type = "qemu";
    // Directory for per-VM serial console logs ("<dir>/<name>.serial.log"); empty = no log.
    std::string serial_log_dir;
};

// Full <domain> document for virDomainDefineXML. `uuid` may be empty (libvirt assigns one).
// Every disk must already have its `path` and `name` set. Text is XML-escaped.
std::string domain_xml(const api::VmSpec& spec, const DomainXmlOptions& opts, const std::string& uuid = "");

// The <hv:vm xmlns:hv="..."> element alone (what virDomainSetMetadata takes and
// virDomainGetMetadata returns).
std::string metadata_xml(const api::VmSpec& spec);

// Parses what virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT, kMetadataNs) returned.
// nullopt when it is not hv metadata or cannot be read.
std::optional<api::VmSpec> spec_from_metadata(const std::string& element_xml);

// Text and one attribute of the root element of a metadata element as libvirt returns it
// (entities decoded by a real XML parser). nullopt when the XML cannot be read.
struct MetadataElement {
    std::string text;
    std::map<std::string, std::string> attributes;
};
std::optional<MetadataElement> read_metadata_element(const std::string& element_xml);

// Facts read from a running domain's live XML.
struct LiveFacts {
    std::string vnc;  // "127.0.0.1:5900" or empty
};
LiveFacts parse_live_xml(const std::string& domain_xml);

std::string xml_escape(const std::string& s);

}  // namespace hv::virt
