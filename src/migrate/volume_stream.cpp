#include "volume_stream.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "hv/error.hpp"

namespace hv::migrate {

std::uint64_t receive_frames(const std::function<bool(char*, std::size_t)>& read, int out_fd, std::uint64_t limit) {
    std::vector<char> buf(kMaxDataFrame);
    std::uint64_t off = 0;
    for (;;) {
        unsigned char h[4];
        if (!read(reinterpret_cast<char*>(h), 4)) fail(Errc::unavailable, "the stream ended before its end");
        std::uint32_t len = (std::uint32_t{h[0]} << 24) | (std::uint32_t{h[1]} << 16) | (std::uint32_t{h[2]} << 8) | h[3];
        if (len == 0) return off;
        const bool hole = (len & kFrameHoleBit) != 0;
        len &= ~kFrameHoleBit;
        if (len == 0) fail(Errc::invalid_input, "an empty hole frame");
        if (len > (hole ? kMaxHoleFrame : kMaxDataFrame)) fail(Errc::invalid_input, "a {} frame of {} bytes", hole ? "hole" : "data", len);
        if (len > limit || off > limit - len) fail(Errc::invalid_input, "the copy is longer than {} bytes", limit);
        if (!hole) {
            if (!read(buf.data(), len)) fail(Errc::unavailable, "the stream ended in a frame");
            for (std::size_t done = 0; done < len;) {
                auto w = ::pwrite(out_fd, buf.data() + done, len - done, static_cast<off_t>(off + done));
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) fail(Errc::internal, "cannot write the copy: {}", w < 0 ? std::strerror(errno) : "no space");
                done += static_cast<std::size_t>(w);
            }
        }
        off += len;
    }
}

}  // namespace hv::migrate
