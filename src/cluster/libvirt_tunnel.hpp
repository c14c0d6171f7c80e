// libvirt's connection to another host's libvirtd, carried through hvd's mutual TLS (live
// migration, docs/migration.md). No libvirt TLS certificates, no SSH, no open libvirtd port:
//
//   source libvirtd --unix--> LibvirtTunnel (source hvd) --HTTPS upgrade "hv-libvirt",
//   host certificate--> destination hvd (GET /v1/host/libvirt) --unix--> destination libvirtd
//
// With VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_TUNNELLED the migration data flows over that one
// libvirt connection too, so everything between the hosts is inside hvd's TLS.
//
// The same tunnel carries QEMU's own data sockets when the migration is not tunnelled through
// libvirt (disks copied by NBD, post-copy): target "/v1/host/migration-stream?socket=NAME",
// protocol "hv-migration"; the destination joins it to NAME in its migration socket directory,
// where its QEMU listens (the same path as the source's socket on this host).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tls.hpp"

namespace hv::cluster {

class LibvirtTunnel {
public:
    // Listens on the Unix socket `path` (0600); every connection to it becomes one upgraded
    // TLS connection (GET `target`, Upgrade: `protocol`) to the hvd at host:port. Throws
    // hv::Error(internal) when it cannot listen.
    LibvirtTunnel(TlsIdentity id, std::string host, int port, std::string path, std::string target = "/v1/host/libvirt",
                  std::string protocol = "hv-libvirt");
    ~LibvirtTunnel();  // stops accepting, ends the relays, removes the socket
    LibvirtTunnel(const LibvirtTunnel&) = delete;
    LibvirtTunnel& operator=(const LibvirtTunnel&) = delete;
    // "qemu+unix:///system?socket=<path>" for libvirt.
    std::string uri() const;
    const std::string& path() const { return path_; }
    // The socket belongs to uid:gid (still 0600): the QEMU process that connects to it.
    void allow(unsigned uid, unsigned gid);

private:
    void accept_loop();
    void serve(int fd);
    TlsIdentity id_;
    std::string host_;
    int port_;
    std::string path_;
    std::string target_;
    std::string protocol_;
    int listen_fd_ = -1;
    std::atomic<bool> stop_{false};
    std::thread acceptor_;
    std::mutex mu_;
    std::vector<std::thread> relays_;
};

// The destination's side: copies bytes both ways between `fd` (the upgraded connection) and
// a new connection to the Unix socket `socket_path` (its libvirtd, or its QEMU's migration
// socket), `pending` first, until either side ends. A socket that is not there yet (QEMU about
// to listen) is tried again for up to `wait_ms`. Never throws (a failure closes fd).
// Writes all n bytes to a plain fd (EINTR retried); false when it cannot.
bool write_fully(int fd, const char* p, std::size_t n);

void relay_to_unix(int fd, const std::string& pending, const std::string& socket_path, int wait_ms = 0);

}  // namespace hv::cluster
