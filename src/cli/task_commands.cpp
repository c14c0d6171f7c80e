// hvctl task list | show ID | wait ID | cancel ID | log ID [--follow]
#include <memory>
#include <thread>

#include <CLI/CLI.hpp>

#include "context.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace hv::cli {

void add_task_commands(CLI::App& app, Context& ctx) {
    auto* task = app.add_subcommand("task", "Inspect and control long-running operations");
    task->require_subcommand(1);

    auto* list = task->add_subcommand("list", "List recent tasks (oldest first)");
    list->alias("ls");
    list->callback([&ctx] {
        ctx.action = [&g = ctx.g] {
            print_task_list(g, g.client().list_tasks());
            return 0;
        };
    });

    auto id = std::make_shared<std::string>();
    auto* show = task->add_subcommand("show", "Show a task");
    show->add_option("id", *id, "Task id, e.g. t-000012")->required();
    show->callback([&ctx, id] {
        ctx.action = [&g = ctx.g, id] {
            print_task(g, g.client().get_task(*id));
            return 0;
        };
    });

    auto* wait = task->add_subcommand("wait", "Wait for a task to finish; the exit code tells how it ended");
    wait->add_option("id", *id, "Task id")->required();
    wait->callback([&ctx, id] {
        ctx.action = [&g = ctx.g, id] {
            Client c = g.client();
            api::TaskInfo t = wait_for_task(c, *id);
            if (g.json()) print_json(nlohmann::json(t));
            else if (t.state == api::TaskState::succeeded) print_line(fmt::format("task {} succeeded", t.id));
            if (t.state != api::TaskState::succeeded) {
                print_error(t.error && !t.error->message.empty()
                                ? t.error->message
                                : fmt::format("task {} {}", t.id, api::to_string(t.state)));
            }
            return task_exit_code(t);
        };
    });

    auto follow = std::make_shared<bool>(false);
    auto* log = task->add_subcommand("log", "Print a task's log; with --follow, until the task ends (exit code as task wait)");
    log->add_option("id", *id, "Task id")->required();
    log->add_flag("-f,--follow", *follow, "Keep printing new lines until the task has finished");
    log->callback([&ctx, id, follow] {
        ctx.action = [&g = ctx.g, id, follow] {
            Client c = g.client();
            api::TaskLog l = c.task_log(*id);
            if (!*follow) {
                if (g.json()) print_json(nlohmann::json(l));
                else print_task_log_lines(l);
                return 0;
            }
            // Follow: one line (or JSON object) at a time; the state read with the lines says
            // when nothing more can come.
            if (!g.json() && l.dropped) print_line(fmt::format("({} older lines not kept)", l.dropped));
            std::uint64_t last = 0;
            auto wait = std::chrono::milliseconds(50);
            for (;;) {
                for (const auto& line : l.lines) {
                    if (g.json()) print_json_line(nlohmann::json(line));
                    else print_line(task_log_line_text(line));
                    last = line.seq;
                }
                if (api::is_final(l.state)) break;
                // Quick while lines come, backing off to 0.5 s while the task is quiet.
                wait = l.lines.empty() ? std::min(wait * 2, std::chrono::milliseconds(500)) : std::chrono::milliseconds(50);
                std::this_thread::sleep_for(wait);
                l = c.task_log(*id, last);
            }
            return task_exit_code(c.get_task(*id));
        };
    });

    auto* cancel = task->add_subcommand("cancel", "Ask hvd to cancel a running task");
    cancel->add_option("id", *id, "Task id")->required();
    cancel->callback([&ctx, id] {
        ctx.action = [&g = ctx.g, id] {
            api::TaskInfo t = g.client().cancel_task(*id);
            if (g.json()) print_json(nlohmann::json(t));
            else print_line(fmt::format("task {}: {}", t.id, api::is_final(t.state) ? api::to_string(t.state)
                                                                                    : "cancel requested"));
            return 0;
        };
    });
}

}  // namespace hv::cli
