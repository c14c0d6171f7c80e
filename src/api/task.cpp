#include "hv/api/task.hpp"

namespace hv::api {
using nlohmann::json;

std::string to_string(TaskState s) {
    switch (s) {
        case TaskState::pending: return "pending";
        case TaskState::running: return "running";
        case TaskState::succeeded: return "succeeded";
        case TaskState::failed: return "failed";
        case TaskState::cancelled: return "cancelled";
    }
    return "failed";
}
TaskState task_state_from_string(const std::string& s) {
    for (auto v : {TaskState::pending, TaskState::running, TaskState::succeeded, TaskState::failed, TaskState::cancelled})
        if (to_string(v) == s) return v;
    return TaskState::failed;
}
void to_json(json& j, TaskState v) { j = to_string(v); }

void to_json(json& j, const ErrorBody& v) { j = json{{"code", errc_name(v.code)}, {"message", v.message}}; }

json error_json(Errc code, const std::string& message) {
    return json{{"error", ErrorBody{code, message}}};
}

ErrorBody error_body_from_json(const json& j) {
    const json& e = (j.is_object() && j.contains("error") && j["error"].is_object()) ? j["error"] : j;
    ErrorBody b;
    if (e.is_object()) {
        b.code = errc_from_name(e.value("code", std::string("internal")));
        b.message = e.value("message", std::string());
    }
    return b;
}

void to_json(json& j, const TaskInfo& v) {
    j = json{{"id", v.id},
             {"kind", v.kind},
             {"target", v.target},
             {"state", v.state},
             {"progress", v.progress},
             {"message", v.message},
             {"created_at", v.created_at},
             {"started_at", v.started_at},
             {"finished_at", v.finished_at},
             {"error", v.error ? json(*v.error) : json(nullptr)},
             {"result", v.result}};
    if (!v.request_id.empty()) j["request_id"] = v.request_id;
}

TaskInfo task_info_from_json(const json& j) {
    TaskInfo t;
    t.id = j.value("id", "");
    t.kind = j.value("kind", "");
    t.target = j.value("target", "");
    t.state = task_state_from_string(j.value("state", "failed"));
    t.progress = j.value("progress", -1);
    t.message = j.value("message", "");
    t.created_at = j.value("created_at", std::int64_t{0});
    t.started_at = j.value("started_at", std::int64_t{0});
    t.finished_at = j.value("finished_at", std::int64_t{0});
    if (j.contains("error") && j["error"].is_object()) t.error = error_body_from_json(j["error"]);
    if (j.contains("result")) t.result = j["result"];
    t.request_id = j.value("request_id", "");
    return t;
}

void to_json(json& j, const Event& v) {
    j = json{{"id", v.id}, {"seq", v.seq}, {"time", v.time}, {"type", v.type}, {"target", v.target}, {"data", v.data}};
    if (!v.host.empty()) j["host"] = v.host;
    if (!v.request_id.empty()) j["request_id"] = v.request_id;
}

Event event_from_json(const json& j) {
    Event e;
    e.seq = j.value("seq", std::uint64_t{0});
    e.id = j.value("id", "");
    e.host = j.value("host", "");
    e.time = j.value("time", std::int64_t{0});
    e.type = j.value("type", "");
    e.target = j.value("target", "");
    if (j.contains("data")) e.data = j["data"];
    e.request_id = j.value("request_id", "");
    return e;
}

void to_json(json& j, const TaskLogLine& v) { j = json{{"seq", v.seq}, {"time", v.time}, {"message", v.message}}; }

void to_json(json& j, const TaskLog& v) {
    j = json{{"id", v.id}, {"state", to_string(v.state)}, {"lines", v.lines}, {"dropped", v.dropped}};
}

TaskLogLine task_log_line_from_json(const json& j) {
    TaskLogLine l;
    l.seq = j.at("seq").get<std::uint64_t>();
    l.time = j.value("time", std::int64_t{0});
    l.message = j.value("message", "");
    return l;
}

TaskLog task_log_from_json(const json& j) {
    TaskLog t;
    t.id = j.at("id").get<std::string>();
    t.state = task_state_from_string(j.at("state").get<std::string>());
    for (const auto& l : j.value("lines", json::array())) t.lines.push_back(task_log_line_from_json(l));
    t.dropped = j.value("dropped", std::uint64_t{0});
    return t;
}

}  // namespace hv::api
