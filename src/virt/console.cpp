#include "hv/util/guard.hpp"
#include "console.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include "connection.hpp"

namespace hv::virt {

namespace {
constexpr std::size_t kMaxBuffered = 64 * 1024;

// Lives until both registrations (stream callback, fd watch) are gone: each one's free
// callback drops a reference. Only libvirt's event loop thread touches it after attach().
struct Bridge {
    virStreamPtr st = nullptr;
    int fd = -1;
    int watch = -1;
    int refs = 2;
    bool done = false;
    std::string to_client, to_guest;
};

void update(Bridge* b);

void finish(Bridge* b) {
    if (b->done) return;
    b->done = true;
    // What the guest printed last goes out if the socket takes it now.
    while (!b->to_client.empty()) {
        ssize_t n = ::send(b->fd, b->to_client.data(), b->to_client.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0) break;
        b->to_client.erase(0, static_cast<std::size_t>(n));
    }
    virStreamEventRemoveCallback(b->st);
    virEventRemoveHandle(b->watch);
    virStreamAbort(b->st);
    ::shutdown(b->fd, SHUT_RDWR);
}

void release(void* opaque) {
    auto* b = static_cast<Bridge*>(opaque);
    if (--b->refs > 0) return;
    ::close(b->fd);
    virStreamFree(b->st);
    delete b;
}

void on_stream_events(virStreamPtr st, int events, void* opaque) {
    auto* b = static_cast<Bridge*>(opaque);
    if (b->done) return;
    if (events & VIR_STREAM_EVENT_READABLE) {
        char buf[16384];
        while (b->to_client.size() < kMaxBuffered) {
            int n = virStreamRecv(st, buf, sizeof buf);
            if (n == -2) break;  // nothing more now
            if (n <= 0) return finish(b);  // 0: the console closed (guest stopped); <0: error
            b->to_client.append(buf, static_cast<std::size_t>(n));
        }
    }
    if ((events & VIR_STREAM_EVENT_WRITABLE) && !b->to_guest.empty()) {
        int n = virStreamSend(st, b->to_guest.data(), b->to_guest.size());
        if (n >= 0) b->to_guest.erase(0, static_cast<std::size_t>(n));
        else if (n != -2) return finish(b);
    }
    if (events & (VIR_STREAM_EVENT_ERROR | VIR_STREAM_EVENT_HANGUP)) return finish(b);
    update(b);
}

void on_fd_events(int fd, int events, void* opaque) {
    auto* b = static_cast<Bridge*>(opaque);
    if (b->done) return;
    if (events & VIR_EVENT_HANDLE_READABLE) {
        char buf[16384];
        ssize_t n = ::recv(fd, buf, std::min(sizeof buf, kMaxBuffered - std::min(kMaxBuffered, b->to_guest.size())), 0);
        if (n == 0) return finish(b);  // the client went away
        if (n < 0 && errno != EAGAIN && errno != EINTR) return finish(b);
        if (n > 0) b->to_guest.append(buf, static_cast<std::size_t>(n));
    }
    if ((events & VIR_EVENT_HANDLE_WRITABLE) && !b->to_client.empty()) {
        ssize_t n = ::send(fd, b->to_client.data(), b->to_client.size(), MSG_NOSIGNAL);
        if (n > 0) b->to_client.erase(0, static_cast<std::size_t>(n));
        else if (n < 0 && errno != EAGAIN && errno != EINTR) return finish(b);
    }
    if (events & (VIR_EVENT_HANDLE_ERROR | VIR_EVENT_HANDLE_HANGUP)) return finish(b);
    update(b);
}

// libvirt's C callbacks: an exception (out of memory) ends this console only.
void on_stream(virStreamPtr st, int events, void* opaque) {
    if (!util::guarded("console stream callback", [&] { on_stream_events(st, events, opaque); }))
        util::guarded("console stream callback", [&] { finish(static_cast<Bridge*>(opaque)); });
}
void on_fd(int, int fd, int events, void* opaque) {
    if (!util::guarded("console socket callback", [&] { on_fd_events(fd, events, opaque); }))
        util::guarded("console socket callback", [&] { finish(static_cast<Bridge*>(opaque)); });
}

// Reads only where there is room; writes only what is waiting.
void update(Bridge* b) {
    if (b->done) return;
    virEventUpdateHandle(b->watch, (b->to_guest.size() < kMaxBuffered ? VIR_EVENT_HANDLE_READABLE : 0) |
                                       (b->to_client.empty() ? 0 : VIR_EVENT_HANDLE_WRITABLE));
    virStreamEventUpdateCallback(b->st, (b->to_client.size() < kMaxBuffered ? VIR_STREAM_EVENT_READABLE : 0) |
                                            (b->to_guest.empty() ? 0 : VIR_STREAM_EVENT_WRITABLE));
}
}  // namespace

ConsoleStream::ConsoleStream(virConnectPtr conn, virDomainPtr dom, const std::string& what, bool force) {
    st_ = virStreamNew(conn, VIR_STREAM_NONBLOCK);
    if (!st_) throw_libvirt_error("cannot make a stream for the console of " + what);
    if (virDomainOpenConsole(dom, nullptr, st_, force ? VIR_DOMAIN_CONSOLE_FORCE : 0) < 0) {
        virErrorPtr e = virGetLastError();
        bool busy = e && e->code == VIR_ERR_OPERATION_FAILED;
        std::string msg = e && e->message ? e->message : "unknown error";
        virStreamFree(st_);
        st_ = nullptr;
        if (busy) fail(Errc::conflict, "the console of {} is in use by another session ({}); --force takes it over", what, msg);
        fail(Errc::internal, "cannot open the console of {}: {}", what, msg);
    }
}

ConsoleStream::~ConsoleStream() {
    if (st_) {
        virStreamAbort(st_);
        virStreamFree(st_);
    }
}

void ConsoleStream::attach(int fd, std::string pending) {
    int fl = ::fcntl(fd, F_GETFL);
    if (fl >= 0) ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    auto* b = new Bridge;
    b->st = st_;
    b->fd = fd;
    b->to_guest = std::move(pending);
    st_ = nullptr;  // the bridge owns it now
    int events = VIR_STREAM_EVENT_READABLE | (b->to_guest.empty() ? 0 : VIR_STREAM_EVENT_WRITABLE);
    if (virStreamEventAddCallback(b->st, events, on_stream, b, release) < 0) {
        spdlog::error("console: cannot watch the stream: {}", virGetLastErrorMessage());
        virStreamAbort(b->st);
        virStreamFree(b->st);
        ::close(fd);
        delete b;
        return;
    }
    b->watch = virEventAddHandle(fd, VIR_EVENT_HANDLE_READABLE, on_fd, b, release);
    if (b->watch < 0) {
        spdlog::error("console: cannot watch the socket");
        b->refs = 1;  // only the stream callback's free remains
        b->done = true;
        virStreamEventRemoveCallback(b->st);
        virStreamAbort(b->st);
        ::shutdown(fd, SHUT_RDWR);
    }
}

}  // namespace hv::virt
