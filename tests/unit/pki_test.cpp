// The cluster PKI (src/cluster/pki.cpp): the CA and leaf certificates as OpenSSL reads them
// back (extensions, serials, SANs), verification against the right and a wrong CA, CSRs that
// are garbage or tampered with, and the join token's strict decoding.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "hv/error.hpp"
#include "pki.hpp"

using namespace hv;
namespace pki = hv::cluster::pki;
using nlohmann::json;

namespace {

struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
};
using CertPtr = std::unique_ptr<X509, X509Free>;

CertPtr parse(const std::string& pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
    CertPtr c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
    REQUIRE(c);
    return c;
}

std::string serial_hex(X509* x) {
    BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), nullptr);
    REQUIRE(bn);
    char* hex = BN_bn2hex(bn);
    std::string out = hex;
    OPENSSL_free(hex);
    BN_free(bn);
    return out;
}

// The error of f, which must throw hv::Error.
Error error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e;
    }
    FAIL("no hv::Error thrown");
    return Error(Errc::internal, "");
}

// The CA every case of this file shares (making one takes a millisecond, but the tokens
// below need one CA throughout).
const pki::KeyPair& test_ca() {
    static const pki::KeyPair ca = pki::make_ca("hv cluster test");
    return ca;
}

std::string b64url(const std::string& in) {
    static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    unsigned acc = 0;
    int bits = 0;
    for (unsigned char ch : in) {
        acc = acc << 8 | ch;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += a[acc >> bits & 63];
        }
    }
    if (bits > 0) out += a[acc << (6 - bits) & 63];
    return out;
}

pki::JoinToken sample_token() {
    const auto& ca = test_ca();
    auto join = pki::issue(ca, "join:tok1", {}, 0, 1);
    pki::JoinToken t;
    t.cluster = "lab";
    t.id = "tok1";
    t.addresses = {"10.0.0.1:8443", "[fd00::2]:8443"};
    t.ca_fingerprint = pki::fingerprint(ca.cert_pem);
    t.expires = 1900000000;
    t.ca_pem = ca.cert_pem;
    t.cert_pem = join.cert_pem;
    t.key_pem = join.key_pem;
    return t;
}

json token_json(const pki::JoinToken& t) {
    return json{{"cluster", t.cluster},   {"id", t.id},         {"addresses", t.addresses},
                {"ca_fingerprint", t.ca_fingerprint}, {"expires", t.expires}, {"ca_pem", t.ca_pem},
                {"cert_pem", t.cert_pem}, {"key_pem", t.key_pem}};
}
std::string raw_token(const std::string& payload) { return "hvjoin1." + b64url(payload); }

std::string decode_error(const std::string& text) {
    auto e = error_of([&] { pki::decode_token(text); });
    CHECK(e.code() == Errc::invalid_input);
    std::string msg = e.what();
    CHECK(msg.rfind("join token: ", 0) == 0);
    return msg;
}

}  // namespace

TEST_CASE("pki: the CA is a P-256 CA certificate with a random 128-bit serial", "[pki]") {
    const auto& ca = test_ca();
    auto c = parse(ca.cert_pem);
    CHECK(X509_check_ca(c.get()) >= 1);
    CHECK((X509_get_key_usage(c.get()) & KU_KEY_CERT_SIGN) != 0);
    CHECK(X509_get_version(c.get()) == X509_VERSION_3);
    CHECK(X509_get_signature_nid(c.get()) == NID_ecdsa_with_SHA256);
    EVP_PKEY* pub = X509_get0_pubkey(c.get());
    REQUIRE(pub);
    CHECK(EVP_PKEY_get_bits(pub) == 256);
    auto info = pki::inspect(ca.cert_pem);
    CHECK(info.common_name == "hv cluster test");
    CHECK(info.not_after - info.not_before == 3650LL * 86400 + 300);
    CHECK(std::abs(info.not_before + 300 - static_cast<std::int64_t>(std::time(nullptr))) < 60);
    CHECK(info.fingerprint.size() == 32 * 3 - 1);
    CHECK(info.fingerprint == pki::fingerprint(ca.cert_pem));
    auto other = pki::make_ca("hv cluster test");
    CHECK(serial_hex(c.get()) != serial_hex(parse(other.cert_pem).get()));
    CHECK(serial_hex(c.get()).size() >= 28);  // 128 random bits: under 112 only 1 in 2^16
    CHECK(pki::verify(ca.cert_pem, ca.cert_pem));
    CHECK(pki::verify(ca.cert_pem, ca.cert_pem, ca.key_pem));
}

TEST_CASE("pki: a host certificate verifies against its CA, with its key, and names its SANs", "[pki]") {
    const auto& ca = test_ca();
    auto host = pki::issue(ca, "host:node1", {{"127.0.0.1", "fd00::2"}, {"node1.example"}});
    auto c = parse(host.cert_pem);
    CHECK(X509_check_ca(c.get()) == 0);
    CHECK((X509_get_extended_key_usage(c.get()) & (XKU_SSL_SERVER | XKU_SSL_CLIENT)) == (XKU_SSL_SERVER | XKU_SSL_CLIENT));
    CHECK(X509_check_ip_asc(c.get(), "127.0.0.1", 0) == 1);
    CHECK(X509_check_ip_asc(c.get(), "fd00::2", 0) == 1);
    CHECK(X509_check_ip_asc(c.get(), "127.0.0.2", 0) == 0);
    CHECK(X509_check_host(c.get(), "node1.example", 0, 0, nullptr) == 1);

    auto info = pki::inspect(host.cert_pem);
    CHECK(info.common_name == "host:node1");
    CHECK(info.names.ips == std::vector<std::string>{"127.0.0.1", "fd00::2"});
    CHECK(info.names.dns == std::vector<std::string>{"node1.example"});
    CHECK(info.not_after - info.not_before == 825LL * 86400 + 300);

    CHECK(pki::verify(ca.cert_pem, host.cert_pem));
    CHECK(pki::verify(ca.cert_pem, host.cert_pem, host.key_pem));
    CHECK_FALSE(pki::verify(ca.cert_pem, host.cert_pem, pki::make_key()));  // not its key

    auto other_ca = pki::make_ca("another cluster");
    CHECK_FALSE(pki::verify(other_ca.cert_pem, host.cert_pem));
    auto foreign = pki::issue(other_ca, "host:node1", {{"127.0.0.1"}, {}});
    CHECK_FALSE(pki::verify(ca.cert_pem, foreign.cert_pem, foreign.key_pem));
    // A leaf is no CA: it signs nothing.
    CHECK(error_of([&] { pki::sign_csr(host, pki::make_csr(pki::make_key(), "x"), "x", {}); }).code() ==
          Errc::invalid_input);
    CHECK_FALSE(pki::verify("garbage", host.cert_pem));
    CHECK_FALSE(pki::verify(ca.cert_pem, "garbage"));

    // A join certificate lives for hours.
    auto join = pki::issue(ca, "join:tok1", {}, 0, 1);
    auto ji = pki::inspect(join.cert_pem);
    CHECK(ji.not_after - ji.not_before == 3600 + 300);
    CHECK(ji.names.ips.empty());
    CHECK(ji.names.dns.empty());
    CHECK(pki::verify(ca.cert_pem, join.cert_pem, join.key_pem));
}

TEST_CASE("pki: bad names, lifetimes and PEM text are invalid_input", "[pki]") {
    const auto& ca = test_ca();
    CHECK(error_of([&] { pki::issue(ca, "host:x", {{"300.1.2.3"}, {}}); }).code() == Errc::invalid_input);
    CHECK(error_of([&] { pki::issue(ca, "host:x", {{}, {"bad name"}}); }).code() == Errc::invalid_input);
    CHECK(error_of([&] { pki::issue(ca, "", {}); }).code() == Errc::invalid_input);
    CHECK(error_of([&] { pki::issue(ca, std::string(65, 'a'), {}); }).code() == Errc::invalid_input);
    CHECK(error_of([&] { pki::issue(ca, "host:x", {}, 0, 0); }).code() == Errc::invalid_input);
    CHECK(error_of([&] { pki::make_ca("ca", 0); }).code() == Errc::invalid_input);
    CHECK(error_of([&] { pki::inspect("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"); }).code() ==
          Errc::invalid_input);
    CHECK(error_of([&] { pki::fingerprint(""); }).code() == Errc::invalid_input);
    CHECK(error_of([&] { pki::make_csr("not a key", "x"); }).code() == Errc::invalid_input);
    // The CA's key must be the CA's.
    pki::KeyPair mixed{ca.cert_pem, pki::make_key()};
    CHECK(error_of([&] { pki::issue(mixed, "host:x", {}); }).code() == Errc::invalid_input);
}

TEST_CASE("pki: sign_csr takes only the key from a CSR and refuses garbage and tampered ones", "[pki]") {
    const auto& ca = test_ca();
    auto key = pki::make_key();

    SECTION("the subject and extensions of the CSR are ignored") {
        // A CSR asking for CA:TRUE and another name.
        std::unique_ptr<BIO, decltype(&BIO_free)> kb(BIO_new_mem_buf(key.data(), static_cast<int>(key.size())), &BIO_free);
        std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr),
                                                              &EVP_PKEY_free);
        REQUIRE(k);
        std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(X509_REQ_new(), &X509_REQ_free);
        X509_NAME* n = X509_REQ_get_subject_name(req.get());
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("host:evil"), -1, -1, 0);
        X509_REQ_set_pubkey(req.get(), k.get());
        STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
        sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints, "critical,CA:TRUE"));
        sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, "DNS:evil.example"));
        REQUIRE(X509_REQ_add_extensions(req.get(), exts) == 1);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        REQUIRE(X509_REQ_sign(req.get(), k.get(), EVP_sha256()) > 0);
        std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), &BIO_free);
        PEM_write_bio_X509_REQ(out.get(), req.get());
        char* data = nullptr;
        long len = BIO_get_mem_data(out.get(), &data);
        std::string csr(data, static_cast<std::size_t>(len));

        auto cert = pki::sign_csr(ca, csr, "host:node2", {{"10.0.0.2"}, {}});
        auto info = pki::inspect(cert);
        CHECK(info.common_name == "host:node2");
        CHECK(info.names.dns.empty());
        CHECK(info.names.ips == std::vector<std::string>{"10.0.0.2"});
        CHECK(X509_check_ca(parse(cert).get()) == 0);
        CHECK(pki::verify(ca.cert_pem, cert, key));
    }

    SECTION("garbage") {
        for (std::string bad : {std::string(), std::string("hello"),
                                std::string("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"),
                                ca.cert_pem}) {
            auto e = error_of([&] { pki::sign_csr(ca, bad, "host:x", {}); });
            CHECK(e.code() == Errc::invalid_input);
        }
    }

    SECTION("a tampered CSR (its subject changed after signing)") {
        auto csr = pki::make_csr(key, "host:aaaa");
        std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new_mem_buf(csr.data(), static_cast<int>(csr.size())), &BIO_free);
        std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(PEM_read_bio_X509_REQ(b.get(), nullptr, nullptr, nullptr),
                                                                &X509_REQ_free);
        REQUIRE(req);
        unsigned char* der = nullptr;
        int len = i2d_X509_REQ(req.get(), &der);
        REQUIRE(len > 0);
        std::string bytes(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
        OPENSSL_free(der);
        auto at = bytes.find("host:aaaa");
        REQUIRE(at != std::string::npos);
        bytes.replace(at, 9, "host:bbbb");
        const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data());
        std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> bad(d2i_X509_REQ(nullptr, &p, static_cast<long>(bytes.size())),
                                                                &X509_REQ_free);
        REQUIRE(bad);
        std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), &BIO_free);
        PEM_write_bio_X509_REQ(out.get(), bad.get());
        char* data = nullptr;
        long n = BIO_get_mem_data(out.get(), &data);
        std::string tampered(data, static_cast<std::size_t>(n));
        REQUIRE(tampered != csr);
        auto e = error_of([&] { pki::sign_csr(ca, tampered, "host:x", {}); });
        CHECK(e.code() == Errc::invalid_input);
        CHECK(std::string(e.what()).find("signature") != std::string::npos);
        // The untouched one signs.
        CHECK(pki::verify(ca.cert_pem, pki::sign_csr(ca, csr, "host:x", {}), key));
    }
}

TEST_CASE("pki: a join token round-trips", "[pki]") {
    auto t = sample_token();
    auto text = pki::encode_token(t);
    CHECK(text.rfind("hvjoin1.", 0) == 0);
    CHECK(text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 8) ==
          std::string::npos);
    auto d = pki::decode_token(text);
    CHECK(d.cluster == t.cluster);
    CHECK(d.id == t.id);
    CHECK(d.addresses == t.addresses);
    CHECK(d.ca_fingerprint == t.ca_fingerprint);
    CHECK(d.expires == t.expires);
    CHECK(d.ca_pem == t.ca_pem);
    CHECK(d.cert_pem == t.cert_pem);
    CHECK(d.key_pem == t.key_pem);
    CHECK(pki::verify(d.ca_pem, d.cert_pem, d.key_pem));
    // The same JSON, built by hand, decodes too (the format is the documented one).
    CHECK(pki::decode_token(raw_token(token_json(t).dump())).id == "tok1");
}

TEST_CASE("pki: decode_token is strict", "[pki]") {
    auto t = sample_token();
    auto good = token_json(t);
    auto with = [&](const std::function<void(json&)>& edit) {
        json j = good;
        edit(j);
        return raw_token(j.dump());
    };
    REQUIRE_NOTHROW(pki::decode_token(raw_token(good.dump())));

    SECTION("prefix") {
        CHECK(decode_error("").find("hvjoin1.") != std::string::npos);
        CHECK(decode_error("hvjoin2." + b64url(good.dump())).find("start") != std::string::npos);
        CHECK(decode_error("HVJOIN1." + b64url(good.dump())).find("start") != std::string::npos);
        CHECK(decode_error(" " + raw_token(good.dump())).find("start") != std::string::npos);
    }
    SECTION("base64url") {
        auto body = b64url(good.dump());
        CHECK(decode_error("hvjoin1." + body + "=").find("alphabet") != std::string::npos);
        std::string plus = body;
        plus[5] = '+';
        CHECK(decode_error("hvjoin1." + plus).find("alphabet") != std::string::npos);
        CHECK(decode_error("hvjoin1." + body + "\n").find("alphabet") != std::string::npos);
        CHECK(decode_error("hvjoin1.A").find("length") != std::string::npos);
        // "QR" leaves bits set that no encoder writes.
        CHECK(decode_error("hvjoin1.QR").find("cleanly") != std::string::npos);
        CHECK(decode_error("hvjoin1." + b64url("{\"a\":")).find("not JSON") != std::string::npos);
    }
    SECTION("size") {
        auto msg = decode_error("hvjoin1." + std::string(16 * 1024, 'A'));
        CHECK(msg.find("longer") != std::string::npos);
        json j = good;
        j["cluster"] = std::string(13000, 'x');
        CHECK(decode_error(raw_token(j.dump())).find("longer") != std::string::npos);
        CHECK(error_of([&] {
                  auto big = t;
                  big.cluster = std::string(13000, 'x');
                  pki::encode_token(big);
              }).code() == Errc::invalid_input);
    }
    SECTION("keys") {
        CHECK(decode_error(raw_token("[1,2]")).find("not a JSON object") != std::string::npos);
        CHECK(decode_error(raw_token("\"x\"")).find("not a JSON object") != std::string::npos);
        for (const char* k : {"cluster", "id", "addresses", "ca_fingerprint", "expires", "ca_pem", "cert_pem", "key_pem"}) {
            auto msg = decode_error(with([&](json& j) { j.erase(k); }));
            CHECK(msg.find(std::string("\"") + k + "\" is missing") != std::string::npos);
        }
        auto extra = decode_error(with([](json& j) { j["\x01secret-bytes"] = 1; }));
        CHECK(extra.find("unknown key") != std::string::npos);
        CHECK(extra.find("secret-bytes") == std::string::npos);  // never quotes the input
        // Duplicate keys: the JSON text written by hand.
        auto dump = good.dump();
        auto dup = "{\"id\":\"other\"," + dump.substr(1);
        CHECK(decode_error(raw_token(dup)).find("twice") != std::string::npos);
    }
    SECTION("types") {
        CHECK(decode_error(with([](json& j) { j["cluster"] = 5; })).find("\"cluster\" must be a string") != std::string::npos);
        CHECK(decode_error(with([](json& j) { j["id"] = nullptr; })).find("\"id\" must be a string") != std::string::npos);
        CHECK(decode_error(with([](json& j) { j["addresses"] = "10.0.0.1:8443"; })).find("array") != std::string::npos);
        CHECK(decode_error(with([](json& j) { j["addresses"] = json::array({1}); })).find("array") != std::string::npos);
        CHECK(decode_error(with([](json& j) { j["expires"] = "1900000000"; })).find("integer") != std::string::npos);
        CHECK(decode_error(with([](json& j) { j["expires"] = 1.5; })).find("integer") != std::string::npos);
        CHECK(decode_error(with([](json& j) { j["expires"] = 18446744073709551615ULL; })).find("range") != std::string::npos);
        CHECK(decode_error(with([](json& j) { j["expires"] = 0; })).find("positive") != std::string::npos);
        CHECK(decode_error(with([](json& j) { j["key_pem"] = json::array(); })).find("\"key_pem\" must be a string") !=
              std::string::npos);
    }
    SECTION("values") {
        CHECK(decode_error(with([](json& j) { j["id"] = ""; })).find("\"id\"") != std::string::npos);
        CHECK(decode_error(with([](json& j) { j["id"] = "../x"; })).find("\"id\"") != std::string::npos);
        CHECK(decode_error(with([](json& j) { j["cluster"] = ""; })).find("\"cluster\"") != std::string::npos);
        CHECK(decode_error(with([](json& j) { j["addresses"] = json::array(); })).find("empty") != std::string::npos);
        for (const char* a : {"", "10.0.0.1", "10.0.0.1:0", "10.0.0.1:65536", "fd00::1:80", "a b:1", ":80"})
            CHECK(decode_error(with([&](json& j) { j["addresses"] = json::array({a}); })).find("address") !=
                  std::string::npos);
    }
    SECTION("the CA pin and the certificates") {
        auto other = pki::make_ca("hv cluster test");
        // The fingerprint of another CA: someone swapped the CA text.
        CHECK(decode_error(with([&](json& j) { j["ca_fingerprint"] = pki::fingerprint(other.cert_pem); }))
                  .find("does not match ca_fingerprint") != std::string::npos);
        CHECK(decode_error(with([&](json& j) { j["ca_pem"] = other.cert_pem; })).find("does not match ca_fingerprint") !=
              std::string::npos);
        // Lowercase is not the fingerprint's form.
        CHECK(decode_error(with([&](json& j) {
                  std::string fp = j["ca_fingerprint"];
                  for (auto& ch : fp) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                  j["ca_fingerprint"] = fp;
              })).find("does not match") != std::string::npos);
        CHECK(decode_error(with([](json& j) { j["ca_pem"] = "not a certificate"; })).find("\"ca_pem\"") !=
              std::string::npos);
        CHECK(decode_error(with([](json& j) { j["cert_pem"] = "not a certificate"; })).find("\"cert_pem\"") !=
              std::string::npos);
        CHECK(decode_error(with([](json& j) { j["key_pem"] = "not a key"; })).find("\"key_pem\"") != std::string::npos);
        CHECK(decode_error(with([](json& j) { j["key_pem"] = pki::make_key(); })).find("does not belong") !=
              std::string::npos);
    }
}
