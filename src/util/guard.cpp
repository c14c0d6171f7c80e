#include "hv/util/guard.hpp"

#include <atomic>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "hv/util/utf8.hpp"

namespace hv::util {
namespace {
std::atomic<std::uint64_t> g_escaped{0};
}

void report_escaped(const char* where, const char* what) noexcept {
    g_escaped.fetch_add(1, std::memory_order_relaxed);
    try {
        spdlog::error("internal error in {}: {} (hvd goes on)", where, sanitize_utf8(what ? what : ""));
    } catch (...) {
        std::fprintf(stderr, "hvd: internal error in %s (and logging it failed)\n", where);
    }
}

std::uint64_t escaped_exceptions() noexcept { return g_escaped.load(std::memory_order_relaxed); }

}  // namespace hv::util
