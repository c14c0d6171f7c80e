// A guest's text console over a connected socket: bridges the socket and a libvirt console
// stream (virDomainOpenConsole) on libvirt's event loop, both directions non-blocking, like
// `virsh console`. Used by GET /v1/cts/{name}/console (HTTP upgrade) — and by VMs later.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <libvirt/libvirt.h>

namespace hv::virt {

class ConsoleStream {
public:
    // Opens the console of a running domain (throws: conflict when another session holds it
    // and force is false; force takes it over, as virsh console --force).
    ConsoleStream(virConnectPtr conn, virDomainPtr dom, const std::string& what, bool force);
    ~ConsoleStream();
    ConsoleStream(const ConsoleStream&) = delete;
    ConsoleStream& operator=(const ConsoleStream&) = delete;

    // Hands the stream and the socket over to the event loop: bytes flow both ways until
    // either side ends (the guest's console closes, the client disconnects, or hvd stops);
    // then the socket is closed. `pending`: bytes the client sent already (sent first).
    // Returns at once; the bridge owns fd from here.
    void attach(int fd, std::string pending);

private:
    virStreamPtr st_ = nullptr;
};

}  // namespace hv::virt
