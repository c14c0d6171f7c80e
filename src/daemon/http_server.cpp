#include "http_server.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <random>
#include <boost/asio/post.hpp>
#include <boost/beast/core/string.hpp>
#include <condition_variable>
#include <mutex>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstring>
#include <deque>
#include <filesystem>
#include <spdlog/spdlog.h>

#include "hv/api/task.hpp"
#include "hv/error.hpp"
#include "hv/util/guard.hpp"
#include "hv/util/log_context.hpp"
#include "hv/util/utf8.hpp"

namespace hv::daemon {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;

void prepare_socket_path(const std::string& path) {
    namespace fs = std::filesystem;
    auto dir = fs::path(path).parent_path();
    std::error_code ec;
    if (!fs::exists(dir)) {
        fs::create_directories(dir, ec);
        if (ec) fail(Errc::internal, "cannot create socket directory {}: {}", dir.string(), ec.message());
        ::chmod(dir.c_str(), 0755);
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        fail(Errc::internal, "socket directory {} is not a directory", dir.string());
    if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
        fail(Errc::internal, "socket directory {} is writable by everyone (mode {:o}); refusing to listen there",
             dir.string(), st.st_mode & 07777);
    if (st.st_uid != ::geteuid() && st.st_uid != 0)
        fail(Errc::internal, "socket directory {} is owned by uid {}, not by us or root", dir.string(), st.st_uid);
    if (fs::exists(fs::symlink_status(path))) {
        if (!fs::is_socket(fs::symlink_status(path)))
            fail(Errc::internal, "{} exists and is not a socket; refusing to replace it", path);
        asio::io_context tmp;
        local::socket probe(tmp);
        boost::system::error_code cec;
        probe.connect(local::endpoint(path), cec);
        if (!cec) fail(Errc::conflict, "another hvd is already listening on {}", path);
        fs::remove(path, ec);
    }
}

namespace {

constexpr std::size_t kMaxBody = 4 * 1024 * 1024;
constexpr std::size_t kMaxQueuedEvents = 10000;
// A request body (after its header) must arrive within this long.
constexpr std::chrono::seconds kBodyTimeout{60};

void set_cloexec(int fd) {
    int fl = ::fcntl(fd, F_GETFD);
    if (fl >= 0) ::fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

http::response<http::string_body> make_response(unsigned version, bool keep_alive, const Response& r) {
    http::response<http::string_body> res{static_cast<http::status>(r.status), version};
    res.set(http::field::server, "hvd/" HV_VERSION);
    res.keep_alive(keep_alive);
    if (!r.content_type.empty() && r.body.is_string()) {
        res.set(http::field::content_type, r.content_type);
        res.body() = r.body.get<std::string>();
    } else {
        res.set(http::field::content_type, "application/json");
        // Never throws: text that is not UTF-8 (a file name on disk, a program's output) is
        // replaced, see hv/util/utf8.hpp.
        res.body() = r.body.is_null() ? std::string("{}\n") : util::dump_json(r.body) + "\n";
    }
    res.prepare_payload();
    return res;
}

Response error_response(Errc code, const std::string& msg) { return Response{http_status(code), api::error_json(code, msg)}; }

// Body of a streaming request, between the I/O thread (producer: parsed body bytes in pieces)
// and the handler's thread (consumer: Request::read_body). The producer stops reading the
// socket while kHighWater bytes wait, so a slow disk slows the client instead of filling memory.
class BodyChannel {
public:
    static constexpr std::size_t kChunk = 64 * 1024;
    static constexpr std::size_t kHighWater = 4 * 1024 * 1024;

    BodyChannel(std::function<void()> resume, std::shared_ptr<std::atomic<bool>> stopping, std::chrono::seconds idle)
        : resume_(std::move(resume)), stopping_(std::move(stopping)), idle_(idle) {}

    // ---- consumer (handler thread)
    std::size_t read(char* out, std::size_t n) {
        std::unique_lock lk(mu_);
        if (abandoned_) fail(Errc::internal, "request body read after the handler finished");
        if (!started_ || (paused_ && queued_ < kHighWater / 2)) {
            started_ = true;
            paused_ = false;
            lk.unlock();
            resume_();
            lk.lock();
        }
        auto deadline = std::chrono::steady_clock::now() + idle_;
        while (chunks_.empty() && !eof_ && error_.empty()) {
            if (stopping_->load()) fail(Errc::unavailable, "hvd is stopping; upload aborted");
            cv_.wait_for(lk, std::chrono::milliseconds(250));
            if (chunks_.empty() && !eof_ && error_.empty() && std::chrono::steady_clock::now() >= deadline)
                fail(Errc::timeout, "no data from the client for {} s; upload aborted", idle_.count());
        }
        if (!chunks_.empty()) {
            auto& front = chunks_.front();
            std::size_t k = std::min(n, front.size() - offset_);
            std::memcpy(out, front.data() + offset_, k);
            offset_ += k;
            queued_ -= k;
            if (offset_ == front.size()) {
                chunks_.pop_front();
                offset_ = 0;
            }
            bool wake = paused_ && queued_ < kHighWater / 2;
            if (wake) paused_ = false;
            lk.unlock();
            if (wake) resume_();
            return k;
        }
        if (!error_.empty()) throw Error(Errc::invalid_input, error_);
        consumed_ = true;
        return 0;
    }

    // ---- producer (I/O thread)
    // False when the producer should pause (too much waiting); the consumer resumes it.
    bool want_more() {
        std::lock_guard lk(mu_);
        if (abandoned_ || !error_.empty() || eof_) return false;
        if (queued_ >= kHighWater) {
            paused_ = true;
            return false;
        }
        return true;
    }
    void push(std::vector<char> data) {
        std::lock_guard lk(mu_);
        if (abandoned_ || data.empty()) return;
        queued_ += data.size();
        chunks_.push_back(std::move(data));
        cv_.notify_all();
    }
    void finish() {
        std::lock_guard lk(mu_);
        eof_ = true;
        cv_.notify_all();
    }
    void fail_with(std::string why) {
        std::lock_guard lk(mu_);
        if (error_.empty() && !eof_) error_ = std::move(why);
        cv_.notify_all();
    }
    // The handler returned: drop what is queued. True when the whole body was read by it
    // (the connection can then be kept alive).
    bool abandon() {
        std::lock_guard lk(mu_);
        abandoned_ = true;
        chunks_.clear();
        queued_ = 0;
        return consumed_;
    }
    bool started() {
        std::lock_guard lk(mu_);
        return started_;
    }

private:
    std::function<void()> resume_;
    std::shared_ptr<std::atomic<bool>> stopping_;
    std::chrono::seconds idle_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::vector<char>> chunks_;
    std::size_t offset_ = 0;
    std::size_t queued_ = 0;
    bool started_ = false;
    bool paused_ = false;
    bool eof_ = false;
    bool consumed_ = false;
    bool abandoned_ = false;
    std::string error_;
};

class Session : public std::enable_shared_from_this<Session> {
public:
    struct Streaming {
        asio::thread_pool& pool;
        std::shared_ptr<std::atomic<bool>> stopping;
        std::shared_ptr<std::atomic<int>> active;
    };
    Session(local::socket s, asio::thread_pool& pool, const Router& router, EventBus& bus, std::chrono::seconds timeout,
            std::chrono::seconds header_timeout, Peer peer, std::shared_ptr<std::size_t> streams, Streaming streaming,
            const Dispatcher* dispatcher)
        : sock_(std::move(s)), pool_(pool), router_(router), bus_(bus), timeout_(timeout),
          header_timeout_(header_timeout), peer_(std::move(peer)), timer_(sock_.get_executor()), idle_(sock_.get_executor()),
          streams_(std::move(streams)), dispatcher_(dispatcher), streaming_(std::move(streaming)) {}

    ~Session() {
        if (sub_) {
            bus_.unsubscribe(sub_);
            --*streams_;
        }
    }

    void run() { read(); }
    // Keeps the connection's slot (released when the session ends).
    void hold(std::shared_ptr<void> slot) { slot_ = std::move(slot); }

private:
    void read() {
        parser_.emplace();
        // No limit while the header is read: a streaming route has none; the others get
        // kMaxBody once their route is known (Beast checks Content-Length at the header).
        parser_->body_limit(boost::none);
        matched_ = nullptr;
        forward_to_.reset();
        early_.reset();
        request_id_.clear();
        pending_ = Request{};
        // The previous request's upload (if any) was read to its end: no read is pending on it.
        if (body_) {
            body_.reset();
            upload_parser_.reset();
            buf_.shrink_to_fit();
        }
        // The whole header must arrive within header_timeout (idle keep-alive connections
        // are closed after it too): a slow or stuck client cannot hold a slot for long.
        idle_.expires_after(header_timeout_);
        idle_.async_wait([w = weak_from_this()](beast::error_code ec) {
            if (ec) return;
            auto self = w.lock();
            if (!self || self->closed_) return;
            if (self->buf_.size() == 0) return self->close();  // idle between requests: nothing to answer
            self->keep_alive_ = false;
            auto r = error_response(Errc::timeout, fmt::format("no complete request header within {} s",
                                                               self->header_timeout_.count()));
            r.status = 408;
            self->write(r, 11);
        });
        http::async_read_header(sock_, buf_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->guard_io("reading a request header", [&] { self->on_header(ec); });
        });
    }

    // I/O-thread entries: an exception (a bug) answers 500 and closes this connection only.
    template <typename F>
    void guard_io(const char* where, F&& f) {
        if (util::guarded(where, std::forward<F>(f)) || closed_ || writing_) return;
        keep_alive_ = false;
        write(error_response(Errc::internal, std::string("internal error while ") + where + " (logged by hvd)"), version_);
    }

    // Answers a read error; false when there was none.
    bool read_failed(beast::error_code ec) {
        if (!ec) return false;
        idle_.cancel();
        if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset) {
            close();
            return true;
        }
        keep_alive_ = false;
        if (ec == http::error::body_limit) {
            write(error_response(Errc::invalid_input, "request body is larger than 4 MiB"), 11);
            return true;
        }
        if (ec == http::error::header_limit) {
            auto r = error_response(Errc::invalid_input, "request header is too large");
            r.status = 431;
            write(r, 11);
            return true;
        }
        if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
            write(error_response(Errc::invalid_input, "malformed HTTP request: " + ec.message()), 11);
            return true;
        }
        spdlog::debug("http read: {}", ec.message());
        close();
        return true;
    }

    void on_header(beast::error_code ec) {
        if (read_failed(ec)) return;
        idle_.cancel();
        auto& msg = parser_->get();
        Request& req = pending_;
        req.method = std::string(msg.method_string());
        req.peer_uid = peer_.uid;
        req.peer_gid = peer_.gid;
        req.peer_pid = peer_.pid;
        req.peer_subject = peer_.subject;
        // Only another host (its certificate) may say it forwarded a request.
        if (peer_.subject.rfind("host:", 0) == 0) req.forwarded_by = std::string(msg["X-Hv-Forwarded-By"]);
        req.request_id = request_id(std::string(msg["X-Request-Id"]));
        req.deadline = std::chrono::steady_clock::now() + timeout_;
        request_id_ = req.request_id;
        // Decoded and checked once, here (hv/util/utf8.hpp): a target, query or header that is
        // not UTF-8 is answered 400 once the body is read, and nothing else looks at it.
        // Matched once too: routes that only read memory run right there, never queued
        // behind slow calls.
        try {
            for (const auto& f : msg) util::check_text(f.value(), fmt::format("the value of the header '{}'", util::sanitize_utf8(f.name_string())), true);
            split_target(std::string(msg.target()), req.path, req.query);
            if (!(req.method == "GET" && req.path == "/v1/events")) matched_ = &router_.match(req);
            if (dispatcher_) {
                dispatcher_->admit(req);
                // The event stream has no route: only ?host= sends it elsewhere.
                if (matched_ || req.path == "/v1/events") forward_to_ = dispatcher_->owner(req);
                // ?host= chose where the request runs; the route itself never sees it.
                req.query.erase("host");
            }
        } catch (const MethodNotAllowed& m) {
            auto r = error_response(Errc::invalid_input, fmt::format("method {} is not allowed on {} (allowed: {})", req.method, req.path, m.allowed));
            r.status = 405;
            allow_ = m.allowed;
            early_ = r;
        } catch (const Error& e) {
            matched_ = nullptr;
            forward_to_.reset();
            early_ = error_response(e.code(), e.what());
        }
        if (matched_ && matched_->streaming) return start_upload(std::move(req));
        if (parser_->content_length() && *parser_->content_length() > kMaxBody) return (void)read_failed(http::error::body_limit);
        parser_->body_limit(kMaxBody);
        if (parser_->is_done()) return on_read({});
        idle_.expires_after(kBodyTimeout);
        idle_.async_wait([w = weak_from_this()](beast::error_code ec) {
            if (ec) return;
            if (auto self = w.lock()) self->close();
        });
        http::async_read(sock_, buf_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->guard_io("reading a request body", [&] { self->on_read(ec); });
        });
    }

    void on_read(beast::error_code ec) {
        if (read_failed(ec)) return;
        idle_.cancel();
        auto& msg = parser_->get();
        Request req = std::move(pending_);
        req.body = std::move(msg.body());
        keep_alive_ = msg.keep_alive();
        version_ = msg.version();
        if (early_) return write(*early_, version_);
        if (req.method == "GET" && req.path == "/v1/events" && !forward_to_) {
            if (version_ < 11)
                return write(error_response(Errc::invalid_input, "the event stream needs HTTP/1.1 (chunked encoding)"), version_);
            return start_stream();
        }
        if (req.method == "GET" && req.path == "/v1/events") return start_forwarded_events(std::move(req));
        const Router::Route* route = matched_;
        if (route->upgrade) return start_upgrade(*route, std::move(req), std::string(msg[http::field::upgrade]));
        if (route->fast && !forward_to_) return write(dispatch(*route, req), version_);

        auto state = std::make_shared<std::atomic<bool>>(false);  // answered already?
        timer_.expires_after(timeout_);
        timer_.async_wait([self = shared_from_this(), state, path = req.path](beast::error_code tec) {
            if (tec || state->exchange(true)) return;
            spdlog::warn("request {} did not finish within {} s", path, self->timeout_.count());
            self->write(error_response(Errc::timeout, fmt::format("the operation did not finish within {} s; it continues in the background", self->timeout_.count())), self->version_);
        });
        asio::post(pool_, [self = shared_from_this(), state, route, node = forward_to_, req = std::move(req)]() mutable {
            // Answered 504 before a worker was free: the caller was told it did not happen in
            // time, so do not start it now.
            if (state->load()) return;
            Response res = node ? self->forward(*node, *route, req) : self->dispatch(*route, req);
            asio::post(self->sock_.get_executor(), [self, state, res = std::move(res)] {
                if (state->exchange(true)) return;
                self->timer_.cancel();
                self->guard_io("writing a response", [&] { self->write(res, self->version_); });
            });
        });
    }

    // ---- streaming routes: the handler pulls the body while the I/O thread reads ahead.
    void start_upload(Request req) {
        req.deadline = std::chrono::steady_clock::time_point::max();  // uploads have no request timeout
        idle_.cancel();
        auto& msg = parser_->get();
        keep_alive_ = msg.keep_alive();
        version_ = msg.version();
        expect_continue_ = beast::iequals(msg[http::field::expect], "100-continue");
        if (auto cl = parser_->content_length()) req.content_length = *cl;
        if (streaming_.active->fetch_add(1) >= HttpServer::kMaxStreams) {
            --*streaming_.active;
            keep_alive_ = false;
            return write(error_response(Errc::unavailable, fmt::format("{} uploads are in progress; try again later", HttpServer::kMaxStreams)), version_);
        }
        upload_parser_.emplace(std::move(*parser_));
        upload_parser_->body_limit(boost::none);
        // Beast reads at most the buffer's free capacity per call (>= 512 bytes): without room
        // a GiB arrives in millions of tiny reads and the I/O thread spends its time on them.
        buf_.reserve(buf_.size() + BodyChannel::kChunk);
        std::weak_ptr<Session> weak = shared_from_this();
        auto ex = sock_.get_executor();
        body_ = std::make_shared<BodyChannel>(
            [weak, ex] {
                asio::post(ex, [weak] {
                    if (auto s = weak.lock()) s->pump();
                });
            },
            streaming_.stopping, HttpServer::kStreamIdleTimeout);
        req.read_body = [body = body_](char* p, std::size_t n) { return body->read(p, n); };
        const Router::Route* route = matched_;
        asio::post(streaming_.pool, [self = shared_from_this(), route, node = forward_to_, body = body_,
                                     req = std::move(req)]() mutable {
            // Forwarded: the body streams through to the owner as it arrives.
            Response res = node ? self->forward(*node, *route, req) : self->dispatch(*route, req);
            bool whole = body->abandon();
            asio::post(self->sock_.get_executor(), [self, whole, res = std::move(res)] {
                --*self->streaming_.active;
                // A body that was not read to its end is still on the connection: close it.
                if (!whole) self->keep_alive_ = false;
                self->write(res, self->version_);
            });
        });
    }

    // I/O thread: reads the next piece of the body into the channel unless it is full.
    void pump() {
        if (closed_ || !body_ || reading_body_) return;
        if (expect_continue_) {
            expect_continue_ = false;
            reading_body_ = true;
            static const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
            asio::async_write(sock_, asio::buffer(cont), [self = shared_from_this()](beast::error_code ec, std::size_t) {
                self->reading_body_ = false;
                if (ec) return self->body_->fail_with("the client went away: " + ec.message());
                self->pump();
            });
            return;
        }
        if (upload_parser_->is_done()) return body_->finish();
        if (!body_->want_more()) return;
        reading_body_ = true;
        auto piece = std::make_shared<std::vector<char>>(BodyChannel::kChunk);
        auto& b = upload_parser_->get().body();
        b.data = piece->data();
        b.size = piece->size();
        b.more = true;
        http::async_read_some(sock_, buf_, *upload_parser_, [self = shared_from_this(), piece](beast::error_code ec, std::size_t) {
            self->reading_body_ = false;
            if (ec == http::error::need_buffer) ec = {};
            if (ec) {
                auto why = ec == http::error::partial_message || ec == asio::error::eof || ec == http::error::end_of_stream
                               ? std::string("the client went away before the end of the body")
                               : "reading the body failed: " + ec.message();
                return self->body_->fail_with(why);
            }
            piece->resize(BodyChannel::kChunk - self->upload_parser_->get().body().size);
            self->body_->push(std::move(*piece));
            if (self->upload_parser_->is_done()) return self->body_->finish();
            self->pump();
        });
    }

    // Where a dispatcher will decide by req.resource whether the request runs here or on the
    // resource's owner host (docs/architecture.md, "A forwarded request"); today: here.
    Response dispatch(const Router::Route& route, const Request& req) {
        // The handler's log lines, the tasks it queues and the events it publishes carry the id.
        util::LogScope scope({{"REQUEST_ID", req.request_id}});
        try {
            return route.handler(req);
        } catch (const Error& e) {
            if (e.code() == Errc::internal) spdlog::error("{} {}: {}", req.method, req.path, e.what());
            return error_response(e.code(), e.what());
        } catch (const std::exception& e) {
            // A bug in a handler: answered, logged with the route, and hvd goes on.
            util::report_escaped(route_name(route).c_str(), e.what());
            return error_response(Errc::internal, fmt::format("internal error in {}: {}", route_name(route), e.what()));
        } catch (...) {
            util::report_escaped(route_name(route).c_str(), "an exception that is not a std::exception");
            return error_response(Errc::internal, fmt::format("internal error in {}", route_name(route)));
        }
    }

    // The owner host runs it; its answer goes back as it is.
    Response forward(const std::string& node, const Router::Route& route, const Request& req) {
        util::LogScope scope({{"REQUEST_ID", req.request_id}});
        try {
            return dispatcher_->forward(node, req);
        } catch (const Error& e) {
            return error_response(e.code(), e.what());
        } catch (const std::exception& e) {
            util::report_escaped(route_name(route).c_str(), e.what());
            return error_response(Errc::internal, fmt::format("internal error forwarding {}: {}", route_name(route), e.what()));
        } catch (...) {
            return error_response(Errc::internal, fmt::format("internal error forwarding {}", route_name(route)));
        }
    }

    static std::string route_name(const Router::Route& r) {
        std::string s = r.method + " ";
        for (const auto& seg : r.segments) s += "/" + seg;
        return s;
    }

    // The client's X-Request-Id when it is a plain id (1-64 of A-Z a-z 0-9 . _ -), else a new one.
    static std::string request_id(const std::string& given) {
        if (!given.empty() && given.size() <= 64 &&
            std::all_of(given.begin(), given.end(), [](unsigned char c) {
                return std::isalnum(c) || c == '.' || c == '_' || c == '-';
            }))
            return given;
        static std::atomic<std::uint64_t> next{0};
        static const std::uint64_t base = std::random_device{}() * 0x9e3779b97f4a7c15ULL ^ std::random_device{}();
        return fmt::format("r-{:016x}", base + next.fetch_add(1) * 0x9e3779b97f4a7c15ULL);
    }

    void write(const Response& r, unsigned version) {
        auto res = std::make_shared<http::response<http::string_body>>(make_response(version, keep_alive_, r));
        if (!request_id_.empty()) res->set("X-Request-Id", request_id_);
        if (r.status == 405) res->set(http::field::allow, allow_);
        http::async_write(sock_, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
            if (ec || !self->keep_alive_) return self->close();
            self->read();
        });
    }

    // ---- upgrade routes: prepared on a worker, then "101" and the socket is handed over.
    void start_upgrade(const Router::Route& route, Request req, std::string upgrade) {
        if (!beast::iequals(upgrade, route.protocol) || version_ < 11) {
            keep_alive_ = false;
            return write(error_response(Errc::invalid_input,
                                        fmt::format("{} needs HTTP/1.1 with \"Connection: Upgrade\" and \"Upgrade: {}\"",
                                                    req.path, route.protocol)),
                         version_);
        }
        idle_.cancel();
        asio::post(pool_, [self = shared_from_this(), &route, node = forward_to_, req = std::move(req)]() mutable {
            Takeover takeover;
            std::optional<Response> refused;
            util::LogScope scope({{"REQUEST_ID", req.request_id}});
            try {
                // Forwarded: the owner's upgrade is made first; then the bytes are relayed.
                takeover = node ? self->dispatcher_->forward_upgrade(*node, req, route.protocol) : route.upgrade(req);
            } catch (const Error& e) {
                refused = error_response(e.code(), e.what());
            } catch (const std::exception& e) {
                util::report_escaped(route_name(route).c_str(), e.what());
                refused = error_response(Errc::internal, e.what());
            } catch (...) {
                util::report_escaped(route_name(route).c_str(), "an exception that is not a std::exception");
                refused = error_response(Errc::internal, "internal error in " + route_name(route));
            }
            asio::post(self->sock_.get_executor(), [self, takeover = std::move(takeover), refused, &route]() mutable {
                if (refused) return self->write(*refused, self->version_);
                auto head = std::make_shared<std::string>(fmt::format(
                    "HTTP/1.1 101 Switching Protocols\r\nServer: hvd/" HV_VERSION "\r\nConnection: Upgrade\r\nUpgrade: {}\r\n\r\n",
                    route.protocol));
                asio::async_write(self->sock_, asio::buffer(*head),
                                  [self, head, takeover = std::move(takeover)](beast::error_code ec, std::size_t) {
                                      if (ec) return self->close();
                                      // The socket leaves Asio: a duplicate goes to the takeover,
                                      // this session closes its own descriptor (no shutdown).
                                      int fd = ::fcntl(self->sock_.native_handle(), F_DUPFD_CLOEXEC, 0);
                                      std::string pending = beast::buffers_to_string(self->buf_.data());
                                      self->detach();
                                      if (fd < 0) return;
                                      util::guarded("upgraded connection", [&] { takeover(fd, std::move(pending)); });
                                  });
            });
        });
    }

    // GET /v1/events?host=<another member>: that member's stream, relayed unchanged.
    void start_forwarded_events(Request req) {
        idle_.cancel();
        asio::post(pool_, [self = shared_from_this(), node = *forward_to_, req = std::move(req)]() mutable {
            Takeover takeover;
            std::optional<Response> refused;
            util::LogScope scope({{"REQUEST_ID", req.request_id}});
            try {
                takeover = self->dispatcher_->forward_events(node, req);
            } catch (const Error& e) {
                refused = error_response(e.code(), e.what());
            } catch (const std::exception& e) {
                util::report_escaped("GET /v1/events", e.what());
                refused = error_response(Errc::internal, e.what());
            } catch (...) {
                util::report_escaped("GET /v1/events", "an exception that is not a std::exception");
                refused = error_response(Errc::internal, "internal error in GET /v1/events");
            }
            asio::post(self->sock_.get_executor(), [self, takeover = std::move(takeover), refused]() mutable {
                if (refused) return self->write(*refused, self->version_);
                int fd = ::fcntl(self->sock_.native_handle(), F_DUPFD_CLOEXEC, 0);
                std::string pending = beast::buffers_to_string(self->buf_.data());
                self->detach();
                if (fd < 0) return;
                util::guarded("forwarded event stream", [&] { takeover(fd, std::move(pending)); });
            });
        });
    }

    void detach() {
        closed_ = true;
        beast::error_code ec;
        timer_.cancel();
        idle_.cancel();
        sock_.close(ec);
    }

    void start_stream() {
        ++*streams_;
        std::weak_ptr<Session> weak = shared_from_this();
        auto ex = sock_.get_executor();
        sub_ = bus_.subscribe([weak, ex](const EventBus::Line& line) {
            asio::post(ex, [weak, line] {
                if (auto s = weak.lock()) s->enqueue(line);
            });
        });
        auto res = std::make_shared<http::response<http::empty_body>>(http::status::ok, version_);
        res->set(http::field::server, "hvd/" HV_VERSION);
        res->set(http::field::content_type, "application/x-ndjson");
        res->set(http::field::cache_control, "no-cache");
        res->chunked(true);
        auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
        writing_ = true;
        http::async_write_header(sock_, *sr, [self = shared_from_this(), res, sr](beast::error_code ec, std::size_t) {
            self->writing_ = false;
            if (ec) return self->close();
            self->flush();
        });
        // The client never sends more on this connection: a read completes when it goes away.
        sock_.async_read_some(asio::buffer(probe_), [self = shared_from_this()](beast::error_code, std::size_t) {
            self->close();
        });
    }

    void enqueue(EventBus::Line line) {
        if (closed_) return;
        if (queue_.size() >= kMaxQueuedEvents) {
            spdlog::warn("event stream client is too slow; dropping it");
            return close();
        }
        queue_.push_back(std::move(line));
        flush();
    }

    void flush() {
        if (writing_ || queue_.empty() || closed_) return;
        writing_ = true;
        auto line = std::move(queue_.front());
        queue_.pop_front();
        asio::async_write(sock_, http::make_chunk(asio::buffer(*line)),
                          [self = shared_from_this(), line](beast::error_code ec, std::size_t) {
                              self->writing_ = false;
                              if (ec) return self->close();
                              self->flush();
                          });
    }

    void close() {
        if (closed_) return;
        closed_ = true;
        if (body_) body_->fail_with("the connection was closed");
        if (sub_) {
            bus_.unsubscribe(sub_);
            sub_ = 0;
            --*streams_;
        }
        beast::error_code ec;
        timer_.cancel();
        idle_.cancel();
        sock_.shutdown(local::socket::shutdown_both, ec);
        sock_.close(ec);
    }

    local::socket sock_;
    asio::thread_pool& pool_;
    const Router& router_;
    EventBus& bus_;
    std::chrono::seconds timeout_;
    std::chrono::seconds header_timeout_;
    Peer peer_;
    asio::steady_timer timer_;
    asio::steady_timer idle_;
    std::shared_ptr<std::size_t> streams_;
    std::string allow_;
    std::shared_ptr<void> slot_;
    beast::flat_buffer buf_;
    std::optional<http::request_parser<http::string_body>> parser_;
    const Router::Route* matched_ = nullptr;
    std::optional<std::string> forward_to_;
    const Dispatcher* dispatcher_ = nullptr;
    std::optional<Response> early_;  // 404/405 found at the header, answered after the body
    std::string request_id_;         // of the request being answered (X-Request-Id)
    Request pending_;  // the request whose header was read (path, query, params, peer)
    Streaming streaming_;
    std::optional<http::request_parser<http::buffer_body>> upload_parser_;
    std::shared_ptr<BodyChannel> body_;
    bool expect_continue_ = false;
    bool reading_body_ = false;
    bool keep_alive_ = true;
    unsigned version_ = 11;
    std::uint64_t sub_ = 0;
    std::deque<EventBus::Line> queue_;
    bool writing_ = false;
    bool closed_ = false;
    char probe_[64];
};

}  // namespace

HttpServer::HttpServer(asio::io_context& io, asio::thread_pool& pool, const Router& router, EventBus& bus,
                       std::chrono::seconds request_timeout, ServerLimits limits)
    : io_(io), pool_(pool), router_(router), bus_(bus), timeout_(request_timeout), limits_(limits), acceptor_(io),
      backoff_(io), stream_pool_(kMaxStreams) {}

std::optional<std::string> ConnectionLimiter::acquire(uid_t uid) {
    std::lock_guard lk(mu_);
    if (uid == 0) {
        // root always gets through other users' connections; only its own cap applies.
        if (root_ >= limits_.max_root_connections)
            return fmt::format("{} connections of root are open (limit max_root_connections)", root_);
        ++root_;
        return std::nullopt;
    }
    auto& mine = per_uid_[uid];
    if (mine >= limits_.max_connections_per_uid) {
        return fmt::format("{} connections of uid {} are open (limit max_connections_per_uid)", mine, uid);
    }
    if (others_ >= limits_.max_connections) {
        if (mine == 0) per_uid_.erase(uid);
        return fmt::format("{} connections are open (limit max_connections)", others_);
    }
    ++mine;
    ++others_;
    return std::nullopt;
}

void ConnectionLimiter::release(uid_t uid) {
    std::lock_guard lk(mu_);
    if (uid == 0) {
        --root_;
        return;
    }
    if (auto it = per_uid_.find(uid); it != per_uid_.end() && --it->second == 0) per_uid_.erase(it);
    --others_;
}

std::size_t ConnectionLimiter::open() const {
    std::lock_guard lk(mu_);
    return root_ + others_;
}

HttpServer::~HttpServer() {
    close();
    stream_pool_.join();  // uploads see stopping_ within 250 ms and clean up
}

void HttpServer::listen(const SocketOptions& opts) {
    if (opts.inherited_fd >= 0) {
        boost::system::error_code ec;
        acceptor_.assign(local{}, opts.inherited_fd, ec);
        if (ec) fail(Errc::internal, "cannot use the socket systemd passed (fd {}): {}", opts.inherited_fd, ec.message());
        set_cloexec(acceptor_.native_handle());
        spdlog::info("listening on {} (socket activation: the socket unit's socket)", opts.path);
        accept();
        return;
    }
    prepare_socket_path(opts.path);
    local::endpoint ep(opts.path);
    acceptor_.open(ep.protocol());
    // Socket files are created with the umask: make sure nobody else can connect before chmod.
    mode_t old = ::umask(0177);
    boost::system::error_code ec;
    acceptor_.bind(ep, ec);
    ::umask(old);
    if (ec) fail(Errc::internal, "cannot bind {}: {}", opts.path, ec.message());
    acceptor_.listen(asio::socket_base::max_listen_connections);
    set_cloexec(acceptor_.native_handle());
    gid_t gid = static_cast<gid_t>(-1);
    if (!opts.group.empty()) {
        if (struct group* g = ::getgrnam(opts.group.c_str())) gid = g->gr_gid;
    }
    if (gid != static_cast<gid_t>(-1) && ::chown(opts.path.c_str(), 0, gid) != 0)
        spdlog::warn("cannot give {} to group {}", opts.path, opts.group);
    ::chmod(opts.path.c_str(), opts.mode);
    path_ = opts.path;
    spdlog::info("listening on {} (mode {:o}{})", opts.path, opts.mode,
                 gid != static_cast<gid_t>(-1) ? ", group " + opts.group : "");
    accept();
}

void HttpServer::accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, local::socket s) {
        if (!acceptor_.is_open()) return;
        if (ec) {
            if (ec == asio::error::operation_aborted) return;
            // E.g. out of file descriptors: back off instead of spinning on the error.
            spdlog::error("accept: {}; pausing accepts for 200 ms", ec.message());
            backoff_.expires_after(std::chrono::milliseconds(200));
            backoff_.async_wait([this](boost::system::error_code tec) {
                if (!tec) accept();
            });
            return;
        }
        util::guarded("accepting a connection", [&] { admit(std::move(s)); });
        accept();
    });
}

void HttpServer::admit(local::socket s) {
    set_cloexec(s.native_handle());
    Peer peer;
    struct ucred cred {};
    socklen_t len = sizeof cred;
    if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        peer.uid = cred.uid;
        peer.gid = cred.gid;
        peer.pid = cred.pid;
    }
    // A peer whose uid cannot be read counts as one uid of its own (never as root).
    uid_t key = peer.uid < 0 ? static_cast<uid_t>(-2) : static_cast<uid_t>(peer.uid);
    if (auto refused = limiter_->acquire(key)) {
        // Told why in a plain answer (the socket is new: the write fits its buffer), then closed.
        auto line = fmt::format("{}; try again later", *refused);
        spdlog::warn("refusing a connection (pid {}, uid {}): {}", peer.pid, peer.uid, line);
        auto body = util::dump_json(api::error_json(Errc::unavailable, line)) + "\n";
        auto res = fmt::format("HTTP/1.1 503 Service Unavailable\r\nServer: hvd/" HV_VERSION
                               "\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                               body.size(), body);
        (void)!::send(s.native_handle(), res.data(), res.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        boost::system::error_code ignored;
        s.shutdown(local::socket::shutdown_both, ignored);
        s.close(ignored);
        return;
    }
    serve(std::move(s), std::move(peer), key);
}

void HttpServer::adopt(local::socket s, Peer peer) {
    set_cloexec(s.native_handle());
    uid_t key = 0;
    if (auto refused = limiter_->acquire(key)) {
        spdlog::warn("refusing a TLS connection from {}: {}", peer.subject, *refused);
        return;  // closing the socket ends the peer's connection
    }
    serve(std::move(s), std::move(peer), key);
}

void HttpServer::serve(local::socket s, Peer peer, uid_t key) {
    std::shared_ptr<void> slot(nullptr, [l = limiter_, key](void*) { l->release(key); });
    auto session = std::make_shared<Session>(std::move(s), pool_, router_, bus_, timeout_, limits_.header_timeout,
                                             std::move(peer), streams_,
                                             Session::Streaming{stream_pool_, stopping_, active_streams_}, dispatcher_);
    session->hold(std::move(slot));
    session->run();
}

void HttpServer::close() {
    stopping_->store(true);
    boost::system::error_code ec;
    if (acceptor_.is_open()) {
        acceptor_.close(ec);
        if (!path_.empty()) ::unlink(path_.c_str());
    }
}

}  // namespace hv::daemon
