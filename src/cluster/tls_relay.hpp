// One client TLS connection to another host that carries raw bytes: forwarded uploads (the
// request body streamed through) and console upgrades (bytes both ways after "101"). Blocking
// OpenSSL on its own socket; the same trust rules as HttpsClient (only the cluster CA, the
// server certificate must name the host dialled).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "tls.hpp"

namespace hv::cluster {

class TlsConnection {
public:
    // Connects and handshakes within `timeout`. Throws hv::Error(unavailable) with the reason.
    TlsConnection(const TlsIdentity& id, const std::string& host, int port, std::chrono::milliseconds timeout);
    ~TlsConnection();
    TlsConnection(const TlsConnection&) = delete;
    TlsConnection& operator=(const TlsConnection&) = delete;

    // Each waits at most `timeout` for progress; throws hv::Error(unavailable/timeout).
    void write_all(const char* data, std::size_t n);
    void write_all(const std::string& s) { write_all(s.data(), s.size()); }
    // Up to n bytes; 0 at the end of the stream.
    std::size_t read_some(char* buf, std::size_t n);
    // Reads an HTTP response header (up to the blank line, at most 16 KiB): returns the
    // header text; what came after it is left in `rest`.
    std::string read_header(std::string& rest);
    // GET `target` with "Upgrade: `protocol`" to hvd at host:port, then read_header(rest): the
    // response header ("HTTP/1.1 101 ..." when the upgrade was taken).
    std::string upgrade(const std::string& host, int port, const std::string& target, const std::string& protocol,
                        std::string& rest);

    // Copies bytes both ways between `fd` (a plain socket) and this connection until either
    // side ends or `stop` becomes true (checked every 250 ms). No timeout: a console may idle.
    void relay(int fd, const std::atomic<bool>* stop = nullptr);

private:
    bool wait(bool for_write, int ms);
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::chrono::milliseconds timeout_;
};

}  // namespace hv::cluster
