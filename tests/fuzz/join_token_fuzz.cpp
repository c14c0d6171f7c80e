// Join tokens (src/cluster/pki.cpp, decode_token): the whole input is the token text a user
// pastes into `hvctl cluster join`. Bad input ends in invalid_input; an accepted token renders
// as JSON and survives encode_token + decode_token unchanged.
#include "fuzz_common.hpp"
#include "pki.hpp"

namespace pki = hv::cluster::pki;
using nlohmann::json;

namespace {
json as_json(const pki::JoinToken& t) {
    return json{{"cluster", t.cluster},   {"id", t.id},         {"addresses", t.addresses},
                {"ca_fingerprint", t.ca_fingerprint}, {"expires", t.expires}, {"ca_pem", t.ca_pem},
                {"cert_pem", t.cert_pem}, {"key_pem", t.key_pem}};
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string in = hvfuzz::text(data, size);
    pki::JoinToken t;
    if (!hvfuzz::expect([&] { t = pki::decode_token(in); })) return 0;
    json j = as_json(t);
    hvfuzz::render(j);
    // Re-encoding never grows the text (compact JSON, no escapes a decoder needs), so it must
    // decode again, to the same token.
    pki::JoinToken again;
    try {
        again = pki::decode_token(pki::encode_token(t));
    } catch (const hv::Error& e) {
        hvfuzz::bug("round trip", e.what());
    }
    if (as_json(again) != j) hvfuzz::bug("round trip", "the re-encoded token decodes differently");
    return 0;
}
