// hvctl vm snapshot: what unit tests reach of it.
#pragma once

#include <vector>

#include "format.hpp"
#include "hv/api/snapshot.hpp"

namespace hv::cli {

// The rows of `vm snapshot list` (NAME indented by depth, " *" on the current one; PARENT,
// CREATED, MEMORY, STATE, DESCRIPTION), in tree order.
std::vector<Row> snapshot_rows(const std::vector<api::SnapshotInfo>& list);

}  // namespace hv::cli
