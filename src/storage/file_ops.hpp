// File primitives of the file-based pool backends (dir, btrfs): reserving, zeroing, copying.
#pragma once

#include <cstdint>
#include <string>

#include "hv/util/progress.hpp"

namespace hv::storage::fileops {

// Reports "zeroing NAME: 42% (1.2G of 20G), 2.1 GiB/s, ETA 9 s" at most 4 times a second,
// and logs it to the task log at each 10 %.
class ZeroProgress {
public:
    ZeroProgress(util::Progress& p, std::string label, std::uint64_t total);
    // Adds done bytes; throws Error(cancelled) when the task was cancelled.
    void add(std::uint64_t bytes);
    double seconds() const;
    std::uint64_t done() const { return done_; }

private:
    util::Progress& p_;
    std::string label_;
    std::uint64_t total_;
    std::uint64_t done_ = 0;
    double start_;
    double last_report_ = 0;
    int logged_decile_ = 0;  // the task log gets a line every 10 %
};

// Reserves [offset, offset+len) with fallocate(mode 0). Returns false when the filesystem
// cannot reserve (EOPNOTSUPP); throws insufficient_space on ENOSPC, internal otherwise.
bool reserve(int fd, std::uint64_t offset, std::uint64_t len, const std::string& path);

// Writes zeros over every range of [from, to) that is not yet written data: unwritten
// (preallocated) extents and holes, found with FIEMAP. With `whole` (or when FIEMAP is
// unavailable) writes the whole range. Large aligned O_DIRECT writes; fdatasync at the end.
// Never writes over data extents, so it is safe on qcow2 files (metadata is data).
void zero_fill(const std::string& path, std::uint64_t from, std::uint64_t to, ZeroProgress& progress);

// Virtual size of a qcow2 image (from its header), or 0 when `path` is not qcow2.
std::uint64_t qcow2_virtual_size(const std::string& path);
// The backing file named in a qcow2 image's header (as written, usually absolute), or "" when
// it has none or `path` is not qcow2.
std::string qcow2_backing_file(const std::string& path);

// Copies src to a new file dst (which must not exist): a reflink (FICLONE) when allowed and
// the filesystem can, else a sparse-preserving copy (SEEK_DATA/SEEK_HOLE + copy_file_range)
// with progress. Reflink::require fails with unsupported instead of copying.
// Returns true when reflinked.
enum class Reflink { never, prefer, require };
bool copy_file(const std::string& src, const std::string& dst, Reflink reflink, util::Progress& progress);

// Bytes the file occupies (st_blocks * 512).
std::uint64_t allocated_bytes(const std::string& path);

// hv's provisioning record on a volume file (xattr user.hv.provision). Empty when absent.
std::string get_tag(const std::string& path);
bool set_tag(const std::string& path, const std::string& value);

}  // namespace hv::storage::fileops
