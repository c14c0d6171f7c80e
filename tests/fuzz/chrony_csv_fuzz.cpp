// chronyd's answers as hvd reads them (src/time/chrony_csv.cpp): `chronyc -c tracking`,
// `chronyc -c sources` and hv's sources file, then the status hvd builds from them. chronyc's
// output is not hvd's to trust either: bad text is hv::Error(internal), never a crash. The
// input is three parts separated by NUL bytes: tracking, sources, sources file.
#include "chrony_csv.hpp"
#include "fuzz_common.hpp"

namespace chrony = hv::time;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto part = hvfuzz::nul_parts<3>(hvfuzz::text(data, size));
    const std::initializer_list<hv::Errc> codes = {hv::Errc::internal, hv::Errc::invalid_input};
    chrony::Tracking t;
    std::vector<chrony::SourceLine> live;
    std::vector<chrony::SourceEntry> configured;
    bool have_t = hvfuzz::expect([&] { t = chrony::parse_tracking(part[0]); }, codes);
    hvfuzz::expect([&] { live = chrony::parse_sources(part[1]); }, codes);
    hvfuzz::expect([&] { configured = chrony::parse_sources_file(part[2]); }, codes);
    hvfuzz::expect([&] {
        (void)chrony::leap_name(t.leap);
        for (const auto& s : live) (void)chrony::state_name(s.state);
        auto status = chrony::merge_status(have_t, t, live, configured, 1764700000);
        // Status text from chronyc may hold any bytes: the daemon renders it leniently.
        nlohmann::json j = status;
        (void)j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }, codes);
    return 0;
}
