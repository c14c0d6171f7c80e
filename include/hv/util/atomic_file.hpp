// Durable replacement of a small state file (pools.json, network.json, the task journal, hv's
// chrony sources, the autostart host settings): after write_file_atomic returns, the file holds
// `contents` and survives a crash or power loss; if it throws, or the host dies half-way, the
// old file is still there unchanged (readers never see a half-written file).
#pragma once

#include <sys/types.h>

#include <string>

namespace hv::util {

// Writes `contents` to a temp file beside `path` (".<name>.tmp" in the same directory, so
// loaders that skip dot files never see it), fsyncs it, renames it over `path`, then fsyncs the
// directory so the rename itself is on disk. The directory must exist. `mode` is the new
// file's permission bits (before the umask). Throws hv::Error(Errc::internal) naming the file
// and the failing step; the temp file is then removed.
void write_file_atomic(const std::string& path, const std::string& contents, mode_t mode = 0644);

// The temp file write_file_atomic uses for `path` (for loaders that clean up after a crash).
std::string atomic_temp_path(const std::string& path);

}  // namespace hv::util
