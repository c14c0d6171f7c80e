// Wire model for virtual machines, shared by hvd and hvctl.
// Three shapes as in Incus: VmSpec (create, and the full desired config), VmPatch (editable
// fields for PATCH), VmInfo (VmSpec + runtime state, what GET returns).
// JSON mapping: to_json/from_json below; from_json is strict (unknown fields -> invalid_input).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hv/api/guest.hpp"
#include "hv/api/storage.hpp"

namespace hv::api {

inline constexpr std::uint64_t MiB = 1ULL << 20;
inline constexpr std::uint64_t GiB = 1ULL << 30;

// Limits checked by validate(); documented in docs/api.md.
inline constexpr int kMaxCpus = 512;
inline constexpr std::uint64_t kMinMemory = 16 * MiB;
inline constexpr std::uint64_t kMaxMemory = 16ULL << 40;  // 16 TiB
inline constexpr std::size_t kMaxNameLen = 63;

// Names of VMs (and later containers, pools, bridges): 1-63 chars, [A-Za-z0-9_.-],
// starting with a letter or digit. Throws invalid_input naming `what`.
// Names of guests, pools, volumes, files, tags, NICs: ASCII only, [A-Za-z0-9][A-Za-z0-9._-]*,
// at most kMaxNameLen bytes (docs/api.md "Names"). Errors quote the name whole.
void validate_name(const std::string& name, const char* what = "name");
// The character rule alone (first an ASCII letter or digit, then letters, digits, - _ .).
void check_name_chars(const std::string& name, const char* what);
// For error messages about names (they go into JSON): `s` cut to at most `max` bytes at a
// character boundary ("..." added), so a huge name is not echoed whole.
std::string name_excerpt(const std::string& s, std::size_t max = 64);

// Per-disk I/O limits passed to libvirt's <iotune>; 0 = unlimited. total_* and read_*/write_*
// of the same kind are exclusive (QEMU's rule).
struct IoLimits {
    std::uint64_t total_iops = 0, read_iops = 0, write_iops = 0;
    std::uint64_t total_bps = 0, read_bps = 0, write_bps = 0;
    bool any() const { return total_iops || read_iops || write_iops || total_bps || read_bps || write_bps; }
};

struct DiskSpec {
    // "disk0", "disk1", ... assigned by hvd in order when empty. Example: "disk0".
    std::string name;
    // Capacity in bytes for a new volume. Example: 4294967296.
    std::uint64_t size = 0;
    // Storage pool of the volume. Example: "local".
    std::string pool = "local";
    // Volume name in `pool`. On create: an existing volume to attach (then `size` must be 0),
    // or empty to create "<vm>-<disk name>". Set by hvd. Example: "web01-disk0".
    std::string volume;
    // Image format of a new volume: "qcow2" or "raw"; "" = the pool's default (qcow2 on dir
    // and btrfs pools, raw on rbd).
    std::string format;
    // Provisioning of a new volume: thin (default), lazy-zeroed, eager-zeroed.
    Provision provision = Provision::thin;
    // Bus: "virtio" (virtio-blk, default), "sata" (AHCI), "scsi" (virtio-scsi), "ide" (machine pc only).
    std::string bus = "virtio";
    // ESXi disk modes: "dependent" (default; in snapshots), "independent-persistent" (excluded
    // from snapshots, writes persist), "independent-nonpersistent" (writes discarded at power off).
    std::string mode = "dependent";
    // QEMU cache mode: "" (hypervisor default), none, writeback, writethrough, directsync, unsafe.
    std::string cache;
    // Pass the guest's discard/TRIM (unmap) down to the image.
    bool discard = false;
    IoLimits limits;
    // Absolute image path. Set by hvd; on create a user may give the path of an existing
    // volume of a pool instead of `volume` (paths outside every pool are refused).
    std::string path;
    // Set by hvd for a volume QEMU reads over the network (an RBD pool's): its network
    // source, and then `path` is empty. Absent for file volumes, whose source is `path` (so
    // their JSON and the metadata of existing VMs are unchanged). Never taken from a request.
    std::optional<DiskSource> source;
    // True when hvd created the volume with the VM (so `delete --purge` removes it). Output only.
    bool owned = false;
};
// Where the disk's volume is read from: `source`, or a file source of `path`.
DiskSource source_of(const DiskSpec& d);
// Sets what a pool returned (StoragePool::disk_source): a file source as `path` (no `source`),
// a network source as `source` (and no `path`).
void set_source(DiskSpec& d, DiskSource s);

struct NicSpec {
    // "net0", "net1", ... assigned by hvd in order when empty. Example: "net0".
    std::string name;
    // libvirt network name (e.g. "default"); exactly one of network/bridge.
    std::string network;
    // Host bridge name (e.g. "vmbr0").
    std::string bridge;
    // "virtio" (default), "e1000", "e1000e", "rtl8139".
    std::string model = "virtio";
    // "52:54:00:12:34:56"; chosen by hvd when empty (part of the VM's identity).
    std::string mac;
    // Access VLAN (1-4094): the tap port carries it as PVID, untagged. 0 = none: the bridge's
    // native VLAN 1 on a VLAN-aware bridge (or a trunk-only port when `trunks` is set).
    // Needs bridge= on a VLAN-aware bridge.
    int vlan = 0;
    // VLAN ids the tap port carries tagged, normalized like "10,20-30" (CLI: trunks=10;20-30).
    std::string trunks;
    // Guest MTU (68-9000); 0 = the bridge's.
    int mtu = 0;
};

// A VM NIC as it is now on the host (running VMs): its tap and the VLANs the tap's bridge port
// carries (read from the kernel).
struct PortVlan {
    int vid = 0;
    bool pvid = false;
    bool untagged = false;
};
struct NicState {
    std::string name;    // "net0"
    std::string mac;
    std::string bridge;  // bridge the tap is attached to now ("" for libvirt networks' own bridges)
    std::string tap;     // "vnet3"
    bool vlan_aware = false;            // the bridge filters VLANs
    std::vector<PortVlan> vlans;        // live membership (empty when the bridge is not VLAN-aware)
    std::string error;                  // why the port could not be read or plugged
};

enum class Firmware { bios, uefi };

// The CPU the guest sees (docs/migration.md "CPU model"). mode "" = the host's default (kvm:
// host-passthrough; TCG: QEMU's default model), "host-passthrough", "host-model", or "custom":
// `model` (a QEMU CPU model such as "EPYC" or "Skylake-Server") with `features`, each "+name"
// (required) or "-name" (disabled), and optionally `vendor`. A create request may also say
// "cluster": hvd computes the baseline of the cluster members' CPUs (libvirt's
// virConnectBaselineHypervisorCPU) and stores it as custom. In a cluster that is the default
// of a create, so every member can run the VM (vCenter's EVC, Proxmox's cpu type).
struct CpuSpec {
    std::string mode;
    std::string model;
    std::string vendor;
    std::vector<std::string> features;
    bool operator==(const CpuSpec&) const = default;
};
// The mode's name as shown ("host-passthrough", "EPYC +aes -vme", "default").
std::string describe(const CpuSpec& c);
void validate(const CpuSpec& c, bool request);  // request: "cluster" is allowed
void to_json(nlohmann::json& j, const CpuSpec& v);
CpuSpec cpu_from_json(const nlohmann::json& j, const std::string& path = "cpu");
// hvctl's form: "host" | "host-model" | "cluster" | "default" | "MODEL[,+feature,-feature...]".
CpuSpec parse_cpu_arg(const std::string& arg);

struct VmSpec {
    // Example: "web01".
    std::string name;
    // Virtual CPUs, 1-512. Example: 2.
    int cpus = 1;
    // Memory in bytes (input may be "1G"). Example: 1073741824.
    std::uint64_t memory = 512 * MiB;
    std::vector<DiskSpec> disks;
    std::vector<NicSpec> nics;
    // ISO in a CD/DVD drive: "POOL:iso/NAME" (e.g. "local:iso/debian-12.iso") or the path of a
    // pool's ISO; stored as the path. The drive sits on SATA (AHCI): every guest has a driver
    // for it, unlike virtio-scsi (i440fx machines use IDE).
    std::string cdrom;
    Firmware firmware = Firmware::bios;
    // QEMU machine type: "q35" (default) or "pc" (i440fx), or a versioned name like "pc-q35-7.2".
    std::string machine = "q35";
    // The guest's CPU (JSON "cpu", written when its mode is not the default).
    CpuSpec cpu;
    // Direct kernel boot (optional; for appliance guests and tests): absolute paths on the host.
    std::string kernel;
    std::string initrd;
    std::string cmdline;
    std::string description;
    std::vector<std::string> tags;
    // A template (`hvctl vm template`): never started, its disks are the base of linked clones.
    // Set by hvd only (JSON "template", written when true; refused in a create request).
    bool is_template = false;
};

// Checks ranges and consistency; throws invalid_input naming the field.
void validate(const VmSpec& spec);
// One NIC (`what` names it in messages, e.g. "nics[0]").
void validate(const NicSpec& nic, const std::string& what);
// NIC fields a `vm nic set` may change; absent = unchanged.
struct NicPatch {
    std::optional<std::string> bridge;
    std::optional<std::string> network;
    std::optional<std::string> model;
    std::optional<int> vlan;
    std::optional<std::string> trunks;
    std::optional<int> mtu;
};
NicPatch nic_patch_from_json(const nlohmann::json& j);
void to_json(nlohmann::json& j, const NicPatch& v);
// Applies a patch to a copy of `nic` (and validates the result).
NicSpec apply_patch(NicSpec nic, const NicPatch& p);

// PATCH /v1/vms/{name}: only the fields present change.
struct VmPatch {
    std::optional<int> cpus;
    std::optional<std::uint64_t> memory;
    std::optional<std::string> description;
    std::optional<std::vector<std::string>> tags;
    // VMs only, while stopped: the guest's CPU ("cluster" is resolved to the members' baseline;
    // mode "" is the host's default). Containers refuse it.
    std::optional<CpuSpec> cpu;
};
void validate(const VmPatch& patch);

// A VM's state is a guest state (include/hv/api/guest.hpp), shared with containers.
using VmState = GuestState;

// What the info of every guest kind (VmInfo, CtInfo) says besides its spec.
struct GuestStatusInfo {
    GuestState state = GuestState::unknown;
    // Why the guest is in this state, from libvirt's reason codes. Example: "booted", "shutdown", "destroyed".
    std::string reason;
    // Example: "3f1e2b1c-...".
    std::string uuid;
    // False for domains that exist in libvirt but were not created by hv (shown, read-only spec).
    bool managed = true;
    // While running: each NIC's host side (VM tap, container veth) and live VLAN membership.
    std::vector<NicState> interfaces;
    // In a cluster: the host that owns the guest (empty on a host in no cluster), and
    // whether this is its owner's last known state because that host is offline.
    std::string host;
    bool stale = false;
};

struct VmInfo : GuestStatusInfo {
    VmSpec spec;
    // Unix time (seconds) when the VM last started; 0 when not running.
    std::int64_t started_at = 0;
    // Seconds since start; computed at the time of the response.
    std::int64_t uptime = 0;
    // VNC console address while running. Example: "127.0.0.1:5900".
    std::string vnc;
};

// The mapping. from_json throws hv::Error(invalid_input) with the field named.
void to_json(nlohmann::json& j, const DiskSpec& v);
void to_json(nlohmann::json& j, const NicSpec& v);
void to_json(nlohmann::json& j, const PortVlan& v);
void to_json(nlohmann::json& j, const NicState& v);
void to_json(nlohmann::json& j, const VmSpec& v);
void to_json(nlohmann::json& j, const VmPatch& v);
void to_json(nlohmann::json& j, const VmInfo& v);
void to_json(nlohmann::json& j, Firmware v);

// Who wrote the JSON of a DiskSpec/VmSpec: a client's request, where a disk's `source` is
// refused (hvd takes it from the disk's pool, as it takes `path` only from a pool), or hvd
// itself (its metadata and responses), where `source` is read.
enum class JsonOrigin { request, hvd };
DiskSpec disk_from_json(const nlohmann::json& j, const std::string& path = "disk",
                        JsonOrigin origin = JsonOrigin::request);
NicSpec nic_from_json(const nlohmann::json& j, const std::string& path = "nic");
VmSpec vm_spec_from_json(const nlohmann::json& j, JsonOrigin origin = JsonOrigin::request);
VmPatch vm_patch_from_json(const nlohmann::json& j);
// Output object: lenient (missing fields default, unknown ones ignored).
NicState nic_state_from_json(const nlohmann::json& j);
VmInfo vm_info_from_json(const nlohmann::json& j);

inline VmState vm_state_from_string(const std::string& s) { return guest_state_from_string(s); }
std::string to_string(Firmware f);
Firmware firmware_from_string(const std::string& s);

// Command-line forms used by hvctl: "size=4G,bus=sata,format=raw,pool=local" and
// "network=default,model=virtio,mac=52:54:00:..." -> same objects, same validation.
DiskSpec parse_disk_arg(const std::string& arg);
NicSpec parse_nic_arg(const std::string& arg);
// "vlan=200,trunks=10;20" for `vm nic set`.
NicPatch parse_nic_patch_arg(const std::string& arg);

}  // namespace hv::api
