#include "hv/api/ct.hpp"

#include "hv/api/json_reader.hpp"
#include "hv/api/size.hpp"
#include "hv/api/storage.hpp"
#include "hv/error.hpp"
#include "guest_json.hpp"

namespace hv::api {
using nlohmann::json;

namespace {
// The fields a container shares with a VM are checked by the VM rules (one place for limits,
// NIC syntax, tags), through a stand-in VmSpec carrying only those fields.
VmSpec shared_fields(const std::string& name, int cpus, std::uint64_t memory, const std::string& description,
                     const std::vector<std::string>& tags, const std::vector<NicSpec>& nics) {
    VmSpec v;
    v.name = name;
    v.cpus = cpus;
    v.memory = memory;
    v.description = description;
    v.tags = tags;
    v.nics = nics;
    return v;
}

RootfsSpec rootfs_from_json(const json& j, const std::string& path) {
    ObjectReader r(j, path);
    RootfsSpec s;
    s.pool = r.opt<std::string>("pool").value_or(s.pool);
    s.size = r.opt_size("size").value_or(0);
    s.volume = r.opt<std::string>("volume").value_or("");
    s.path = r.opt<std::string>("path").value_or("");
    r.finish();
    return s;
}

CtSpec spec_from_reader(ObjectReader& r) {
    CtSpec s;
    s.name = r.req<std::string>("name");
    s.cpus = read_int(r, "cpus", s.cpus);
    s.memory = r.opt_size("memory").value_or(s.memory);
    if (const auto* f = r.raw("rootfs")) s.rootfs = rootfs_from_json(*f, r.field("rootfs"));
    s.tmpl = r.opt<std::string>("template").value_or("");
    s.nics = detail::read_nics(r);
    s.unprivileged = r.opt<bool>("unprivileged").value_or(true);
    detail::read_labels(r, s);
    return s;
}
}  // namespace

void validate_template_name(const std::string& file) {
    validate_file_name(file, "template name");
    for (const char* ext : {".tar", ".tar.gz", ".tar.xz", ".tar.zst"})
        if (file.size() > std::string(ext).size() && file.ends_with(ext)) return;
    fail(Errc::invalid_input, "template name '{}' must end in .tar, .tar.gz, .tar.xz or .tar.zst", file);
}

void validate(const CtSpec& s) {
    validate_name(s.name, "container name");
    validate(shared_fields(s.name, s.cpus, s.memory, s.description, s.tags, s.nics));
    // A VM NIC's model is a QEMU device: a container's NIC is always a veth. libvirt's LXC
    // driver ignores <mtu> on a veth (measured: the host side stays at 1500), so an MTU is
    // refused rather than stored and ignored.
    for (std::size_t i = 0; i < s.nics.size(); ++i) {
        if (!s.nics[i].model.empty() && s.nics[i].model != "virtio")
            fail(Errc::invalid_input, "nics[{}]: model '{}' does not apply to containers (their NICs are veth pairs)", i,
                 s.nics[i].model);
        if (s.nics[i].mtu)
            fail(Errc::invalid_input,
                 "nics[{}]: mtu is not supported on container NICs (libvirt's LXC driver does not apply it); the "
                 "bridge's MTU applies",
                 i);
    }
    validate_name(s.rootfs.pool, "rootfs pool name");
    if (s.rootfs.size != 0 && s.rootfs.size < MiB) fail(Errc::invalid_input, "rootfs.size must be at least 1M");
    if (s.rootfs.size > (1ULL << 50)) fail(Errc::invalid_input, "rootfs.size is too large (at most 1P)");
    if (s.tmpl.empty()) fail(Errc::invalid_input, "template is required (e.g. busybox; see hvctl ct template list)");
    if (s.tmpl.find("..") != std::string::npos) fail(Errc::invalid_input, "template must not contain '..'");
    if (s.tmpl[0] != '/' && s.tmpl.find(':') == std::string::npos) validate_file_name(s.tmpl, "template name");
}


void to_json(json& j, const RootfsSpec& v) {
    j = json{{"pool", v.pool}, {"size", v.size}, {"volume", v.volume}, {"path", v.path}};
}
void to_json(json& j, const CtSpec& v) {
    j = json{{"name", v.name},
             {"cpus", v.cpus},
             {"memory", v.memory},
             {"rootfs", v.rootfs},
             {"template", v.tmpl},
             {"nics", v.nics},
             {"unprivileged", v.unprivileged},
             {"description", v.description},
             {"tags", v.tags}};
}
void to_json(json& j, const CtInfo& v) {
    to_json(j, v.spec);
    j["type"] = v.type;
    detail::write_status(j, v);
    j["init_pid"] = v.init_pid;
    j["memory_limit"] = v.memory_limit;
    j["cpu_shares"] = v.cpu_shares;
    j["cpu_quota"] = v.cpu_quota;
    j["rootfs_quota"] = v.rootfs_quota;
}
void to_json(json& j, const ExecResult& v) {
    j = json{{"exit_code", v.exit_code}, {"stdout", v.stdout_text}, {"stderr", v.stderr_text}, {"timed_out", v.timed_out}};
}

CtSpec ct_spec_from_json(const json& j) {
    ObjectReader r(j, "");
    CtSpec s = spec_from_reader(r);
    r.finish();
    return s;
}


CtInfo ct_info_from_json(const json& j) {
    ObjectReader r(j, "");
    CtInfo v;
    v.spec = spec_from_reader(r);
    v.type = r.opt<std::string>("type").value_or("container");
    detail::read_status(r, v);
    v.init_pid = r.opt<std::int64_t>("init_pid").value_or(0);
    v.memory_limit = r.opt<std::uint64_t>("memory_limit").value_or(0);
    v.cpu_shares = r.opt<std::uint64_t>("cpu_shares").value_or(0);
    v.cpu_quota = r.opt<std::int64_t>("cpu_quota").value_or(0);
    v.rootfs_quota = r.opt<std::string>("rootfs_quota").value_or("");
    // Output objects may gain fields in later API versions: clients ignore unknown ones.
    return v;
}

ExecResult exec_result_from_json(const json& j) {
    ObjectReader r(j, "");
    ExecResult e;
    e.exit_code = r.req<int>("exit_code");
    e.stdout_text = r.opt<std::string>("stdout").value_or("");
    e.stderr_text = r.opt<std::string>("stderr").value_or("");
    e.timed_out = r.opt<bool>("timed_out").value_or(false);
    return e;
}

RootfsSpec parse_rootfs_arg(const std::string& arg) {
    json j = json::object();
    for (auto& [k, v] : detail::split_kv(arg, "--rootfs", true)) {
        if ((k != "pool" && k != "size") || j.contains(k))
            fail(Errc::invalid_input, "--rootfs: unknown or repeated key '{}' (known: pool, size)", k);
        j[k] = v;
    }
    return rootfs_from_json(j, "--rootfs");
}

}  // namespace hv::api
