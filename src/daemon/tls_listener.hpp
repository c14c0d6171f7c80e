// hvd's API between hosts (docs/cluster.md): HTTPS on [cluster] port, mutual TLS with the
// cluster CA only (a client without a certificate of that CA fails the handshake). Each
// accepted connection is pumped between its TLS stream and one end of a socketpair whose other
// end the HttpServer serves like a Unix-socket client (HttpServer::adopt), with the client
// certificate's CN as Peer::subject: one HTTP implementation, the same routes, limits,
// streaming and upgrades on both transports.
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>

#include "tls.hpp"

namespace hv::daemon {

class HttpServer;

class TlsListener {
public:
    // Binds address:port and starts accepting. Throws hv::Error when it cannot bind or the
    // identity does not load.
    TlsListener(boost::asio::io_context& io, HttpServer& server, const std::string& address, int port,
                const cluster::TlsIdentity& id);
    ~TlsListener();  // stops accepting; open connections end with the io_context
    int port() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace hv::daemon
