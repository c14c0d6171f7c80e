// etcd's JSON gateway answers (src/cluster/etcd_json.cpp): whatever etcd (or anything posing as
// it) sends, a parser returns a value or throws hv::Error — internal for a malformed answer, the
// mapped code for an etcd error reply — and never crashes. The first byte selects the parser
// (seeds: tests/data/etcd/<letter>-*.json, answers captured from a real etcd 3.4).
#include "etcd_json.hpp"
#include "fuzz_common.hpp"

namespace ej = hv::cluster::etcd_json;
using hv::Errc;

namespace {

constexpr std::initializer_list<Errc> kEtcdErrors = {Errc::internal, Errc::not_found, Errc::invalid_input,
                                                     Errc::conflict, Errc::unavailable, Errc::timeout};

void check_sorted(const std::vector<hv::cluster::KeyValue>& kvs) {
    for (std::size_t i = 1; i < kvs.size(); ++i)
        if (kvs[i - 1].key > kvs[i].key) hvfuzz::bug("range", "keys out of order");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto which = hvfuzz::select(data, size, 12);
    auto in = hvfuzz::text(data, size);
    hvfuzz::expect(
        [&] {
            if (which == 9) {  // j: the watch stream, one answer a line
                std::size_t p = 0;
                while (p <= in.size()) {
                    auto nl = in.find('\n', p);
                    auto line = in.substr(p, nl == std::string::npos ? std::string::npos : nl - p);
                    p = nl == std::string::npos ? in.size() + 1 : nl + 1;
                    if (line.empty()) continue;
                    auto w = ej::parse_watch_line(line);
                    for (std::size_t i = 1; i < w.events.size(); ++i)
                        if (w.events[i].kv.mod_revision < w.events[i - 1].kv.mod_revision)
                            hvfuzz::bug("watch", "events out of revision order");
                }
                return;
            }
            if (which == 11) {  // l: base64 round trip of arbitrary bytes, then decoding the input
                if (ej::base64_decode(ej::base64_encode(in)) != in) hvfuzz::bug("base64", "round trip changed the bytes");
                ej::base64_decode(in);
                return;
            }
            auto j = ej::parse_answer(in, which == 10 ? 503 : 200);
            switch (which) {
                case 0: check_sorted(ej::parse_range(j).kvs); break;
                case 1: ej::parse_put(j); break;
                case 2: ej::parse_deleterange(j); break;
                case 3: for (const auto& r : ej::parse_txn(j).responses) check_sorted(r); break;
                case 4: ej::parse_lease_grant(j); break;
                case 5: ej::parse_keepalive(j); break;
                case 6: ej::parse_member_list(j); break;
                case 7: {
                    auto [id, members] = ej::parse_member_add(j);
                    if (id == 0) hvfuzz::bug("member add", "member id 0 accepted");
                    break;
                }
                case 8: ej::parse_status(j); break;
                default: break;  // k: error replies (parse_answer with an error status)
            }
        },
        kEtcdErrors);
    return 0;
}
