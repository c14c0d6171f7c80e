#include "tls_relay.hpp"

#include <fmt/format.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <optional>

#include "hv/error.hpp"

namespace hv::cluster {
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

struct TlsConnection::Impl {
    asio::io_context ioc;
    ssl::context ctx{ssl::context::tls_client};
    std::optional<ssl::stream<tcp::socket>> s;
    std::string where;
};

namespace {
// Runs `ioc` until `done` or the timeout; on timeout the socket is closed (the pending
// operation ends with an error) and false is returned.
bool run_until(asio::io_context& ioc, bool& done, std::chrono::milliseconds timeout, tcp::socket& sock) {
    ioc.restart();
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done && std::chrono::steady_clock::now() < deadline) ioc.run_one_until(deadline);
    if (done) return true;
    boost::system::error_code ig;
    sock.close(ig);
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(100));
    return false;
}
}  // namespace

TlsConnection::TlsConnection(const TlsIdentity& id, const std::string& host, int port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()), timeout_(timeout) {
    auto& im = *impl_;
    im.where = "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    boost::system::error_code ec;
    im.ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                           ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                       ec);
    im.ctx.add_certificate_authority(asio::buffer(id.ca_pem), ec);
    if (!ec) im.ctx.use_certificate_chain(asio::buffer(id.cert_pem), ec);
    if (!ec) im.ctx.use_private_key(asio::buffer(id.key_pem), ssl::context::pem, ec);
    if (ec) fail(Errc::invalid_input, "the cluster identity cannot be loaded: {}", ec.message());
    im.ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
    im.s.emplace(im.ioc, im.ctx);
    X509_VERIFY_PARAM* param = SSL_get0_param(im.s->native_handle());
    asio::ip::make_address(host, ec);
    if (!ec) {
        X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    } else {
        X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
        SSL_set_tlsext_host_name(im.s->native_handle(), host.c_str());
    }
    tcp::resolver resolver(im.ioc);
    auto eps = resolver.resolve(host, std::to_string(port), tcp::resolver::numeric_service, ec);
    if (ec) fail(Errc::unavailable, "{}: cannot resolve {}: {}", im.where, host, ec.message());
    bool done = false;
    asio::async_connect(im.s->next_layer(), eps, [&](const boost::system::error_code& e, const tcp::endpoint&) {
        ec = e;
        done = true;
    });
    if (!run_until(im.ioc, done, timeout, im.s->next_layer())) fail(Errc::unavailable, "{}: connect timed out", im.where);
    if (ec) fail(Errc::unavailable, "{}: cannot connect: {}", im.where, ec.message());
    done = false;
    im.s->async_handshake(ssl::stream_base::client, [&](const boost::system::error_code& e) {
        ec = e;
        done = true;
    });
    if (!run_until(im.ioc, done, timeout, im.s->next_layer()))
        fail(Errc::unavailable, "{}: TLS handshake timed out", im.where);
    if (ec) fail(Errc::unavailable, "{}: TLS handshake failed: {}", im.where, ec.message());
}

TlsConnection::~TlsConnection() {
    boost::system::error_code ig;
    if (impl_->s) impl_->s->next_layer().close(ig);
}

void TlsConnection::write_all(const char* data, std::size_t n) {
    auto& im = *impl_;
    boost::system::error_code ec;
    bool done = false;
    asio::async_write(*im.s, asio::buffer(data, n), [&](const boost::system::error_code& e, std::size_t) {
        ec = e;
        done = true;
    });
    if (!run_until(im.ioc, done, timeout_, im.s->next_layer())) fail(Errc::timeout, "{}: sending timed out", im.where);
    if (ec) fail(Errc::unavailable, "{}: sending failed: {}", im.where, ec.message());
}

std::size_t TlsConnection::read_some(char* buf, std::size_t n) {
    auto& im = *impl_;
    boost::system::error_code ec;
    std::size_t got = 0;
    bool done = false;
    im.s->async_read_some(asio::buffer(buf, n), [&](const boost::system::error_code& e, std::size_t k) {
        ec = e;
        got = k;
        done = true;
    });
    if (!run_until(im.ioc, done, timeout_, im.s->next_layer())) fail(Errc::timeout, "{}: no answer in time", im.where);
    if (ec == asio::error::eof || ec == ssl::error::stream_truncated) return got;
    if (ec) fail(Errc::unavailable, "{}: reading failed: {}", im.where, ec.message());
    return got;
}

std::string TlsConnection::upgrade(const std::string& host, int port, const std::string& target, const std::string& protocol,
                                   std::string& rest) {
    write_all(fmt::format("GET {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: Upgrade\r\nUpgrade: {}\r\nContent-Length: 0\r\n\r\n",
                          target, host, port, protocol));
    return read_header(rest);
}

std::string TlsConnection::read_header(std::string& rest) {
    std::string data;
    std::array<char, 4096> buf{};
    for (;;) {
        auto end = data.find("\r\n\r\n");
        if (end != std::string::npos) {
            rest = data.substr(end + 4);
            return data.substr(0, end + 4);
        }
        if (data.size() > 16384) fail(Errc::internal, "{}: the answer's header is larger than 16 KiB", impl_->where);
        std::size_t n = read_some(buf.data(), buf.size());
        if (n == 0) fail(Errc::unavailable, "{}: the connection ended before an answer", impl_->where);
        data.append(buf.data(), n);
    }
}

void TlsConnection::relay(int fd, const std::atomic<bool>* stop) {
    auto& im = *impl_;
    im.ioc.restart();
    int dup = ::dup(fd);
    if (dup < 0) return;
    asio::posix::stream_descriptor plain(im.ioc, dup);
    asio::steady_timer tick(im.ioc);
    std::array<char, 16384> up{}, down{};
    bool ended = false;
    auto finish = [&] {
        if (ended) return;
        ended = true;
        boost::system::error_code ig;
        plain.close(ig);
        im.s->next_layer().close(ig);
        tick.cancel();
    };
    std::function<void()> pump_up, pump_down, poll;
    pump_up = [&] {  // plain -> TLS
        plain.async_read_some(asio::buffer(up), [&](const boost::system::error_code& ec, std::size_t n) {
            if (ec) return finish();
            asio::async_write(*im.s, asio::buffer(up.data(), n), [&](const boost::system::error_code& wec, std::size_t) {
                if (wec) return finish();
                pump_up();
            });
        });
    };
    pump_down = [&] {  // TLS -> plain
        im.s->async_read_some(asio::buffer(down), [&](const boost::system::error_code& ec, std::size_t n) {
            if (ec) return finish();
            asio::async_write(plain, asio::buffer(down.data(), n), [&](const boost::system::error_code& wec, std::size_t) {
                if (wec) return finish();
                pump_down();
            });
        });
    };
    poll = [&] {
        tick.expires_after(std::chrono::milliseconds(250));
        tick.async_wait([&](const boost::system::error_code& ec) {
            if (ec || ended) return;
            if (stop && stop->load()) return finish();
            poll();
        });
    };
    pump_up();
    pump_down();
    poll();
    im.ioc.run();
}

}  // namespace hv::cluster
