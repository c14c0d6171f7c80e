// An owned file descriptor, closed when it leaves scope.
#pragma once

#include <unistd.h>

namespace hv::util {

struct UniqueFd {
    int fd = -1;
    explicit UniqueFd(int f = -1) : fd(f) {}
    ~UniqueFd() {
        if (fd >= 0) ::close(fd);
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    bool ok() const { return fd >= 0; }
};

}  // namespace hv::util
