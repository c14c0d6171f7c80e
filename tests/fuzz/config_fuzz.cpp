// hvd's configuration file (src/daemon/config.cpp, parse_config: TOML through toml++, then the
// schema). A bad file is hv::Error(invalid_input) naming the key, never a crash.
#include "config.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    hvfuzz::expect([&] {
        auto cfg = hv::daemon::parse_config(hvfuzz::text(data, size), "/etc/hv/hvd.toml");
        if (cfg.socket.empty() || cfg.socket[0] != '/') hvfuzz::bug("parse_config", "accepted a relative socket");
        (void)cfg.effective_lxc_uri();
        (void)cfg.effective_image_dir();
    });
    return 0;
}
