// Waiting for hvd tasks: progress display on a terminal and the exit code of a finished task.
#pragma once

#include <functional>

#include "context.hpp"
#include "hv/api/task.hpp"

namespace hv::cli {

// Polls the task until it is final. When stderr is a terminal, draws a progress bar (or a
// spinner when progress is unknown) on stderr and clears it at the end; otherwise silent.
// Ctrl-C stops waiting (the task goes on in hvd) and exits 130 with a hint.
api::TaskInfo wait_for_task(Client& client, const std::string& id);

// The TaskInfo of a 202 answer; internal ("hvd sent a malformed task") when it is none.
api::TaskInfo task_from_body(const nlohmann::json& body);

// 0 for a succeeded task; else the task's error code as exit code (9 for a cancelled task
// without one, 11 for a failed task without one).
int task_exit_code(const api::TaskInfo& t);

// The common tail of task-returning commands: with `async` prints the task id (table) or
// TaskInfo (json) and returns 0; otherwise waits, prints "error: ..." and returns the exit
// code when the task did not succeed, or returns on_success(final task).
int finish_task(const Globals& g, Client& client, const api::TaskInfo& task, bool async,
                const std::function<int(const api::TaskInfo&)>& on_success);

}  // namespace hv::cli
