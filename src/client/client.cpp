// hv::Client: synchronous HTTP/1.1 over hvd's Unix socket (Boost.Beast), one connection per
// request. Non-2xx answers become hv::Error with the daemon's code; a socket that cannot be
// reached becomes DaemonUnreachable.
#include "hv/client.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace hv {
namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using local = asio::local::stream_protocol;
using nlohmann::json;

constexpr std::uint64_t kMaxBody = 64ULL << 20;


// Converts a body to a typed object; a shape hvd should never send is an internal error here,
// not invalid input from the user.
template <typename F>
auto decode(const char* what, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const Error& e) {
        fail(Errc::internal, "unexpected {} from hvd: {}", what, e.what());
    } catch (const json::exception& e) {
        fail(Errc::internal, "unexpected {} from hvd: {}", what, e.what());
    }
}

std::string http_reason(int status) {
    return std::string(http::obsolete_reason(static_cast<http::status>(status)));
}

// hv::Error for a non-2xx answer: the error body's code and message when present.
[[noreturn]] void throw_http_error(int status, const std::string& body) {
    json j = json::parse(body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_object()) {
        const auto& e = j["error"];
        Errc code = e.contains("code") && e["code"].is_string() ? errc_from_name(e["code"].get<std::string>())
                                                                 : errc_from_http_status(status);
        std::string msg = e.value("message", std::string());
        if (msg.empty()) msg = fmt::format("hvd answered HTTP {} {}", status, http_reason(status));
        throw Error(code, msg);
    }
    std::string msg = fmt::format("hvd answered HTTP {} {}", status, http_reason(status));
    std::string_view text(body);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    if (!text.empty()) msg += fmt::format(": {}", text.substr(0, 200));
    throw Error(errc_from_http_status(status), msg);
}

// A request without a body, with the headers every hvctl request carries.
http::request<http::empty_body> bodyless_request(http::verb verb, const std::string& target) {
    http::request<http::empty_body> req{verb, target, 11};
    req.set(http::field::host, "hvd");
    req.set(http::field::user_agent, "hvctl/" HV_VERSION);
    return req;
}

class Connection {
public:
    Connection(asio::io_context& io, const std::string& path) : path_(path), sock_(io) {
        boost::system::error_code ec;
        local::endpoint ep;
        try {
            ep = local::endpoint(path);
        } catch (const boost::system::system_error& e) {
            ec = e.code();
        }
        if (!ec) sock_.connect(ep, ec);
        if (ec)
            throw DaemonUnreachable(Errc::unavailable,
                                    fmt::format("cannot connect to hvd at {}: {} (is hvd running? set --socket or HV_SOCKET)",
                                                path, ec.message()));
    }

    void send(const std::string& method, const std::string& target, const std::optional<json>& body) {
        http::verb verb = http::string_to_verb(method);
        if (verb == http::verb::unknown) fail(Errc::internal, "unknown HTTP method '{}'", method);
        http::request<http::string_body> req{verb, target, 11};
        req.set(http::field::host, "hvd");
        req.set(http::field::user_agent, "hvctl/" HV_VERSION);
        req.set(http::field::accept, "application/json");
        req.keep_alive(false);
        if (body) {
            req.set(http::field::content_type, "application/json");
            req.body() = body->dump(-1, ' ', false, json::error_handler_t::replace);
        }
        req.prepare_payload();
        boost::system::error_code ec;
        http::write(sock_, req, ec);
        if (ec) lost(ec);
    }

    [[noreturn]] void lost(const boost::system::error_code& ec) const {
        throw DaemonUnreachable(Errc::unavailable, fmt::format("lost connection to hvd at {}: {}", path_, ec.message()));
    }

    local::socket& socket() { return sock_; }
    beast::flat_buffer& buffer() { return buf_; }

private:
    std::string path_;
    local::socket sock_;
    beast::flat_buffer buf_;
};

}  // namespace

// Percent-encodes one path segment (names are validated by hvd; this only keeps the URL intact).
std::string escape_segment(const std::string& s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::string default_socket_path() {
    const char* env = std::getenv("HV_SOCKET");
    if (env && *env) return env;
    return "/run/hv/hvd.sock";
}

Client::Client(std::string socket_path) : socket_(std::move(socket_path)) {}

Client::Response Client::request(const std::string& method, const std::string& target,
                                 const std::optional<json>& body) {
    asio::io_context io;
    Connection conn(io, socket_);
    conn.send(method, target, body);

    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    boost::system::error_code ec;
    http::read(conn.socket(), conn.buffer(), parser, ec);
    if (ec) conn.lost(ec);

    auto& res = parser.get();
    int status = res.result_int();
    if (status < 200 || status > 299) throw_http_error(status, res.body());

    Response out;
    out.status = status;
    if (!res.body().empty()) {
        out.body = json::parse(res.body(), nullptr, false);
        if (out.body.is_discarded())
            fail(Errc::internal, "hvd answered {} {} with a body that is not JSON", method, target);
    }
    return out;
}

Client::Upgraded Client::upgrade(const std::string& target, const std::string& protocol) {
    asio::io_context io;
    Connection conn(io, socket_);
    auto req = bodyless_request(http::verb::get, target);
    req.set(http::field::connection, "Upgrade");
    req.set(http::field::upgrade, protocol);
    boost::system::error_code ec;
    http::write(conn.socket(), req, ec);
    if (ec) conn.lost(ec);

    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    http::read_header(conn.socket(), conn.buffer(), parser, ec);
    if (ec) conn.lost(ec);
    int status = parser.get().result_int();
    if (status != 101) {
        if (!parser.is_done()) http::read(conn.socket(), conn.buffer(), parser, ec);
        if (ec) conn.lost(ec);
        if (status >= 200 && status <= 299)
            fail(Errc::internal, "hvd answered GET {} with HTTP {} instead of switching to {}", target, status, protocol);
        throw_http_error(status, parser.get().body());
    }
    Upgraded out;
    out.pending = beast::buffers_to_string(conn.buffer().data());
    out.fd = ::fcntl(conn.socket().native_handle(), F_DUPFD_CLOEXEC, 0);
    if (out.fd < 0) fail(Errc::internal, "cannot keep the connection to hvd: {}", std::strerror(errno));
    return out;
}

Client::Upgraded Client::ct_console(const std::string& name, bool force) {
    return upgrade("/v1/cts/" + escape_segment(name) + "/console" + (force ? "?force=1" : ""), "hv-console");
}

api::HostInfo Client::host() {
    auto r = request("GET", "/v1/host");
    return decode("host info", [&] { return api::host_info_from_json(r.body); });
}

std::vector<api::VmInfo> Client::list_vms() {
    auto r = request("GET", "/v1/vms");
    return decode("VM list", [&] {
        if (!r.body.is_array()) fail(Errc::internal, "expected a JSON array");
        std::vector<api::VmInfo> out;
        for (const auto& v : r.body) out.push_back(api::vm_info_from_json(v));
        return out;
    });
}

api::VmInfo Client::get_vm(const std::string& name) {
    auto r = request("GET", "/v1/vms/" + escape_segment(name));
    return decode("VM info", [&] { return api::vm_info_from_json(r.body); });
}

api::TaskInfo Client::create_vm(const api::VmSpec& spec, const std::string& host) {
    auto r = request("POST", host.empty() ? std::string("/v1/vms") : "/v1/vms?host=" + escape_segment(host), json(spec));
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}

std::vector<api::PoolInfo> Client::list_pools() {
    auto r = request("GET", "/v1/storage/pools");
    return decode("pool list", [&] {
        std::vector<api::PoolInfo> out;
        for (const auto& v : r.body) out.push_back(api::pool_info_from_json(v));
        return out;
    });
}
api::PoolInfo Client::get_pool(const std::string& name) {
    auto r = request("GET", "/v1/storage/pools/" + escape_segment(name));
    return decode("pool", [&] { return api::pool_info_from_json(r.body); });
}
api::PoolInfo Client::add_pool(const api::PoolSpec& spec) {
    auto r = request("POST", "/v1/storage/pools", json(spec));
    return decode("pool", [&] { return api::pool_info_from_json(r.body); });
}
void Client::remove_pool(const std::string& name) { request("DELETE", "/v1/storage/pools/" + escape_segment(name)); }
api::PoolInfo Client::scan_pool(const std::string& name) {
    auto r = request("POST", "/v1/storage/pools/" + escape_segment(name) + "/scan");
    return decode("pool", [&] { return api::pool_info_from_json(r.body); });
}
std::vector<api::VolumeInfo> Client::list_volumes(const std::string& pool) {
    auto r = request("GET", "/v1/storage/pools/" + escape_segment(pool) + "/volumes");
    return decode("volume list", [&] {
        std::vector<api::VolumeInfo> out;
        for (const auto& v : r.body) out.push_back(api::volume_info_from_json(v));
        return out;
    });
}
api::VolumeInfo Client::get_volume(const std::string& pool, const std::string& name) {
    auto r = request("GET", "/v1/storage/pools/" + escape_segment(pool) + "/volumes/" + escape_segment(name));
    return decode("volume", [&] { return api::volume_info_from_json(r.body); });
}
api::TaskInfo Client::create_volume(const api::VolumeSpec& spec) {
    auto r = request("POST", "/v1/storage/pools/" + escape_segment(spec.pool) + "/volumes", json(spec));
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}
std::vector<std::string> Client::delete_volume(const std::string& pool, const std::string& name, bool force) {
    auto r = request("DELETE", "/v1/storage/pools/" + escape_segment(pool) + "/volumes/" + escape_segment(name) +
                                   (force ? "?force=1" : ""));
    return decode("answer", [&] { return r.body.value("detached_from", std::vector<std::string>{}); });
}
api::TaskInfo Client::resize_volume(const std::string& pool, const std::string& name, std::uint64_t size) {
    auto r = request("POST", "/v1/storage/pools/" + escape_segment(pool) + "/volumes/" + escape_segment(name) + "/resize",
                     json{{"size", size}});
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}
api::TaskInfo Client::clone_volume(const std::string& pool, const std::string& name, const std::string& target) {
    auto r = request("POST", "/v1/storage/pools/" + escape_segment(pool) + "/volumes/" + escape_segment(name) + "/clone",
                     json{{"target", target}});
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}

std::vector<api::IsoInfo> Client::list_isos(const std::string& pool) {
    auto r = request("GET", pool.empty() ? std::string("/v1/storage/isos") : "/v1/storage/pools/" + escape_segment(pool) + "/isos");
    return decode("ISO list", [&] {
        if (!r.body.is_array()) fail(Errc::internal, "expected a JSON array");
        std::vector<api::IsoInfo> out;
        for (const auto& v : r.body) out.push_back(api::iso_info_from_json(v));
        return out;
    });
}
api::IsoInfo Client::get_iso(const std::string& pool, const std::string& name) {
    auto r = request("GET", "/v1/storage/pools/" + escape_segment(pool) + "/isos/" + escape_segment(name));
    return decode("ISO info", [&] { return api::iso_info_from_json(r.body); });
}
void Client::delete_iso(const std::string& pool, const std::string& name) {
    request("DELETE", "/v1/storage/pools/" + escape_segment(pool) + "/isos/" + escape_segment(name));
}
api::IsoInfo Client::upload_iso(const std::string& pool, const std::string& name, const std::string& file,
                                const std::string& sha256, bool replace,
                                const std::function<void(std::uint64_t, std::uint64_t)>& on_progress) {
    return upload_file("isos", pool, name, file, sha256, replace, on_progress);
}

api::IsoInfo Client::upload_file(const std::string& collection, const std::string& pool, const std::string& name,
                                 const std::string& file, const std::string& sha256, bool replace,
                                 const std::function<void(std::uint64_t, std::uint64_t)>& on_progress) {
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(Errc::invalid_input, "cannot open {}: {}", file, std::strerror(errno));
    std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* f) { ::close(*f); });
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) fail(Errc::invalid_input, "{} is not a regular file", file);
    const auto total = static_cast<std::uint64_t>(st.st_size);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

    std::string target = "/v1/storage/pools/" + escape_segment(pool) + "/" + collection + "/" + escape_segment(name);
    std::string q;
    if (!sha256.empty()) q += "sha256=" + escape_segment(sha256);
    if (replace) q += std::string(q.empty() ? "" : "&") + "replace=1";
    if (!q.empty()) target += "?" + q;

    asio::io_context io;
    Connection conn(io, socket_);
    auto req = bodyless_request(http::verb::put, target);
    req.set(http::field::accept, "application/json");
    req.set(http::field::content_type, "application/octet-stream");
    req.set(http::field::expect, "100-continue");
    req.content_length(total);
    req.keep_alive(false);
    boost::system::error_code ec;
    http::request_serializer<http::empty_body> sr{req};
    http::write_header(conn.socket(), sr, ec);
    if (ec) conn.lost(ec);

    // "100 Continue" (send the body) or the final answer (a refusal, or success for 0 bytes).
    auto read_answer = [&](boost::system::error_code& rec) {
        http::response_parser<http::string_body> p;
        p.body_limit(kMaxBody);
        http::read(conn.socket(), conn.buffer(), p, rec);
        return std::make_pair(p.get().result_int(), p.get().body());
    };
    auto [status, body] = read_answer(ec);
    if (ec) conn.lost(ec);
    if (status == 100) {
        std::vector<char> buf(1024 * 1024);
        std::uint64_t sent = 0;
        while (sent < total) {
            auto n = ::read(fd, buf.data(), static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), total - sent)));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail(Errc::internal, "cannot read {}: {}", file, std::strerror(errno));
            if (n == 0) fail(Errc::invalid_input, "{} shrank while it was uploaded; upload aborted", file);
            asio::write(conn.socket(), asio::buffer(buf.data(), static_cast<std::size_t>(n)), ec);
            if (ec) {
                // hvd gave up (e.g. the pool is full) and closed: its answer says why.
                boost::system::error_code rec;
                auto [st2, body2] = read_answer(rec);
                if (!rec && (st2 < 200 || st2 > 299)) throw_http_error(st2, body2);
                conn.lost(ec);
            }
            sent += static_cast<std::uint64_t>(n);
            if (on_progress) on_progress(sent, total);
        }
        std::tie(status, body) = read_answer(ec);
        if (ec) conn.lost(ec);
    }
    if (status < 200 || status > 299) throw_http_error(status, body);
    json j = json::parse(body, nullptr, false);
    return decode("ISO info", [&] { return api::iso_info_from_json(j); });
}

api::VmInfo Client::update_vm(const std::string& name, const api::VmPatch& p) {
    auto r = request("PATCH", "/v1/vms/" + escape_segment(name), json(p));
    return decode("VM info", [&] { return api::vm_info_from_json(r.body); });
}

api::TaskInfo Client::delete_vm(const std::string& name, bool purge) {
    auto r = request("DELETE", "/v1/vms/" + escape_segment(name) + (purge ? "?purge=1" : ""));
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}

api::VmInfo Client::vm_action(const std::string& name, const std::string& action) {
    auto r = request("POST", "/v1/vms/" + escape_segment(name) + "/" + escape_segment(action));
    return decode("VM info", [&] { return api::vm_info_from_json(r.body); });
}

api::TaskInfo Client::shutdown_vm(const std::string& name, int timeout_s, bool force) {
    auto r = request("POST", "/v1/vms/" + escape_segment(name) + "/shutdown",
                     json{{"timeout", timeout_s}, {"force", force}});
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}

api::TaskInfo Client::attach_disk(const std::string& vm, const api::DiskSpec& disk) {
    auto r = request("POST", "/v1/vms/" + escape_segment(vm) + "/disks", json(disk));
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}

api::VmInfo Client::detach_disk(const std::string& vm, const std::string& disk, bool purge) {
    auto r = request("DELETE", "/v1/vms/" + escape_segment(vm) + "/disks/" + escape_segment(disk) + (purge ? "?purge=1" : ""));
    return decode("VM info", [&] { return api::vm_info_from_json(r.body); });
}

api::VmInfo Client::set_cdrom(const std::string& vm, const std::string& iso) {
    auto r = request("PUT", "/v1/vms/" + escape_segment(vm) + "/cdrom", json{{"iso", iso}});
    return decode("VM info", [&] { return api::vm_info_from_json(r.body); });
}

api::VmInfo Client::add_nic(const std::string& vm, const api::NicSpec& nic) {
    auto r = request("POST", "/v1/vms/" + escape_segment(vm) + "/nics", json(nic));
    return decode("VM info", [&] { return api::vm_info_from_json(r.body); });
}

api::VmInfo Client::set_nic(const std::string& vm, const std::string& nic, const api::NicPatch& patch) {
    auto r = request("PATCH", "/v1/vms/" + escape_segment(vm) + "/nics/" + escape_segment(nic), json(patch));
    return decode("VM info", [&] { return api::vm_info_from_json(r.body); });
}

api::VmInfo Client::remove_nic(const std::string& vm, const std::string& nic) {
    auto r = request("DELETE", "/v1/vms/" + escape_segment(vm) + "/nics/" + escape_segment(nic));
    return decode("VM info", [&] { return api::vm_info_from_json(r.body); });
}

std::vector<api::TaskInfo> Client::list_tasks() {
    auto r = request("GET", "/v1/tasks");
    return decode("task list", [&] {
        if (!r.body.is_array()) fail(Errc::internal, "expected a JSON array");
        std::vector<api::TaskInfo> out;
        for (const auto& t : r.body) out.push_back(api::task_info_from_json(t));
        return out;
    });
}

api::TaskInfo Client::get_task(const std::string& id) {
    auto r = request("GET", "/v1/tasks/" + escape_segment(id));
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}

api::TaskInfo Client::cancel_task(const std::string& id) {
    auto r = request("POST", "/v1/tasks/" + escape_segment(id) + "/cancel");
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}

api::TaskLog Client::task_log(const std::string& id, std::uint64_t after) {
    auto r = request("GET", "/v1/tasks/" + escape_segment(id) + "/log" + (after ? "?after=" + std::to_string(after) : ""));
    return decode("task log", [&] { return api::task_log_from_json(r.body); });
}

api::VersionInfo Client::version() {
    auto r = request("GET", "/v1/version");
    return decode("version", [&] { return api::version_info_from_json(r.body); });
}

std::string Client::metrics() {
    asio::io_context io;
    Connection conn(io, socket_);
    conn.send("GET", "/v1/metrics", std::nullopt);
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    boost::system::error_code ec;
    http::read(conn.socket(), conn.buffer(), parser, ec);
    if (ec) conn.lost(ec);
    auto& res = parser.get();
    int status = res.result_int();
    if (status < 200 || status > 299) throw_http_error(status, res.body());
    return res.body();
}

api::TaskInfo Client::wait_task(const std::string& id, const std::function<void(const api::TaskInfo&)>& on_update,
                                std::chrono::milliseconds poll) {
    std::optional<api::TaskInfo> last;
    // Quick tasks (a thin volume, a define) finish in milliseconds: poll at 5 ms first and back
    // off to `poll`, so a short task is not answered a whole poll interval late.
    auto wait = std::min(poll, std::chrono::milliseconds(5));
    for (;;) {
        api::TaskInfo t = get_task(id);
        bool changed = !last || last->state != t.state || last->progress != t.progress || last->message != t.message;
        if (changed && on_update) on_update(t);
        if (api::is_final(t.state)) return t;
        last = std::move(t);
        std::this_thread::sleep_for(wait);
        wait = std::min(poll, wait * 2);
    }
}

void Client::events(const std::function<bool(const api::Event&)>& on_event, const std::string& host) {
    asio::io_context io;
    Connection conn(io, socket_);
    conn.send("GET", host.empty() ? std::string("/v1/events") : "/v1/events?host=" + escape_segment(host), std::nullopt);

    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);  // the stream never ends on its own
    boost::system::error_code ec;
    http::read_header(conn.socket(), conn.buffer(), parser, ec);
    if (ec) conn.lost(ec);
    int status = parser.get().result_int();
    bool ok = status >= 200 && status <= 299;

    std::string pending;  // bytes after the last complete line (or the whole error body)
    char chunk[8192];
    while (!parser.is_done()) {
        parser.get().body().data = chunk;
        parser.get().body().size = sizeof chunk;
        // read_some, not read: return as soon as any bytes arrive so events are not held back.
        http::read_some(conn.socket(), conn.buffer(), parser, ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::eof) {
            if (ok) return;  // the daemon closed the stream (it is stopping)
            break;
        }
        if (ec) conn.lost(ec);
        pending.append(chunk, sizeof chunk - parser.get().body().size);
        if (!ok) {
            if (pending.size() > kMaxBody) break;
            continue;
        }
        std::size_t start = 0;
        for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
            std::string_view line(pending.data() + start, nl - start);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
            json j = json::parse(line, nullptr, false);
            if (j.is_discarded() || !j.is_object()) fail(Errc::internal, "hvd sent an event that is not a JSON object");
            api::Event ev = decode("event", [&] { return api::event_from_json(j); });
            if (!on_event(ev)) return;
        }
        pending.erase(0, start);
    }
    if (!ok) throw_http_error(status, pending);
}

// ---- host networking
std::vector<api::NicInfo> Client::list_nics(bool all) {
    auto r = request("GET", std::string("/v1/net/nics") + (all ? "?all=1" : ""));
    return decode("NIC list", [&] {
        std::vector<api::NicInfo> out;
        for (const auto& v : r.body) out.push_back(api::nic_info_from_json(v));
        return out;
    });
}
api::KernelFeatures Client::net_features() {
    auto r = request("GET", "/v1/net/features");
    return decode("feature list", [&] { return api::kernel_features_from_json(r.body); });
}
std::vector<api::BridgeInfo> Client::list_bridges() {
    auto r = request("GET", "/v1/net/bridges");
    return decode("bridge list", [&] {
        std::vector<api::BridgeInfo> out;
        for (const auto& v : r.body) out.push_back(api::bridge_info_from_json(v));
        return out;
    });
}
api::BridgeInfo Client::get_bridge(const std::string& name) {
    auto r = request("GET", "/v1/net/bridges/" + escape_segment(name));
    return decode("bridge", [&] { return api::bridge_info_from_json(r.body); });
}
api::BridgeInfo Client::create_bridge(const api::BridgeSpec& spec) {
    auto r = request("POST", "/v1/net/bridges", json(spec));
    return decode("bridge", [&] { return api::bridge_info_from_json(r.body); });
}
api::BridgeInfo Client::update_bridge(const std::string& name, const api::BridgePatch& p) {
    auto r = request("PATCH", "/v1/net/bridges/" + escape_segment(name), json(p));
    return decode("bridge", [&] { return api::bridge_info_from_json(r.body); });
}
api::BondInfo Client::update_bond(const std::string& name, const api::BondPatch& p) {
    auto r = request("PATCH", "/v1/net/bonds/" + escape_segment(name), json(p));
    return decode("bond", [&] { return api::bond_info_from_json(r.body); });
}
api::VlanInfo Client::update_vlan(const std::string& name, const api::VlanPatch& p) {
    auto r = request("PATCH", "/v1/net/vlans/" + escape_segment(name), json(p));
    return decode("vlan", [&] { return api::vlan_info_from_json(r.body); });
}
api::NetApplyState Client::net_pending() {
    auto r = request("GET", "/v1/net/pending");
    return decode("network apply state", [&] { return api::net_apply_state_from_json(r.body); });
}
api::NetApplyState Client::net_apply(int confirm_within_s) {
    auto r = request("POST", "/v1/net/apply", json{{"confirm_within", confirm_within_s}});
    return decode("network apply state", [&] { return api::net_apply_state_from_json(r.body); });
}
api::NetApplyState Client::net_confirm() {
    auto r = request("POST", "/v1/net/confirm");
    return decode("network apply state", [&] { return api::net_apply_state_from_json(r.body); });
}
api::NetApplyState Client::net_revert() {
    auto r = request("DELETE", "/v1/net/pending");
    return decode("network apply state", [&] { return api::net_apply_state_from_json(r.body); });
}
void Client::delete_bridge(const std::string& name, bool force) {
    request("DELETE", "/v1/net/bridges/" + escape_segment(name) + (force ? "?force=1" : ""));
}
std::vector<api::BondInfo> Client::list_bonds() {
    auto r = request("GET", "/v1/net/bonds");
    return decode("bond list", [&] {
        std::vector<api::BondInfo> out;
        for (const auto& v : r.body) out.push_back(api::bond_info_from_json(v));
        return out;
    });
}
api::BondInfo Client::get_bond(const std::string& name) {
    auto r = request("GET", "/v1/net/bonds/" + escape_segment(name));
    return decode("bond", [&] { return api::bond_info_from_json(r.body); });
}
api::BondInfo Client::create_bond(const api::BondSpec& spec) {
    auto r = request("POST", "/v1/net/bonds", json(spec));
    return decode("bond", [&] { return api::bond_info_from_json(r.body); });
}
void Client::delete_bond(const std::string& name) { request("DELETE", "/v1/net/bonds/" + escape_segment(name)); }
std::vector<api::VlanInfo> Client::list_vlans() {
    auto r = request("GET", "/v1/net/vlans");
    return decode("vlan list", [&] {
        std::vector<api::VlanInfo> out;
        for (const auto& v : r.body) out.push_back(api::vlan_info_from_json(v));
        return out;
    });
}
api::VlanInfo Client::get_vlan(const std::string& name) {
    auto r = request("GET", "/v1/net/vlans/" + escape_segment(name));
    return decode("vlan", [&] { return api::vlan_info_from_json(r.body); });
}
api::VlanInfo Client::create_vlan(const api::VlanSpec& spec) {
    auto r = request("POST", "/v1/net/vlans", json(spec));
    return decode("vlan", [&] { return api::vlan_info_from_json(r.body); });
}
void Client::delete_vlan(const std::string& name) { request("DELETE", "/v1/net/vlans/" + escape_segment(name)); }

// ---- containers ---------------------------------------------------------------------------
std::vector<api::CtInfo> Client::list_cts() {
    auto r = request("GET", "/v1/cts");
    return decode("container list", [&] {
        if (!r.body.is_array()) fail(Errc::internal, "expected a JSON array");
        std::vector<api::CtInfo> out;
        for (const auto& v : r.body) out.push_back(api::ct_info_from_json(v));
        return out;
    });
}
api::CtInfo Client::get_ct(const std::string& name) {
    auto r = request("GET", "/v1/cts/" + escape_segment(name));
    return decode("container info", [&] { return api::ct_info_from_json(r.body); });
}
api::TaskInfo Client::create_ct(const api::CtSpec& spec, const std::string& host) {
    auto r = request("POST", host.empty() ? std::string("/v1/cts") : "/v1/cts?host=" + escape_segment(host), json(spec));
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}
api::CtInfo Client::update_ct(const std::string& name, const api::CtPatch& p) {
    auto r = request("PATCH", "/v1/cts/" + escape_segment(name), json(p));
    return decode("container info", [&] { return api::ct_info_from_json(r.body); });
}
api::TaskInfo Client::delete_ct(const std::string& name) {
    auto r = request("DELETE", "/v1/cts/" + escape_segment(name));
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}
api::CtInfo Client::ct_action(const std::string& name, const std::string& action) {
    auto r = request("POST", "/v1/cts/" + escape_segment(name) + "/" + escape_segment(action));
    return decode("container info", [&] { return api::ct_info_from_json(r.body); });
}
api::TaskInfo Client::shutdown_ct(const std::string& name, int timeout_s, bool force) {
    auto r = request("POST", "/v1/cts/" + escape_segment(name) + "/shutdown", json{{"timeout", timeout_s}, {"force", force}});
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}
api::ExecResult Client::exec_ct(const std::string& name, const std::vector<std::string>& command, int timeout_s) {
    json body{{"command", command}};
    if (timeout_s > 0) body["timeout"] = timeout_s;
    auto r = request("POST", "/v1/cts/" + escape_segment(name) + "/exec", body);
    return decode("exec result", [&] { return api::exec_result_from_json(r.body); });
}
std::vector<api::IsoInfo> Client::list_templates(const std::string& pool) {
    auto r = request("GET", pool.empty() ? std::string("/v1/storage/templates")
                                         : "/v1/storage/pools/" + escape_segment(pool) + "/templates");
    return decode("template list", [&] {
        if (!r.body.is_array()) fail(Errc::internal, "expected a JSON array");
        std::vector<api::IsoInfo> out;
        for (const auto& v : r.body) out.push_back(api::iso_info_from_json(v));
        return out;
    });
}
api::IsoInfo Client::upload_template(const std::string& pool, const std::string& name, const std::string& file,
                                     const std::string& sha256, bool replace,
                                     const std::function<void(std::uint64_t, std::uint64_t)>& on_progress) {
    return upload_file("templates", pool, name, file, sha256, replace, on_progress);
}
void Client::delete_template(const std::string& pool, const std::string& name) {
    request("DELETE", "/v1/storage/pools/" + escape_segment(pool) + "/templates/" + escape_segment(name));
}
api::TaskInfo Client::build_template(const std::string& pool, const std::string& kind, bool replace) {
    auto r = request("POST", "/v1/storage/pools/" + escape_segment(pool) + "/templates/build",
                     json{{"kind", kind}, {"replace", replace}});
    return decode("task", [&] { return api::task_info_from_json(r.body); });
}

}  // namespace hv
