// In-process publish/subscribe of hv events (VM lifecycle, tasks, daemon state).
// publish() may be called from any thread and never throws. Each event is serialized once,
// outside the lock, into its NDJSON line (the wire form of api::Event, invalid UTF-8
// replaced); subscribers get that shared line, in seq order. They run on the publisher's
// thread under the bus lock, so they must only hand the line off (e.g. post it to the I/O
// thread); an exception from one is logged and does not reach the publisher or the others.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <mutex>

#include "hv/api/task.hpp"

namespace hv::daemon {

class EventBus {
public:
    using Line = std::shared_ptr<const std::string>;
    using Handler = std::function<void(const Line& ndjson_line)>;

    std::uint64_t subscribe(Handler h);
    void unsubscribe(std::uint64_t id);
    void publish(const std::string& type, const std::string& target, const nlohmann::json& data) noexcept;
    std::uint64_t published() const { return seq_; }
    // In a cluster: every later event carries "host" and an id "e-<seq>@<host>" (unique in
    // the cluster); "" outside one.
    void set_host(const std::string& host);

private:
    std::mutex mu_;
    std::map<std::uint64_t, Handler> subs_;
    std::uint64_t next_id_ = 1;
    std::string host_text_;  // ",\"host\":\"h2\"" or ""
    std::string id_suffix_;  // "@h2" or ""
    std::atomic<std::uint64_t> seq_{0};
};

std::int64_t now_ms();

}  // namespace hv::daemon
