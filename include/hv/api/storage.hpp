// Wire model for storage: pools, volumes (VM disks), ISO images.
// Same shapes as the VM model: *Spec for what a client asks, *Info for what hvd reports.
// JSON mapping: to_json / *_from_json below; input parsing is strict (unknown fields -> 400).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::api {

// How a volume's space is provided (ESXi's three disk types), per volume:
//  thin          sparse: blocks are allocated when the guest writes (qcow2 may hold metadata).
//  lazy_zeroed   all space reserved up front (fallocate) but not written; reads return zeros.
//  eager_zeroed  every block written with zeros before the disk is handed over.
enum class Provision { thin, lazy_zeroed, eager_zeroed };
std::string to_string(Provision p);            // "thin", "lazy-zeroed", "eager-zeroed"
Provision provision_from_string(const std::string& s);  // throws invalid_input

// Content a pool may hold; each lives in its own sub-directory of a file-based pool.
//  images  VM disk volumes, iso  CD/DVD images, vztmpl  container templates.
inline const std::vector<std::string> kPoolContents{"images", "iso", "vztmpl"};

// What a backend can do. Clients use it to offer only what works; hvd refuses the rest.
struct PoolCaps {
    std::vector<std::string> content;     // subset of kPoolContents
    std::vector<std::string> formats;     // "qcow2", "raw"
    std::vector<std::string> provision;   // to_string(Provision) of the supported modes
    bool snapshots = false;               // volume snapshots by the backend itself
    bool clones = false;                  // cheap copy-on-write clones (reflink, subvolume snapshot)
    bool shared = false;                  // the same pool is reachable from several hosts
    bool linked_clones = false;           // volumes that read unwritten blocks from a base volume
};

struct PoolSpec {
    // Example: "local".
    std::string name;
    // Backend: "dir", "btrfs" or "rbd" (a Ceph pool; later "lvm", "lvmthin", "zfs").
    std::string type = "dir";
    // dir, btrfs: absolute path of the pool's root directory. Example: "/var/lib/hv/images".
    // rbd: empty.
    std::string path;
    // Content types this pool holds; empty = everything the backend supports.
    std::vector<std::string> content;
    // rbd: the Ceph monitors, "HOST" or "HOST:PORT" (default port 6789; v2 3300 is found
    // from them). Example: ["10.0.0.5", "10.0.0.6:6789"].
    std::vector<std::string> monitors;
    // rbd: the Ceph pool that holds the images. Example: "rbd".
    std::string rbd_pool;
    // rbd: the cephx user, without "client.". Example: "hv".
    std::string user;
    // rbd: absolute path of the keyring file with that user's key (read by hvd at each
    // connect; its key also goes into the libvirt secret QEMU authenticates with).
    std::string keyring;
    // dir: the directory is on storage every member sees at the same path (NFS, CephFS, a
    // cluster filesystem), so a VM on it migrates without copying its disks. hv trusts the
    // admin's word; rbd pools are shared by their nature.
    bool shared = false;
};

struct PoolInfo {
    PoolSpec spec;
    PoolCaps caps;
    // False when the pool's path is missing or unusable; `error` says why.
    bool active = false;
    std::string error;
    // Filesystem numbers in bytes: capacity = size, used = allocated by anyone, free = available
    // to hvd (statvfs f_bavail).
    std::uint64_t capacity = 0;
    std::uint64_t used = 0;
    std::uint64_t free = 0;
    // Sum of the provisioned (virtual) sizes of the pool's volumes. committed > capacity means
    // thin volumes over-commit the pool.
    std::uint64_t committed = 0;
    // Sum of what the volumes really occupy.
    std::uint64_t allocated = 0;
    int volumes = 0;
    // True for the built-in default pool "local" (cannot be removed).
    bool builtin = false;
    // What is wrong with an active pool right now, in plain words (rbd: Ceph's health, e.g.
    // "degraded: 5 of 15 object copies missing (33.3%), ..." or "I/O blocked: ..."); empty
    // when all is well.
    std::vector<std::string> warnings;
};

struct VolumeSpec {
    // Example: "vm-web01-disk1"; the file on a dir pool is "<name>.<format>".
    std::string name;
    std::string pool = "local";
    // Capacity in bytes (input may be "20G").
    std::uint64_t size = 0;
    // "qcow2" | "raw"; "" = the pool's default (qcow2 on dir and btrfs pools, raw on rbd).
    std::string format;
    Provision provision = Provision::thin;
};

struct VolumeInfo {
    std::string name;
    std::string pool;
    std::string format;
    Provision provision = Provision::thin;
    // Provisioned (virtual) size in bytes.
    std::uint64_t capacity = 0;
    // Bytes the volume really occupies on the backend (du-like).
    std::uint64_t allocation = 0;
    // Where QEMU opens it. Example: "/var/lib/hv/images/images/vm-web01-disk1.qcow2".
    std::string path;
    // VMs whose definition uses this volume.
    std::vector<std::string> used_by;
    // A linked clone: the volume of the same pool it reads unwritten blocks from (a template's
    // disk); "" for a volume of its own. Example: "base-debian-disk1".
    std::string base;
};

// Where QEMU reads a volume from, as libvirt's <disk type=...> needs it: a file (dir and btrfs
// pools: the volume's path) or a network source (Ceph RBD pools: protocol, image name, the
// monitors and the cephx user whose key is a libvirt secret). StoragePool::disk_source returns
// it; virt::disk_device_xml renders it.
struct DiskHost {
    // Host name or IP address of a server (RBD: a monitor). Example: "10.0.0.1".
    std::string name;
    // 0 = the protocol's default (RBD monitors: 6789).
    int port = 0;
    bool operator==(const DiskHost&) const = default;
};
struct DiskAuth {
    // Example: "admin" (the cephx user client.admin).
    std::string username;
    // The libvirt secret holding the key: its usage type ("ceph") and uuid.
    std::string secret_type = "ceph";
    std::string secret_uuid;
    bool operator==(const DiskAuth&) const = default;
};
// A Ceph monitor of an rbd pool: "HOST", "HOST:PORT" or "[IPv6]:PORT" (port 0 = default).
// Throws invalid_input.
DiskHost parse_monitor(const std::string& monitor);

struct DiskSource {
    enum class Type { file, network };
    Type type = Type::file;
    // file: absolute path of the image.
    std::string path;
    // network: protocol ("rbd"), name ("POOL/IMAGE" or "POOL/NAMESPACE/IMAGE"), servers, auth.
    std::string protocol;
    std::string name;
    std::vector<DiskHost> hosts;
    std::optional<DiskAuth> auth;

    static DiskSource file(std::string p) {
        DiskSource s;
        s.path = std::move(p);
        return s;
    }
    static DiskSource network(std::string protocol, std::string name, std::vector<DiskHost> hosts = {},
                              std::optional<DiskAuth> auth = std::nullopt) {
        DiskSource s;
        s.type = Type::network;
        s.protocol = std::move(protocol);
        s.name = std::move(name);
        s.hosts = std::move(hosts);
        s.auth = std::move(auth);
        return s;
    }
    bool is_file() const { return type == Type::file; }
    bool operator==(const DiskSource&) const = default;
};
std::string to_string(DiskSource::Type t);  // "file", "network"
// Throws invalid_input naming `what`: a file source needs an absolute path without "..", a
// network one protocol rbd, a POOL/IMAGE name, 1-16 hosts (port 0-65535) and, when given, a
// user name and a secret of type ceph with a uuid.
void validate(const DiskSource& s, const std::string& what);

struct IsoInfo {
    std::string name;  // file name, e.g. "debian-12.iso"
    std::string pool;
    std::uint64_t size = 0;
    std::string sha256;  // computed at upload; empty for files placed by other means until scanned
    std::string path;
    std::vector<std::string> used_by;
};

// Volume ids on the command line and in VM specs: "POOL:NAME" (e.g. "local:vm-web01-disk1")
// and for ISOs "POOL:iso/NAME" (e.g. "local:iso/debian-12.iso").
struct VolumeRef {
    std::string pool;
    std::string content;  // "images" or "iso"
    std::string name;
};
// Parses "POOL:NAME" or "POOL:iso/NAME"; throws invalid_input naming `what`.
VolumeRef parse_volume_ref(const std::string& text, const char* what = "volume");

// File names of ISOs and templates: 1-255 chars, no '/', no NUL, not "." / "..", no leading '.'.
void validate_file_name(const std::string& name, const char* what);

void validate(const PoolSpec& p);
void validate(const VolumeSpec& v);

void to_json(nlohmann::json& j, Provision v);
void to_json(nlohmann::json& j, const PoolCaps& v);
void to_json(nlohmann::json& j, const PoolSpec& v);
void to_json(nlohmann::json& j, const PoolInfo& v);
void to_json(nlohmann::json& j, const VolumeSpec& v);
void to_json(nlohmann::json& j, const VolumeInfo& v);
void to_json(nlohmann::json& j, const IsoInfo& v);
void to_json(nlohmann::json& j, const DiskSource& v);

PoolSpec pool_spec_from_json(const nlohmann::json& j);
VolumeSpec volume_spec_from_json(const nlohmann::json& j);
// Strict (unknown fields, wrong types and invalid values -> invalid_input naming `path`).
DiskSource disk_source_from_json(const nlohmann::json& j, const std::string& path = "source");
// Output objects: lenient (unknown fields ignored), for clients.
PoolInfo pool_info_from_json(const nlohmann::json& j);
VolumeInfo volume_info_from_json(const nlohmann::json& j);
IsoInfo iso_info_from_json(const nlohmann::json& j);

}  // namespace hv::api
