// The one guarded entry for code that runs where an exception must not go on: a thread's
// body, a task, a C callback from libvirt, an Asio handler, an event subscriber, a log line.
// An exception that reaches it is logged with `where` and counted (hv_escaped_exceptions_total
// in /v1/metrics), never rethrown: such an exception is a bug in hv, and hvd goes on.
#pragma once

#include <cstdint>
#include <exception>
#include <utility>

namespace hv::util {

// Logs (and counts) an exception caught at an entry; never throws, also when logging fails.
void report_escaped(const char* where, const char* what) noexcept;
// How many exceptions reached a guarded entry since hvd started.
std::uint64_t escaped_exceptions() noexcept;

// Runs f(); true when it returned normally, false when it threw (logged as escaped).
template <typename F>
bool guarded(const char* where, F&& f) noexcept {
    try {
        std::forward<F>(f)();
        return true;
    } catch (const std::exception& e) {
        report_escaped(where, e.what());
    } catch (...) {
        report_escaped(where, "an exception that is not a std::exception");
    }
    return false;
}

}  // namespace hv::util
