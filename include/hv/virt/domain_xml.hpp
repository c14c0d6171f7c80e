// Libvirt domain XML generated from a VmSpec, and the hv metadata inside it.
// hv's own settings (the whole VmSpec as hv understands it) live in the domain's <metadata>
// under kMetadataNs, so libvirt stays the single source of truth: hvd keeps no VM database.
// Golden files: tests/data/<case>.json -> <case>.xml (HV_REGENERATE_GOLDEN=1 rewrites them).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

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
// Every disk must already have its source (`path`, or a network `source`) and `name` set.
// Text is XML-escaped.
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

// One <interface> of a domain XML (live XML: with its tap).
struct XmlNic {
    std::string type;     // "bridge", "network", ...
    std::string mac;      // lower case
    std::string bridge;   // <source bridge=...> (live XML of a network NIC: the network's bridge)
    std::string network;  // <source network=...>
    std::string tap;      // <target dev=...> (live XML)
    std::string model;
};
// Facts read from a running domain's live XML.
struct LiveFacts {
    std::string vnc;  // "127.0.0.1:5900" or empty
    std::vector<XmlNic> nics;
};
LiveFacts parse_live_xml(const std::string& domain_xml);

// The <cpu> element of a CpuSpec (no trailing newline), "" for mode "" (the host's default).
// custom: <cpu mode='custom' match='exact' check='partial'> + <model fallback='forbid'>,
// <vendor>, <feature policy='require|disable'>: the guest gets exactly that CPU or does not
// start (and a migration destination that cannot give it is refused).
std::string cpu_xml(const api::CpuSpec& cpu);
// What a VM of this spec's CPU gets in its definition: cpu_xml, or for mode "" the default of
// the domain type (kvm: <cpu mode='host-passthrough'/>; qemu/TCG: no element, QEMU's qemu64).
std::string cpu_element(const api::CpuSpec& cpu, const DomainXmlOptions& opts);
// A domain definition (libvirt's own XML, virDomainGetXMLDesc) with its top-level <cpu>
// element replaced by `element` (removed when it is ""; added before </domain> when there was
// none), everything else as it was. Throws hv::Error(internal) on XML it cannot place it in.
std::string with_cpu_element(const std::string& domain_xml, const std::string& element);
// The CPU of a libvirt <cpu> element (virConnectBaselineHypervisorCPU's answer), or of the
// host-model <mode> of a domain capabilities document: as a custom CpuSpec. nullopt when the
// XML has none (no model, host-model not supported).
std::optional<api::CpuSpec> parse_cpu_xml(const std::string& xml);

std::string xml_escape(const std::string& s);
// Element content only (not attributes): & < and > (the last for "]]>").
std::string xml_escape_text(const std::string& s);

// ---- single devices (domain_xml uses them; so does attaching disks to an existing VM) -------

// One <disk device='disk'> element (no trailing newline) for a disk whose source is set, with
// target device `dev`: type='file' + <source file=...> for a file source, type='network' +
// <source protocol=... name=...> with its <host>s and <auth> for a network (rbd) source
// (api::source_of). cache -> <driver cache=...>, discard -> <driver discard='unmap'>,
// limits -> <iotune>, mode: dependent (nothing), independent-persistent (snapshot='no'),
// independent-nonpersistent (snapshot='no' + <transient/>).
std::string disk_device_xml(const api::DiskSpec& d, const std::string& dev);
// The minimal <disk device='disk'> (type, source, target) that virDomainDetachDeviceFlags takes;
// libvirt finds the disk by its target.
std::string disk_detach_xml(const api::DiskSource& src, const std::string& dev, const std::string& bus);
// One <interface> element (no trailing newline) for a NIC whose mac is set: type bridge or
// network, model, optional <mtu>. VLANs are not in the XML: libvirt tags only Open vSwitch and
// SR-IOV ports, so hv sets the tap's VLANs on the Linux bridge itself (NetManager::plug_port).
std::string nic_device_xml(const api::NicSpec& n);
// A random MAC with QEMU's prefix, "52:54:00:xx:xx:xx", for VM and container NICs.
std::string random_mac();
// A read-only <disk device='cdrom'>; `path` "" is an empty drive (eject).
std::string cdrom_device_xml(const std::string& path, const std::string& bus, const std::string& dev);
// Bus of the CD/DVD drive: "sata" (q35's AHCI) or "ide" on i440fx ("pc") machines.
std::string cdrom_bus(const std::string& machine);
// Target name prefix of a bus: virtio "vd", ide "hd", sata and scsi "sd".
std::string target_prefix(const std::string& bus);
// First target name of `bus` (e.g. "sdc") not in `used`.
std::string free_target(const std::string& bus, const std::set<std::string>& used);
// True for buses QEMU can hot-plug disks on (virtio, scsi); sata and ide cannot.
bool hotpluggable_bus(const std::string& bus);
// Throws invalid_input (naming `what`) when the disk cannot work on `machine` with libvirt
// 9.0/QEMU 7.2 (ide on q35, unknown mode or cache).
void check_disk(const api::DiskSpec& d, const std::string& machine, const std::string& what);

// The disks and SCSI controllers of a domain XML (persistent or live).
struct XmlDisk {
    std::string type;     // "file", "network", ...
    std::string device;   // "disk", "cdrom"
    std::string bus;      // target bus
    std::string target;   // "vda"
    std::string source;   // file ("" for an empty CD/DVD drive); the overlay for a running transient disk
    std::string backing;  // first backing file (live XML), e.g. the volume under a transient overlay
    std::string protocol; // network disks: <source protocol=...> ("rbd")
    std::string name;     // network disks: <source name=...> ("POOL/IMAGE")
    std::string alias;    // live XML only: "virtio-disk0", "sata0-0-0", ...
    std::string snapshot; // "no" for independent disks
    std::string format;   // <driver type=...>: "qcow2", "raw", ...
    bool transient = false;
    bool readonly = false;
};
struct DeviceFacts {
    std::vector<XmlDisk> disks;
    bool scsi_controller = false;  // any model
    bool virtio_scsi = false;
};
// Throws internal when the XML cannot be parsed.
DeviceFacts parse_devices(const std::string& domain_xml);

// A definition for another host (migration): the one `<source ATTR='from'` (attr "file" of a
// disk, "dir" of a container's root filesystem) names `to`, and so does every JSON string
// equal to `from` in the <metadata> (hv's copy of the spec). Throws internal unless the source
// is there exactly once; returns how many metadata strings changed in `*in_metadata`.
std::string relocate_source(const std::string& xml, const std::string& attr, const std::string& from, const std::string& to,
                            int* in_metadata = nullptr);

}  // namespace hv::virt
