// One table of "METHOD /v1/path/{param}" -> handler. The server is generic; routes live in
// api_routes.cpp. Handlers run on worker threads and may block.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::daemon {

struct Request {
    std::string method;
    std::string path;
    std::map<std::string, std::string> query;
    std::map<std::string, std::string> params;  // from {name} segments
    std::string body;

    // The body as JSON; an empty body is {}. Throws invalid_input on malformed JSON.
    nlohmann::json json() const;
    // Query flag: present with "", "1", "true" or "yes" -> true; "0"/"false"/"no" -> false.
    bool flag(const std::string& name) const;
    const std::string& param(const std::string& name) const { return params.at(name); }
};

struct Response {
    int status = 200;
    nlohmann::json body;
};

using Handler = std::function<Response(const Request&)>;

class Router {
public:
    // fast: the handler only reads in-memory state (never libvirt, never a lock held across a
    // call); the server runs it directly on the I/O thread so it cannot queue behind slow calls.
    void add(const std::string& method, const std::string& pattern, Handler h, bool fast = false);
    // Fills req.params. Throws not_found (no such path) or invalid_input with status 405
    // semantics reported through method_not_allowed (path exists, method does not).
    struct Route {
        std::string method;
        std::vector<std::string> segments;
        Handler handler;
        bool fast = false;
    };
    const Route& match(Request& req) const;
    const std::vector<Route>& routes() const { return routes_; }

private:
    std::vector<Route> routes_;
};

// Splits "/a/b?x=1&y" into path and decoded query.
void split_target(const std::string& target, std::string& path, std::map<std::string, std::string>& query);
std::string url_decode(const std::string& s);

// Thrown by Router::match when the path exists with other methods.
struct MethodNotAllowed {
    std::string allowed;
};

}  // namespace hv::daemon
