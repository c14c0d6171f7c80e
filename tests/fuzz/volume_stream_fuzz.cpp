// The stream of a volume's file that another member sends (GET /v1/host/volume-data, an offline
// --with-local-disks migration; src/migrate/volume_stream.cpp): the input is the stream, the
// file a memfd. Only hv::Error may end it; what it accepted is never longer than the limit, and
// the file is the stream's data at the stream's offsets.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "fuzz_common.hpp"
#include "volume_stream.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const int fd = ::memfd_create("volume", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (::ftruncate(fd, 0) != 0) return 0;
    constexpr std::uint64_t kLimit = 8ULL << 20;
    std::size_t at = 0;
    auto read = [&](char* out, std::size_t n) {
        if (size - at < n) return false;
        std::memcpy(out, data + at, n);
        at += n;
        return true;
    };
    try {
        auto len = hv::migrate::receive_frames(read, fd, kLimit);
        if (len > kLimit) hvfuzz::bug("volume stream", "accepted a copy longer than its limit");
        struct stat st {};
        if (::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) > len)
            hvfuzz::bug("volume stream", "wrote past the length it returned");
    } catch (const hv::Error& e) {
        if (e.code() != hv::Errc::invalid_input && e.code() != hv::Errc::unavailable)
            hvfuzz::bug("volume stream", std::string("unexpected error code: ") + e.what());
    }
    return 0;
}
