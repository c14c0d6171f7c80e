// libvirt snapshot XML: what hv sends to virDomainSnapshotCreateXML and what it reads back
// from virDomainSnapshotGetXMLDesc (docs/snapshots.md). Pure functions: golden-tested
// (tests/data/snapshot/<case>.json -> <case>.xml) and fuzzed (tests/fuzz/snapshot_xml_fuzz.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "hv/api/snapshot.hpp"
#include "hv/virt/domain_xml.hpp"

namespace hv::virt {

// hv's marker in the *live* domain metadata, set just before a snapshot of a running VM, so
// the domain definition libvirt stores with the snapshot says whether its RAM is meant to be
// resumed: libvirt 9.0 cannot take an internal snapshot of a running domain without memory
// ("internal snapshot of a running VM must include the memory state"), so a disk-only snapshot
// of a running VM is QEMU's checkpoint whose RAM hv never resumes (revert powers it off).
inline constexpr const char* kSnapshotNs = "http://hv.dev/xmlns/snapshot/1";
inline constexpr const char* kSnapshotPrefix = "hvsnap";
// The marker element without prefix, as virDomainSetMetadata takes it.
std::string snapshot_marker_xml(bool memory);

struct SnapshotDiskXml {
    std::string target;     // "vda"
    bool internal = true;   // false: snapshot='no' (an independent disk of a stopped VM)
};
struct SnapshotCreateXml {
    std::string name;
    std::string description;          // "" = no <description>
    bool memory_state = false;        // <memory snapshot='internal'/> (a running or paused VM), else 'no'
    std::vector<SnapshotDiskXml> disks;
};
// The <domainsnapshot> document for virDomainSnapshotCreateXML (text escaped).
std::string snapshot_create_xml(const SnapshotCreateXml& x);

// The disks an internal snapshot covers, from the domain's devices (live XML when `active`).
// Every writable disk must be a qcow2 file: anything else (raw, rbd and other network disks)
// throws unsupported (501) naming the disk through `describe` ("disk 'disk1' (vdb)"). An
// independent disk (snapshot='no') is left out of a stopped VM's snapshot; a running VM's
// snapshot is QEMU's checkpoint of every disk, so there it is refused. Read-only disks and
// CD/DVD drives are not part of a snapshot.
std::vector<SnapshotDiskXml> snapshot_disks(const DeviceFacts& devices, bool active,
                                            const std::function<std::string(const XmlDisk&)>& describe);

// What hv reads from a snapshot's XML. nullopt when it is not a <domainsnapshot> with a name.
struct SnapshotFacts {
    std::string name, parent, description;
    std::int64_t created = 0;
    std::string state;            // libvirt's: "running", "paused", "shutoff", "disk-snapshot", ...
    std::string memory_location;  // <memory snapshot=...>: "internal", "external", "no" or ""
    std::optional<bool> hv_memory;  // hv's marker in the saved domain, when hv took it
};
std::optional<SnapshotFacts> parse_snapshot_xml(const std::string& xml);

// The wire form: memory from hv's marker, else whether libvirt saved memory; state in hv's
// words ("shutoff" -> "stopped").
api::SnapshotInfo snapshot_info(const SnapshotFacts& f, bool current);

}  // namespace hv::virt
