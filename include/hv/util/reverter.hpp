// RAII reverter: register an undo step after each side effect of a multi-step operation;
// on success call release(); otherwise the destructor runs the undo steps in reverse order.
#pragma once

#include <functional>
#include <utility>
#include <vector>

namespace hv::util {

class Reverter {
public:
    Reverter() = default;
    Reverter(const Reverter&) = delete;
    Reverter& operator=(const Reverter&) = delete;
    ~Reverter() { revert(); }

    void add(std::function<void()> undo) { steps_.push_back(std::move(undo)); }
    void release() noexcept { steps_.clear(); }
    // Undo steps must not throw; if one does, the rest still run.
    void revert() noexcept {
        while (!steps_.empty()) {
            auto f = std::move(steps_.back());
            steps_.pop_back();
            try {
                f();
            } catch (...) {
            }
        }
    }

private:
    std::vector<std::function<void()>> steps_;
};

}  // namespace hv::util
