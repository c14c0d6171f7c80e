#include "hv/api/storage.hpp"

#include <algorithm>
#include <cctype>

#include "hv/api/json_reader.hpp"
#include "hv/api/size.hpp"
#include "hv/api/vm.hpp"
#include "hv/error.hpp"
#include "hv/util/utf8.hpp"

namespace hv::api {
using nlohmann::json;

std::string to_string(Provision p) {
    switch (p) {
        case Provision::thin: return "thin";
        case Provision::lazy_zeroed: return "lazy-zeroed";
        case Provision::eager_zeroed: return "eager-zeroed";
    }
    return "thin";
}

Provision provision_from_string(const std::string& s) {
    for (auto p : {Provision::thin, Provision::lazy_zeroed, Provision::eager_zeroed})
        if (to_string(p) == s) return p;
    fail(Errc::invalid_input, "provision '{}' is not one of thin, lazy-zeroed, eager-zeroed", s);
}

void validate_file_name(const std::string& name, const char* what) {
    if (name.empty()) fail(Errc::invalid_input, "{} must not be empty", what);
    if (name.size() > 255) fail(Errc::invalid_input, "{} is too long ({} bytes, at most 255)", what, name.size());
    // File names (ISO images, templates) may be any UTF-8 text without control characters.
    util::check_text(name, what);
    if (name.find('/') != std::string::npos) fail(Errc::invalid_input, "{} '{}' must not contain '/'", what, name);
    if (name.find('\0') != std::string::npos) fail(Errc::invalid_input, "{} must not contain NUL", what);
    if (name == "." || name == ".." || name.find("..") != std::string::npos)
        fail(Errc::invalid_input, "{} '{}' must not contain '..'", what, name);
    if (name[0] == '.') fail(Errc::invalid_input, "{} '{}' must not start with '.'", what, name);
    for (unsigned char c : name)
        if (c < 0x20 || c == 0x7f) fail(Errc::invalid_input, "{} must not contain control characters", what);
}

VolumeRef parse_volume_ref(const std::string& text, const char* what) {
    auto colon = text.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
        fail(Errc::invalid_input, "{} '{}' must be POOL:NAME (e.g. local:vm-web01-disk1) or POOL:iso/NAME", what, text);
    VolumeRef r;
    r.pool = text.substr(0, colon);
    validate_name(r.pool, "pool name");
    std::string rest = text.substr(colon + 1);
    if (rest.rfind("iso/", 0) == 0) {
        r.content = "iso";
        r.name = rest.substr(4);
        validate_file_name(r.name, "iso name");
    } else {
        r.content = "images";
        r.name = rest;
        validate_name(r.name, "volume name");
    }
    return r;
}

namespace {
// A Ceph pool or user name: what Ceph itself allows and nothing a config line could misread.
void validate_ceph_name(const std::string& s, const char* what) {
    if (s.empty() || s.size() > 128) fail(Errc::invalid_input, "{} must be 1 to 128 characters", what);
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
            fail(Errc::invalid_input, "{} '{}' may hold only letters, digits, '-', '_' and '.'", what, name_excerpt(s));
}
}  // namespace

void validate(const PoolSpec& p) {
    validate_name(p.name, "pool name");
    if (p.type.empty()) fail(Errc::invalid_input, "pool type must not be empty");
    const bool rbd = p.type == "rbd";
    if (p.shared && p.type != "dir")
        fail(Errc::invalid_input, "--shared is for dir pools (a directory on NFS, CephFS or a cluster filesystem); "
             "{} pools are {}", p.type, rbd ? "shared anyway" : "local to one host");
    if (!rbd && (!p.monitors.empty() || !p.rbd_pool.empty() || !p.user.empty() || !p.keyring.empty()))
        fail(Errc::invalid_input, "monitors, rbd_pool, user and keyring are for pools of type rbd");
    if (rbd) {
        if (!p.path.empty()) fail(Errc::invalid_input, "a pool of type rbd has no path (its images are in Ceph)");
        if (p.monitors.empty()) fail(Errc::invalid_input, "a pool of type rbd needs its Ceph monitors (--monitors)");
        if (p.monitors.size() > 16) fail(Errc::invalid_input, "at most 16 monitors");
        for (const auto& m : p.monitors) parse_monitor(m);
        validate_ceph_name(p.rbd_pool.empty() ? std::string("rbd") : p.rbd_pool, "the Ceph pool name");
        validate_ceph_name(p.user, "the cephx user (--user)");
        if (p.keyring.empty() || p.keyring[0] != '/' || p.keyring.find("..") != std::string::npos)
            fail(Errc::invalid_input, "the keyring (--keyring) must be an absolute path without '..'");
        for (const auto& c : p.content)
            if (c != "images") fail(Errc::invalid_input, "a pool of type rbd holds images only, not {}", c);
        return;
    }
    if (p.path.empty() || p.path[0] != '/') fail(Errc::invalid_input, "pool path must be an absolute path");
    if (p.path.find("..") != std::string::npos) fail(Errc::invalid_input, "pool path must not contain '..'");
    if (p.path == "/") fail(Errc::invalid_input, "pool path must not be /");
    for (const auto& c : p.content)
        if (std::find(kPoolContents.begin(), kPoolContents.end(), c) == kPoolContents.end())
            fail(Errc::invalid_input, "content '{}' is not one of images, iso, vztmpl", c);
}

void validate(const VolumeSpec& v) {
    validate_name(v.name, "volume name");
    validate_name(v.pool, "pool name");
    if (!v.format.empty() && v.format != "qcow2" && v.format != "raw")
        fail(Errc::invalid_input, "format '{}' is not one of qcow2, raw", v.format);
    if (v.size == 0) fail(Errc::invalid_input, "size is required (e.g. --size 20G)");
    if (v.size < MiB) fail(Errc::invalid_input, "size must be at least 1M");
    if (v.size > (1ULL << 50)) fail(Errc::invalid_input, "size is too large (at most 1P)");
}

std::string to_string(DiskSource::Type t) { return t == DiskSource::Type::network ? "network" : "file"; }

namespace {
constexpr std::size_t kMaxDiskHosts = 16;

bool is_uuid(const std::string& s) {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
}

// A host name or an IPv4/IPv6 address (no brackets, no port): letters, digits, '.', '-', ':'.
void check_host_name(const std::string& h, const std::string& what) {
    if (h.empty() || h.size() > 253) fail(Errc::invalid_input, "{}.name must be 1-253 characters", what);
    if (h[0] == '-' || h[0] == '.') fail(Errc::invalid_input, "{}.name '{}' must not start with '{}'", what, name_excerpt(h), h[0]);
    for (unsigned char c : h)
        if (!std::isalnum(c) && c != '.' && c != '-' && c != ':')
            fail(Errc::invalid_input, "{}.name '{}' is not a host name or IP address", what, util::sanitize_utf8(name_excerpt(h)));
}

}  // namespace

DiskHost parse_monitor(const std::string& m) {
    DiskHost h;
    std::string host = m, port;
    bool has_port = false;
    if (!m.empty() && m[0] == '[') {
        auto close = m.find(']');
        if (close == std::string::npos) fail(Errc::invalid_input, "monitor '{}': unclosed [", name_excerpt(m));
        host = m.substr(1, close - 1);
        if (close + 1 < m.size()) {
            if (m[close + 1] != ':') fail(Errc::invalid_input, "monitor '{}': junk after ]", name_excerpt(m));
            port = m.substr(close + 2);
            has_port = true;
        }
    } else if (auto colon = m.find(':'); colon != std::string::npos) {
        if (m.find(':', colon + 1) != std::string::npos)
            fail(Errc::invalid_input, "monitor '{}': an IPv6 address needs brackets ([::1]:6789)", name_excerpt(m));
        host = m.substr(0, colon);
        port = m.substr(colon + 1);
        has_port = true;
    }
    check_host_name(host, "monitor");
    h.name = host;
    if (has_port) {
        if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
            fail(Errc::invalid_input, "monitor '{}': the port must be a number", name_excerpt(m));
        h.port = std::stoi(port);
        if (h.port < 1 || h.port > 65535) fail(Errc::invalid_input, "monitor '{}': port out of range", name_excerpt(m));
    }
    return h;
}

namespace {
// RBD image names: "POOL/IMAGE" or "POOL/NAMESPACE/IMAGE", each part a name (so no ':', '@'
// or '=' that QEMU's legacy rbd: syntax would read as options or a snapshot).
void check_rbd_name(const std::string& name, const std::string& what) {
    if (name.empty() || name.size() > 512) fail(Errc::invalid_input, "{}.name must be POOL/IMAGE", what);
    std::size_t parts = 0, start = 0;
    while (true) {
        auto end = name.find('/', start);
        const std::string part = name.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (part.empty() || part.size() > 255)
            fail(Errc::invalid_input, "{}.name '{}' must be POOL/IMAGE or POOL/NAMESPACE/IMAGE", what, name_excerpt(name));
        check_name_chars(part, (what + ".name").c_str());
        ++parts;
        if (end == std::string::npos) break;
        start = end + 1;
    }
    if (parts < 2 || parts > 3)
        fail(Errc::invalid_input, "{}.name '{}' must be POOL/IMAGE or POOL/NAMESPACE/IMAGE", what, name_excerpt(name));
}
}  // namespace

void validate(const DiskSource& s, const std::string& what) {
    if (s.is_file()) {
        if (s.path.empty() || s.path[0] != '/') fail(Errc::invalid_input, "{}.path must be an absolute path", what);
        if (s.path.find("..") != std::string::npos) fail(Errc::invalid_input, "{}.path must not contain '..'", what);
        if (!s.protocol.empty() || !s.name.empty() || !s.hosts.empty() || s.auth)
            fail(Errc::invalid_input, "{}: a file source has only a path", what);
        return;
    }
    if (!s.path.empty()) fail(Errc::invalid_input, "{}: a network source has no path", what);
    if (s.protocol != "rbd") fail(Errc::invalid_input, "{}.protocol '{}' is not rbd", what, name_excerpt(s.protocol));
    check_rbd_name(s.name, what);
    if (s.hosts.empty() || s.hosts.size() > kMaxDiskHosts)
        fail(Errc::invalid_input, "{}.hosts must list 1-{} servers (got {})", what, kMaxDiskHosts, s.hosts.size());
    for (std::size_t i = 0; i < s.hosts.size(); ++i) {
        const auto h = fmt::format("{}.hosts[{}]", what, i);
        check_host_name(s.hosts[i].name, h);
        if (s.hosts[i].port < 0 || s.hosts[i].port > 65535)
            fail(Errc::invalid_input, "{}.port {} is out of range (1-65535, 0 = default)", h, s.hosts[i].port);
    }
    if (s.auth) {
        const auto a = what + ".auth";
        if (s.auth->username.empty() || s.auth->username.size() > kMaxNameLen)
            fail(Errc::invalid_input, "{}.username must be 1-{} characters", a, kMaxNameLen);
        check_name_chars(s.auth->username, (a + ".username").c_str());
        if (s.auth->secret_type != "ceph")
            fail(Errc::invalid_input, "{}.secret_type '{}' is not ceph", a, name_excerpt(s.auth->secret_type));
        if (!is_uuid(s.auth->secret_uuid))
            fail(Errc::invalid_input, "{}.secret_uuid '{}' is not a uuid (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", a,
                 util::sanitize_utf8(name_excerpt(s.auth->secret_uuid)));
    }
}

void to_json(json& j, const DiskSource& v) {
    j = json{{"type", to_string(v.type)}};
    if (v.is_file()) {
        j["path"] = v.path;
        return;
    }
    j["protocol"] = v.protocol;
    j["name"] = v.name;
    json hosts = json::array();
    for (const auto& h : v.hosts) {
        json o{{"name", h.name}};
        if (h.port) o["port"] = h.port;
        hosts.push_back(std::move(o));
    }
    j["hosts"] = std::move(hosts);
    if (v.auth)
        j["auth"] = json{{"username", v.auth->username}, {"secret_type", v.auth->secret_type},
                         {"secret_uuid", v.auth->secret_uuid}};
}

void to_json(json& j, Provision v) { j = to_string(v); }

void to_json(json& j, const PoolCaps& v) {
    j = json{{"content", v.content}, {"formats", v.formats}, {"provision", v.provision},
             {"snapshots", v.snapshots}, {"clones", v.clones}, {"shared", v.shared},
             {"linked_clones", v.linked_clones}};
}
void to_json(json& j, const PoolSpec& v) {
    j = json{{"name", v.name}, {"type", v.type}, {"path", v.path}, {"content", v.content}};
    if (v.shared) j["shared"] = true;
    if (v.type == "rbd") {
        j["monitors"] = v.monitors;
        j["rbd_pool"] = v.rbd_pool;
        j["user"] = v.user;
        j["keyring"] = v.keyring;
    }
}
void to_json(json& j, const PoolInfo& v) {
    to_json(j, v.spec);
    j["caps"] = v.caps;
    j["active"] = v.active;
    j["error"] = v.error;
    j["capacity"] = v.capacity;
    j["used"] = v.used;
    j["free"] = v.free;
    j["committed"] = v.committed;
    j["allocated"] = v.allocated;
    j["volumes"] = v.volumes;
    j["builtin"] = v.builtin;
    j["warnings"] = v.warnings;
}
void to_json(json& j, const VolumeSpec& v) {
    j = json{{"name", v.name}, {"pool", v.pool}, {"size", v.size}, {"format", v.format}, {"provision", v.provision}};
}
void to_json(json& j, const VolumeInfo& v) {
    j = json{{"name", v.name},         {"pool", v.pool},           {"format", v.format},
             {"provision", v.provision}, {"capacity", v.capacity}, {"allocation", v.allocation},
             {"path", v.path},         {"used_by", v.used_by}};
    if (!v.base.empty()) j["base"] = v.base;
}
void to_json(json& j, const IsoInfo& v) {
    j = json{{"name", v.name}, {"pool", v.pool}, {"size", v.size}, {"sha256", v.sha256},
             {"path", v.path}, {"used_by", v.used_by}};
}

PoolSpec pool_spec_from_json(const json& j) {
    ObjectReader r(j, "");
    PoolSpec p;
    p.name = r.req<std::string>("name");
    p.type = r.opt<std::string>("type").value_or(p.type);
    p.path = r.opt<std::string>("path").value_or("");
    p.content = r.opt<std::vector<std::string>>("content").value_or(std::vector<std::string>{});
    p.monitors = r.opt<std::vector<std::string>>("monitors").value_or(std::vector<std::string>{});
    p.rbd_pool = r.opt<std::string>("rbd_pool").value_or("");
    p.user = r.opt<std::string>("user").value_or("");
    p.keyring = r.opt<std::string>("keyring").value_or("");
    p.shared = r.opt<bool>("shared").value_or(false);
    if (p.type == "rbd" && p.rbd_pool.empty()) p.rbd_pool = "rbd";
    r.finish();
    return p;
}

VolumeSpec volume_spec_from_json(const json& j) {
    ObjectReader r(j, "");
    VolumeSpec v;
    v.name = r.req<std::string>("name");
    v.pool = r.opt<std::string>("pool").value_or(v.pool);
    v.size = r.opt_size("size").value_or(0);
    v.format = r.opt<std::string>("format").value_or(v.format);
    if (auto p = r.opt<std::string>("provision")) v.provision = provision_from_string(*p);
    r.finish();
    return v;
}

DiskSource disk_source_from_json(const json& j, const std::string& path) {
    ObjectReader r(j, path);
    DiskSource s;
    const auto type = r.req<std::string>("type");
    if (type == "network") s.type = DiskSource::Type::network;
    else if (type != "file") fail(Errc::invalid_input, "field '{}' must be file or network", r.field("type"));
    s.path = r.opt<std::string>("path").value_or("");
    s.protocol = r.opt<std::string>("protocol").value_or("");
    s.name = r.opt<std::string>("name").value_or("");
    if (const auto* hosts = r.raw("hosts")) {
        if (!hosts->is_array()) fail(Errc::invalid_input, "field '{}' must be an array", r.field("hosts"));
        if (hosts->size() > kMaxDiskHosts)
            fail(Errc::invalid_input, "field '{}' lists more than {} servers", r.field("hosts"), kMaxDiskHosts);
        for (std::size_t i = 0; i < hosts->size(); ++i) {
            ObjectReader hr((*hosts)[i], fmt::format("{}[{}]", r.field("hosts"), i));
            DiskHost h;
            h.name = hr.req<std::string>("name");
            h.port = read_int(hr, "port", 0);
            hr.finish();
            s.hosts.push_back(std::move(h));
        }
    }
    if (const auto* auth = r.raw("auth")) {
        ObjectReader ar(*auth, r.field("auth"));
        DiskAuth a;
        a.username = ar.req<std::string>("username");
        a.secret_type = ar.opt<std::string>("secret_type").value_or(a.secret_type);
        a.secret_uuid = ar.req<std::string>("secret_uuid");
        ar.finish();
        s.auth = std::move(a);
    }
    r.finish();
    validate(s, path);
    return s;
}

namespace {
template <typename T>
T val(const json& j, const char* k, T d) {
    if (!j.contains(k) || j.at(k).is_null()) return d;
    return j.at(k).get<T>();
}
}  // namespace

PoolInfo pool_info_from_json(const json& j) {
    PoolInfo p;
    p.spec.name = val<std::string>(j, "name", "");
    p.spec.type = val<std::string>(j, "type", "");
    p.spec.path = val<std::string>(j, "path", "");
    p.spec.content = val<std::vector<std::string>>(j, "content", {});
    p.spec.shared = val<bool>(j, "shared", false);
    if (j.contains("caps")) {
        const auto& c = j.at("caps");
        p.caps.content = val<std::vector<std::string>>(c, "content", {});
        p.caps.formats = val<std::vector<std::string>>(c, "formats", {});
        p.caps.provision = val<std::vector<std::string>>(c, "provision", {});
        p.caps.snapshots = val<bool>(c, "snapshots", false);
        p.caps.clones = val<bool>(c, "clones", false);
        p.caps.shared = val<bool>(c, "shared", false);
        p.caps.linked_clones = val<bool>(c, "linked_clones", false);
    }
    p.active = val<bool>(j, "active", false);
    p.error = val<std::string>(j, "error", "");
    p.capacity = val<std::uint64_t>(j, "capacity", 0);
    p.used = val<std::uint64_t>(j, "used", 0);
    p.free = val<std::uint64_t>(j, "free", 0);
    p.committed = val<std::uint64_t>(j, "committed", 0);
    p.allocated = val<std::uint64_t>(j, "allocated", 0);
    p.volumes = val<int>(j, "volumes", 0);
    p.builtin = val<bool>(j, "builtin", false);
    p.warnings = val<std::vector<std::string>>(j, "warnings", {});
    p.spec.monitors = val<std::vector<std::string>>(j, "monitors", {});
    p.spec.rbd_pool = val<std::string>(j, "rbd_pool", "");
    p.spec.user = val<std::string>(j, "user", "");
    p.spec.keyring = val<std::string>(j, "keyring", "");
    return p;
}

VolumeInfo volume_info_from_json(const json& j) {
    VolumeInfo v;
    v.name = val<std::string>(j, "name", "");
    v.pool = val<std::string>(j, "pool", "");
    v.format = val<std::string>(j, "format", "");
    v.provision = provision_from_string(val<std::string>(j, "provision", "thin"));
    v.capacity = val<std::uint64_t>(j, "capacity", 0);
    v.allocation = val<std::uint64_t>(j, "allocation", 0);
    v.path = val<std::string>(j, "path", "");
    v.used_by = val<std::vector<std::string>>(j, "used_by", {});
    v.base = val<std::string>(j, "base", "");
    return v;
}

IsoInfo iso_info_from_json(const json& j) {
    IsoInfo v;
    v.name = val<std::string>(j, "name", "");
    v.pool = val<std::string>(j, "pool", "");
    v.size = val<std::uint64_t>(j, "size", 0);
    v.sha256 = val<std::string>(j, "sha256", "");
    v.path = val<std::string>(j, "path", "");
    v.used_by = val<std::vector<std::string>>(j, "used_by", {});
    return v;
}

}  // namespace hv::api
