// Ceph status documents (src/storage/ceph_status.cpp): the whole input is what the monitors
// answer to {"prefix": "status"} for an rbd pool's health. Bad input ends in invalid_input;
// an accepted document gives sentences that render as JSON (PoolInfo::warnings).
#include "ceph_status.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string in = hvfuzz::text(data, size);
    hv::storage::CephHealth h;
    if (!hvfuzz::expect([&] { h = hv::storage::parse_ceph_status(in); })) return 0;
    auto words = hv::storage::health_words(h);
    if (words.size() > 64) hvfuzz::bug("health words", "more than 64 sentences");
    hvfuzz::render(nlohmann::json{{"warnings", words}, {"status", h.status}});
    return 0;
}
