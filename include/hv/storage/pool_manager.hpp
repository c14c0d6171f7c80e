// The pools of this host: the built-in "local" pool plus those added with `hvctl storage pool
// add`, persisted in <state_dir>/pools.json (atomically rewritten). Every volume operation of
// the API and of VM creation goes through here, so "in use" checks, busy marks and
// over-commit warnings are in one place.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "hv/api/storage.hpp"
#include "hv/storage/pool.hpp"
#include "hv/util/intent_log.hpp"

namespace hv::storage {

// A pool every member reaches with the same volumes: rbd, or a file pool added with --shared.
inline bool shared_pool(const api::PoolInfo& p) { return p.spec.type == "rbd" || p.caps.shared; }

class PoolManager {
public:
    // path of an image -> names of the VMs whose definition uses it; with `live` (true), also
    // the images running VMs really have open (slower: asks libvirt).
    using UsersFn = std::function<std::map<std::string, std::vector<std::string>>(bool live)>;
    // Optional mirror of pools in libvirt (defined/refreshed/undefined); failures are logged there.
    struct Mirror {
        std::function<void(const api::PoolSpec&)> define;
        std::function<void(const std::string& name)> undefine;
        std::function<void(const std::string& name)> refresh;
    };

    PoolManager(std::string state_file, api::PoolSpec builtin);
    void set_users(UsersFn fn) { users_ = std::move(fn); }
    void set_mirror(Mirror m);

    std::vector<api::PoolInfo> list() const;
    // The names of the pools every member reaches (shared_pool), from their specs only: no
    // backend is asked.
    std::vector<std::string> shared_names() const;
    api::PoolInfo get(const std::string& name) const;
    // Path must exist and be a directory (on btrfs for type btrfs); persisted before answering.
    api::PoolInfo add(const api::PoolSpec& spec);
    // Forgets the pool (its files stay on disk). Refused for "local" and while a VM uses a volume.
    void remove(const std::string& name);
    // Re-reads the pool (removes leftover .partial files, refreshes libvirt's view).
    api::PoolInfo scan(const std::string& name);

    std::vector<api::VolumeInfo> volumes(const std::string& pool) const;
    api::VolumeInfo volume(const std::string& pool, const std::string& name) const;
    struct Created {
        api::VolumeInfo volume;
        std::vector<std::string> warnings;  // e.g. thin over-commitment of the pool
    };
    // With `outer`, the volume is an item of that intent (a VM create's) instead of a record
    // of its own, updated with the file's identity once it exists.
    Created create_volume(const api::VolumeSpec& spec, util::Progress& progress,
                          util::IntentLog::Intent* outer = nullptr);
    // Checks that would make create_volume fail fast (pool exists, mode/format supported, name
    // free, space for thick volumes); used before a task is queued.
    void precheck_create(const api::VolumeSpec& spec) const;
    // The format of a volume made without one: the backend's first (qcow2 on file pools, raw
    // on rbd). 404 for an unknown pool.
    std::string default_format(const std::string& pool) const;
    // Refused (conflict) while a VM uses the volume; `detach` is called first when given
    // (delete --force) and must remove the volume from those VMs or throw.
    void delete_volume(const std::string& pool, const std::string& name,
                       const std::function<void(const std::vector<std::string>& vms, const std::string& path)>& detach = {});
    api::VolumeInfo resize_volume(const std::string& pool, const std::string& name, std::uint64_t size,
                                  util::Progress& progress);
    // A full copy (StoragePool::clone_volume), or with `linked` a linked clone
    // (StoragePool::link_volume). With `outer`, the volume is an item of that operation's
    // intent record (as create_volume's), so a crash leaves nothing of it.
    api::VolumeInfo clone_volume(const std::string& pool, const std::string& source, const std::string& target,
                                 util::Progress& progress, bool linked = false,
                                 util::IntentLog::Intent* outer = nullptr);

    // For VMs: where QEMU reads a volume from (StoragePool::disk_source); not_found when the
    // pool or the volume does not exist.
    api::DiskSource disk_source(const std::string& pool, const std::string& name) const;
    // For VMs: the volume a path belongs to ("" pool when it is no pool's volume).
    api::VolumeRef locate(const std::string& path) const;
    // Path of a volume or ISO reference; not_found when it does not exist.
    std::string resolve(const api::VolumeRef& ref) const;
    // Directory of a content type in a pool (iso, vztmpl).
    std::string content_dir(const std::string& pool, const std::string& content) const;
    std::vector<std::string> users_of(const std::string& path, bool live = false) const;

    // Short text for `hvctl host`: the built-in pool's path and free bytes.
    std::string builtin_path() const;
    std::uint64_t builtin_free() const;

    // The backend object of a pool (not_found when unknown), for what the manager does not
    // wrap (container root filesystems). Shared: it stays valid if the pool is removed meanwhile.
    std::shared_ptr<StoragePool> pool(const std::string& name) const;

    // The host's intent log (<state_dir>/pending, beside the state file): every multi-step
    // create of hv (volumes here, VMs, containers, ISO uploads, template builds) records what
    // it is about to make there, and recover_interrupted() undoes what an hvd killed in the
    // middle left. The storage item types are registered here: "volume" {pool, name[, dev,
    // ino]}, "resize" {pool, name, old}, "file" {path} (a hidden .partial), "rootfs" {path,
    // partial[, dev, ino]}.
    util::IntentLog& intents() { return intents_; }
    // Removes every .partial of every pool (uploads, volumes, root filesystems being made): at
    // hvd start, after the intent records were rolled back, nothing is in progress.
    void sweep_partials();
    // {"dev", "ino"} of a path (lstat; {} when missing): what "volume"/"rootfs" items record
    // once the thing exists, so that recovery removes only that very file.
    static nlohmann::json identity_of(const std::string& path);

private:
    struct Entry {
        std::shared_ptr<StoragePool> pool;  // shared: an operation keeps it alive without the lock
        bool builtin = false;
    };
    api::PoolInfo info(const Entry& e) const;
    void save_locked() const;
    // Marks pool/name busy for the life of the returned guard (409 when already busy).
    std::shared_ptr<void> mark_busy(const std::string& pool, const std::string& name) const;

    void register_undo();

    std::string state_file_;
    util::IntentLog intents_;
    mutable std::mutex mu_;
    std::map<std::string, Entry> pools_;
    mutable std::set<std::string> busy_;
    UsersFn users_;
    Mirror mirror_;
};

}  // namespace hv::storage
