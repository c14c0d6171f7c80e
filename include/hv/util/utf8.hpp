// Text from outside hvd (HTTP paths, queries, headers, JSON bodies, file names read from disk,
// program output) is not trusted to be UTF-8. The rule, decided once here:
//   - where text enters (the HTTP boundary, a JSON body), invalid UTF-8 is refused with 400
//     and never used (`valid_utf8`, `check_text`);
//   - where text leaves (JSON responses, events, journals, logs), rendering never throws:
//     invalid sequences that still arrive (a file name on disk, a program's output) are
//     replaced by U+FFFD (`sanitize_utf8`, `dump_json`).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hv::util {

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) noexcept;
// Offset of the first byte that is not part of a valid sequence; npos when all is valid.
std::size_t invalid_utf8_offset(std::string_view s) noexcept;
// A copy with every invalid sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view s);
// Length in bytes of the valid UTF-8 sequence that starts at s[i] (1 for ASCII), 0 when none does.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept;
// Refuses (400, invalid_input) text that is not valid UTF-8 or holds control characters
// (U+0000..U+001F, U+007F); `what` names it in the message ("path segment 3").
// allow_newlines: tabs and line breaks are accepted (free text such as a description).
void check_text(std::string_view s, std::string_view what, bool allow_newlines = false);

// JSON text of j that never throws on invalid UTF-8 (replaced by U+FFFD).
std::string dump_json(const nlohmann::json& j, int indent = -1);

}  // namespace hv::util
