#include "hv/api/storage.hpp"

#include <algorithm>

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

void validate(const PoolSpec& p) {
    validate_name(p.name, "pool name");
    if (p.type.empty()) fail(Errc::invalid_input, "pool type must not be empty");
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
    if (v.format != "qcow2" && v.format != "raw")
        fail(Errc::invalid_input, "format '{}' is not one of qcow2, raw", v.format);
    if (v.size == 0) fail(Errc::invalid_input, "size is required (e.g. --size 20G)");
    if (v.size < MiB) fail(Errc::invalid_input, "size must be at least 1M");
    if (v.size > (1ULL << 50)) fail(Errc::invalid_input, "size is too large (at most 1P)");
}

void to_json(json& j, Provision v) { j = to_string(v); }

void to_json(json& j, const PoolCaps& v) {
    j = json{{"content", v.content}, {"formats", v.formats}, {"provision", v.provision},
             {"snapshots", v.snapshots}, {"clones", v.clones}, {"shared", v.shared}};
}
void to_json(json& j, const PoolSpec& v) {
    j = json{{"name", v.name}, {"type", v.type}, {"path", v.path}, {"content", v.content}};
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
}
void to_json(json& j, const VolumeSpec& v) {
    j = json{{"name", v.name}, {"pool", v.pool}, {"size", v.size}, {"format", v.format}, {"provision", v.provision}};
}
void to_json(json& j, const VolumeInfo& v) {
    j = json{{"name", v.name},         {"pool", v.pool},           {"format", v.format},
             {"provision", v.provision}, {"capacity", v.capacity}, {"allocation", v.allocation},
             {"path", v.path},         {"used_by", v.used_by}};
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
    p.path = r.req<std::string>("path");
    p.content = r.opt<std::vector<std::string>>("content").value_or(std::vector<std::string>{});
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
    if (j.contains("caps")) {
        const auto& c = j.at("caps");
        p.caps.content = val<std::vector<std::string>>(c, "content", {});
        p.caps.formats = val<std::vector<std::string>>(c, "formats", {});
        p.caps.provision = val<std::vector<std::string>>(c, "provision", {});
        p.caps.snapshots = val<bool>(c, "snapshots", false);
        p.caps.clones = val<bool>(c, "clones", false);
        p.caps.shared = val<bool>(c, "shared", false);
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
