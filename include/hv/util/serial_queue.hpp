// Items handed over from any thread (e.g. libvirt's event thread, which must not call libvirt
// itself) to one worker thread that handles them in order, in batches. stop() (also in the
// destructor) drops what is still queued and joins the worker. A handler that throws loses
// its batch (logged as an internal error); the worker goes on with the next one.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "hv/util/guard.hpp"

namespace hv::util {

template <typename T>
class SerialQueue {
public:
    using Handler = std::function<void(std::vector<T>& batch)>;

    SerialQueue() = default;
    SerialQueue(const SerialQueue&) = delete;
    SerialQueue& operator=(const SerialQueue&) = delete;
    ~SerialQueue() { stop(); }

    void start(Handler handle) {
        thread_ = std::thread([this, handle = std::move(handle)] {
            for (;;) {
                std::vector<T> batch;
                {
                    std::unique_lock lk(mu_);
                    cv_.wait(lk, [&] { return stop_ || !items_.empty(); });
                    if (stop_) return;
                    batch.swap(items_);
                }
                util::guarded("serial queue worker", [&] { handle(batch); });
            }
        });
    }

    void push(T item) {
        {
            std::lock_guard lk(mu_);
            items_.push_back(std::move(item));
        }
        cv_.notify_one();
    }

    void stop() {
        {
            std::lock_guard lk(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<T> items_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace hv::util
