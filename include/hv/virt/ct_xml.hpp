// Libvirt LXC domain XML generated from a CtSpec, and the hv metadata inside it
// (namespace kCtMetadataNs: the whole CtSpec as JSON, as for VMs).
// Golden files: tests/data/ct-<case>.json -> ct-<case>.xml (HV_REGENERATE_GOLDEN=1 rewrites them).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "hv/api/ct.hpp"

namespace hv::virt {

inline constexpr const char* kCtMetadataNs = "http://hv.dev/xmlns/ct/1";
inline constexpr const char* kCtMetadataPrefix = "hv";

// The <hv:ct> element alone (virDomainSetMetadata / virDomainGetMetadata).
std::string ct_metadata_xml(const api::CtSpec& spec);
// Parses what virDomainGetMetadata(ELEMENT, kCtMetadataNs) returned; nullopt when unreadable.
std::optional<api::CtSpec> ct_spec_from_metadata(const std::string& element_xml);

// Full <domain type='lxc'> document: limits (<memory>, <memtune><hard_limit>, <cputune> shares
// and quota), <idmap> when unprivileged, the rootfs directory mounted at /, /sbin/init,
// <privnet/> (a network namespace of its own even without NICs) and one veth per NIC.
// rootfs.path must be set; every NIC must have its MAC.
std::string ct_domain_xml(const api::CtSpec& spec);


}  // namespace hv::virt
