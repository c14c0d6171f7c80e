#include "event_bus.hpp"

#include <chrono>
#include <vector>

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

void EventBus::publish(const std::string& type, const std::string& target, nlohmann::json data) {
    // seq is taken under the lock so every subscriber sees events in seq order.
    std::lock_guard lk(mu_);
    api::Event ev{++seq_, now_ms(), type, target, std::move(data)};
    for (auto& [_, h] : subs_) h(ev);
}

}  // namespace hv::daemon
