// The stream of a volume's file between members (offline --with-local-disks, docs/migration.md):
// frames of a 4-byte big-endian length and that many bytes of the file, in order; a length
// with the top bit set is a hole (that many bytes skipped: the copy stays thin); length 0 ends
// it. Pure (no sockets): the receiver and its fuzz target (tests/fuzz/volume_stream_fuzz.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace hv::migrate {

inline constexpr std::uint32_t kFrameHoleBit = 0x80000000u;
inline constexpr std::uint32_t kMaxDataFrame = 1u << 20;  // bytes of one data frame
inline constexpr std::uint32_t kMaxHoleFrame = 1u << 30;  // bytes one hole frame skips

// Reads frames with `read` (n bytes into the buffer; false: the stream ended) and writes their
// data at their offsets into `out_fd` (pwrite), never past `limit` bytes. Returns the file's
// length (the last frame's end). Throws hv::Error: invalid_input for a bad frame or a stream
// longer than `limit`, unavailable when it ends before its end frame, internal when the file
// cannot be written.
std::uint64_t receive_frames(const std::function<bool(char*, std::size_t)>& read, int out_fd, std::uint64_t limit);

}  // namespace hv::migrate
