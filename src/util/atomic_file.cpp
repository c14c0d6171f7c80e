#include "hv/util/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <mutex>

#include "hv/error.hpp"
#include "hv/util/fd.hpp"

namespace hv::util {
namespace {

// Two threads writing one file at once would share its temp file (one truncates what the
// other wrote, the second rename finds nothing): writers of a path take turns, by a lock
// chosen by the path's hash (a fixed set, so nothing grows with the names written).
std::mutex& lock_of(const std::string& path) {
    static std::array<std::mutex, 64> locks;
    return locks[std::hash<std::string>{}(path) % locks.size()];
}

std::string dir_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

[[noreturn]] void fail_step(const std::string& what, const std::string& file, int err, const std::string& tmp) {
    if (!tmp.empty()) ::unlink(tmp.c_str());
    fail(Errc::internal, "cannot {} {}: {}", what, file, std::strerror(err));
}

}  // namespace

std::string atomic_temp_path(const std::string& path) {
    auto slash = path.rfind('/');
    auto name = slash == std::string::npos ? path : path.substr(slash + 1);
    auto dir = slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
    return dir + "." + name + ".tmp";
}

void write_file_atomic(const std::string& path, const std::string& contents, mode_t mode) {
    if (path.empty() || path.back() == '/') fail(Errc::internal, "cannot write state file '{}': not a file name", path);
    const auto tmp = atomic_temp_path(path);
    std::lock_guard turn(lock_of(path));
    {
        UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
        if (!fd.ok()) fail_step("create", tmp, errno, "");
        std::size_t off = 0;
        while (off < contents.size()) {
            ssize_t w = ::write(fd.fd, contents.data() + off, contents.size() - off);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) fail_step("write", tmp, errno, tmp);
            off += static_cast<std::size_t>(w);
        }
        if (::fsync(fd.fd) != 0) fail_step("fsync", tmp, errno, tmp);
        int raw = fd.fd;
        fd.fd = -1;
        if (::close(raw) != 0) fail_step("close", tmp, errno, tmp);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail_step("rename " + tmp + " to", path, errno, tmp);
    const auto dir = dir_of(path);
    UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dfd.ok()) fail_step("open directory", dir + " (to make the new " + path + " durable)", errno, "");
    if (::fsync(dfd.fd) != 0) fail_step("fsync directory", dir + " (after replacing " + path + ")", errno, "");
}

}  // namespace hv::util
