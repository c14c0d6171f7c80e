// What a long-running operation sees of the task that runs it.
#pragma once

#include <string>

namespace hv::util {

class Progress {
public:
    virtual ~Progress() = default;
    // percent: 0-100, or -1 when not measurable. The task's current status line: frequent
    // updates (a percentage) are fine, they are not logged.
    virtual void update(int percent, const std::string& message) = 0;
    virtual bool cancelled() const = 0;
    // Appends a line to the task's log (GET /v1/tasks/{id}/log, `hvctl task log`): what was
    // done and decided, once per step, not per percent. Without a task it goes nowhere.
    virtual void log(const std::string& line) {}
    // A new step: becomes the status line and a log line.
    void step(int percent, const std::string& message) {
        update(percent, message);
        log(message);
    }
};

// For callers that do not report (tests, synchronous paths).
class NullProgress final : public Progress {
public:
    void update(int, const std::string&) override {}
    bool cancelled() const override { return false; }
};

}  // namespace hv::util
