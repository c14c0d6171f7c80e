#include "hv/util/utf8.hpp"

#include "hv/error.hpp"

namespace hv::util {

std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
    auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    if (i >= s.size()) return 0;
    unsigned char c = b(i);
    if (c < 0x80) return 1;
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xBF;  // the valid range of the second byte
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) n = 3, lo = 0xA0;                 // no overlong 3-byte forms
    else if (c == 0xED) n = 3, hi = 0x9F;                 // no surrogates U+D800..U+DFFF
    else if (c >= 0xE1 && c <= 0xEF) n = 3;
    else if (c == 0xF0) n = 4, lo = 0x90;                 // no overlong 4-byte forms
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) n = 4, hi = 0x8F;                 // nothing above U+10FFFF
    else return 0;
    if (i + n > s.size()) return 0;
    if (b(i + 1) < lo || b(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < n; ++k)
        if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
    return n;
}

std::size_t invalid_utf8_offset(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size()) {
        // ASCII runs are the common case.
        if (static_cast<unsigned char>(s[i]) < 0x80) {
            ++i;
            continue;
        }
        std::size_t n = utf8_sequence_length(s, i);
        if (n == 0) return i;
        i += n;
    }
    return std::string_view::npos;
}

bool valid_utf8(std::string_view s) noexcept { return invalid_utf8_offset(s) == std::string_view::npos; }

std::string sanitize_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        std::size_t n = utf8_sequence_length(s, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
        } else {
            out.append(s.substr(i, n));
            i += n;
        }
    }
    return out;
}

void check_text(std::string_view s, std::string_view what, bool allow_newlines) {
    if (auto at = invalid_utf8_offset(s); at != std::string_view::npos)
        fail(Errc::invalid_input, "{} is not valid UTF-8 (byte {} of {}: 0x{:02X})", what, at + 1, s.size(),
             static_cast<unsigned char>(s[at]));
    for (std::size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (allow_newlines && (c == '\t' || c == '\n' || c == '\r')) continue;
        if (c < 0x20 || c == 0x7F)
            fail(Errc::invalid_input, "{} contains the control character 0x{:02X} at byte {}", what, c, i + 1);
    }
}

std::string dump_json(const nlohmann::json& j, int indent) {
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace hv::util
