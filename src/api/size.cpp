#include "hv/api/size.hpp"

#include <cctype>
#include <cmath>
#include <limits>

#include "hv/error.hpp"

namespace hv::api {

std::uint64_t parse_size(std::string_view text, std::string_view what) {
    auto bad = [&](std::string_view why) {
        fail(Errc::invalid_input, "invalid {} '{}': {} (use e.g. 512M, 4G, 1T or bytes)", what, text, why);
    };
    std::size_t i = 0;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    std::string_view num = text.substr(0, i);
    std::string_view unit = text.substr(i);
    if (num.empty()) bad("no number");
    if (num.find('.') != num.rfind('.')) bad("more than one decimal point");
    std::uint64_t mult = 1;
    if (!unit.empty()) {
        char u = static_cast<char>(std::toupper(static_cast<unsigned char>(unit[0])));
        std::string_view rest = unit.substr(1);
        switch (u) {
            case 'B': mult = 1; if (!rest.empty()) bad("unknown unit"); rest = {}; break;
            case 'K': mult = 1ULL << 10; break;
            case 'M': mult = 1ULL << 20; break;
            case 'G': mult = 1ULL << 30; break;
            case 'T': mult = 1ULL << 40; break;
            case 'P': mult = 1ULL << 50; break;
            default: bad("unknown unit");
        }
        if (!rest.empty() && rest != "B" && rest != "iB" && rest != "b" && rest != "ib") bad("unknown unit");
    }
    long double value = 0;
    try {
        value = std::stold(std::string(num));
    } catch (...) {
        bad("not a number");
    }
    long double bytes = value * static_cast<long double>(mult);
    if (bytes > static_cast<long double>(std::numeric_limits<std::int64_t>::max())) bad("too large");
    if (bytes != std::floor(bytes)) bad("not a whole number of bytes");
    return static_cast<std::uint64_t>(bytes);
}

std::string format_size(std::uint64_t bytes) {
    static constexpr const char* units[] = {"", "K", "M", "G", "T", "P"};
    int u = 0;
    long double v = static_cast<long double>(bytes);
    while (u < 5 && v >= 1024) {
        v /= 1024;
        ++u;
    }
    if (u == 0) return std::to_string(bytes) + "B";
    if (v == std::floor(v)) return fmt::format("{}{}", static_cast<std::uint64_t>(v), units[u]);
    return fmt::format("{:.1f}{}", static_cast<double>(v), units[u]);
}

}  // namespace hv::api
