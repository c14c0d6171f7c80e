#include "task_manager.hpp"

#include <algorithm>
#include <atomic>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

namespace hv::daemon {

struct TaskManager::Entry {
    api::TaskInfo info;
    std::atomic<bool> cancel{false};
};

class TaskManager::Ctx final : public util::Progress {
public:
    Ctx(TaskManager& m, std::shared_ptr<Entry> e) : m_(m), e_(std::move(e)) {}
    void update(int percent, const std::string& message) override {
        api::TaskInfo snap;
        {
            std::lock_guard lk(m_.mu_);
            if (e_->info.progress == percent && e_->info.message == message) return;
            e_->info.progress = percent;
            e_->info.message = message;
            snap = e_->info;
        }
        m_.publish(snap);
    }
    bool cancelled() const override { return e_->cancel; }

private:
    TaskManager& m_;
    std::shared_ptr<Entry> e_;
};

TaskManager::TaskManager(boost::asio::thread_pool& pool, EventBus& bus, std::size_t history)
    : pool_(pool), bus_(bus), history_(history) {}

void TaskManager::publish(const api::TaskInfo& t) { bus_.publish("task", "task/" + t.id, t); }

api::TaskInfo TaskManager::submit(const std::string& kind, const std::string& target, Work work) {
    auto e = std::make_shared<Entry>();
    api::TaskInfo snap;
    {
        std::lock_guard lk(mu_);
        e->info.id = fmt::format("t-{:06d}", next_++);
        e->info.kind = kind;
        e->info.target = target;
        e->info.created_at = now_ms();
        tasks_[e->info.id] = e;
        order_.push_back(e->info.id);
        trim();
        snap = e->info;
    }
    publish(snap);
    boost::asio::post(pool_, [this, e, work = std::move(work)] {
        {
            std::lock_guard lk(mu_);
            e->info.state = api::TaskState::running;
            e->info.started_at = now_ms();
        }
        Ctx ctx(*this, e);
        spdlog::info("task {} {} {} started", e->info.id, e->info.kind, e->info.target);
        nlohmann::json result;
        std::optional<api::ErrorBody> err;
        try {
            if (e->cancel) throw Error(Errc::cancelled, "cancelled before it started");
            result = work(ctx);
        } catch (const Error& x) {
            err = api::ErrorBody{x.code(), x.what()};
        } catch (const std::exception& x) {
            err = api::ErrorBody{Errc::internal, x.what()};
        }
        api::TaskInfo done;
        {
            std::lock_guard lk(mu_);
            e->info.finished_at = now_ms();
            if (err) {
                e->info.state = err->code == Errc::cancelled ? api::TaskState::cancelled : api::TaskState::failed;
                e->info.error = err;
            } else {
                e->info.state = api::TaskState::succeeded;
                e->info.progress = 100;
                e->info.result = std::move(result);
            }
            done = e->info;
        }
        if (err) spdlog::warn("task {} {} {} {}: {}", done.id, done.kind, done.target, api::to_string(done.state), err->message);
        else spdlog::info("task {} {} {} succeeded", done.id, done.kind, done.target);
        publish(done);
    });
    return snap;
}

void TaskManager::trim() {
    // Keep at most history_ finished tasks; running ones are never dropped.
    std::size_t scanned = 0;
    while (order_.size() > history_ && scanned < order_.size()) {
        auto id = order_.front();
        order_.pop_front();
        auto it = tasks_.find(id);
        if (it != tasks_.end() && !api::is_final(it->second->info.state)) {
            order_.push_back(id);
            ++scanned;
            continue;
        }
        tasks_.erase(id);
    }
}

api::TaskInfo TaskManager::get(const std::string& id) const {
    std::lock_guard lk(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) fail(Errc::not_found, "task '{}' does not exist", id);
    return it->second->info;
}

std::vector<api::TaskInfo> TaskManager::list() const {
    std::lock_guard lk(mu_);
    std::vector<api::TaskInfo> out;
    out.reserve(tasks_.size());
    for (const auto& [_, e] : tasks_) out.push_back(e->info);
    // Oldest first: ids are "t-" + a zero-padded counter that may outgrow its padding.
    std::sort(out.begin(), out.end(), [](const api::TaskInfo& a, const api::TaskInfo& b) {
        return a.id.size() != b.id.size() ? a.id.size() < b.id.size() : a.id < b.id;
    });
    return out;
}

api::TaskInfo TaskManager::cancel(const std::string& id) {
    api::TaskInfo snap;
    {
        std::lock_guard lk(mu_);
        auto it = tasks_.find(id);
        if (it == tasks_.end()) fail(Errc::not_found, "task '{}' does not exist", id);
        if (api::is_final(it->second->info.state))
            fail(Errc::conflict, "task '{}' already {}", id, api::to_string(it->second->info.state));
        it->second->cancel = true;
        it->second->info.message = "cancel requested";
        snap = it->second->info;
    }
    publish(snap);
    return snap;
}

void TaskManager::cancel_all() {
    std::lock_guard lk(mu_);
    for (auto& [_, e] : tasks_)
        if (!api::is_final(e->info.state)) e->cancel = true;
}

std::size_t TaskManager::running() const {
    std::lock_guard lk(mu_);
    std::size_t n = 0;
    for (const auto& [_, e] : tasks_)
        if (!api::is_final(e->info.state)) ++n;
    return n;
}

}  // namespace hv::daemon
