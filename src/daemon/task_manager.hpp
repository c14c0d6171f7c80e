// Long-running operations: each runs on the worker pool as a task with state, progress,
// times and error, visible through /v1/tasks and published as "task" events.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "event_bus.hpp"
#include "hv/api/task.hpp"
#include "hv/util/progress.hpp"

namespace hv::daemon {

class TaskManager {
public:
    // The operation: returns the task's result (JSON) or throws hv::Error.
    using Work = std::function<nlohmann::json(util::Progress&)>;

    TaskManager(boost::asio::thread_pool& pool, EventBus& bus, std::size_t history);

    api::TaskInfo submit(const std::string& kind, const std::string& target, Work work);
    api::TaskInfo get(const std::string& id) const;  // throws not_found
    std::vector<api::TaskInfo> list() const;
    // Asks the task to stop at its next check point; throws conflict when already final.
    api::TaskInfo cancel(const std::string& id);
    std::size_t running() const;
    // At daemon stop: asks every unfinished task to stop at its next check point.
    void cancel_all();

private:
    struct Entry;
    class Ctx;
    void publish(const api::TaskInfo& t);
    void trim();

    boost::asio::thread_pool& pool_;
    EventBus& bus_;
    std::size_t history_;
    mutable std::mutex mu_;
    std::map<std::string, std::shared_ptr<Entry>> tasks_;
    std::deque<std::string> order_;
    std::uint64_t next_ = 1;
};

}  // namespace hv::daemon
