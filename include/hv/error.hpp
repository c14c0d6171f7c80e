// hv::Error — the one error type of hv. Every failure that reaches a user carries
// a code; the code decides the HTTP status (daemon) and the exit code (hvctl).
// The mapping lives only here and in src/api/error.cpp.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace hv {

enum class Errc {
    invalid_input,   // 400: malformed or out-of-range input; nothing was changed
    not_found,       // 404: the named object does not exist
    conflict,        // 409: already exists, wrong state, busy
    cancelled,       // 409: a task was cancelled by the user
    internal,        // 500: a bug or an unexpected failure of a component
    unavailable,     // 503: libvirt (or another backend) is unreachable right now
    timeout,         // 504: an operation did not finish within its time limit
    unsupported,     // 501: the host or backend cannot do this (kernel feature, driver)
    insufficient_space,  // 507: the pool has not enough free space for what was asked
    forbidden,           // 403: the caller may not do this (e.g. a join certificate asking for more than a join)
};

// Wire name, e.g. "not_found".
std::string_view errc_name(Errc c) noexcept;
// Inverse of errc_name; unknown names map to Errc::internal.
Errc errc_from_name(std::string_view name) noexcept;
int http_status(Errc c) noexcept;
// Exit code of hvctl for an error of this code (documented in README.md).
int exit_code(Errc c) noexcept;
// Code for an HTTP status received without a well-formed error body.
Errc errc_from_http_status(int status) noexcept;

class Error : public std::runtime_error {
public:
    Error(Errc code, std::string message) : std::runtime_error(std::move(message)), code_(code) {}
    Errc code() const noexcept { return code_; }

private:
    Errc code_;
};

template <typename... Args>
[[noreturn]] void fail(Errc code, fmt::format_string<Args...> f, Args&&... args) {
    throw Error(code, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace hv
