// HTTP/1.1 over a Unix socket (Boost.Beast). The I/O thread only parses and writes; handlers
// run on the worker pool, bounded by a per-request timeout (504), so a stuck libvirt call
// never blocks other clients. GET /v1/events is a chunked NDJSON stream fed by the EventBus.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "event_bus.hpp"
#include "router.hpp"

namespace hv::daemon {

struct SocketOptions {
    std::string path;
    std::string group;  // chown to this group when it exists
    unsigned mode = 0660;
};

// Creates the socket's directory (0755) and checks it is not writable by others; refuses to
// start when another hvd answers on the path; removes a stale socket file.
void prepare_socket_path(const std::string& path);

class HttpServer {
public:
    HttpServer(boost::asio::io_context& io, boost::asio::thread_pool& pool, const Router& router, EventBus& bus,
               std::chrono::seconds request_timeout);
    ~HttpServer();
    void listen(const SocketOptions& opts);
    void close();
    std::size_t event_streams() const { return *streams_; }

private:
    void accept();
    boost::asio::io_context& io_;
    boost::asio::thread_pool& pool_;
    const Router& router_;
    EventBus& bus_;
    std::chrono::seconds timeout_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    std::string path_;
    boost::asio::steady_timer backoff_;
    std::shared_ptr<std::size_t> streams_ = std::make_shared<std::size_t>(0);
    std::shared_ptr<int> sessions_ = std::make_shared<int>(0);  // use_count - 1 = open sessions
};

}  // namespace hv::daemon
