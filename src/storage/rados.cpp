#include "rados.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "hv/error.hpp"

namespace hv::storage {

std::string errno_text(int r) { return std::strerror(r < 0 ? -r : r); }

[[noreturn]] void ceph_fail(int r, const std::string& what) {
    int e = r < 0 ? -r : r;
    Errc code = Errc::internal;
    switch (e) {
        case ENOENT: code = Errc::not_found; break;
        case EEXIST: code = Errc::conflict; break;
        case EBUSY: code = Errc::conflict; break;
        case ENOTEMPTY: code = Errc::conflict; break;
        case ENOSPC:
        case EDQUOT: code = Errc::insufficient_space; break;
        case EACCES:
        case EPERM: code = Errc::invalid_input; break;  // the user or key is wrong for this cluster
        case ETIMEDOUT:
        case ENOTCONN:
        case ECONNREFUSED:
        case EHOSTUNREACH:
        case ESHUTDOWN:
        case EIO: code = Errc::unavailable; break;
        case EINVAL: code = Errc::invalid_input; break;
        case EOPNOTSUPP: code = Errc::unsupported; break;
        case ECANCELED: code = Errc::cancelled; break;
        default: break;
    }
    fail(code, "{}: {}", what, errno_text(e));
}

bool connection_lost(int r) {
    int e = r < 0 ? -r : r;
    return e == ETIMEDOUT || e == ENOTCONN || e == ECONNREFUSED || e == ESHUTDOWN || e == EHOSTUNREACH;
}

Rados::Rados(const RadosOptions& o) : who_(o.who.empty() ? "ceph" : o.who) {
    int r = rados_create(&cluster_, o.user.c_str());
    if (r < 0) ceph_fail(r, fmt::format("{}: librados", who_));
    const std::pair<const char*, std::string> conf[] = {
        {"mon_host", o.mon_host},
        {"client_mount_timeout", std::to_string(o.mount_timeout)},
        {"rados_mon_op_timeout", std::to_string(o.op_timeout)},
        {"rados_osd_op_timeout", "60"},
        {"log_to_stderr", "false"},
        {"err_to_stderr", "false"},
        {"log_file", ""},
        {"admin_socket", ""},
    };
    try {
        for (const auto& [k, v] : conf) {
            r = rados_conf_set(cluster_, k, v.c_str());
            if (r < 0) ceph_fail(r, fmt::format("{}: setting {}", who_, k));
        }
        if (!o.key.empty()) {
            r = rados_conf_set(cluster_, "key", o.key.c_str());
            if (r < 0) ceph_fail(r, fmt::format("{}: setting the key", who_));
        } else {
            if (::access(o.keyring.c_str(), R_OK) != 0)
                fail(Errc::invalid_input, "{}: the keyring {} cannot be read: {}", who_, o.keyring, std::strerror(errno));
            r = rados_conf_set(cluster_, "keyring", o.keyring.c_str());
            if (r < 0) ceph_fail(r, fmt::format("{}: setting keyring", who_));
        }
        r = rados_connect(cluster_);
        if (r == -EACCES || r == -EPERM)
            fail(Errc::invalid_input, "{}: Ceph at {} refused client.{} (wrong key{}?): {}", who_, o.mon_host, o.user,
                 o.keyring.empty() ? std::string() : " in " + o.keyring, errno_text(r));
        if (r < 0) fail(Errc::unavailable, "{}: cannot reach the Ceph monitors {}: {}", who_, o.mon_host, errno_text(r));
    } catch (...) {
        rados_shutdown(cluster_);
        throw;
    }
}

Rados::~Rados() {
    if (cluster_) rados_shutdown(cluster_);
}

std::string Rados::command(bool mgr, nlohmann::json cmd, const std::string& what, const std::string& inbuf,
                           bool json_format) const {
    if (json_format) cmd["format"] = "json";
    std::string text = cmd.dump();
    const char* cmds[] = {text.c_str()};
    char *out = nullptr, *status = nullptr;
    std::size_t out_len = 0, status_len = 0;
    int r = mgr ? rados_mgr_command(cluster_, cmds, 1, inbuf.data(), inbuf.size(), &out, &out_len, &status, &status_len)
                : rados_mon_command(cluster_, cmds, 1, inbuf.data(), inbuf.size(), &out, &out_len, &status, &status_len);
    std::string doc = out ? std::string(out, out_len) : std::string();
    std::string why = status ? std::string(status, status_len) : std::string();
    if (out) rados_buffer_free(out);
    if (status) rados_buffer_free(status);
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    if (r < 0) ceph_fail(r, why.empty() ? fmt::format("{}: {}", who_, what) : fmt::format("{}: {}: {}", who_, what, why));
    return doc;
}

std::string Rados::mon_command(nlohmann::json cmd, const std::string& what, const std::string& inbuf) const {
    return command(false, std::move(cmd), what, inbuf, true);
}
std::string Rados::mgr_command(nlohmann::json cmd, const std::string& what, const std::string& inbuf) const {
    return command(true, std::move(cmd), what, inbuf, true);
}
std::string Rados::mon_command_binary(const nlohmann::json& cmd, const std::string& what) const {
    return command(false, cmd, what, {}, false);
}

}  // namespace hv::storage
