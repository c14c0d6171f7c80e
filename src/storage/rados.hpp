// A librados client connection and the monitor/manager commands hv sends over it (JSON in,
// JSON out; nothing parses Ceph's command-line output). Shared by the rbd backend and the
// Ceph deployment (src/ceph/).
#pragma once

#include <rados/librados.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::storage {

std::string errno_text(int r);
// A librados/librbd error as hv's: what failed, and the code the caller should see
// (ENOENT 404, EEXIST/EBUSY 409, ENOSPC 507, EACCES 400, ETIMEDOUT/ECONNREFUSED 503 ...).
[[noreturn]] void ceph_fail(int r, const std::string& what);
// The error says the cluster is gone (the connection should be made again).
bool connection_lost(int r);

struct RadosOptions {
    std::string user = "admin";  // cephx user without "client."
    std::string mon_host;        // "[v2:10.0.0.1:3300,v1:10.0.0.1:6789],10.0.0.2" (Ceph's mon_host)
    std::string keyring;         // a keyring file, or
    std::string key;             // the key itself (base64)
    int mount_timeout = 10;      // seconds for the first contact with a monitor
    int op_timeout = 15;         // seconds for a monitor command
    std::string who;             // in errors: "pool 'vmpool'", "ceph"
};

class Rados {
public:
    // Connects; hv::Error: invalid_input (refused key, unreadable keyring), unavailable (no
    // monitor answers).
    explicit Rados(const RadosOptions& o);
    ~Rados();
    Rados(const Rados&) = delete;
    Rados& operator=(const Rados&) = delete;
    rados_t handle() const { return cluster_; }

    // A monitor command ("format": "json" is added); returns the output buffer. Errors name
    // `what` and the monitor's own words.
    std::string mon_command(nlohmann::json cmd, const std::string& what, const std::string& inbuf = {}) const;
    // The same, for the commands the manager serves (pg stat, osd purge, osd safe-to-destroy).
    std::string mgr_command(nlohmann::json cmd, const std::string& what, const std::string& inbuf = {}) const;
    // Monitor command whose output is binary (mon getmap); no "format" is added.
    std::string mon_command_binary(const nlohmann::json& cmd, const std::string& what) const;

private:
    std::string command(bool mgr, nlohmann::json cmd, const std::string& what, const std::string& inbuf, bool json_format) const;
    rados_t cluster_ = nullptr;
    std::string who_;
};

}  // namespace hv::storage
