// The verbs `hvctl vm` and `hvctl ct` share, built from one definition per kind of guest
// (guest_commands.cpp: noun, client calls, printers, help texts): list, show, the power
// actions, shutdown, set, delete, and the end of create. What only one kind has (create's
// options, vm disk|cdrom|nic, ct exec|console|template) stays in vm_commands.cpp and
// ct_commands.cpp.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "context.hpp"
#include "hv/api/task.hpp"

namespace hv::cli {

// Registers `fn` as the action of `cmd`; `fn` runs after parsing succeeded.
template <typename F>
void on_run(CLI::App* cmd, Context& ctx, F fn) {
    cmd->callback([&ctx, fn] { ctx.action = fn; });
}

enum class GuestType { vm, ct };

// Adds list, show, the power actions, shutdown, set and delete to `parent` (`hvctl vm` or
// `hvctl ct`), in that order.
void add_guest_verbs(CLI::App& parent, Context& ctx, GuestType type);

// The end of `create`: waits for the task unless `async`; then "created vm NAME (UUID)" and,
// with `start`, starts the new guest ("... was created but did not start" when that fails);
// with -o json the guest last.
int finish_create(const Globals& g, Client& c, GuestType type, const api::TaskInfo& task, const std::string& name,
                  bool async, bool start);

}  // namespace hv::cli
