// What a long-running operation sees of the task that runs it.
#pragma once

#include <string>

namespace hv::util {

class Progress {
public:
    virtual ~Progress() = default;
    // percent: 0-100, or -1 when not measurable.
    virtual void update(int percent, const std::string& message) = 0;
    virtual bool cancelled() const = 0;
};

// For callers that do not report (tests, synchronous paths).
class NullProgress final : public Progress {
public:
    void update(int, const std::string&) override {}
    bool cancelled() const override { return false; }
};

}  // namespace hv::util
