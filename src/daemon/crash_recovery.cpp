#include "crash_recovery.hpp"

#include <chrono>

#include <spdlog/spdlog.h>

namespace hv::daemon {

CrashRecovery::CrashRecovery(storage::PoolManager& pools, TaskManager& tasks) : log_(pools.intents()), tasks_(tasks) {
    auto left = run_once();
    pools.sweep_partials();
    if (left == 0) return;
    // Deferred records (libvirt down): retried every 2 s until none is left or hvd stops.
    retry_ = std::thread([this] {
        std::unique_lock lk(mu_);
        while (!cv_.wait_for(lk, std::chrono::seconds(2), [this] { return stop_; })) {
            lk.unlock();
            std::size_t left = 1;
            try {
                left = run_once();
            } catch (const std::exception& e) {
                spdlog::error("crash recovery: {}", e.what());
            }
            lk.lock();
            if (left == 0) return;
        }
    });
}

CrashRecovery::~CrashRecovery() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (retry_.joinable()) retry_.join();
}

std::size_t CrashRecovery::run_once() {
    std::size_t left = 0;
    for (const auto& o : log_.recover()) {
        if (!o.error.empty()) {
            ++left;
            continue;
        }
        if (o.record.task.empty()) continue;
        std::string what = o.done.empty() ? "nothing of it was left" : fmt::format("{}", fmt::join(o.done, "; "));
        // A delete is finished (what it was removing is removed), anything else rolled back.
        bool del = o.record.op.ends_with(".delete");
        tasks_.note_interrupted(o.record.task, (del ? "finished after restart: " : "rolled back after restart: ") + what);
    }
    return left;
}

std::unique_ptr<CrashRecovery> recover_interrupted(storage::PoolManager& pools, TaskManager& tasks) {
    return std::make_unique<CrashRecovery>(pools, tasks);
}

}  // namespace hv::daemon
