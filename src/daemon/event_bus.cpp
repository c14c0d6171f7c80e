#include "event_bus.hpp"

#include <chrono>
#include <vector>

#include <fmt/format.h>

#include "hv/util/guard.hpp"
#include "hv/util/log_context.hpp"
#include "hv/util/utf8.hpp"

namespace hv::daemon {

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::uint64_t EventBus::subscribe(Handler h) {
    std::lock_guard lk(mu_);
    auto id = next_id_++;
    subs_[id] = std::move(h);
    return id;
}

void EventBus::unsubscribe(std::uint64_t id) {
    std::lock_guard lk(mu_);
    subs_.erase(id);
}

void EventBus::set_host(const std::string& host) {
    std::lock_guard lk(mu_);
    host_text_ = host.empty() ? std::string() : ",\"host\":" + util::dump_json(host);
    id_suffix_ = host.empty() ? std::string() : "@" + host;
}

void EventBus::publish(const std::string& type, const std::string& target, const nlohmann::json& data) noexcept {
    util::guarded("event publish", [&] {
        // The costly part (the data) is rendered outside the lock; seq and time are taken
        // under it so every subscriber sees events in seq order. Keys in the order
        // nlohmann::json(api::Event) writes them.
        std::string data_text = util::dump_json(data);
        std::string type_text = util::dump_json(type), target_text = util::dump_json(target);
        // Published while a request (or a task it queued) runs: the request's id goes along.
        auto rid = util::log_field("REQUEST_ID");
        std::string rid_text = rid.empty() ? std::string() : ",\"request_id\":" + util::dump_json(rid);
        std::lock_guard lk(mu_);
        auto seq = ++seq_;
        // id "e-42@h2" needs no escaping: the host name is a validated node name.
        auto line = std::make_shared<const std::string>(
            fmt::format(R"({{"data":{}{},"id":"e-{}{}"{},"seq":{},"target":{},"time":{},"type":{}}})"
                        "\n",
                        data_text, host_text_, seq, id_suffix_, rid_text, seq, target_text, now_ms(), type_text));
        for (auto& sub : subs_) util::guarded("event subscriber", [&] { sub.second(line); });
    });
}

}  // namespace hv::daemon
