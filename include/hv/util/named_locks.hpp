// Per-name operation locks (one VM, one container): a timed mutex per name, made on demand and
// dropped again when nobody holds or waits for it. A second caller waits up to `wait`, then
// gets 409 busy. Shared by VmManager and CtManager.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "hv/error.hpp"

namespace hv::util {

class NamedLocks {
public:
    // Holds the lock of one name until destroyed.
    class Guard {
    public:
        Guard(NamedLocks& owner, std::string name, std::shared_ptr<std::timed_mutex> mu)
            : owner_(&owner), name_(std::move(name)), mu_(std::move(mu)) {}
        Guard(Guard&& o) noexcept : owner_(o.owner_), name_(std::move(o.name_)), mu_(std::move(o.mu_)) { o.owner_ = nullptr; }
        Guard(const Guard&) = delete;
        Guard& operator=(const Guard&) = delete;
        Guard& operator=(Guard&&) = delete;
        ~Guard() {
            if (!owner_) return;
            mu_->unlock();
            owner_->release(name_, mu_);
        }

    private:
        NamedLocks* owner_;
        std::string name_;
        std::shared_ptr<std::timed_mutex> mu_;
    };

    // `what` names the kind in the 409 message: "vm 'web01' is busy with another operation".
    Guard lock(const std::string& name, std::chrono::milliseconds wait, const char* what) {
        auto mu = acquire(name);
        if (!mu->try_lock_for(wait)) {
            release(name, mu);
            fail(Errc::conflict, "{} '{}' is busy with another operation; try again", what, name);
        }
        return Guard(*this, name, std::move(mu));
    }

private:
    std::shared_ptr<std::timed_mutex> acquire(const std::string& name) {
        std::lock_guard lk(mu_);
        auto& m = locks_[name];
        if (!m) m = std::make_shared<std::timed_mutex>();
        return m;
    }
    void release(const std::string& name, std::shared_ptr<std::timed_mutex>& m) {
        std::lock_guard lk(mu_);
        auto it = locks_.find(name);
        m.reset();
        // Copies are only taken under mu_: a count of 1 means nobody else holds or waits.
        if (it != locks_.end() && it->second.use_count() == 1) locks_.erase(it);
    }

    std::mutex mu_;
    std::map<std::string, std::shared_ptr<std::timed_mutex>> locks_;
};

}  // namespace hv::util
