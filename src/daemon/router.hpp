// One table of "METHOD /v1/path/{param}" -> handler. The server is generic; routes live in
// api_routes.cpp. Handlers run on worker threads and may block.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::daemon {

// Everything in a Request is checked where it enters (split_target, Router::match, the server's
// header check, json()): path parameters and query keys/values are valid UTF-8 without
// control characters, so handlers never see bytes that cannot be rendered back.
struct Request {
    std::string method;
    std::string path;
    std::map<std::string, std::string> query;
    std::map<std::string, std::string> params;  // from {name} segments
    std::string body;
    // Who asks: SO_PEERCRED of the Unix socket (-1 when unknown); the subject of the client
    // certificate once requests arrive over TLS from other hosts (empty until then).
    long peer_uid = -1;
    long peer_gid = -1;
    long peer_pid = -1;
    std::string peer_subject;
    // Set when another member of the cluster forwarded the request (X-Hv-Forwarded-By over
    // TLS from a host certificate): it runs here, never forwarded again.
    std::string forwarded_by;
    // The request's id: the client's X-Request-Id when it is one (1-64 of A-Z a-z 0-9 . _ -),
    // else made by hvd. Sent back in X-Request-Id, carried by the handler's log lines
    // (REQUEST_ID=), by the tasks it queues and by the events those publish.
    std::string request_id;
    // When the answer is due (arrival + daemon.request_timeout): work that cannot finish by
    // then belongs in a task.
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
    // What the route acts on, resolved from its declaration (Router::add): "guest:web01",
    // "pool:local", "task:t-000012", "host". A dispatcher in front of the handler runs the
    // request here or, once hosts form a cluster, forwards it to the resource's owner.
    std::string resource;
    // Streaming routes only (Router::add_streaming): `body` stays empty and the handler pulls
    // the body with read_body(buf, n), which returns up to n bytes and 0 at the end. It blocks
    // until data arrives and throws hv::Error when the client goes away, sends nothing for the
    // upload idle timeout, or hvd stops. content_length is the Content-Length header (none
    // for a chunked body).
    std::function<std::size_t(char* buf, std::size_t n)> read_body;
    std::optional<std::uint64_t> content_length;

    // The body as JSON; an empty body is {}. Throws invalid_input on malformed JSON or a body
    // that is not UTF-8 (the message never quotes the offending bytes).
    nlohmann::json json() const;
    // Query flag: present with "", "1", "true" or "yes" -> true; "0"/"false"/"no" -> false.
    bool flag(const std::string& name) const;
    const std::string& param(const std::string& name) const { return params.at(name); }
};

struct Response {
    int status = 200;
    nlohmann::json body;
    // Empty: `body` is sent as JSON. Otherwise `body` holds a string sent as it is with this
    // Content-Type (GET /v1/metrics: Prometheus text).
    std::string content_type = {};
};

using Handler = std::function<Response(const Request&)>;
// Upgrade routes (an interactive console): the handler checks the request and prepares on a
// worker thread, throwing hv::Error to refuse (answered as usual). What it returns takes the
// connection over after "101 Switching Protocols": it gets the socket (fd, its owner from
// then on) and any bytes the client sent after the request.
using Takeover = std::function<void(int fd, std::string pending)>;
using UpgradeHandler = std::function<Takeover(const Request&)>;

// What a route acts on: "host" (this host's own state), "guest:{name}", "pool:{pool}",
// "task:{id}" — a kind and, in braces, the path parameter that names it. Router::add refuses
// a declaration whose parameter is not in the pattern.
struct Resource {
    Resource(const char* s) : pattern(s) {}  // NOLINT: routes declare it as a literal
    Resource(std::string s) : pattern(std::move(s)) {}  // NOLINT
    std::string pattern;
};

class Router {
public:
    // fast: the handler only reads in-memory state (never libvirt, never a lock held across a
    // call); the server runs it directly on the I/O thread so it cannot queue behind slow calls.
    void add(const std::string& method, const std::string& pattern, Resource resource, Handler h, bool fast = false);
    // streaming: the body is not read into Request::body (no size limit); the handler runs on
    // the server's upload threads, without the request timeout, and reads the body through
    // Request::read_body (e.g. PUT of an ISO image).
    void add_streaming(const std::string& method, const std::string& pattern, Resource resource, Handler h);
    // upgrade: the request must carry "Connection: Upgrade" and "Upgrade: <protocol>"
    // (400 otherwise); see UpgradeHandler.
    void add_upgrade(const std::string& method, const std::string& pattern, Resource resource, std::string protocol,
                     UpgradeHandler h);
    // Fills req.params and req.resource. Throws not_found (no such path) or invalid_input with status 405
    // semantics reported through method_not_allowed (path exists, method does not).
    struct Route {
        std::string method;
        std::vector<std::string> segments;
        Handler handler;
        bool fast = false;
        bool streaming = false;
        UpgradeHandler upgrade = {};
        std::string protocol = {};
        std::string resource = "host";  // the declaration, e.g. "guest:{name}"
    };
    const Route& match(Request& req) const;
    const std::vector<Route>& routes() const { return routes_; }

private:
    std::vector<Route> routes_;
};

// Splits "/a/b?x=1&y" into path and decoded query. Throws invalid_input when the path or a
// decoded query key or value is not UTF-8 or holds control characters.
void split_target(const std::string& target, std::string& path, std::map<std::string, std::string>& query);
std::string url_decode(const std::string& s);

// Thrown by Router::match when the path exists with other methods.
struct MethodNotAllowed {
    std::string allowed;
};

}  // namespace hv::daemon
