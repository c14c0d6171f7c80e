// The terminal side of `hvctl ct console`: stdin/stdout <-> an upgraded hvd connection.
#pragma once

#include <string>

namespace hv::cli {

// With a terminal: raw mode, everything typed goes to the guest until the escape key
// (Ctrl+]); returns when the user detaches or the console closes (the guest stopped).
// Without a terminal (scripts, tests): stdin is sent, and once it ends the output is printed
// until the console has been quiet for `idle_s` seconds or closes.
// `pending`: bytes hvd sent with its answer. Takes ownership of fd. Returns true when the
// console was closed by hvd's side (guest stopped), false when the user/input ended it.
bool run_console(int fd, std::string pending, const std::string& what, double idle_s);

}  // namespace hv::cli
