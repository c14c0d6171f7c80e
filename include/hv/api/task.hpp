// Wire model for long-running operations (tasks) and the event stream.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hv/error.hpp"

namespace hv::api {

enum class TaskState { pending, running, succeeded, failed, cancelled };
std::string to_string(TaskState s);
TaskState task_state_from_string(const std::string& s);
inline bool is_final(TaskState s) {
    return s == TaskState::succeeded || s == TaskState::failed || s == TaskState::cancelled;
}

struct ErrorBody {
    Errc code = Errc::internal;
    std::string message;
};

struct TaskInfo {
    // Example: "t-000012".
    std::string id;
    // What runs. Example: "vm.create", "vm.shutdown", "vm.delete".
    std::string kind;
    // The object it acts on. Example: "vm/web01".
    std::string target;
    TaskState state = TaskState::pending;
    // 0-100 where measurable, -1 when not.
    int progress = -1;
    // Human status line. Example: "creating disk0 (4G)".
    std::string message;
    // Unix time in milliseconds; 0 = not yet.
    std::int64_t created_at = 0;
    std::int64_t started_at = 0;
    std::int64_t finished_at = 0;
    std::optional<ErrorBody> error;
    // The request that queued it (its X-Request-Id); empty for tasks hvd starts itself.
    // Example: "r-3f9a0c2d41b7e806".
    std::string request_id;
    // Operation-specific result (e.g. the VmInfo of a created VM); null while running.
    nlohmann::json result;
};

// One line of a task's log (GET /v1/tasks/{id}/log).
struct TaskLogLine {
    // 1, 2, 3... within the task; ?after=SEQ asks for the lines after it.
    std::uint64_t seq = 0;
    // Unix time in milliseconds.
    std::int64_t time = 0;
    // Example: "creating disk0 (4G, qcow2, eager-zeroed) in pool local".
    std::string message;
};

// GET /v1/tasks/{id}/log[?after=SEQ]. `state` is read together with the lines: once it is
// final, no line follows the last one.
struct TaskLog {
    // Example: "t-000012".
    std::string id;
    TaskState state = TaskState::pending;
    std::vector<TaskLogLine> lines;
    // Older lines no longer kept (a task keeps its last 500 lines).
    std::uint64_t dropped = 0;
};

// One line of GET /v1/events.
struct Event {
    // Unique in the cluster: "e-<seq>", with "@<host>" in a cluster. Example: "e-42@h2".
    std::string id;
    // Monotonic per hvd run. Example: 42.
    std::uint64_t seq = 0;
    // The member that published it; absent outside a cluster. Example: "h2".
    std::string host;
    // Unix time in milliseconds.
    std::int64_t time = 0;
    // "vm.lifecycle" | "vm.defined" | "vm.undefined" | "task" | "daemon".
    std::string type;
    // Example: "vm/web01", "task/t-000012".
    std::string target;
    // type-specific: vm.lifecycle -> {"state":"running","reason":"booted"}; task -> TaskInfo.
    nlohmann::json data;
    // The request whose handling or task published it (X-Request-Id); absent otherwise.
    std::string request_id;
};

void to_json(nlohmann::json& j, const ErrorBody& v);
void to_json(nlohmann::json& j, const TaskInfo& v);
void to_json(nlohmann::json& j, const Event& v);
void to_json(nlohmann::json& j, TaskState v);
ErrorBody error_body_from_json(const nlohmann::json& j);  // accepts {"error":{...}} or {...}
TaskInfo task_info_from_json(const nlohmann::json& j);
Event event_from_json(const nlohmann::json& j);
void to_json(nlohmann::json& j, const TaskLogLine& v);
void to_json(nlohmann::json& j, const TaskLog& v);
TaskLogLine task_log_line_from_json(const nlohmann::json& j);
TaskLog task_log_from_json(const nlohmann::json& j);

// {"error": {"code": "not_found", "message": "..."}}
nlohmann::json error_json(Errc code, const std::string& message);

}  // namespace hv::api
