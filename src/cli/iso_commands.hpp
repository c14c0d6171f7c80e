// hvctl storage iso list|show|upload|delete: the ISO library of the storage pools.
#pragma once

#include "context.hpp"

namespace hv::cli {

// Adds the `iso` subcommand to the `storage` command (called from storage_commands.cpp).
void add_iso_commands(CLI::App& storage, Context& ctx);

}  // namespace hv::cli
