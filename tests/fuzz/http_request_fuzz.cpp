// The HTTP request path of hvd, from raw bytes to a matched route (src/daemon/http_server.cpp
// on_header/on_read): Boost.Beast's request parser (hvd's 4 MiB body limit), split_target and
// url_decode of the target, Router::match on a router holding hvd's route patterns, then what
// handlers read: Request::json() and Request::flag().
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "fuzz_common.hpp"
#include "router.hpp"

namespace http = boost::beast::http;
using hv::daemon::Request;
using hv::daemon::Response;
using hv::daemon::Router;

namespace {

// Every route hvd registers (src/daemon/*_routes.cpp; the loops there expanded), with the kind
// of registration. Keep in step with those files when routes are added.
const Router& router() {
    static const Router r = [] {
        Router r;
        auto h = [](const Request&) { return Response{}; };
        const char* plain[][2] = {
            {"GET", "/v1/vms"}, {"POST", "/v1/vms"}, {"GET", "/v1/vms/{name}"}, {"PATCH", "/v1/vms/{name}"},
            {"DELETE", "/v1/vms/{name}"}, {"POST", "/v1/vms/{name}/start"}, {"POST", "/v1/vms/{name}/stop"},
            {"POST", "/v1/vms/{name}/reboot"}, {"POST", "/v1/vms/{name}/reset"}, {"POST", "/v1/vms/{name}/suspend"},
            {"POST", "/v1/vms/{name}/resume"}, {"POST", "/v1/vms/{name}/shutdown"},
            {"POST", "/v1/vms/{name}/disks"}, {"DELETE", "/v1/vms/{name}/disks/{disk}"},
            {"POST", "/v1/vms/{name}/nics"}, {"PATCH", "/v1/vms/{name}/nics/{nic}"},
            {"DELETE", "/v1/vms/{name}/nics/{nic}"}, {"PUT", "/v1/vms/{name}/cdrom"},
            {"GET", "/v1/vms/{name}/autostart"}, {"PUT", "/v1/vms/{name}/autostart"},
            {"GET", "/v1/vms/{name}/snapshots"}, {"POST", "/v1/vms/{name}/snapshots"},
            {"GET", "/v1/vms/{name}/snapshots/{snap}"}, {"DELETE", "/v1/vms/{name}/snapshots/{snap}"},
            {"POST", "/v1/vms/{name}/snapshots/{snap}/revert"}, {"POST", "/v1/vms/{name}/clone"},
            {"POST", "/v1/vms/{name}/template"},
            {"GET", "/v1/cts"}, {"POST", "/v1/cts"}, {"GET", "/v1/cts/{name}"}, {"PATCH", "/v1/cts/{name}"},
            {"DELETE", "/v1/cts/{name}"}, {"POST", "/v1/cts/{name}/start"}, {"POST", "/v1/cts/{name}/stop"},
            {"POST", "/v1/cts/{name}/reboot"}, {"POST", "/v1/cts/{name}/shutdown"}, {"POST", "/v1/cts/{name}/exec"},
            {"GET", "/v1/cts/{name}/autostart"}, {"PUT", "/v1/cts/{name}/autostart"},
            {"GET", "/v1/tasks"}, {"GET", "/v1/tasks/{id}"}, {"GET", "/v1/tasks/{id}/log"},
            {"POST", "/v1/tasks/{id}/cancel"}, {"GET", "/v1/host"}, {"GET", "/v1/version"}, {"GET", "/v1/metrics"},
            {"GET", "/v1/time"}, {"PUT", "/v1/time"}, {"GET", "/v1/autostart/host"}, {"PUT", "/v1/autostart/host"},
            {"GET", "/v1/autostart/plan"}, {"GET", "/v1/autostart/status"}, {"POST", "/v1/autostart/run"},
            {"POST", "/v1/autostart/stop-all"}, {"GET", "/v1/storage/backends"}, {"GET", "/v1/storage/pools"},
            {"POST", "/v1/storage/pools"}, {"GET", "/v1/storage/pools/{pool}"}, {"DELETE", "/v1/storage/pools/{pool}"},
            {"POST", "/v1/storage/pools/{pool}/scan"}, {"GET", "/v1/storage/pools/{pool}/volumes"},
            {"POST", "/v1/storage/pools/{pool}/volumes"}, {"GET", "/v1/storage/pools/{pool}/volumes/{name}"},
            {"DELETE", "/v1/storage/pools/{pool}/volumes/{name}"},
            {"POST", "/v1/storage/pools/{pool}/volumes/{name}/resize"},
            {"POST", "/v1/storage/pools/{pool}/volumes/{name}/clone"},
            {"POST", "/v1/storage/pools/{pool}/templates/build"},
            {"GET", "/v1/storage/isos"}, {"GET", "/v1/storage/pools/{pool}/isos"},
            {"GET", "/v1/storage/pools/{pool}/isos/{name}"}, {"DELETE", "/v1/storage/pools/{pool}/isos/{name}"},
            {"GET", "/v1/storage/templates"}, {"GET", "/v1/storage/pools/{pool}/templates"},
            {"GET", "/v1/storage/pools/{pool}/templates/{name}"},
            {"DELETE", "/v1/storage/pools/{pool}/templates/{name}"},
            {"GET", "/v1/net/nics"}, {"GET", "/v1/net/features"}, {"GET", "/v1/net/bridges"},
            {"POST", "/v1/net/bridges"}, {"GET", "/v1/net/bridges/{name}"}, {"PATCH", "/v1/net/bridges/{name}"},
            {"DELETE", "/v1/net/bridges/{name}"}, {"GET", "/v1/net/bonds"}, {"POST", "/v1/net/bonds"},
            {"GET", "/v1/net/bonds/{name}"}, {"PATCH", "/v1/net/bonds/{name}"}, {"DELETE", "/v1/net/bonds/{name}"},
            {"GET", "/v1/net/vlans"}, {"POST", "/v1/net/vlans"}, {"GET", "/v1/net/vlans/{name}"},
            {"PATCH", "/v1/net/vlans/{name}"}, {"DELETE", "/v1/net/vlans/{name}"}, {"GET", "/v1/net/pending"},
            {"DELETE", "/v1/net/pending"}, {"POST", "/v1/net/apply"}, {"POST", "/v1/net/confirm"},
        };
        for (const auto& p : plain) r.add(p[0], p[1], "host", h, /*fast=*/false);
        r.add_streaming("PUT", "/v1/storage/pools/{pool}/isos/{name}", "host", h);
        r.add_streaming("PUT", "/v1/storage/pools/{pool}/templates/{name}", "host", h);
        r.add_upgrade("GET", "/v1/cts/{name}/console", "host", "hv-console", [](const Request&) -> hv::daemon::Takeover {
            return {};
        });
        return r;
    }();
    return r;
}

constexpr std::size_t kMaxBody = 4 * 1024 * 1024;  // http_server.cpp

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    parser.eager(true);
    boost::beast::error_code ec;
    std::size_t used = 0;
    // As Beast's read loop does: what put() leaves after need_more is offered again only with
    // more data, and the input is all the data there is, so need_more means the end of the stream.
    while (used < size && !parser.is_done()) {
        std::size_t n = parser.put(boost::asio::buffer(data + used, size - used), ec);
        used += n;
        if (ec == http::error::need_more) {
            ec = {};
            break;
        }
        if (ec || n == 0) break;
    }
    // The end of the stream, as Beast's read loop reports it (put_eof needs some bytes first).
    if (!ec && !parser.is_done() && parser.got_some()) parser.put_eof(ec);
    if (!parser.is_header_done()) return 0;

    const auto& msg = parser.get();
    Request req;
    req.method = std::string(msg.method_string());
    bool target_ok = hvfuzz::expect([&] { hv::daemon::split_target(std::string(msg.target()), req.path, req.query); });
    if (!target_ok) return 0;
    if (req.path.find('?') != std::string::npos) hvfuzz::bug("split_target", "path keeps the query");

    const Router::Route* route = nullptr;
    try {
        hvfuzz::expect([&] { route = &router().match(req); }, {hv::Errc::invalid_input, hv::Errc::not_found});
    } catch (const hv::daemon::MethodNotAllowed& m) {
        if (m.allowed.empty()) hvfuzz::bug("Router::match", "405 without allowed methods");
    }
    if (route) {
        for (const auto& seg : route->segments)
            if (seg.size() > 2 && seg.front() == '{' && !req.params.count(seg.substr(1, seg.size() - 2)))
                hvfuzz::bug("Router::match", "a parameter of the route is missing: " + seg);
        nlohmann::json params = req.params;
        hvfuzz::render(params);
    }
    // The query flags handlers read, and every key the client sent.
    for (const char* f : {"purge", "force", "replace", "all"}) hvfuzz::expect([&] { (void)req.flag(f); });
    for (const auto& kv : req.query) hvfuzz::expect([&] { (void)req.flag(kv.first); });

    if (!ec && parser.is_done()) {
        req.body = msg.body();
        hvfuzz::expect([&] {
            auto j = req.json();
            hvfuzz::render(j);
        });
    }
    return 0;
}
