#include "hv/error.hpp"

#include <array>
#include <utility>

namespace hv {
namespace {
struct Row {
    Errc code;
    std::string_view name;
    int http;
    int exit;
};
// The single table: code -> wire name -> HTTP status -> hvctl exit code.
constexpr std::array<Row, 10> kTable{{
    {Errc::invalid_input, "invalid_input", 400, 3},
    {Errc::not_found, "not_found", 404, 4},
    {Errc::conflict, "conflict", 409, 5},
    {Errc::cancelled, "cancelled", 409, 9},
    {Errc::internal, "internal", 500, 1},
    {Errc::unavailable, "unavailable", 503, 6},
    {Errc::timeout, "timeout", 504, 7},
    {Errc::unsupported, "unsupported", 501, 8},
    {Errc::insufficient_space, "insufficient_space", 507, 12},
    {Errc::forbidden, "forbidden", 403, 13},
}};

const Row& row(Errc c) noexcept {
    for (const auto& r : kTable)
        if (r.code == c) return r;
    return kTable[4];
}
}  // namespace

std::string_view errc_name(Errc c) noexcept { return row(c).name; }
int http_status(Errc c) noexcept { return row(c).http; }
int exit_code(Errc c) noexcept { return row(c).exit; }

Errc errc_from_name(std::string_view name) noexcept {
    for (const auto& r : kTable)
        if (r.name == name) return r.code;
    return Errc::internal;
}

Errc errc_from_http_status(int status) noexcept {
    switch (status) {
        case 400: return Errc::invalid_input;
        case 403: return Errc::forbidden;
        case 404: return Errc::not_found;
        case 405: return Errc::invalid_input;
        case 409: return Errc::conflict;
        case 501: return Errc::unsupported;
        case 503: return Errc::unavailable;
        case 504: return Errc::timeout;
        case 507: return Errc::insufficient_space;
        default: return Errc::internal;
    }
}

}  // namespace hv
