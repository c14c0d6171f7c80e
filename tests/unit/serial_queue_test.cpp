// util::SerialQueue (include/hv/util/serial_queue.hpp): one worker, items in push order, in
// batches; stop() drops what is queued and joins.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "hv/util/serial_queue.hpp"

using hv::util::SerialQueue;
using namespace std::chrono_literals;

namespace {

// What the worker saw, with a wait for "at least n items".
struct Seen {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<int> items;
    std::vector<std::size_t> batches;
    std::thread::id worker;
    bool one_thread = true;

    void add(std::vector<int>& batch) {
        std::lock_guard lk(mu);
        if (worker == std::thread::id{}) worker = std::this_thread::get_id();
        if (worker != std::this_thread::get_id()) one_thread = false;
        batches.push_back(batch.size());
        items.insert(items.end(), batch.begin(), batch.end());
        cv.notify_all();
    }
    bool wait_for(std::size_t n, std::chrono::milliseconds limit = 10s) {
        std::unique_lock lk(mu);
        return cv.wait_for(lk, limit, [&] { return items.size() >= n; });
    }
};

}  // namespace

TEST_CASE("serial queue: items from many threads arrive once each, per-thread order kept, on one thread", "[serial_queue]") {
    Seen seen;
    SerialQueue<int> q;
    q.start([&](std::vector<int>& b) { seen.add(b); });
    constexpr int kThreads = 4, kEach = 2000;
    std::vector<std::thread> producers;
    for (int t = 0; t < kThreads; ++t)
        producers.emplace_back([&q, t] {
            for (int i = 0; i < kEach; ++i) q.push(t * kEach + i);
        });
    for (auto& p : producers) p.join();
    REQUIRE(seen.wait_for(kThreads * kEach));
    q.stop();

    std::lock_guard lk(seen.mu);
    REQUIRE(seen.items.size() == kThreads * kEach);
    CHECK(seen.one_thread);
    CHECK(seen.worker != std::this_thread::get_id());
    std::vector<int> last(kThreads, -1);
    std::vector<int> count(kThreads, 0);
    for (int v : seen.items) {
        int t = v / kEach;
        CHECK(v > last[t]);  // per-producer order
        last[t] = v;
        ++count[t];
    }
    for (int c : count) CHECK(c == kEach);
}

TEST_CASE("serial queue: items pushed while the worker is busy come as one batch, in order", "[serial_queue]") {
    std::mutex gate_mu;
    std::condition_variable gate_cv;
    bool in_first = false, release = false;
    Seen seen;
    SerialQueue<int> q;
    q.start([&](std::vector<int>& b) {
        if (b.front() == 0) {
            std::unique_lock lk(gate_mu);
            in_first = true;
            gate_cv.notify_all();
            gate_cv.wait(lk, [&] { return release; });
        }
        seen.add(b);
    });
    q.push(0);
    {
        std::unique_lock lk(gate_mu);
        REQUIRE(gate_cv.wait_for(lk, 10s, [&] { return in_first; }));
    }
    for (int i = 1; i <= 5; ++i) q.push(i);  // the worker is inside batch {0}
    {
        std::lock_guard lk(gate_mu);
        release = true;
    }
    gate_cv.notify_all();
    REQUIRE(seen.wait_for(6));
    q.stop();
    std::lock_guard lk(seen.mu);
    CHECK(seen.items == std::vector<int>{0, 1, 2, 3, 4, 5});
    CHECK(seen.batches == std::vector<std::size_t>{1, 5});
}

TEST_CASE("serial queue: stop drops what is queued, waits for the running batch, and later pushes are ignored", "[serial_queue]") {
    std::mutex gate_mu;
    std::condition_variable gate_cv;
    bool in_first = false, release = false;
    std::atomic<bool> first_done{false};
    Seen seen;
    SerialQueue<int> q;
    q.start([&](std::vector<int>& b) {
        if (b.front() == 0) {
            std::unique_lock lk(gate_mu);
            in_first = true;
            gate_cv.notify_all();
            gate_cv.wait(lk, [&] { return release; });
            first_done = true;
        }
        seen.add(b);
    });
    q.push(0);
    {
        std::unique_lock lk(gate_mu);
        REQUIRE(gate_cv.wait_for(lk, 10s, [&] { return in_first; }));
    }
    q.push(1);
    q.push(2);
    // stop() must wait for batch {0}; release it from another thread once stop() is waiting.
    std::thread releaser([&] {
        std::this_thread::sleep_for(100ms);  // part of the test: stop() is blocked meanwhile
        CHECK_FALSE(first_done.load());
        std::lock_guard lk(gate_mu);
        release = true;
        gate_cv.notify_all();
    });
    q.stop();
    CHECK(first_done.load());  // joined: the running batch finished before stop() returned
    releaser.join();
    q.push(3);  // after stop: no worker, nothing runs, no crash
    q.stop();   // idempotent
    std::lock_guard lk(seen.mu);
    CHECK(seen.items == std::vector<int>{0});  // 1 and 2 were dropped
}

TEST_CASE("serial queue: stop without start and destruction with queued items are safe", "[serial_queue]") {
    {
        SerialQueue<int> q;
        q.push(1);
        q.stop();
    }
    Seen seen;
    {
        SerialQueue<int> q;
        q.start([&](std::vector<int>& b) { seen.add(b); });
        q.push(7);
        REQUIRE(seen.wait_for(1));
    }  // destructor stops and joins
    std::lock_guard lk(seen.mu);
    CHECK(seen.items == std::vector<int>{7});
}

TEST_CASE("serial queue: a handler that throws loses its batch, the worker goes on", "[serial_queue][guard]") {
    // Today the exception leaves the worker thread and ends the process (std::terminate).
    Seen seen;
    SerialQueue<int> q;
    q.start([&](std::vector<int>& b) {
        seen.add(b);
        if (b.front() == 1) throw std::runtime_error("handler failed");
        if (b.front() == 2) throw 42;  // not even a std::exception
    });
    q.push(1);
    REQUIRE(seen.wait_for(1));
    q.push(2);
    REQUIRE(seen.wait_for(2));
    q.push(3);
    REQUIRE(seen.wait_for(3));
    q.stop();
    std::lock_guard lk(seen.mu);
    CHECK(seen.items == std::vector<int>{1, 2, 3});
}
