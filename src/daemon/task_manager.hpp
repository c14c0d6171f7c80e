// Long-running operations: each runs on the worker pool as a task with state, progress,
// times and error, visible through /v1/tasks and published as "task" events.
// With a journal directory, each task is also kept there as <id>.json (written atomically when
// it is queued, when it starts and when it ends; never on progress), so task list/show survive
// an hvd restart and ids never repeat. Tasks that were unfinished when hvd died are loaded as
// failed (error code internal).
// Each task also keeps a log: timestamped lines the operation appends (Progress::log/step)
// plus start and end lines, at most kMaxLogLines (older ones are dropped and counted). With a
// journal directory the lines are appended to <id>.log (one JSON object a line) beside
// <id>.json; the file is rewritten from memory when it reaches twice the limit, so it stays
// bounded. While a task runs, its thread carries the log fields TASK_ID, TASK_KIND and those
// of its target (VM=, POOL=...) for the journal.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/common.h>

#include "event_bus.hpp"
#include "hv/api/task.hpp"
#include "hv/util/progress.hpp"

namespace hv::daemon {

class TaskManager {
public:
    // In a cluster, new task ids carry the host: "t-000042@h2" (unique in the cluster, and
    // the dispatcher forwards /v1/tasks/{id} to that host). "" outside a cluster.
    void set_node(const std::string& node) {
        std::lock_guard lk(mu_);
        node_ = node;
    }
    // The operation: returns the task's result (JSON) or throws hv::Error.
    using Work = std::function<nlohmann::json(util::Progress&)>;

    // `journal_dir`: where the task journal lives (hvd: <state_dir>/tasks, must exist);
    // "" = in memory only. The journal is loaded here.
    TaskManager(boost::asio::thread_pool& pool, EventBus& bus, std::size_t history,
                std::string journal_dir = "");

    // The message of a task that was unfinished when hvd stopped without finishing it.
    static constexpr const char* interrupted_message =
        "hvd stopped while the task was running (it was killed or crashed); what it made was removed where hv could";

    // After an interrupted task's leftovers were rolled back (crash_recovery.cpp): adds what
    // was done to its error message and log. Only for tasks failed as interrupted.
    void note_interrupted(const std::string& id, const std::string& text);

    api::TaskInfo submit(const std::string& kind, const std::string& target, Work work);
    api::TaskInfo get(const std::string& id) const;  // throws not_found
    std::vector<api::TaskInfo> list() const;
    // Asks the task to stop at its next check point; throws conflict when already final.
    api::TaskInfo cancel(const std::string& id);
    std::size_t running() const;
    // The task's log lines with seq > after, read together with its state.
    api::TaskLog log(const std::string& id, std::uint64_t after = 0) const;  // throws not_found

    static constexpr std::size_t kMaxLogLines = 500;
    static constexpr std::size_t kMaxLogLineBytes = 1024;

    // For metrics: tasks held now by state, and tasks finished since hvd started by kind+state.
    struct Counters {
        std::map<api::TaskState, std::uint64_t> by_state;
        std::map<std::pair<std::string, api::TaskState>, std::uint64_t> finished;
    };
    Counters counters() const;
    // At daemon stop: asks every unfinished task to stop at its next check point.
    void cancel_all();

private:
    struct Entry;
    class Ctx;
    void publish(const api::TaskInfo& t);
    // The body of a task on its pool thread: start, work, log, final state, journal, publish.
    void run_task(const std::shared_ptr<Entry>& e, const Work& work);
    std::vector<std::string> trim();  // ids dropped
    void load_journal();
    // Writes <id>.json (tmp + rename); a final state is only written while the task is still
    // kept (a trimmed one stays deleted). Never call with mu_ held.
    void journal_write(const api::TaskInfo& t);
    void journal_remove(const std::vector<std::string>& ids);
    // Appends a line to the task's log (memory and <id>.log) and to hvd's log.
    void append_log(const std::shared_ptr<Entry>& e, const std::string& message,
                    spdlog::level::level_enum level = spdlog::level::info);
    void load_log(Entry& e);

    boost::asio::thread_pool& pool_;
    EventBus& bus_;
    std::size_t history_;
    mutable std::mutex mu_;
    std::map<std::string, std::shared_ptr<Entry>> tasks_;
    std::deque<std::string> order_;
    std::uint64_t next_ = 1;
    std::string node_;  // under mu_
    std::map<std::pair<std::string, api::TaskState>, std::uint64_t> finished_;
    std::string dir_;
    std::mutex jmu_;  // serialises journal file writes; taken before mu_, never while holding it
};

}  // namespace hv::daemon
