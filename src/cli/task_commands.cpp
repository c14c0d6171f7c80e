// hvctl task list | show ID | wait ID | cancel ID
#include <memory>

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
