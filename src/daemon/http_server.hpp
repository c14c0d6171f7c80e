// HTTP/1.1 over a Unix socket (Boost.Beast). The I/O thread only parses and writes; handlers
// run on the worker pool, bounded by a per-request timeout (504), so a stuck libvirt call
// never blocks other clients. GET /v1/events is a chunked NDJSON stream fed by the EventBus.
// Streaming routes (Router::add_streaming, e.g. ISO uploads): the header is read first, the
// handler runs on one of the server's own upload threads (at most kMaxStreams at once, 503
// beyond) without the request timeout, and pulls the body (Content-Length or chunked, no size
// limit) through Request::read_body; the I/O thread reads ahead at most a few MiB, so memory
// stays small whatever the size. "Expect: 100-continue" is answered when the handler first
// reads, so a refused upload is answered before the client sends its body.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sys/types.h>
#include <string>

#include "event_bus.hpp"
#include "router.hpp"

namespace hv::daemon {

// Who is on the other end of a connection (SO_PEERCRED); -1 when unknown.
struct Peer {
    long uid = -1;
    long gid = -1;
    long pid = -1;
    // Over TLS (the cluster listener): the client certificate's subject CN, "host:<node>" or
    // "join:<token id>"; empty on the Unix socket.
    std::string subject;
};

// In front of the router (docs/architecture.md, "A forwarded request"): after the header is
// read and the route matched, admit() may refuse the request (hv::Error, e.g. forbidden) and
// owner() names the host that must run it (nullopt: here), read from the resource the route
// declares. forward() runs it there and returns that host's answer unchanged. Both run where
// the request would (owner on the I/O thread: memory only; forward on a worker).
class Dispatcher {
public:
    virtual ~Dispatcher() = default;
    virtual void admit(const Request& req) const = 0;
    virtual std::optional<std::string> owner(const Request& req) const = 0;
    // Streaming routes too: the body is read through req.read_body and streamed on.
    virtual Response forward(const std::string& node, const Request& req) const = 0;
    // Upgrade routes: the owner answers "101" first (else the refusal is thrown as hv::Error);
    // the takeover relays the client's bytes to the owner and back, unchanged.
    virtual Takeover forward_upgrade(const std::string& node, const Request& req, const std::string& protocol) const = 0;
    // GET /v1/events?host=<node>: the owner answers "200" and its stream first (else the
    // refusal is thrown); the takeover passes the owner's answer, head and all, to the client.
    virtual Takeover forward_events(const std::string& node, const Request& req) const = 0;
};

// Slow and greedy clients (config [daemon]: header_timeout, max_connections,
// max_connections_per_uid, max_root_connections). A refused connection is answered 503 with
// the reason and closed.
struct ServerLimits {
    // A request's header must arrive within this long (408 otherwise; an idle keep-alive
    // connection is closed after it).
    std::chrono::seconds header_timeout{10};
    // Connections of all users but root together, and of each such uid.
    std::size_t max_connections = 512;
    std::size_t max_connections_per_uid = 64;
    // root's own connections: other users' connections never keep root out.
    std::size_t max_root_connections = 4096;
};

// Counts open connections by peer uid; any thread (a session may end on a worker).
class ConnectionLimiter {
public:
    explicit ConnectionLimiter(ServerLimits l) : limits_(l) {}
    // nullopt: admitted (release later); otherwise why not.
    std::optional<std::string> acquire(uid_t uid);
    void release(uid_t uid);
    std::size_t open() const;

private:
    ServerLimits limits_;
    mutable std::mutex mu_;
    std::map<uid_t, std::size_t> per_uid_;
    std::size_t others_ = 0;
    std::size_t root_ = 0;
};

struct SocketOptions {
    std::string path;
    std::string group;  // chown to this group when it exists
    unsigned mode = 0660;
    // A listening socket handed over by systemd (hvd.socket, LISTEN_FDS): used as it is; its
    // path, mode and group are the socket unit's, and hvd never unlinks it. -1: bind `path`.
    int inherited_fd = -1;
};

// Creates the socket's directory (0755) and checks it is not writable by others; refuses to
// start when another hvd answers on the path; removes a stale socket file.
void prepare_socket_path(const std::string& path);

class HttpServer {
public:
    // Streaming requests (uploads) handled at once; more are answered 503.
    static constexpr int kMaxStreams = 4;
    // An upload that receives nothing for this long fails (and its handler cleans up).
    static constexpr std::chrono::seconds kStreamIdleTimeout{60};

    HttpServer(boost::asio::io_context& io, boost::asio::thread_pool& pool, const Router& router, EventBus& bus,
               std::chrono::seconds request_timeout, ServerLimits limits = {});
    ~HttpServer();
    void listen(const SocketOptions& opts);
    void close();
    // Serves a connection accepted elsewhere (the TLS listener hands over the plain side of
    // its pump) as if it came from `peer`; counted with root's connections.
    void adopt(boost::asio::local::stream_protocol::socket s, Peer peer);
    // Set once before listen(); the dispatcher outlives the server.
    void set_dispatcher(const Dispatcher* d) { dispatcher_ = d; }
    std::size_t event_streams() const { return *streams_; }
    std::size_t connections() const { return limiter_->open(); }

private:
    void accept();
    void admit(boost::asio::local::stream_protocol::socket s);
    void serve(boost::asio::local::stream_protocol::socket s, Peer peer, uid_t key);
    const Dispatcher* dispatcher_ = nullptr;
    boost::asio::io_context& io_;
    boost::asio::thread_pool& pool_;
    const Router& router_;
    EventBus& bus_;
    std::chrono::seconds timeout_;
    ServerLimits limits_;
    std::shared_ptr<ConnectionLimiter> limiter_ = std::make_shared<ConnectionLimiter>(limits_);
    boost::asio::local::stream_protocol::acceptor acceptor_;
    std::string path_;
    boost::asio::steady_timer backoff_;
    std::shared_ptr<std::size_t> streams_ = std::make_shared<std::size_t>(0);
    // Streaming handlers: their own threads, so long uploads never take request workers.
    std::shared_ptr<std::atomic<bool>> stopping_ = std::make_shared<std::atomic<bool>>(false);
    std::shared_ptr<std::atomic<int>> active_streams_ = std::make_shared<std::atomic<int>>(0);
    boost::asio::thread_pool stream_pool_;
};

}  // namespace hv::daemon
