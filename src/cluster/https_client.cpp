#include "https_client.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <charconv>
#include <optional>

#include "hv/error.hpp"

namespace hv::cluster {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// The OpenSSL reason of a failed step: the verify result when the peer's certificate was
// refused, else what the error code says.
std::string reason(const boost::system::error_code& ec, SSL* s) {
    std::string r = ec.message();
    if (ec.category() == asio::error::get_ssl_category()) {
        char buf[256];
        ERR_error_string_n(static_cast<unsigned long>(ec.value()), buf, sizeof buf);
        r = buf;
    }
    if (s) {
        long v = SSL_get_verify_result(s);
        if (v != X509_V_OK) r += std::string(" (certificate verify: ") + X509_verify_cert_error_string(v) + ")";
    }
    return r;
}

bool is_ip(const std::string& host) {
    boost::system::error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

// Runs the io_context until the pending operation completed; the tcp_stream's expiry ends
// operations that take too long.
void run(asio::io_context& ioc) {
    ioc.restart();
    ioc.run();
}

}  // namespace

struct HttpsClient::Impl {
    ssl::context ctx{ssl::context::tls_client};
};

HttpsClient::HttpsClient(TlsIdentity identity, std::chrono::milliseconds timeout)
    : identity_(std::move(identity)), timeout_(timeout), impl_(std::make_unique<Impl>()) {
    auto& ctx = impl_->ctx;
    boost::system::error_code ec;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                        ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                    ec);
    // Only the identity's CA: no system trust store.
    ctx.add_certificate_authority(asio::buffer(identity_.ca_pem), ec);
    if (ec) fail(Errc::invalid_input, "the cluster CA certificate cannot be loaded: {}", reason(ec, nullptr));
    ctx.use_certificate_chain(asio::buffer(identity_.cert_pem), ec);
    if (ec) fail(Errc::invalid_input, "the client certificate cannot be loaded: {}", reason(ec, nullptr));
    ctx.use_private_key(asio::buffer(identity_.key_pem), ssl::context::pem, ec);
    if (ec) fail(Errc::invalid_input, "the client key cannot be loaded: {}", reason(ec, nullptr));
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
        fail(Errc::invalid_input, "the client key does not match the client certificate");
    ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
}

HttpsClient::~HttpsClient() = default;

namespace {

using Stream = beast::ssl_stream<beast::tcp_stream>;

struct Connection {
    asio::io_context ioc;
    std::optional<Stream> stream;
    std::string where;  // "https://host:port"
};

// Connect and handshake, both before `deadline`; the certificate must name `host`.
void open(Connection& c, ssl::context& ctx, const std::string& host, int port, Clock::time_point deadline) {
    c.where = "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    c.stream.emplace(c.ioc, ctx);
    auto& s = *c.stream;
    SSL* native = s.native_handle();
    X509_VERIFY_PARAM* param = SSL_get0_param(native);
    if (is_ip(host)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1)
            fail(Errc::invalid_input, "{}: {} is not an IP address OpenSSL accepts", c.where, host);
    } else {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) != 1)
            fail(Errc::invalid_input, "{}: {} is not a host name OpenSSL accepts", c.where, host);
        SSL_set_tlsext_host_name(native, host.c_str());
    }

    boost::system::error_code ec;
    tcp::resolver resolver(c.ioc);
    auto endpoints = resolver.resolve(host, std::to_string(port), tcp::resolver::numeric_service, ec);
    if (ec) fail(Errc::unavailable, "{}: cannot resolve {}: {}", c.where, host, ec.message());

    auto& lowest = beast::get_lowest_layer(s);
    lowest.expires_at(deadline);
    bool done = false;
    lowest.async_connect(endpoints, [&](const boost::system::error_code& e, const tcp::endpoint&) {
        ec = e;
        done = true;
    });
    run(c.ioc);
    if (!done || ec) {
        if (ec == beast::error::timeout) fail(Errc::unavailable, "{}: connect timed out", c.where);
        fail(Errc::unavailable, "{}: cannot connect: {}", c.where, ec.message());
    }
    done = false;
    s.async_handshake(ssl::stream_base::client, [&](const boost::system::error_code& e) {
        ec = e;
        done = true;
    });
    run(c.ioc);
    if (!done || ec) {
        if (ec == beast::error::timeout) fail(Errc::unavailable, "{}: TLS handshake timed out", c.where);
        fail(Errc::unavailable, "{}: TLS handshake failed: {}", c.where, reason(ec, native));
    }
}

http::request<http::string_body> make_request(const std::string& host, int port, const HttpsRequest& req) {
    http::request<http::string_body> r;
    r.version(11);
    r.method_string(req.method);
    r.target(req.target);
    r.set(http::field::host, (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port));
    r.set(http::field::user_agent, "hv");
    bool has_type = false;
    for (const auto& [k, v] : req.headers) {
        r.set(k, v);
        if (beast::iequals(k, "content-type")) has_type = true;
    }
    if (!has_type) r.set(http::field::content_type, "application/json");
    r.body() = req.body;
    r.prepare_payload();
    return r;
}

void write_request(Connection& c, http::request<http::string_body>& r, bool* maybe_applied) {
    boost::system::error_code ec;
    bool done = false;
    http::async_write(*c.stream, r, [&](const boost::system::error_code& e, std::size_t) {
        ec = e;
        done = true;
    });
    run(c.ioc);
    if (!done || ec) {
        // Not all of it was sent: the server cannot act on an incomplete request.
        if (ec == beast::error::timeout) fail(Errc::timeout, "{}: sending {} {} timed out", c.where, r.method_string(), r.target());
        fail(Errc::unavailable, "{}: sending {} {} failed: {}", c.where, r.method_string(), r.target(), reason(ec, nullptr));
    }
    if (maybe_applied) *maybe_applied = true;
}

// With TLS 1.3 the server checks the client's certificate after the client's handshake is done,
// so a refused certificate shows up as an alert on the first read.
// Such an alert means the server ended the TLS session before reading the request, so it
// was not applied.
[[noreturn]] void read_failed(const Connection& c, const HttpsRequest& req, const boost::system::error_code& ec,
                              bool* maybe_applied) {
    if (ec.category() == asio::error::get_ssl_category() && ec != ssl::error::stream_truncated) {
        if (maybe_applied && reason(ec, nullptr).find("alert") != std::string::npos) *maybe_applied = false;
        fail(Errc::unavailable, "{}: TLS failed while reading the answer to {} {} (did the server refuse this client's "
             "certificate?): {}", c.where, req.method, req.target, reason(ec, nullptr));
    }
    fail(Errc::unavailable, "{}: reading the answer to {} {} failed: {}", c.where, req.method, req.target, reason(ec, nullptr));
}

void shutdown(Connection& c) {
    boost::system::error_code ec;
    beast::get_lowest_layer(*c.stream).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(*c.stream).close();
}

}  // namespace

HttpsResponse HttpsClient::request(const std::string& host, int port, const HttpsRequest& req,
                                   bool* maybe_applied) const {
    if (maybe_applied) *maybe_applied = false;
    auto deadline = Clock::now() + timeout_;
    Connection c;
    try {
        open(c, impl_->ctx, host, port, deadline);
        auto r = make_request(host, port, req);
        write_request(c, r, maybe_applied);

        beast::flat_buffer buf;
        http::response_parser<http::string_body> parser;
        parser.body_limit(64 * 1024 * 1024);
        boost::system::error_code ec;
        bool done = false;
        http::async_read(*c.stream, buf, parser, [&](const boost::system::error_code& e, std::size_t) {
            ec = e;
            done = true;
        });
        run(c.ioc);
        if (!done || ec) {
            if (ec == beast::error::timeout)
                fail(Errc::timeout, "{}: no answer to {} {} within {} ms", c.where, req.method, req.target, timeout_.count());
            read_failed(c, req, ec, maybe_applied);
        }
        auto& msg = parser.get();
        HttpsResponse out;
        out.status = static_cast<int>(msg.result_int());
        for (const auto& f : msg) {
            std::string name(f.name_string());
            for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            out.headers[name] = std::string(f.value());
        }
        out.body = std::move(msg.body());
        shutdown(c);
        return out;
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        fail(Errc::internal, "{}: {} {}: {}", c.where, req.method, req.target, e.what());
    }
}

int HttpsClient::stream(const std::string& host, int port, const HttpsRequest& req,
                        const std::function<bool(const std::string& chunk)>& on_chunk, const std::atomic<bool>& stop,
                        std::chrono::milliseconds poll) const {
    auto deadline = Clock::now() + timeout_;
    Connection c;
    try {
        open(c, impl_->ctx, host, port, deadline);
        auto r = make_request(host, port, req);
        write_request(c, r, nullptr);

        beast::flat_buffer buf;
        http::response_parser<http::buffer_body> parser;
        parser.body_limit(boost::none);
        boost::system::error_code ec;
        bool done = false;
        http::async_read_header(*c.stream, buf, parser, [&](const boost::system::error_code& e, std::size_t) {
            ec = e;
            done = true;
        });
        run(c.ioc);
        if (!done || ec) {
            if (ec == beast::error::timeout)
                fail(Errc::timeout, "{}: no answer to {} {} within {} ms", c.where, req.method, req.target, timeout_.count());
            read_failed(c, req, ec, nullptr);
        }
        int status = static_cast<int>(parser.get().result_int());
        auto& lowest = beast::get_lowest_layer(*c.stream);
        lowest.expires_never();
        char chunk[16 * 1024];
        while (!parser.is_done()) {
            if (stop.load()) break;
            parser.get().body().data = chunk;
            parser.get().body().size = sizeof chunk;
            done = false;
            http::async_read_some(*c.stream, buf, parser, [&](const boost::system::error_code& e, std::size_t) {
                ec = e;
                done = true;
            });
            c.ioc.restart();
            while (!done) {
                c.ioc.run_for(poll);
                if (!done && stop.load()) {
                    lowest.cancel();
                    c.ioc.restart();
                    c.ioc.run();
                    return status;
                }
            }
            if (ec == http::error::need_buffer) ec = {};
            std::size_t n = sizeof chunk - parser.get().body().size;
            if (n > 0 && !on_chunk(std::string(chunk, n))) break;
            if (ec == http::error::end_of_stream || ec == asio::error::eof) break;
            if (ec)
                fail(Errc::unavailable, "{}: the stream of {} {} broke: {}", c.where, req.method, req.target,
                     reason(ec, nullptr));
        }
        shutdown(c);
        return status;
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        fail(Errc::internal, "{}: {} {}: {}", c.where, req.method, req.target, e.what());
    }
}

std::pair<std::string, int> split_host_port(const std::string& endpoint, int default_port) {
    std::string s = endpoint;
    if (s.rfind("https://", 0) == 0)
        s = s.substr(8);
    else if (s.rfind("http://", 0) == 0)
        fail(Errc::invalid_input, "endpoint {}: only https is supported", endpoint);
    if (auto slash = s.find('/'); slash != std::string::npos) {
        if (s.find_first_not_of('/', slash) != std::string::npos)
            fail(Errc::invalid_input, "endpoint {}: a path is not allowed", endpoint);
        s = s.substr(0, slash);
    }
    std::string host;
    std::string port;
    if (!s.empty() && s[0] == '[') {
        auto close = s.find(']');
        if (close == std::string::npos) fail(Errc::invalid_input, "endpoint {}: unclosed [", endpoint);
        host = s.substr(1, close - 1);
        auto rest = s.substr(close + 1);
        if (!rest.empty()) {
            if (rest[0] != ':') fail(Errc::invalid_input, "endpoint {}: junk after ]", endpoint);
            port = rest.substr(1);
            if (port.empty()) fail(Errc::invalid_input, "endpoint {}: empty port", endpoint);
        }
        boost::system::error_code ec;
        asio::ip::make_address_v6(host, ec);
        if (ec) fail(Errc::invalid_input, "endpoint {}: {} is not an IPv6 address", endpoint, host);
    } else {
        auto colon = s.rfind(':');
        if (colon != std::string::npos && s.find(':') != colon)
            fail(Errc::invalid_input, "endpoint {}: an IPv6 address needs brackets", endpoint);
        host = s.substr(0, colon);
        if (colon != std::string::npos) {
            port = s.substr(colon + 1);
            if (port.empty()) fail(Errc::invalid_input, "endpoint {}: empty port", endpoint);
        }
    }
    if (host.empty()) fail(Errc::invalid_input, "endpoint {}: no host", endpoint);
    for (char ch : host)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' || ch == ':' || ch == '_'))
            fail(Errc::invalid_input, "endpoint {}: bad character in host", endpoint);
    int p = default_port;
    if (!port.empty()) {
        auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
        if (ec != std::errc() || ptr != port.data() + port.size() || p < 1 || p > 65535)
            fail(Errc::invalid_input, "endpoint {}: bad port {}", endpoint, port);
    }
    return {host, p};
}

}  // namespace hv::cluster
