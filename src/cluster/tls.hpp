// What a TLS endpoint of the cluster presents and trusts: PEM text, never file paths, so the
// same identity serves the HTTPS client, the TLS listener and (written to files) etcd.
#pragma once

#include <string>

namespace hv::cluster {

struct TlsIdentity {
    std::string ca_pem;    // the only CA trusted for peers
    std::string cert_pem;  // this side's certificate (chain), signed by that CA
    std::string key_pem;   // its private key
};

}  // namespace hv::cluster
