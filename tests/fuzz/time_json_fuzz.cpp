// PUT /v1/time (src/api/time.cpp) through to hv's chrony sources file (src/time/chrony_csv.cpp):
// accepted settings are validated, rendered back, written as a sources file and read back,
// which must give the same entries (a host name can never add a line or an option).
#include "chrony_csv.hpp"
#include "fuzz_common.hpp"
#include "hv/api/time.hpp"

namespace api = hv::api;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto j = hvfuzz::parse_json(hvfuzz::text(data, size));
    if (!j) return 0;
    hvfuzz::expect([&] {
        auto s = api::time_settings_from_json(*j);
        hvfuzz::render_value(s);
        api::validate(s);
        auto entries = hv::time::entries_of(s);
        auto file = hv::time::render_sources_file(entries, "minpoll 6 maxpoll 10");
        auto back = hv::time::parse_sources_file(file);
        if (back.size() != entries.size()) hvfuzz::bug("sources file", "entries changed in a round trip:\n" + file);
        for (std::size_t i = 0; i < back.size(); ++i)
            if (back[i].mode != entries[i].mode || back[i].host != entries[i].host || back[i].port != entries[i].port ||
                back[i].iburst != entries[i].iburst)
                hvfuzz::bug("sources file", "entry " + std::to_string(i) + " changed in a round trip:\n" + file);
    });
    return 0;
}
