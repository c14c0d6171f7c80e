// In-process publish/subscribe of hv events (VM lifecycle, tasks, daemon state).
// publish() may be called from any thread; subscribers must only hand the event off
// (e.g. post it to the I/O thread) because they run on the publisher's thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>

#include "hv/api/task.hpp"

namespace hv::daemon {

class EventBus {
public:
    using Handler = std::function<void(const api::Event&)>;

    std::uint64_t subscribe(Handler h);
    void unsubscribe(std::uint64_t id);
    void publish(const std::string& type, const std::string& target, nlohmann::json data);
    std::uint64_t published() const { return seq_; }

private:
    std::mutex mu_;
    std::map<std::uint64_t, Handler> subs_;
    std::uint64_t next_id_ = 1;
    std::atomic<std::uint64_t> seq_{0};
};

std::int64_t now_ms();

}  // namespace hv::daemon
