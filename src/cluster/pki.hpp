// The cluster's certificates (OpenSSL 3): one CA per cluster, made by `cluster create`; every
// host has a key and a certificate signed by it (CN "host:<node>", SANs for its address), used
// both as TLS server and client certificate between hosts and towards etcd. Join tokens carry
// a short-lived join certificate (CN "join:<token id>") so even the join request arrives over
// mutual TLS (docs/cluster.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hv::cluster::pki {

struct KeyPair {
    std::string cert_pem;
    std::string key_pem;
};

// A new self-signed CA (EC P-256, SHA-256), valid for `days`.
KeyPair make_ca(const std::string& common_name, int days = 3650);
// A new private key (EC P-256), PEM.
std::string make_key();
// A certificate signing request for `key_pem` with this CN.
std::string make_csr(const std::string& key_pem, const std::string& common_name);

struct Names {
    std::vector<std::string> ips;  // IP SANs (v4 or v6 text)
    std::vector<std::string> dns;  // DNS SANs
};
// Signs a CSR (its key, not its subject or extensions: the CA decides those): CN as given,
// the SANs, serverAuth+clientAuth, valid for `days` (hours when `hours` > 0).
// Throws invalid_input when the CSR is malformed or its signature is wrong, or when `ca` is
// not a CA certificate with its own key.
std::string sign_csr(const KeyPair& ca, const std::string& csr_pem, const std::string& common_name,
                     const Names& names, int days = 825, int hours = 0);
// make_key + make_csr + sign_csr in one.
KeyPair issue(const KeyPair& ca, const std::string& common_name, const Names& names, int days = 825, int hours = 0);

struct CertInfo {
    std::string common_name;
    std::string fingerprint;  // sha256 of the DER, "AB:CD:..."
    std::int64_t not_before = 0;  // unix seconds
    std::int64_t not_after = 0;
    Names names;
};
// Throws invalid_input when it is not a PEM certificate.
CertInfo inspect(const std::string& cert_pem);
std::string fingerprint(const std::string& cert_pem);
// True when `cert_pem` is signed by `ca_pem`, valid now, and its key matches `key_pem` (when
// given). Text that is not a certificate (or key) gives false, never an exception.
bool verify(const std::string& ca_pem, const std::string& cert_pem, const std::string& key_pem = {});

// A join token: everything a new host needs to reach the cluster and prove it was invited.
// Text form "hvjoin1." + base64url(JSON); decode is strict (unknown keys, wrong types, a cap
// of 16 KiB) and throws invalid_input with the reason. decode does not check `expires`
// against the clock: the host that receives the join request does (docs/cluster.md).
struct JoinToken {
    std::string cluster;                 // the cluster's name
    std::string id;                      // the token's id (/hv/tokens/<id>)
    std::vector<std::string> addresses;  // members' "address:port" (TLS API port)
    std::string ca_fingerprint;          // pins the CA before anything is trusted
    std::int64_t expires = 0;            // unix seconds
    std::string ca_pem;                  // the CA certificate (checked against ca_fingerprint)
    std::string cert_pem;                // the join certificate, CN "join:<id>", short-lived
    std::string key_pem;                 // its key
};
std::string encode_token(const JoinToken& t);
JoinToken decode_token(std::string_view text);

}  // namespace hv::cluster::pki
