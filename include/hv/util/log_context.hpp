// Structured fields of the log lines a thread writes: hvd's journal sink adds them to every
// record as journal fields (VM=web01, TASK_ID=t-000012, POOL=local), so
// `journalctl -u hvd VM=web01` finds everything about one VM.
// A LogScope sets fields for the calling thread until it leaves scope (nested scopes add to or
// override the outer ones and restore them). The task runner opens one per task, the per-VM
// operation lock one per VM operation.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace hv::util {

using LogFields = std::vector<std::pair<std::string, std::string>>;

class LogScope {
public:
    // Field names must be journal field names: A-Z, 0-9 and '_', not starting with '_' or a
    // digit, at most 64 characters; others are dropped (they would be rejected by journald).
    explicit LogScope(const LogFields& fields);
    ~LogScope();
    LogScope(const LogScope&) = delete;
    LogScope& operator=(const LogScope&) = delete;

private:
    std::size_t restore_size_;
    LogFields replaced_;  // outer values this scope overrode
};

// The calling thread's fields, outermost first, each name once.
const LogFields& log_fields();
// The value of one of them ("" when unset): REQUEST_ID carries a request's id into the tasks
// it queues and the events published while it is handled.
std::string log_field(const std::string& name);

bool valid_journal_field_name(const std::string& name);

// Fields for a task or operation target: "vm/web01" -> VM=web01, "volume/local/d1" ->
// POOL=local VOLUME=d1, "pool/fast" -> POOL=fast, "ct/c1" -> CT=c1; anything else -> none.
LogFields target_log_fields(const std::string& target);

}  // namespace hv::util
