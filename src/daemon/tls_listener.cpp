#include "tls_listener.hpp"

#include <fcntl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "hv/error.hpp"
#include "hv/util/guard.hpp"
#include "http_server.hpp"

namespace hv::daemon {
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;

namespace {
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

std::string peer_cn(SSL* ssl) {
    X509* cert = SSL_get1_peer_certificate(ssl);
    if (!cert) return {};
    char buf[256] = {};
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
    X509_free(cert);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// One accepted connection: TLS on one side, the HttpServer's socketpair end on the other.
class Pump : public std::enable_shared_from_this<Pump> {
public:
    Pump(tcp::socket s, ssl::context& ctx, HttpServer& server)
        : tls_(std::move(s), ctx), plain_(tls_.get_executor()), timer_(tls_.get_executor()), server_(server) {}

    void start() {
        boost::system::error_code ec;
        remote_ = tls_.next_layer().remote_endpoint(ec).address().to_string();
        timer_.expires_after(kHandshakeTimeout);
        timer_.async_wait([w = weak_from_this()](boost::system::error_code ec) {
            if (ec) return;
            if (auto self = w.lock()) self->close();
        });
        tls_.async_handshake(ssl::stream_base::server, [self = shared_from_this()](boost::system::error_code ec) {
            util::guarded("TLS handshake", [&] { self->on_handshake(ec); });
        });
    }

private:
    void on_handshake(boost::system::error_code ec) {
        timer_.cancel();
        if (ec) {
            spdlog::info("TLS connection from {} refused: {}", remote_, ec.message());
            return close();
        }
        Peer peer;
        peer.subject = peer_cn(tls_.native_handle());
        local::socket served(tls_.get_executor());
        asio::local::connect_pair(plain_, served);
        ::fcntl(plain_.native_handle(), F_SETFD, FD_CLOEXEC);
        server_.adopt(std::move(served), std::move(peer));
        up();
        down();
    }
    // Client -> hvd.
    void up() {
        tls_.async_read_some(asio::buffer(up_buf_), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
            if (ec) {
                boost::system::error_code ig;
                self->plain_.shutdown(local::socket::shutdown_send, ig);
                return;
            }
            asio::async_write(self->plain_, asio::buffer(self->up_buf_.data(), n),
                              [self](boost::system::error_code wec, std::size_t) {
                                  if (wec) return self->close();
                                  self->up();
                              });
        });
    }
    // hvd -> client.
    void down() {
        plain_.async_read_some(asio::buffer(down_buf_), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
            if (ec) {
                if (self->closed_) return;
                self->tls_.async_shutdown([self](boost::system::error_code) { self->close(); });
                return;
            }
            asio::async_write(self->tls_, asio::buffer(self->down_buf_.data(), n),
                              [self](boost::system::error_code wec, std::size_t) {
                                  if (wec) return self->close();
                                  self->down();
                              });
        });
    }
    void close() {
        if (closed_) return;
        closed_ = true;
        boost::system::error_code ig;
        tls_.next_layer().shutdown(tcp::socket::shutdown_both, ig);
        tls_.next_layer().close(ig);
        plain_.close(ig);
        timer_.cancel();
    }

    ssl::stream<tcp::socket> tls_;
    local::socket plain_;
    asio::steady_timer timer_;
    HttpServer& server_;
    std::string remote_;
    bool closed_ = false;
    std::array<char, 16384> up_buf_{};
    std::array<char, 16384> down_buf_{};
};
}  // namespace

struct TlsListener::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io, HttpServer& s) : server(s), ctx(ssl::context::tls_server), acceptor(io), backoff(io) {}
    HttpServer& server;
    ssl::context ctx;
    tcp::acceptor acceptor;
    asio::steady_timer backoff;

    void accept() {
        acceptor.async_accept([self = shared_from_this()](boost::system::error_code ec, tcp::socket s) {
            if (!self->acceptor.is_open()) return;
            if (ec) {
                if (ec == asio::error::operation_aborted) return;
                spdlog::error("TLS accept: {}; pausing accepts for 200 ms", ec.message());
                self->backoff.expires_after(std::chrono::milliseconds(200));
                self->backoff.async_wait([self](boost::system::error_code tec) {
                    if (!tec) self->accept();
                });
                return;
            }
            util::guarded("accepting a TLS connection", [&] {
                std::make_shared<Pump>(std::move(s), self->ctx, self->server)->start();
            });
            self->accept();
        });
    }
};

TlsListener::TlsListener(asio::io_context& io, HttpServer& server, const std::string& address, int port,
                         const cluster::TlsIdentity& id)
    : impl_(std::make_shared<Impl>(io, server)) {
    auto& ctx = impl_->ctx;
    try {
        ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                        ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        ctx.add_certificate_authority(asio::buffer(id.ca_pem));
        ctx.use_certificate_chain(asio::buffer(id.cert_pem));
        ctx.use_private_key(asio::buffer(id.key_pem), ssl::context::pem);
        ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    } catch (const boost::system::system_error& e) {
        fail(Errc::internal, "the cluster TLS identity does not load: {}", e.what());
    }
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(address, ec);
    if (ec) fail(Errc::invalid_input, "cluster address '{}' is not an IP address", address);
    tcp::endpoint ep(addr, static_cast<unsigned short>(port));
    auto& acc = impl_->acceptor;
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) fail(Errc::unavailable, "cannot listen on {}:{} for the cluster: {}", address, port, ec.message());
    ::fcntl(acc.native_handle(), F_SETFD, FD_CLOEXEC);
    spdlog::info("listening on {}:{} (HTTPS, client certificates of the cluster CA)", address, port);
    impl_->accept();
}

TlsListener::~TlsListener() {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
    impl_->backoff.cancel();
}

int TlsListener::port() const {
    boost::system::error_code ec;
    return impl_->acceptor.local_endpoint(ec).port();
}

}  // namespace hv::daemon
