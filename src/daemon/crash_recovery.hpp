// Recovery of operations hvd was killed in the middle of (util::IntentLog, docs/storage.md
// "Crash safety"): at start, before hvd listens, every intent record left in
// <state_dir>/pending is rolled back, and the interrupted task's failure message says what
// was removed. Records that need libvirt while it is down are retried in the background
// until it is back.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "hv/storage/pool_manager.hpp"
#include "task_manager.hpp"

namespace hv::daemon {

class CrashRecovery {
public:
    CrashRecovery(storage::PoolManager& pools, TaskManager& tasks);
    // Stops the retry thread (destroy before the managers whose undo handlers it calls).
    ~CrashRecovery();
    CrashRecovery(const CrashRecovery&) = delete;
    CrashRecovery& operator=(const CrashRecovery&) = delete;

    // One pass over the records; returns how many are still pending (deferred or failed).
    std::size_t run_once();

private:
    util::IntentLog& log_;
    TaskManager& tasks_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread retry_;
};

// The one call at hvd start (daemon.cpp), after the managers registered their undo handlers
// and libvirt had its chance to connect, before listening. Keep the result alive while hvd runs.
// Then every .partial left without a record is removed (PoolManager::sweep_partials).
std::unique_ptr<CrashRecovery> recover_interrupted(storage::PoolManager& pools, TaskManager& tasks);

}  // namespace hv::daemon
