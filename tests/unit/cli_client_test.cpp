// hv::Client against a tiny in-process HTTP server on a Unix socket: error mapping, the
// unreachable case, the chunked NDJSON event stream, task polling.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <mutex>
#include <thread>

#include "hv/client.hpp"

namespace {
namespace asio = boost::asio;
namespace http = boost::beast::http;
using local = asio::local::stream_protocol;

struct Seen {
    std::string method, target, body, content_type;
};

// Serves each connection with handler(request) -> a list of raw byte pieces written one by one
// (with a short pause between them, so streaming can be observed).
class FakeHvd {
public:
    using Handler = std::function<std::vector<std::string>(const Seen&)>;

    explicit FakeHvd(Handler h)
        : path_("/tmp/hv-cli-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++) + ".sock"),
          handler_(std::move(h)) {
        ::unlink(path_.c_str());
        acceptor_.open(local());
        acceptor_.bind(local::endpoint(path_));
        acceptor_.listen();
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeHvd() {
        stop_ = true;
        boost::system::error_code ec;
        // Wake the acceptor with a connection of our own.
        local::socket s(io_);
        s.connect(local::endpoint(path_), ec);
        thread_.join();
        ::unlink(path_.c_str());
    }
    const std::string& path() const { return path_; }
    std::vector<Seen> seen() const {
        std::lock_guard lk(mu_);
        return seen_;
    }

private:
    static int& counter() {
        static int n = 0;
        return n;
    }
    void serve() {
        while (!stop_) {
            boost::system::error_code ec;
            local::socket s(io_);
            acceptor_.accept(s, ec);
            if (ec || stop_) return;
            boost::beast::flat_buffer buf;
            http::request<http::string_body> req;
            http::read(s, buf, req, ec);
            if (ec) continue;
            Seen r{std::string(req.method_string()), std::string(req.target()), req.body(),
                   std::string(req[http::field::content_type])};
            {
                std::lock_guard lk(mu_);
                seen_.push_back(r);
            }
            for (const auto& piece : handler_(r)) {
                asio::write(s, asio::buffer(piece), ec);
                if (ec) break;
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
        }
    }

    std::string path_;
    Handler handler_;
    mutable std::mutex mu_;
    std::vector<Seen> seen_;
    asio::io_context io_;
    local::acceptor acceptor_{io_};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

std::string reply(int status, const std::string& body, const std::string& type = "application/json") {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: " + type +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}
std::string chunk(const std::string& data) {
    char len[16];
    std::snprintf(len, sizeof len, "%zx", data.size());
    return std::string(len) + "\r\n" + data + "\r\n";
}
std::string task_json(const std::string& state, int progress, const std::string& message) {
    return nlohmann::json{{"id", "t-000001"}, {"kind", "vm.create"}, {"target", "vm/web01"}, {"state", state},
                          {"progress", progress}, {"message", message}, {"error", nullptr}, {"result", nullptr}}
        .dump();
}
}  // namespace

TEST_CASE("client: an absent socket is DaemonUnreachable naming the path", "[cli][client]") {
    hv::Client c("/tmp/hv-cli-test-does-not-exist.sock");
    try {
        c.host();
        FAIL("no exception");
    } catch (const hv::DaemonUnreachable& e) {
        CHECK(e.code() == hv::Errc::unavailable);
        CHECK_THAT(e.what(), Catch::Contains("cannot connect to hvd at /tmp/hv-cli-test-does-not-exist.sock") &&
                                 Catch::Contains("HV_SOCKET"));
    }
}

TEST_CASE("client: error bodies become hv::Error with the daemon's code", "[cli][client]") {
    FakeHvd hvd([](const Seen& r) -> std::vector<std::string> {
        if (r.target == "/v1/vms/web02")
            return {reply(404, R"({"error":{"code":"not_found","message":"vm 'web02' does not exist"}})")};
        if (r.target == "/v1/vms/web01/start")
            return {reply(409, R"({"error":{"code":"conflict","message":"vm 'web01' is already running"}})")};
        return {reply(502, "bad gateway\n", "text/plain")};
    });
    hv::Client c(hvd.path());
    try {
        c.get_vm("web02");
        FAIL("no exception");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::not_found);
        CHECK(std::string(e.what()) == "vm 'web02' does not exist");
    }
    try {
        c.vm_action("web01", "start");
        FAIL("no exception");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::conflict);
    }
    // No error body: the code comes from the status.
    try {
        c.request("GET", "/v1/other");
        FAIL("no exception");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::internal);
        CHECK_THAT(e.what(), Catch::Contains("502") && Catch::Contains("bad gateway"));
    }
    auto seen = hvd.seen();
    REQUIRE(seen.size() == 3);
    CHECK(seen[1].method == "POST");
}

TEST_CASE("client: requests carry JSON bodies and escaped names", "[cli][client]") {
    FakeHvd hvd([](const Seen&) -> std::vector<std::string> { return {reply(202, task_json("pending", -1, ""))}; });
    hv::Client c(hvd.path());
    auto t = c.shutdown_vm("web01", 30, true);
    CHECK(t.id == "t-000001");
    CHECK(t.state == hv::api::TaskState::pending);
    c.delete_vm("a/b", true);
    auto seen = hvd.seen();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].target == "/v1/vms/web01/shutdown");
    CHECK(seen[0].content_type == "application/json");
    CHECK(nlohmann::json::parse(seen[0].body) == nlohmann::json{{"timeout", 30}, {"force", true}});
    CHECK(seen[1].method == "DELETE");
    CHECK(seen[1].target == "/v1/vms/a%2Fb?purge=1");
}

TEST_CASE("client: events are read line by line from a chunked stream", "[cli][client]") {
    auto ev = [](int seq) {
        return nlohmann::json{{"seq", seq}, {"time", 1000 * seq}, {"type", "vm.lifecycle"}, {"target", "vm/web01"},
                              {"data", {{"state", "running"}}}}
                   .dump() +
               "\n";
    };
    FakeHvd hvd([&](const Seen&) -> std::vector<std::string> {
        std::string two = ev(2) + ev(3);
        return {"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n",
                chunk(ev(1).substr(0, 10)), chunk(ev(1).substr(10)), chunk(two), chunk(ev(4)), "0\r\n\r\n"};
    });
    hv::Client c(hvd.path());
    std::vector<std::uint64_t> seqs;
    c.events([&](const hv::api::Event& e) {
        seqs.push_back(e.seq);
        return true;
    });
    CHECK(seqs == std::vector<std::uint64_t>{1, 2, 3, 4});

    seqs.clear();
    c.events([&](const hv::api::Event& e) {
        seqs.push_back(e.seq);
        return e.seq < 2;  // stop after the second
    });
    CHECK(seqs == std::vector<std::uint64_t>{1, 2});
}

TEST_CASE("client: wait_task polls until final and reports changes only", "[cli][client]") {
    std::atomic<int> polls{0};
    FakeHvd hvd([&](const Seen&) -> std::vector<std::string> {
        ++polls;
        if (polls <= 2) return {reply(200, task_json("running", 10, "creating disk0"))};
        if (polls <= 4) return {reply(200, task_json("running", 50, "creating disk0"))};
        return {reply(200, task_json("succeeded", 100, "created"))};
    });
    hv::Client c(hvd.path());
    std::vector<int> progress;
    auto t = c.wait_task("t-000001", [&](const hv::api::TaskInfo& u) { progress.push_back(u.progress); },
                         std::chrono::milliseconds(1));
    CHECK(t.state == hv::api::TaskState::succeeded);
    CHECK(polls == 5);
    CHECK(progress == std::vector<int>{10, 50, 100});
}
