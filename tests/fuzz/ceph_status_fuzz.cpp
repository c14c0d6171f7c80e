// Ceph status documents (src/storage/ceph_status.cpp): the whole input is what the monitors
// answer to {"prefix": "status"} (an rbd pool's health, hvctl ceph status) or to
// {"prefix": "osd tree"} (the hosts with OSDs). Bad input ends in invalid_input; an accepted
// document gives sentences that render as JSON (PoolInfo::warnings, CephStatus).
#include "ceph_status.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string in = hvfuzz::text(data, size);
    hv::storage::CephHealth h;
    if (hvfuzz::expect([&] { h = hv::storage::parse_ceph_status(in); })) {
        auto words = hv::storage::health_words(h);
        if (words.size() > 64) hvfuzz::bug("health words", "more than 64 sentences");
        hvfuzz::render(nlohmann::json{{"warnings", words}, {"status", h.status}, {"quorum", h.quorum_names}});
    }
    hv::storage::CephTree t;
    if (hvfuzz::expect([&] { t = hv::storage::parse_osd_tree(in); })) {
        nlohmann::json osds = nlohmann::json::array();
        for (const auto& o : t.osds) osds.push_back({{"id", o.id}, {"host", o.host}, {"up", o.up}, {"in", o.in}});
        hvfuzz::render(nlohmann::json{{"osds", osds}, {"hosts", t.hosts_with_osds}});
    }
    return 0;
}
