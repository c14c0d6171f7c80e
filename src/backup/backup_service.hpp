// Backups of VMs into chunk stores (docs/backup.md): the configured stores
// (<state_dir>/backup-stores.json), and the operations the routes run as tasks: create (a
// stopped VM's disks read through qemu-img; a running one's through libvirt's push backup;
// --mode stop), restore into a new VM, verify, prune with garbage collection.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chunk_store.hpp"
#include "guest.hpp"
#include "hv/api/backup.hpp"
#include "hv/storage/pool_manager.hpp"
#include "hv/util/progress.hpp"
#include "vm_manager.hpp"

namespace hv::backup {

class BackupService {
public:
    BackupService(std::string state_dir, virt::VmManager& vms, storage::PoolManager& pools, guest::Guests& guests);

    // Stores.
    std::vector<api::BackupStoreSpec> stores() const;
    api::BackupStoreSpec store(const std::string& name) const;  // 404
    // The directory must exist; its layout (chunks/, backups/, tmp/) is made. 409 for a used name.
    api::BackupStoreSpec add_store(const api::BackupStoreSpec& spec);
    // Forgets the store (its directory stays).
    void remove_store(const std::string& name);

    // What can be told before a task is queued (404 store / VM, 409 state, 501).
    void precheck_create(const std::string& vm, const api::BackupCreate& rq) const;
    nlohmann::json create(const std::string& vm, const api::BackupCreate& rq, util::Progress& progress);
    // Backups of every store (or one), of every guest (or one): newest last.
    nlohmann::json list(const std::string& store, const std::string& guest) const;
    // 404 store / backup, 409 when the target name is a VM already.
    void precheck_restore(const std::string& store, const std::string& guest, const std::string& time,
                          const api::BackupRestore& rq) const;
    nlohmann::json restore(const std::string& store, const std::string& guest, const std::string& time,
                           const api::BackupRestore& rq, util::Progress& progress);
    // Every chunk of the backups (all, one guest's, or one) read, decompressed and its hash
    // checked. The result names every bad chunk; when there is one the task fails (internal)
    // with them named.
    nlohmann::json verify(const std::string& store, const std::string& guest, const std::string& time,
                          util::Progress& progress);
    // Removes the backups the policy does not keep (prune.hpp), then the chunks no manifest
    // names any more. dry_run: only says what it would do.
    nlohmann::json prune(const std::string& store, const api::BackupPrune& rq, util::Progress& progress);

private:
    void save_locked() const;
    std::shared_mutex& store_lock(const std::string& name);
    struct DiskRead;
    nlohmann::json info_json(const ChunkStore& cs, const Manifest& m, const std::string& store) const;

    std::string state_file_;
    virt::VmManager& vms_;
    storage::PoolManager& pools_;
    guest::Guests& guests_;
    void start_again(const std::string& vm);
    mutable std::mutex mu_;
    std::map<std::string, api::BackupStoreSpec> stores_;
    // Backups, restores and verifies hold their store's lock shared; garbage collection holds it
    // exclusively, so it never removes a chunk a running backup counted as present.
    std::map<std::string, std::unique_ptr<std::shared_mutex>> locks_;
};

}  // namespace hv::backup
