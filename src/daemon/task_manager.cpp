#include "task_manager.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <system_error>

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

TaskManager::TaskManager(boost::asio::thread_pool& pool, EventBus& bus, std::size_t history,
                         std::string journal_dir)
    : pool_(pool), bus_(bus), history_(history), dir_(std::move(journal_dir)) {
    if (!dir_.empty()) load_journal();
}

namespace {
// "t-000042" -> 42; 0 when the id is not of that form.
std::uint64_t id_number(const std::string& id) {
    if (id.size() < 3 || id.size() > 22 || id.compare(0, 2, "t-") != 0) return 0;
    std::uint64_t n = 0;
    for (std::size_t i = 2; i < id.size(); ++i) {
        if (!std::isdigit(static_cast<unsigned char>(id[i]))) return 0;
        n = n * 10 + static_cast<std::uint64_t>(id[i] - '0');
    }
    return n;
}
}  // namespace

void TaskManager::load_journal() {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<api::TaskInfo> loaded;
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
        auto name = it->path().filename().string();
        if (name.starts_with(".") && name.ends_with(".tmp")) {  // a write cut short
            std::error_code rec;
            fs::remove(it->path(), rec);
            continue;
        }
        if (!name.ends_with(".json")) continue;
        auto stem = name.substr(0, name.size() - 5);
        if (id_number(stem) == 0) continue;
        // Counted even when unreadable: its id must not be given out again.
        next_ = std::max(next_, id_number(stem) + 1);
        try {
            std::ifstream in(it->path());
            auto t = api::task_info_from_json(nlohmann::json::parse(in));
            if (t.id != stem) throw std::runtime_error("its id is '" + t.id + "'");
            loaded.push_back(std::move(t));
        } catch (const std::exception& x) {
            spdlog::warn("task journal: ignoring {}: {}", it->path().string(), x.what());
        }
    }
    if (ec) spdlog::warn("task journal: cannot read {}: {}", dir_, ec.message());
    std::sort(loaded.begin(), loaded.end(),
              [](const api::TaskInfo& a, const api::TaskInfo& b) { return id_number(a.id) < id_number(b.id); });
    std::vector<api::TaskInfo> rewrite;
    for (auto& t : loaded) {
        next_ = std::max(next_, id_number(t.id) + 1);
        if (!api::is_final(t.state)) {
            spdlog::warn("task {} {} {} was {} when hvd stopped: now failed", t.id, t.kind, t.target,
                         api::to_string(t.state));
            t.state = api::TaskState::failed;
            t.finished_at = now_ms();
            t.message = "interrupted: hvd stopped";
            t.error = api::ErrorBody{Errc::internal, interrupted_message};
            rewrite.push_back(t);
        }
        auto e = std::make_shared<Entry>();
        e->info = std::move(t);
        order_.push_back(e->info.id);
        tasks_[e->info.id] = std::move(e);
    }
    std::vector<std::string> dropped;
    {
        std::lock_guard lk(mu_);
        dropped = trim();
    }
    journal_remove(dropped);
    for (const auto& t : rewrite) journal_write(t);
    if (!loaded.empty())
        spdlog::info("task journal: {} task(s) loaded from {}, next id t-{:06d}", loaded.size(), dir_, next_);
}

void TaskManager::journal_write(const api::TaskInfo& t) {
    if (dir_.empty()) return;
    std::lock_guard jl(jmu_);
    if (api::is_final(t.state)) {
        std::lock_guard lk(mu_);
        if (!tasks_.contains(t.id)) return;  // trimmed meanwhile: its file is gone for good
    }
    namespace fs = std::filesystem;
    auto path = dir_ + "/" + t.id + ".json";
    auto tmp = dir_ + "/." + t.id + ".json.tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << nlohmann::json(t).dump() << '\n';
        out.close();
        if (!out) {
            spdlog::warn("task journal: cannot write {}", tmp);
            std::error_code ec;
            fs::remove(tmp, ec);
            return;
        }
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) {
        spdlog::warn("task journal: cannot rename {} to {}: {}", tmp, path, ec.message());
        fs::remove(tmp, ec);
    }
}

void TaskManager::journal_remove(const std::vector<std::string>& ids) {
    if (dir_.empty() || ids.empty()) return;
    std::lock_guard jl(jmu_);
    for (const auto& id : ids) {
        std::error_code ec;
        std::filesystem::remove(dir_ + "/" + id + ".json", ec);
        if (ec) spdlog::warn("task journal: cannot remove {}/{}.json: {}", dir_, id, ec.message());
    }
}

void TaskManager::publish(const api::TaskInfo& t) { bus_.publish("task", "task/" + t.id, t); }

api::TaskInfo TaskManager::submit(const std::string& kind, const std::string& target, Work work) {
    auto e = std::make_shared<Entry>();
    api::TaskInfo snap;
    std::vector<std::string> dropped;
    {
        std::lock_guard lk(mu_);
        e->info.id = fmt::format("t-{:06d}", next_++);
        e->info.kind = kind;
        e->info.target = target;
        e->info.created_at = now_ms();
        tasks_[e->info.id] = e;
        order_.push_back(e->info.id);
        dropped = trim();
        snap = e->info;
    }
    // Written before the work is posted, so this write never lands after the later ones.
    journal_remove(dropped);
    journal_write(snap);
    publish(snap);
    boost::asio::post(pool_, [this, e, work = std::move(work)] {
        api::TaskInfo started;
        {
            std::lock_guard lk(mu_);
            e->info.state = api::TaskState::running;
            e->info.started_at = now_ms();
            started = e->info;
        }
        journal_write(started);
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
        journal_write(done);
        if (err) spdlog::warn("task {} {} {} {}: {}", done.id, done.kind, done.target, api::to_string(done.state), err->message);
        else spdlog::info("task {} {} {} succeeded", done.id, done.kind, done.target);
        publish(done);
    });
    return snap;
}

std::vector<std::string> TaskManager::trim() {
    // Keep at most history_ finished tasks; running ones are never dropped.
    std::vector<std::string> dropped;
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
        dropped.push_back(id);
    }
    return dropped;
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
