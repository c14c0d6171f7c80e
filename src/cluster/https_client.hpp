// A small blocking HTTPS/1.1 client with a client certificate (Boost.Beast + OpenSSL), used
// for etcd's JSON gateway and for forwarding requests between hosts. Only the identity's CA
// is trusted; the server's certificate must name the host asked for (IP SAN or DNS SAN)
// unless `expect_name` says which name to check instead.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "tls.hpp"

namespace hv::cluster {

struct HttpsResponse {
    int status = 0;
    std::map<std::string, std::string> headers;  // names lower-case
    std::string body;
};

struct HttpsRequest {
    std::string method = "GET";
    std::string target = "/";  // path and query
    std::string body;
    std::map<std::string, std::string> headers;  // Content-Type is application/json unless set
};

class HttpsClient {
public:
    HttpsClient(TlsIdentity identity, std::chrono::milliseconds timeout);
    ~HttpsClient();
    HttpsClient(const HttpsClient&) = delete;
    HttpsClient& operator=(const HttpsClient&) = delete;

    // One request on its own connection. Throws hv::Error(unavailable) when the host cannot
    // be reached or the TLS handshake fails (the message says which), hv::Error(timeout) when
    // no answer arrives within the timeout. `maybe_applied` (optional) says whether the request may
    // have reached the server (it was fully sent): retry a write elsewhere only when false.
    HttpsResponse request(const std::string& host, int port, const HttpsRequest& req,
                          bool* maybe_applied = nullptr) const;

    // A streaming request (etcd's watch): the response body is handed to `on_chunk` as it
    // arrives until the server ends it, `on_chunk` returns false, or `stop` becomes true
    // (checked at least every `poll`). No overall timeout; the connect and the header still
    // use the client's timeout. Returns the status.
    int stream(const std::string& host, int port, const HttpsRequest& req,
               const std::function<bool(const std::string& chunk)>& on_chunk, const std::atomic<bool>& stop,
               std::chrono::milliseconds poll = std::chrono::milliseconds(200)) const;

    const TlsIdentity& identity() const { return identity_; }

private:
    struct Impl;
    TlsIdentity identity_;
    std::chrono::milliseconds timeout_;
    std::unique_ptr<Impl> impl_;
};

// "host:port" / "[v6]:port" / "https://host:port" -> host, port. Throws invalid_input.
std::pair<std::string, int> split_host_port(const std::string& endpoint, int default_port);

}  // namespace hv::cluster
