#include "task_manager.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <system_error>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "hv/util/guard.hpp"
#include "hv/util/atomic_file.hpp"
#include "hv/util/log_context.hpp"
#include "hv/util/utf8.hpp"

namespace hv::daemon {

struct TaskManager::Entry {
    api::TaskInfo info;
    std::atomic<bool> cancel{false};
    // The log (guarded by mu_); file_lines by jmu_.
    std::deque<api::TaskLogLine> log;
    std::uint64_t log_seq = 0;
    std::uint64_t log_dropped = 0;
    std::size_t file_lines = 0;
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
    void log(const std::string& line) override { m_.append_log(e_, line); }

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
// "t-000042" (or "t-000042@h2" in a cluster) -> 42; 0 when the id is not of that form.
std::uint64_t id_number(const std::string& full) {
    std::string id = full.substr(0, full.find('@'));
    if (id.size() < 3 || id.size() > 22 || id.compare(0, 2, "t-") != 0) return 0;
    std::uint64_t n = 0;
    for (std::size_t i = 2; i < id.size(); ++i) {
        if (!std::isdigit(static_cast<unsigned char>(id[i]))) return 0;
        n = n * 10 + static_cast<std::uint64_t>(id[i] - '0');
    }
    return n;
}
// One line: control characters become spaces, cut at kMaxLogLineBytes (not inside a UTF-8
// sequence).
std::string clean_line(const std::string& s, std::size_t max) {
    std::string out = s.substr(0, max);
    if (s.size() > max) {
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
        if (!out.empty() && (static_cast<unsigned char>(out.back()) & 0x80)) out.pop_back();
        out += "...";
    }
    for (auto& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    return out;
}

std::string final_line(const api::TaskInfo& t) {
    if (t.state == api::TaskState::succeeded) return "succeeded";
    std::string s = api::to_string(t.state);
    if (t.error && !t.error->message.empty()) s += ": " + t.error->message;
    return s;
}

util::LogFields task_fields(const api::TaskInfo& t) {
    util::LogFields f{{"TASK_ID", t.id}, {"TASK_KIND", t.kind}};
    if (!t.request_id.empty()) f.emplace_back("REQUEST_ID", t.request_id);
    for (auto& kv : util::target_log_fields(t.target)) f.push_back(std::move(kv));
    return f;
}
}  // namespace

void TaskManager::load_log(Entry& e) {
    std::ifstream in(dir_ + "/" + e.info.id + ".log");
    std::string line;
    std::vector<api::TaskLogLine> lines;
    while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_object()) continue;  // a line cut short by a crash
        try {
            lines.push_back(api::task_log_line_from_json(j));
        } catch (const std::exception&) {
        }
    }
    std::sort(lines.begin(), lines.end(), [](const auto& a, const auto& b) { return a.seq < b.seq; });
    e.file_lines = lines.size();
    for (auto& l : lines) {
        if (l.seq <= e.log_seq) continue;
        e.log_seq = l.seq;
        e.log.push_back(std::move(l));
    }
    // Lines before the first kept one were dropped.
    if (!e.log.empty()) e.log_dropped = e.log.front().seq - 1;
    while (e.log.size() > kMaxLogLines) {
        e.log.pop_front();
        ++e.log_dropped;
    }
}

void TaskManager::append_log(const std::shared_ptr<Entry>& e, const std::string& message, spdlog::level::level_enum level) {
    auto text = clean_line(message, kMaxLogLineBytes);
    api::TaskLogLine line;
    api::TaskInfo info;
    std::vector<api::TaskLogLine> all;  // set when the file is rewritten
    std::lock_guard jl(jmu_);
    {
        std::lock_guard lk(mu_);
        line = api::TaskLogLine{++e->log_seq, now_ms(), text};
        e->log.push_back(line);
        if (e->log.size() > kMaxLogLines) {
            e->log.pop_front();
            ++e->log_dropped;
        }
        info = e->info;
        if (e->file_lines + 1 > 2 * kMaxLogLines) all.assign(e->log.begin(), e->log.end());
    }
    {
        util::LogScope scope(task_fields(info));
        spdlog::log(level, "task {} {} {}: {}", info.id, info.kind, info.target, text);
    }
    if (dir_.empty()) return;
    auto path = dir_ + "/" + info.id + ".log";
    if (all.empty()) {
        std::ofstream out(path, std::ios::app);
        out << util::dump_json(nlohmann::json(line)) << '\n';
        out.close();
        if (!out) spdlog::warn("task journal: cannot append to {}", path);
        ++e->file_lines;
        return;
    }
    std::string contents;
    for (const auto& l : all)
        contents += util::dump_json(nlohmann::json(l)) + '\n';
    try {
        util::write_file_atomic(path, contents);  // ".<id>.log.tmp": load_journal removes leftovers
    } catch (const Error& err) {
        spdlog::warn("task journal: {}", err.what());
        return;
    }
    e->file_lines = all.size();
}

void TaskManager::load_journal() {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<api::TaskInfo> loaded;
    std::vector<std::string> log_files;
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
        auto name = it->path().filename().string();
        if (name.starts_with(".") && name.ends_with(".tmp")) {  // a write cut short
            std::error_code rec;
            fs::remove(it->path(), rec);
            continue;
        }
        if (name.ends_with(".log")) {
            log_files.push_back(name.substr(0, name.size() - 4));
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
        load_log(*e);
        order_.push_back(e->info.id);
        tasks_[e->info.id] = std::move(e);
    }
    std::vector<std::string> dropped;
    {
        std::lock_guard lk(mu_);
        dropped = trim();
    }
    journal_remove(dropped);
    for (const auto& t : rewrite) {
        journal_write(t);
        std::shared_ptr<Entry> e;
        {
            std::lock_guard lk(mu_);
            if (auto it = tasks_.find(t.id); it != tasks_.end()) e = it->second;
        }
        if (e) append_log(e, interrupted_message, spdlog::level::warn);
    }
    // Logs of tasks no longer kept (trimmed while their .log was being written).
    for (const auto& id : log_files) {
        bool kept;
        {
            std::lock_guard lk(mu_);
            kept = tasks_.contains(id);
        }
        if (!kept) {
            std::error_code rec;
            fs::remove(dir_ + "/" + id + ".log", rec);
        }
    }
    if (!loaded.empty())
        spdlog::info("task journal: {} task(s) loaded from {}, next id t-{:06d}", loaded.size(), dir_, next_);
}

void TaskManager::note_interrupted(const std::string& id, const std::string& text) {
    std::shared_ptr<Entry> e;
    api::TaskInfo snap;
    {
        std::lock_guard lk(mu_);
        auto it = tasks_.find(id);
        if (it == tasks_.end() || it->second->info.state != api::TaskState::failed || !it->second->info.error ||
            it->second->info.error->message.rfind(interrupted_message, 0) != 0)
            return;
        e = it->second;
        e->info.error->message += "; " + text;
        snap = e->info;
    }
    journal_write(snap);
    append_log(e, text, spdlog::level::warn);
}

void TaskManager::journal_write(const api::TaskInfo& t) {
    if (dir_.empty()) return;
    std::lock_guard jl(jmu_);
    if (api::is_final(t.state)) {
        std::lock_guard lk(mu_);
        if (!tasks_.contains(t.id)) return;  // trimmed meanwhile: its file is gone for good
    }
    auto path = dir_ + "/" + t.id + ".json";
    try {
        util::write_file_atomic(path, util::dump_json(nlohmann::json(t)) + '\n');  // ".<id>.json.tmp" meanwhile
    } catch (const Error& e) {
        spdlog::warn("task journal: {}", e.what());
    }
}

void TaskManager::journal_remove(const std::vector<std::string>& ids) {
    if (dir_.empty() || ids.empty()) return;
    std::lock_guard jl(jmu_);
    for (const auto& id : ids) {
        std::error_code ec;
        std::filesystem::remove(dir_ + "/" + id + ".json", ec);
        if (ec) spdlog::warn("task journal: cannot remove {}/{}.json: {}", dir_, id, ec.message());
        std::filesystem::remove(dir_ + "/" + id + ".log", ec);
    }
}

void TaskManager::publish(const api::TaskInfo& t) { bus_.publish("task", "task/" + t.id, t); }

api::TaskInfo TaskManager::submit(const std::string& kind, const std::string& target, Work work) {
    auto e = std::make_shared<Entry>();
    api::TaskInfo snap;
    std::vector<std::string> dropped;
    {
        std::lock_guard lk(mu_);
        e->info.id = node_.empty() ? fmt::format("t-{:06d}", next_++) : fmt::format("t-{:06d}@{}", next_++, node_);
        e->info.kind = kind;
        e->info.target = target;
        e->info.created_at = now_ms();
        e->info.request_id = util::log_field("REQUEST_ID");  // the request queuing it, if any
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
        // Nothing may end a task without a final state: whatever throws outside the work
        // itself (journal, log, publish) is logged, and the task is still finished.
        if (util::guarded("task runner", [&] { run_task(e, work); })) return;
        util::guarded("task runner (finishing after an internal error)", [&] {
            api::TaskInfo done;
            {
                std::lock_guard lk(mu_);
                if (api::is_final(e->info.state)) return;
                e->info.finished_at = now_ms();
                e->info.state = api::TaskState::failed;
                e->info.error = api::ErrorBody{Errc::internal, "internal error in hvd's task runner (see hvd's log)"};
                ++finished_[{e->info.kind, e->info.state}];
                done = e->info;
            }
            journal_write(done);
            publish(done);
        });
    });
    return snap;
}

void TaskManager::run_task(const std::shared_ptr<Entry>& e, const Work& work) {
    {
        api::TaskInfo started;
        {
            std::lock_guard lk(mu_);
            e->info.state = api::TaskState::running;
            e->info.started_at = now_ms();
            started = e->info;
        }
        journal_write(started);
        Ctx ctx(*this, e);
        util::LogScope scope(task_fields(started));
        append_log(e, "started");
        nlohmann::json result;
        std::optional<api::ErrorBody> err;
        try {
            if (e->cancel) throw Error(Errc::cancelled, "cancelled before it started");
            result = work(ctx);
        } catch (const Error& x) {
            err = api::ErrorBody{x.code(), x.what()};
        } catch (const std::exception& x) {
            util::report_escaped(("task " + e->info.kind).c_str(), x.what());
            err = api::ErrorBody{Errc::internal, x.what()};
        } catch (...) {
            util::report_escaped(("task " + e->info.kind).c_str(), "an exception that is not a std::exception");
            err = api::ErrorBody{Errc::internal, "internal error (an unknown exception; see hvd's log)"};
        }
        api::TaskInfo done;
        auto final_state = !err ? api::TaskState::succeeded
                                : err->code == Errc::cancelled ? api::TaskState::cancelled : api::TaskState::failed;
        {
            // The last log line comes before the final state: a reader that sees the state
            // final has every line.
            api::TaskInfo preview = started;
            preview.state = final_state;
            preview.error = err;
            append_log(e, final_line(preview), err ? spdlog::level::warn : spdlog::level::info);
        }
        {
            std::lock_guard lk(mu_);
            e->info.finished_at = now_ms();
            e->info.state = final_state;
            if (err) {
                e->info.error = err;
            } else {
                e->info.progress = 100;
                e->info.result = std::move(result);
            }
            ++finished_[{e->info.kind, final_state}];
            done = e->info;
        }
        journal_write(done);
        publish(done);
    }
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

api::TaskLog TaskManager::log(const std::string& id, std::uint64_t after) const {
    std::lock_guard lk(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) fail(Errc::not_found, "task '{}' does not exist", id);
    const auto& e = *it->second;
    api::TaskLog out;
    out.id = id;
    out.state = e.info.state;
    out.dropped = e.log_dropped;
    for (const auto& l : e.log)
        if (l.seq > after) out.lines.push_back(l);
    return out;
}

TaskManager::Counters TaskManager::counters() const {
    std::lock_guard lk(mu_);
    Counters c;
    for (auto s : {api::TaskState::pending, api::TaskState::running, api::TaskState::succeeded,
                   api::TaskState::failed, api::TaskState::cancelled})
        c.by_state[s] = 0;
    for (const auto& [_, e] : tasks_) ++c.by_state[e->info.state];
    c.finished = finished_;
    return c;
}

std::size_t TaskManager::running() const {
    std::lock_guard lk(mu_);
    std::size_t n = 0;
    for (const auto& [_, e] : tasks_)
        if (!api::is_final(e->info.state)) ++n;
    return n;
}

}  // namespace hv::daemon
