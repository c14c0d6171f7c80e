// Sizes on the wire and on the command line: "512M", "4G", "1T", "1.5G", or plain bytes.
// Suffixes are binary (K=1024). JSON carries sizes as integer bytes; input may also be a string.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hv::api {

// Throws hv::Error(invalid_input) naming `what` on a malformed or overflowing size.
std::uint64_t parse_size(std::string_view text, std::string_view what = "size");
// Human form, exact when possible: 1073741824 -> "1G", 1610612736 -> "1.5G".
std::string format_size(std::uint64_t bytes);

}  // namespace hv::api
