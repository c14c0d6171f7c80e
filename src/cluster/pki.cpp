// The cluster's certificates and join tokens (pki.hpp) on the OpenSSL 3 API. Every OpenSSL
// object lives in a unique_ptr with its free function, and every OpenSSL failure becomes an
// hv::Error carrying OpenSSL's reason (the error queue is drained, so nothing stale leaks into
// the next call on this thread).
#include "pki.hpp"

#include <arpa/inet.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <array>
#include <cctype>
#include <cstring>
#include <ctime>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "hv/error.hpp"

namespace hv::cluster::pki {

namespace {

template <auto F>
struct Free {
    template <typename T>
    void operator()(T* p) const noexcept {
        F(p);
    }
};
using Bio = std::unique_ptr<BIO, Free<BIO_free_all>>;
using Key = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Free<X509_free>>;
using Req = std::unique_ptr<X509_REQ, Free<X509_REQ_free>>;
using Name = std::unique_ptr<X509_NAME, Free<X509_NAME_free>>;
using Ext = std::unique_ptr<X509_EXTENSION, Free<X509_EXTENSION_free>>;
using Bn = std::unique_ptr<BIGNUM, Free<BN_free>>;
using Int = std::unique_ptr<ASN1_INTEGER, Free<ASN1_INTEGER_free>>;
using Octets = std::unique_ptr<ASN1_OCTET_STRING, Free<ASN1_OCTET_STRING_free>>;
using Ia5 = std::unique_ptr<ASN1_IA5STRING, Free<ASN1_IA5STRING_free>>;
using BitString = std::unique_ptr<ASN1_BIT_STRING, Free<ASN1_BIT_STRING_free>>;
using GenName = std::unique_ptr<GENERAL_NAME, Free<GENERAL_NAME_free>>;
using Constraints = std::unique_ptr<BASIC_CONSTRAINTS, Free<BASIC_CONSTRAINTS_free>>;
using Store = std::unique_ptr<X509_STORE, Free<X509_STORE_free>>;
using StoreCtx = std::unique_ptr<X509_STORE_CTX, Free<X509_STORE_CTX_free>>;
struct FreeGenNames {
    void operator()(GENERAL_NAMES* p) const noexcept { GENERAL_NAMES_free(p); }
};
using GenNames = std::unique_ptr<GENERAL_NAMES, FreeGenNames>;
struct FreeEku {
    // The objects of an EKU are the static ones of OBJ_nid2obj: freeing them is a no-op.
    void operator()(EXTENDED_KEY_USAGE* p) const noexcept { sk_ASN1_OBJECT_pop_free(p, ASN1_OBJECT_free); }
};
using Eku = std::unique_ptr<EXTENDED_KEY_USAGE, FreeEku>;

// OpenSSL's reasons for the last failure on this thread ("" when it queued none); drains
// the queue.
std::string ossl_reason() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out;
}

[[noreturn]] void ossl_fail(Errc code, const std::string& what) {
    auto why = ossl_reason();
    if (why.empty()) throw Error(code, what);
    throw Error(code, what + ": " + why);
}

// Checks an OpenSSL call that returns 1 (or > 0) on success.
void check(int rc, const char* what) {
    if (rc <= 0) ossl_fail(Errc::internal, what);
}
template <typename T>
T* check_ptr(T* p, const char* what) {
    if (!p) ossl_fail(Errc::internal, what);
    return p;
}

Bio mem_bio(const std::string& s) {
    // A read-only memory BIO over the string: it must outlive the BIO (it does, locally).
    return Bio(check_ptr(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())), "BIO_new_mem_buf"));
}
std::string bio_text(BIO* b) {
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}
// PEM input is text of bounded size; larger "PEM" is refused before OpenSSL sees it.
constexpr std::size_t kMaxPem = 64 * 1024;

Key read_key(const std::string& pem, const char* what) {
    if (pem.empty() || pem.size() > kMaxPem) fail(Errc::invalid_input, "{} is not a PEM private key", what);
    auto b = mem_bio(pem);
    Key k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
    if (!k) ossl_fail(Errc::invalid_input, std::string(what) + " is not a PEM private key");
    return k;
}
Cert read_cert(const std::string& pem, const char* what) {
    if (pem.empty() || pem.size() > kMaxPem) fail(Errc::invalid_input, "{} is not a PEM certificate", what);
    auto b = mem_bio(pem);
    Cert c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
    if (!c) ossl_fail(Errc::invalid_input, std::string(what) + " is not a PEM certificate");
    return c;
}
Req read_req(const std::string& pem) {
    if (pem.empty() || pem.size() > kMaxPem) fail(Errc::invalid_input, "the CSR is not a PEM certificate request");
    auto b = mem_bio(pem);
    Req r(PEM_read_bio_X509_REQ(b.get(), nullptr, nullptr, nullptr));
    if (!r) ossl_fail(Errc::invalid_input, "the CSR is not a PEM certificate request");
    return r;
}

std::string key_pem(EVP_PKEY* k) {
    Bio b(check_ptr(BIO_new(BIO_s_mem()), "BIO_new"));
    check(PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr), "PEM_write_bio_PrivateKey");
    return bio_text(b.get());
}
std::string cert_pem(X509* c) {
    Bio b(check_ptr(BIO_new(BIO_s_mem()), "BIO_new"));
    check(PEM_write_bio_X509(b.get(), c), "PEM_write_bio_X509");
    return bio_text(b.get());
}

Key new_key() {
    Key k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    if (!k) ossl_fail(Errc::internal, "cannot make an EC P-256 key");
    return k;
}

void check_common_name(const std::string& cn) {
    // ub-common-name (RFC 5280) is 64 characters.
    if (cn.empty() || cn.size() > 64) fail(Errc::invalid_input, "a certificate's common name must have 1 to 64 characters");
    for (unsigned char ch : cn)
        if (ch < 0x20 || ch == 0x7f) fail(Errc::invalid_input, "a certificate's common name must not hold control characters");
}

Name cn_name(const std::string& cn) {
    check_common_name(cn);
    Name n(check_ptr(X509_NAME_new(), "X509_NAME_new"));
    check(X509_NAME_add_entry_by_txt(n.get(), "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.data()),
                                     static_cast<int>(cn.size()), -1, 0),
          "X509_NAME_add_entry_by_txt");
    return n;
}

// A random positive 128-bit serial (at most 17 DER octets: RFC 5280 allows 20).
void set_random_serial(X509* x) {
    std::array<unsigned char, 16> r{};
    do {
        check(RAND_bytes(r.data(), static_cast<int>(r.size())), "RAND_bytes");
    } while (r == std::array<unsigned char, 16>{});  // serials are positive
    Bn bn(check_ptr(BN_bin2bn(r.data(), static_cast<int>(r.size()), nullptr), "BN_bin2bn"));
    Int serial(check_ptr(BN_to_ASN1_INTEGER(bn.get(), nullptr), "BN_to_ASN1_INTEGER"));
    check(X509_set_serialNumber(x, serial.get()), "X509_set_serialNumber");
}

// Validity from 5 minutes ago (clock skew between hosts) for `days` days, or `hours` hours
// when hours > 0.
void set_validity(X509* x, int days, int hours) {
    if (hours < 0 || (hours == 0 && days <= 0))
        fail(Errc::invalid_input, "a certificate's lifetime must be positive (days {}, hours {})", days, hours);
    if (hours > 24 * 365 * 30 || days > 365 * 30) fail(Errc::invalid_input, "a certificate's lifetime must be at most 30 years");
    // Both ends from one clock reading: the lifetime is exact.
    std::time_t now = std::time(nullptr);
    check_ptr(X509_time_adj_ex(X509_getm_notBefore(x), 0, -300, &now), "X509_time_adj_ex");
    if (hours > 0)
        check_ptr(X509_time_adj_ex(X509_getm_notAfter(x), 0, static_cast<long>(hours) * 3600, &now), "X509_time_adj_ex");
    else
        check_ptr(X509_time_adj_ex(X509_getm_notAfter(x), days, 0, &now), "X509_time_adj_ex");
}

void add_basic_constraints(X509* x, bool ca) {
    Constraints bc(check_ptr(BASIC_CONSTRAINTS_new(), "BASIC_CONSTRAINTS_new"));
    bc->ca = ca ? 0xff : 0;
    if (ca) {
        // The cluster CA signs host and join certificates only, never another CA.
        bc->pathlen = check_ptr(ASN1_INTEGER_new(), "ASN1_INTEGER_new");
        check(ASN1_INTEGER_set(bc->pathlen, 0), "ASN1_INTEGER_set");
    }
    check(X509_add1_ext_i2d(x, NID_basic_constraints, bc.get(), 1, X509V3_ADD_DEFAULT), "basicConstraints");
}

void add_key_usage(X509* x, std::initializer_list<int> bits) {
    BitString ku(check_ptr(ASN1_BIT_STRING_new(), "ASN1_BIT_STRING_new"));
    for (int b : bits) check(ASN1_BIT_STRING_set_bit(ku.get(), b, 1), "ASN1_BIT_STRING_set_bit");
    check(X509_add1_ext_i2d(x, NID_key_usage, ku.get(), 1, X509V3_ADD_DEFAULT), "keyUsage");
}
// keyUsage bit numbers (RFC 5280 4.2.1.3).
constexpr int kDigitalSignature = 0;
constexpr int kKeyCertSign = 5;
constexpr int kCrlSign = 6;

void add_eku(X509* x) {
    Eku eku(check_ptr(sk_ASN1_OBJECT_new_null(), "sk_ASN1_OBJECT_new_null"));
    for (int nid : {NID_server_auth, NID_client_auth}) {
        ASN1_OBJECT* o = check_ptr(OBJ_nid2obj(nid), "OBJ_nid2obj");
        if (sk_ASN1_OBJECT_push(eku.get(), o) <= 0) ossl_fail(Errc::internal, "sk_ASN1_OBJECT_push");
    }
    check(X509_add1_ext_i2d(x, NID_ext_key_usage, eku.get(), 0, X509V3_ADD_DEFAULT), "extendedKeyUsage");
}

// subjectKeyIdentifier (hash of the key) and authorityKeyIdentifier (the issuer's), which
// verifiers use to pick the issuer when a CA is ever re-keyed.
void add_key_ids(X509* x, X509* issuer) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
    Ext skid(X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_key_identifier, "hash"));
    if (!skid) ossl_fail(Errc::internal, "subjectKeyIdentifier");
    check(X509_add_ext(x, skid.get(), -1), "X509_add_ext");
    Ext akid(X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
    if (!akid) ossl_fail(Errc::internal, "authorityKeyIdentifier");
    check(X509_add_ext(x, akid.get(), -1), "X509_add_ext");
}

bool valid_dns_name(const std::string& d) {
    if (d.empty() || d.size() > 253) return false;
    for (unsigned char ch : d)
        if (!(std::isalnum(ch) || ch == '-' || ch == '.' || ch == '*' || ch == '_')) return false;
    return true;
}

void add_sans(X509* x, const Names& names) {
    if (names.ips.empty() && names.dns.empty()) return;
    GenNames gens(check_ptr(sk_GENERAL_NAME_new_null(), "sk_GENERAL_NAME_new_null"));
    for (const auto& ip : names.ips) {
        // a2i_IPADDRESS gives the address as octets (4 or 16), as RFC 5280 wants.
        Octets oct(a2i_IPADDRESS(ip.c_str()));
        if (!oct || ip.find('\0') != std::string::npos) {
            ERR_clear_error();
            fail(Errc::invalid_input, "a certificate's IP name is not an IPv4 or IPv6 address");
        }
        GenName gn(check_ptr(GENERAL_NAME_new(), "GENERAL_NAME_new"));
        GENERAL_NAME_set0_value(gn.get(), GEN_IPADD, oct.release());
        if (sk_GENERAL_NAME_push(gens.get(), gn.get()) <= 0) ossl_fail(Errc::internal, "sk_GENERAL_NAME_push");
        gn.release();
    }
    for (const auto& dns : names.dns) {
        if (!valid_dns_name(dns)) fail(Errc::invalid_input, "a certificate's DNS name is not a host name");
        Ia5 s(check_ptr(ASN1_IA5STRING_new(), "ASN1_IA5STRING_new"));
        check(ASN1_STRING_set(s.get(), dns.data(), static_cast<int>(dns.size())), "ASN1_STRING_set");
        GenName gn(check_ptr(GENERAL_NAME_new(), "GENERAL_NAME_new"));
        GENERAL_NAME_set0_value(gn.get(), GEN_DNS, s.release());
        if (sk_GENERAL_NAME_push(gens.get(), gn.get()) <= 0) ossl_fail(Errc::internal, "sk_GENERAL_NAME_push");
        gn.release();
    }
    check(X509_add1_ext_i2d(x, NID_subject_alt_name, gens.get(), 0, X509V3_ADD_DEFAULT), "subjectAltName");
}

void sign(X509* x, EVP_PKEY* key) {
    if (X509_sign(x, key, EVP_sha256()) <= 0) ossl_fail(Errc::internal, "cannot sign the certificate");
}

std::int64_t unix_time(const ASN1_TIME* t) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(t, &tm) != 1) ossl_fail(Errc::invalid_input, "the certificate's validity time is malformed");
    return static_cast<std::int64_t>(timegm(&tm));
}

std::string hex_fingerprint(X509* c) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    check(X509_digest(c, EVP_sha256(), md, &n), "X509_digest");
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned int i = 0; i < n; ++i) {
        if (i) out += ':';
        out += hex[md[i] >> 4];
        out += hex[md[i] & 0xf];
    }
    return out;
}

std::string asn1_text(const ASN1_STRING* s) {
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<std::size_t>(ASN1_STRING_length(s)));
}

}  // namespace

KeyPair make_ca(const std::string& common_name, int days) {
    auto name = cn_name(common_name);
    auto key = new_key();
    Cert x(check_ptr(X509_new(), "X509_new"));
    check(X509_set_version(x.get(), X509_VERSION_3), "X509_set_version");
    set_random_serial(x.get());
    set_validity(x.get(), days, 0);
    check(X509_set_subject_name(x.get(), name.get()), "X509_set_subject_name");
    check(X509_set_issuer_name(x.get(), name.get()), "X509_set_issuer_name");
    check(X509_set_pubkey(x.get(), key.get()), "X509_set_pubkey");
    add_basic_constraints(x.get(), true);
    add_key_usage(x.get(), {kDigitalSignature, kKeyCertSign, kCrlSign});
    add_key_ids(x.get(), x.get());
    sign(x.get(), key.get());
    return KeyPair{cert_pem(x.get()), key_pem(key.get())};
}

std::string make_key() { return key_pem(new_key().get()); }

std::string make_csr(const std::string& key_pem_text, const std::string& common_name) {
    auto key = read_key(key_pem_text, "the key");
    auto name = cn_name(common_name);
    Req r(check_ptr(X509_REQ_new(), "X509_REQ_new"));
    check(X509_REQ_set_version(r.get(), 0), "X509_REQ_set_version");
    check(X509_REQ_set_subject_name(r.get(), name.get()), "X509_REQ_set_subject_name");
    check(X509_REQ_set_pubkey(r.get(), key.get()), "X509_REQ_set_pubkey");
    if (X509_REQ_sign(r.get(), key.get(), EVP_sha256()) <= 0) ossl_fail(Errc::internal, "cannot sign the CSR");
    Bio b(check_ptr(BIO_new(BIO_s_mem()), "BIO_new"));
    check(PEM_write_bio_X509_REQ(b.get(), r.get()), "PEM_write_bio_X509_REQ");
    return bio_text(b.get());
}

std::string sign_csr(const KeyPair& ca, const std::string& csr_pem, const std::string& common_name, const Names& names,
                     int days, int hours) {
    auto ca_cert = read_cert(ca.cert_pem, "the CA certificate");
    auto ca_key = read_key(ca.key_pem, "the CA key");
    if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1)
        ossl_fail(Errc::invalid_input, "the CA key does not belong to the CA certificate");
    if (X509_check_ca(ca_cert.get()) < 1) fail(Errc::invalid_input, "the CA certificate is not a CA's");
    auto req = read_req(csr_pem);
    // The CSR proves possession of its key; everything else in it is the requester's wish and
    // ignored: the CA decides the subject, the names and the usage.
    EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
    if (!pub) ossl_fail(Errc::invalid_input, "the CSR has no usable public key");
    if (X509_REQ_verify(req.get(), pub) != 1) ossl_fail(Errc::invalid_input, "the CSR's signature does not verify");
    auto name = cn_name(common_name);
    Cert x(check_ptr(X509_new(), "X509_new"));
    check(X509_set_version(x.get(), X509_VERSION_3), "X509_set_version");
    set_random_serial(x.get());
    set_validity(x.get(), days, hours);
    check(X509_set_subject_name(x.get(), name.get()), "X509_set_subject_name");
    check(X509_set_issuer_name(x.get(), X509_get_subject_name(ca_cert.get())), "X509_set_issuer_name");
    check(X509_set_pubkey(x.get(), pub), "X509_set_pubkey");
    add_basic_constraints(x.get(), false);
    add_key_usage(x.get(), {kDigitalSignature});
    add_eku(x.get());
    add_sans(x.get(), names);
    add_key_ids(x.get(), ca_cert.get());
    sign(x.get(), ca_key.get());
    return cert_pem(x.get());
}

KeyPair issue(const KeyPair& ca, const std::string& common_name, const Names& names, int days, int hours) {
    KeyPair out;
    out.key_pem = make_key();
    out.cert_pem = sign_csr(ca, make_csr(out.key_pem, common_name), common_name, names, days, hours);
    return out;
}

CertInfo inspect(const std::string& pem) {
    auto c = read_cert(pem, "the certificate");
    CertInfo info;
    X509_NAME* subject = X509_get_subject_name(c.get());
    int i = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
    if (i >= 0) {
        ASN1_STRING* d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
        unsigned char* utf8 = nullptr;
        int n = ASN1_STRING_to_UTF8(&utf8, d);
        if (n < 0) ossl_fail(Errc::invalid_input, "the certificate's common name is malformed");
        info.common_name.assign(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
        OPENSSL_free(utf8);
    }
    info.fingerprint = hex_fingerprint(c.get());
    info.not_before = unix_time(X509_get0_notBefore(c.get()));
    info.not_after = unix_time(X509_get0_notAfter(c.get()));
    int crit = 0;
    GenNames gens(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(c.get(), NID_subject_alt_name, &crit, nullptr)));
    if (!gens && crit != -1) ossl_fail(Errc::invalid_input, "the certificate's subjectAltName is malformed");
    for (int k = 0; gens && k < sk_GENERAL_NAME_num(gens.get()); ++k) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(gens.get(), k);
        if (g->type == GEN_DNS) {
            info.names.dns.push_back(asn1_text(g->d.dNSName));
        } else if (g->type == GEN_IPADD) {
            const ASN1_OCTET_STRING* o = g->d.iPAddress;
            char buf[INET6_ADDRSTRLEN] = {};
            int len = ASN1_STRING_length(o);
            const unsigned char* p = ASN1_STRING_get0_data(o);
            if ((len == 4 && inet_ntop(AF_INET, p, buf, sizeof buf)) || (len == 16 && inet_ntop(AF_INET6, p, buf, sizeof buf)))
                info.names.ips.emplace_back(buf);
        }
    }
    ERR_clear_error();
    return info;
}

std::string fingerprint(const std::string& pem) { return hex_fingerprint(read_cert(pem, "the certificate").get()); }

bool verify(const std::string& ca_pem, const std::string& cert_pem_text, const std::string& key_pem_text) {
    try {
        auto ca = read_cert(ca_pem, "the CA certificate");
        auto cert = read_cert(cert_pem_text, "the certificate");
        Store store(check_ptr(X509_STORE_new(), "X509_STORE_new"));
        check(X509_STORE_add_cert(store.get(), ca.get()), "X509_STORE_add_cert");
        StoreCtx ctx(check_ptr(X509_STORE_CTX_new(), "X509_STORE_CTX_new"));
        check(X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr), "X509_STORE_CTX_init");
        // X509_V_FLAG_X509_STRICT: RFC 5280 checks (e.g. a CA without keyCertSign is refused).
        X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_X509_STRICT);
        bool ok = X509_verify_cert(ctx.get()) == 1;
        if (ok && !key_pem_text.empty()) {
            auto key = read_key(key_pem_text, "the key");
            ok = X509_check_private_key(cert.get(), key.get()) == 1;
        }
        ERR_clear_error();
        return ok;
    } catch (const Error&) {
        // Text that is not a certificate or key does not verify.
        return false;
    }
}

// --- join tokens ---------------------------------------------------------------------------

namespace {

constexpr std::string_view kTokenPrefix = "hvjoin1.";
constexpr std::size_t kMaxToken = 16 * 1024;
constexpr const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64url_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    auto byte = [&](std::size_t k) { return static_cast<unsigned>(static_cast<unsigned char>(in[k])); };
    for (; i + 3 <= in.size(); i += 3) {
        unsigned v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
        out += kB64[v >> 18 & 63];
        out += kB64[v >> 12 & 63];
        out += kB64[v >> 6 & 63];
        out += kB64[v & 63];
    }
    if (in.size() - i == 1) {
        unsigned v = byte(i) << 16;
        out += kB64[v >> 18 & 63];
        out += kB64[v >> 12 & 63];
    } else if (in.size() - i == 2) {
        unsigned v = byte(i) << 16 | byte(i + 1) << 8;
        out += kB64[v >> 18 & 63];
        out += kB64[v >> 12 & 63];
        out += kB64[v >> 6 & 63];
    }
    return out;
}

int b64_value(unsigned char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '-') return 62;
    if (ch == '_') return 63;
    return -1;
}

// Strict base64url without padding: only the alphabet, no length that cannot be, and the
// unused low bits of the last character zero (one text per byte string).
std::string b64url_decode(std::string_view in) {
    std::string out;
    out.reserve(in.size() / 4 * 3 + 2);
    unsigned acc = 0;
    int bits = 0;
    for (unsigned char ch : in) {
        int v = b64_value(ch);
        if (v < 0) fail(Errc::invalid_input, "join token: a character outside the base64url alphabet");
        acc = (acc << 6 | static_cast<unsigned>(v)) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>(acc >> bits & 0xff);
        }
    }
    if (in.size() % 4 == 1) fail(Errc::invalid_input, "join token: the base64url text has an impossible length");
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        fail(Errc::invalid_input, "join token: the base64url text does not end cleanly");
    return out;
}

// The keys of a token's JSON object, all required.
const std::set<std::string, std::less<>> kTokenKeys = {"cluster", "id", "addresses", "ca_fingerprint",
                                                       "expires", "ca_pem", "cert_pem", "key_pem"};

bool valid_token_id(const std::string& id) {
    if (id.empty() || id.size() > 64) return false;
    for (unsigned char ch : id)
        if (!(std::isalnum(ch) || ch == '-' || ch == '_')) return false;
    return true;
}

bool printable(const std::string& s) {
    for (unsigned char ch : s)
        if (ch < 0x20 || ch == 0x7f) return false;
    return true;
}

// "host:port" or "[v6]:port", port 1..65535.
bool valid_address(const std::string& a) {
    if (a.empty() || a.size() > 300 || !printable(a) || a.find(' ') != std::string::npos) return false;
    auto colon = a.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == a.size() || a.size() - colon - 1 > 5) return false;
    long port = 0;
    for (std::size_t i = colon + 1; i < a.size(); ++i) {
        if (a[i] < '0' || a[i] > '9') return false;
        port = port * 10 + (a[i] - '0');
    }
    if (port < 1 || port > 65535) return false;
    std::string host = a.substr(0, colon);
    if (host.front() == '[') return host.size() > 2 && host.back() == ']';
    return host.find(':') == std::string::npos;
}

const std::string& str_field(const nlohmann::json& j, const char* key) {
    const auto& v = j.at(key);
    if (!v.is_string()) fail(Errc::invalid_input, "join token: \"{}\" must be a string", key);
    return v.get_ref<const std::string&>();
}

}  // namespace

std::string encode_token(const JoinToken& t) {
    nlohmann::json j = {{"cluster", t.cluster},   {"id", t.id},         {"addresses", t.addresses},
                        {"ca_fingerprint", t.ca_fingerprint}, {"expires", t.expires}, {"ca_pem", t.ca_pem},
                        {"cert_pem", t.cert_pem}, {"key_pem", t.key_pem}};
    std::string text;
    try {
        text = j.dump();
    } catch (const nlohmann::json::exception&) {
        fail(Errc::invalid_input, "join token: a field is not valid UTF-8");
    }
    std::string out = std::string(kTokenPrefix) + b64url_encode(text);
    if (out.size() > kMaxToken) fail(Errc::invalid_input, "join token: longer than {} bytes", kMaxToken);
    return out;
}

JoinToken decode_token(std::string_view text) {
    if (text.size() > kMaxToken) fail(Errc::invalid_input, "join token: longer than {} bytes", kMaxToken);
    if (text.substr(0, kTokenPrefix.size()) != kTokenPrefix)
        fail(Errc::invalid_input, "join token: does not start with \"{}\"", kTokenPrefix);
    std::string body = b64url_decode(text.substr(kTokenPrefix.size()));
    // Duplicate keys would let two readers of one token see different values: refused.
    bool duplicate = false;
    std::set<std::string> seen;
    nlohmann::json::parser_callback_t cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
        if (ev == nlohmann::json::parse_event_t::key && depth == 1 && parsed.is_string() &&
            !seen.insert(parsed.get<std::string>()).second)
            duplicate = true;
        return true;
    };
    auto j = nlohmann::json::parse(body, cb, /*allow_exceptions=*/false);
    if (j.is_discarded()) fail(Errc::invalid_input, "join token: the payload is not JSON");
    if (!j.is_object()) fail(Errc::invalid_input, "join token: the payload is not a JSON object");
    if (duplicate) fail(Errc::invalid_input, "join token: a key appears twice");
    for (const auto& item : j.items())
        if (!kTokenKeys.count(item.key()))
            fail(Errc::invalid_input, "join token: an unknown key (the keys are cluster, id, addresses, ca_fingerprint, "
                                      "expires, ca_pem, cert_pem, key_pem)");
    for (const auto& k : kTokenKeys)
        if (!j.contains(k)) fail(Errc::invalid_input, "join token: \"{}\" is missing", k);

    JoinToken t;
    t.cluster = str_field(j, "cluster");
    t.id = str_field(j, "id");
    t.ca_fingerprint = str_field(j, "ca_fingerprint");
    t.ca_pem = str_field(j, "ca_pem");
    t.cert_pem = str_field(j, "cert_pem");
    t.key_pem = str_field(j, "key_pem");
    const auto& addrs = j.at("addresses");
    if (!addrs.is_array()) fail(Errc::invalid_input, "join token: \"addresses\" must be an array of strings");
    for (const auto& a : addrs) {
        if (!a.is_string()) fail(Errc::invalid_input, "join token: \"addresses\" must be an array of strings");
        t.addresses.push_back(a.get<std::string>());
    }
    const auto& exp = j.at("expires");
    if (!exp.is_number_integer()) fail(Errc::invalid_input, "join token: \"expires\" must be an integer");
    if (exp.is_number_unsigned() && exp.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        fail(Errc::invalid_input, "join token: \"expires\" is out of range");
    t.expires = exp.get<std::int64_t>();
    if (t.expires <= 0) fail(Errc::invalid_input, "join token: \"expires\" must be a positive unix time");

    if (t.cluster.empty() || t.cluster.size() > 253 || !printable(t.cluster))
        fail(Errc::invalid_input, "join token: \"cluster\" must be a name of 1 to 253 printable characters");
    if (!valid_token_id(t.id))
        fail(Errc::invalid_input, "join token: \"id\" must have 1 to 64 letters, digits, '-' or '_'");
    if (t.addresses.empty()) fail(Errc::invalid_input, "join token: \"addresses\" is empty");
    if (t.addresses.size() > 64) fail(Errc::invalid_input, "join token: more than 64 addresses");
    for (const auto& a : t.addresses)
        if (!valid_address(a)) fail(Errc::invalid_input, "join token: an address is not \"host:port\"");

    // The pin: the CA text must be the one whose fingerprint the token names.
    std::string fp;
    try {
        fp = fingerprint(t.ca_pem);
    } catch (const Error& e) {
        fail(Errc::invalid_input, "join token: \"ca_pem\": {}", e.what());
    }
    if (fp != t.ca_fingerprint) fail(Errc::invalid_input, "join token: the CA certificate does not match ca_fingerprint");
    Cert cert;
    Key key;
    try {
        cert = read_cert(t.cert_pem, "\"cert_pem\"");
        key = read_key(t.key_pem, "\"key_pem\"");
    } catch (const Error& e) {
        fail(Errc::invalid_input, "join token: {}", e.what());
    }
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
        ERR_clear_error();
        fail(Errc::invalid_input, "join token: \"key_pem\" does not belong to \"cert_pem\"");
    }
    return t;
}

}  // namespace hv::cluster::pki
