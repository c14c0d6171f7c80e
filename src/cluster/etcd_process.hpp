// hvd's managed etcd member (config [cluster] store = "managed"): hvd writes the member's
// flags, starts `etcd` as its child, health-checks it, and restarts it when it exits (with a
// backoff), so a host needs no extra service. The process dies with hvd (PR_SET_PDEATHSIG)
// and is never started through a shell (argv only).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tls.hpp"

namespace hv::cluster {

struct EtcdMemberConfig {
    std::string binary = "etcd";
    std::string name;       // the member's name: hv's node name
    std::string data_dir;   // <state_dir>/cluster/etcd
    std::string log_file;   // etcd's stdout+stderr, appended
    std::string tls_dir;    // where ca.crt, host.crt, host.key are written for etcd (0600)
    std::string address;    // the host's cluster address: advertised client and peer URLs
    int client_port = 2379;
    int peer_port = 2380;
    // "name=https://addr:peerport,..." of the members at start; empty for a new single-member
    // cluster (then the member's own).
    std::string initial_cluster;
    bool existing = false;  // --initial-cluster-state existing (joining)
    std::string cluster_token = "hv";
    TlsIdentity tls;        // client-cert-auth and peer-client-cert-auth with this CA
};

// The argv etcd is started with (tested, and printed by `hvd --print-etcd-argv`).
std::vector<std::string> etcd_argv(const EtcdMemberConfig& c);

class EtcdProcess {
public:
    explicit EtcdProcess(EtcdMemberConfig c);
    ~EtcdProcess();  // stops the member (SIGTERM, then SIGKILL after 10 s)
    EtcdProcess(const EtcdProcess&) = delete;
    EtcdProcess& operator=(const EtcdProcess&) = delete;

    // Starts the member and the supervisor thread: it restarts etcd when it exits (1 s, then
    // doubling to 30 s) and checks GET /health over mutual TLS every 5 s, killing a member
    // that stays unhealthy for 30 s so it is restarted.
    void start();
    // Waits until the member answers /health (true) or the timeout passes (false).
    bool wait_healthy(std::chrono::milliseconds timeout);
    void stop();
    int pid() const;        // 0 when not running
    int restarts() const;   // how often the supervisor restarted it
    std::string client_url() const;  // https://address:client_port

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hv::cluster
