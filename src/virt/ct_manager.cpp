#include "ct_manager.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <libvirt/libvirt-lxc.h>
#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include "../storage/ct_templates.hpp"
#include "domain_state.hpp"
#include "hv/api/size.hpp"
#include "hv/util/intent_log.hpp"
#include "hv/util/log_context.hpp"
#include "hv/util/reverter.hpp"
#include "hv/virt/ct_xml.hpp"
#include "hv/virt/domain_xml.hpp"

namespace hv::virt {
using api::CtInfo;
using api::GuestState;
using VmState = api::GuestState;
namespace fs = std::filesystem;

namespace {
constexpr std::size_t kMaxOutput = 4u << 20;
// How long a reboot waits for init to exit on SIGTERM before it stops the container hard.
constexpr std::chrono::seconds kRebootWait{10};

std::string metadata_body(const api::CtSpec& spec) {
    // virDomainSetMetadata takes the element without the namespace declaration and prefix.
    return "<ct><spec format=\"json\">" + xml_escape(nlohmann::json(spec).dump()) + "</spec></ct>";
}

// Moves `pid` into every cgroup of `init_pid` (so what exec runs is limited and accounted
// like the container). Best effort: a failure is logged, the command still runs.
void join_cgroups(pid_t pid, std::int64_t init_pid) {
    std::ifstream in(fmt::format("/proc/{}/cgroup", init_pid));
    for (std::string line; std::getline(in, line);) {
        auto a = line.find(':'), b = line.find(':', a + 1);
        if (a == std::string::npos || b == std::string::npos) continue;
        std::string ctrl = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
        if (path == "/" || path.empty()) continue;
        std::string base = "/sys/fs/cgroup";
        if (!ctrl.empty()) {
            if (ctrl.rfind("name=", 0) == 0) ctrl = ctrl.substr(5);
            base += "/" + ctrl;
        }
        std::ofstream procs(base + path + "/cgroup.procs");
        procs << pid << std::flush;
        if (!procs) spdlog::debug("exec: cannot move pid {} into {}{}", pid, base, path);
    }
}

// Asks the container's init to power off: through its initctl pipe when it has one (systemd,
// sysvinit: SIGTERM would make systemd re-execute itself), else with SIGTERM (busybox).
// libvirt's default (flags 0: initctl first, then the signal) reported success with the
// busybox init and sent nothing, so hv looks for the pipe itself (lstat through
// /proc/PID/root: a real FIFO only, symlinks would resolve against the host's root).
int ask_init_to_stop(virDomainPtr d, std::int64_t init_pid) {
    bool fifo = false;
    for (const char* f : {"/run/initctl", "/dev/initctl"}) {
        struct stat st {};
        if (init_pid > 0 && ::lstat(fmt::format("/proc/{}/root{}", init_pid, f).c_str(), &st) == 0 && S_ISFIFO(st.st_mode))
            fifo = true;
    }
    if (fifo && virDomainShutdownFlags(d, VIR_DOMAIN_SHUTDOWN_INITCTL) == 0) return 0;
    return virDomainShutdownFlags(d, VIR_DOMAIN_SHUTDOWN_SIGNAL);
}

// Async-signal-safe helpers for the forked child.
void child_fail(const char* msg) {
    ssize_t r = ::write(2, msg, std::strlen(msg));
    (void)r;
    ::_exit(126);
}
}  // namespace

std::int64_t lxc_init_pid(std::int64_t domain_id, const std::string& proc) {
    if (domain_id <= 0) return 0;
    std::ifstream in(fmt::format("{}/{}/task/{}/children", proc, domain_id, domain_id));
    std::int64_t pid = 0;
    if (in >> pid) return pid;
    // Kernels without CONFIG_PROC_CHILDREN: the process whose parent is the controller.
    std::error_code ec;
    for (auto it = fs::directory_iterator(proc, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        std::ifstream st(it->path() / "stat");
        std::string text;
        if (!std::getline(st, text)) continue;
        auto rp = text.rfind(')');
        if (rp == std::string::npos) continue;
        std::istringstream rest(text.substr(rp + 2));
        char state = 0;
        std::int64_t ppid = 0;
        if (rest >> state >> ppid && ppid == domain_id) {
            try {
                return std::stoll(it->path().filename().string());
            } catch (...) {
            }
        }
    }
    return 0;
}

class CtManager::OpLock : public GuestOpLock {
public:
    OpLock(CtManager& m, const std::string& name)
        : GuestOpLock(m.locks_, name, m.opts_.lock_wait, "container", "CT") {}
};


CtManager::CtManager(Options opts, storage::PoolManager& pools, storage::TemplateStore& templates, Publisher publish)
    : opts_(std::move(opts)),
      pools_(pools),
      templates_(templates),
      publish_(std::move(publish)),
      locks_(opts_.locks ? *opts_.locks : own_locks_) {
    opts_.connection.kind = "container";
    conn_ = std::make_unique<Connection>(
        opts_.connection,
        // On libvirt's event thread: only hand the event over (no libvirt call here).
        [this](const LifecycleEvent& ev) { events_.push(ev); },
        [this](bool up) {
            if (up) events_.push(LifecycleEvent{"", -1, 0});
            publish_("daemon", "libvirt-lxc", {{"libvirt_lxc_connected", up}});
        });
    register_undo();
}

void CtManager::register_undo() {
    // A container domain a create defined (or was about to): undefined when it is the one the
    // create made (same uuid) and it does not run; the "rootfs" item then removes its directory.
    pools_.intents().on("ct-domain", [this](const nlohmann::json& d) -> std::vector<std::string> {
        auto name = d.at("name").get<std::string>(), uuid = d.at("uuid").get<std::string>();
        if (!conn_->connected())
            fail(Errc::unavailable, "libvirt's LXC driver is not connected: cannot check whether container '{}' was "
                 "defined", name);
        return undefine_made_domain(*conn_, name, uuid, "container", 0, "", nullptr);
    });
}

CtManager::~CtManager() {
    events_.stop();
    conn_.reset();
}

void CtManager::start() {
    events_.start([this](std::vector<LifecycleEvent>& batch) { on_events(batch); });
    conn_->start();
}

void CtManager::on_events(const std::vector<LifecycleEvent>& batch) {
    // Who to plug: containers started (by anyone), every running one after a (re)connection.
    std::vector<std::string> names;
    if (opts_.ports.plug) {
        try {
            for (const auto& ev : batch) {
                if (ev.event == VIR_DOMAIN_EVENT_STARTED) names.push_back(ev.name);
                if (ev.event >= 0 || !ev.name.empty()) continue;
                for (const auto& c : list())
                    if (is_active(c.state)) names.push_back(c.spec.name);
            }
        } catch (const std::exception& e) {
            spdlog::warn("containers: cannot list them to plug their NICs: {}", e.what());
        }
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    for (const auto& n : names) {
        try {
            auto dom = conn_->domain(n);
            if (!is_active(map_state(domain_state(dom.get()).first))) continue;
            auto info = read_domain(dom.get());
            if (info.managed) plug_nics(dom.get(), info.spec);
        } catch (const std::exception& e) {
            spdlog::error("ct {}: NIC VLANs not set: {}", n, e.what());
        }
    }
    // The events, with the state each container is in now (as VM events carry it).
    for (const auto& ev : batch) {
        if (ev.event < 0) continue;
        nlohmann::json data{{"event", event_name(ev.event)}};
        if (ev.event == VIR_DOMAIN_EVENT_UNDEFINED) {
            data["state"] = "deleted";
            data["reason"] = "";
        } else {
            try {
                auto dom = conn_->domain(ev.name);
                auto [st, reason] = domain_state(dom.get());
                data["state"] = api::to_string(map_state(st));
                data["reason"] = map_reason(st, reason);
            } catch (const std::exception& e) {
                data["state"] = "unknown";
                data["reason"] = "";
                spdlog::debug("event for ct {}: {}", ev.name, e.what());
            }
        }
        publish_("ct.lifecycle", "ct/" + ev.name, data);
    }
}

void CtManager::plug_nics(virDomainPtr d, const api::CtSpec& spec) {
    plug_domain_nics(opts_.ports, d, spec.nics, fmt::format("container '{}'", spec.name));
}

void CtManager::start_and_plug(virDomainPtr d, const std::string& name) {
    if (virDomainCreate(d) < 0) throw_libvirt_error("cannot start container '" + name + "'");
    try {
        auto info = read_domain(d);
        if (info.managed) plug_nics(d, info.spec);
    } catch (const Error& e) {
        // A guest never runs on a wrong VLAN: stopped again, and the reason given.
        virDomainDestroy(d);
        fail(e.code(), "container '{}' was stopped again: its NICs could not be plugged: {}", name, e.what());
    }
}

CtInfo CtManager::read_domain(virDomainPtr d) const {
    CtInfo info;
    read_guest_domain(d, kCtMetadataNs, info, [](const std::string& md) { return ct_spec_from_metadata(md); });
    if (info.spec.rootfs.size > 0) {
        try {
            info.rootfs_quota = pools_.pool(info.spec.rootfs.pool)->rootfs_quota(info.spec.rootfs.path, info.spec.rootfs.size);
        } catch (const Error& e) {
            info.rootfs_quota = fmt::format("unknown: {}", e.what());
        }
    }
    if (is_active(info.state)) {
        info.init_pid = lxc_init_pid(static_cast<std::int64_t>(virDomainGetID(d)));
        int n = 0;
        if (virDomainGetMemoryParameters(d, nullptr, &n, 0) == 0 && n > 0) {
            std::vector<virTypedParameter> params(static_cast<std::size_t>(n));
            if (virDomainGetMemoryParameters(d, params.data(), &n, 0) == 0) {
                for (int i = 0; i < n; ++i)
                    if (std::strcmp(params[i].field, VIR_DOMAIN_MEMORY_HARD_LIMIT) == 0)
                        info.memory_limit = params[i].value.ul * 1024;
            }
        }
        int ns = 0;
        char* sched = virDomainGetSchedulerType(d, &ns);
        free(sched);
        if (ns > 0) {
            std::vector<virTypedParameter> params(static_cast<std::size_t>(ns));
            if (virDomainGetSchedulerParametersFlags(d, params.data(), &ns, VIR_DOMAIN_AFFECT_LIVE) == 0) {
                for (int i = 0; i < ns; ++i) {
                    if (std::strcmp(params[i].field, VIR_DOMAIN_SCHEDULER_CPU_SHARES) == 0) info.cpu_shares = params[i].value.ul;
                    if (std::strcmp(params[i].field, VIR_DOMAIN_SCHEDULER_VCPU_QUOTA) == 0) info.cpu_quota = params[i].value.l;
                }
            }
        }
        if (char* xml = virDomainGetXMLDesc(d, 0)) {
            auto live = parse_live_xml(xml);
            free(xml);
            info.interfaces = live_nic_states(live, info.spec.nics);
            fill_port_states(opts_.ports, info.interfaces);
        }
    }
    return info;
}

std::vector<CtInfo> CtManager::list() const {
    std::vector<CtInfo> out;
    for (const auto& d : conn_->list_domains()) {
        try {
            out.push_back(read_domain(d.get()));
        } catch (const Error& e) {
            if (e.code() == Errc::unavailable) throw;
            spdlog::debug("skipping a container while listing: {}", e.what());  // undefined meanwhile
        }
    }
    std::sort(out.begin(), out.end(), [](const CtInfo& a, const CtInfo& b) { return a.spec.name < b.spec.name; });
    return out;
}

CtInfo CtManager::get(const std::string& name) const {
    auto d = conn_->domain(name);
    return read_domain(d.get());
}

bool CtManager::exists(const std::string& name) const { return conn_->find_domain(name).has_value(); }

void CtManager::expect_state(const std::string& name, std::initializer_list<GuestState> states, const char* verb) const {
    auto d = conn_->domain(name);
    auto s = map_state(domain_state(d.get()).first);
    for (auto ok : states)
        if (s == ok) return;
    fail(Errc::conflict, "cannot {} container '{}': it is {}", verb, name, api::to_string(s));
}

CtInfo CtManager::create(api::CtSpec spec, util::Progress& progress) {
    api::validate(spec);
    OpLock lock(*this, spec.name);
    auto c = conn_->get();
    if (exists(spec.name)) fail(Errc::conflict, "container '{}' already exists", spec.name);
    // Everything that can be refused is checked before anything is made.
    auto tarball = templates_.resolve(spec.tmpl, spec.rootfs.pool);
    auto images = pools_.content_dir(spec.rootfs.pool, "images");
    if (spec.unprivileged) storage::require_searchable(images);
    for (std::size_t i = 0; i < spec.nics.size(); ++i) {
        const auto& n = spec.nics[i];
        if (n.network.empty()) continue;
        virNetworkPtr net = virNetworkLookupByName(c.get(), n.network.c_str());
        if (!net) fail(Errc::invalid_input, "nics[{}]: libvirt network '{}' does not exist", i, n.network);
        virNetworkFree(net);
    }
    name_nics(spec.nics);
    check_nics(opts_.ports, spec.nics);  // bridges exist, VLANs fit the bridge and its uplinks
    if (!spec.unprivileged)
        spdlog::warn("container {} is privileged: its root is the host's root (no user namespace); prefer "
                     "unprivileged containers", spec.name);
    spec.tmpl = tarball;
    spec.rootfs.volume = spec.name + ".rootfs";
    spec.rootfs.path = images + "/" + spec.rootfs.volume;

    // Declared before the reverter: after the reverter ran, the record goes (see intent_log.hpp).
    auto intent = pools_.intents().begin("ct.create", "ct/" + spec.name);
    util::Reverter revert;
    progress.update(5, "unpacking " + fs::path(tarball).filename().string());
    auto pool = pools_.pool(spec.rootfs.pool);
    auto partial = storage::rootfs_partial_path(spec.rootfs.path);
    nlohmann::json rootfs_item{{"pool", spec.rootfs.pool}, {"path", spec.rootfs.path}, {"partial", partial}};
    // unpack_rootfs refuses an existing rootfs, so recovery never removes one it did not make.
    if (fs::exists(fs::symlink_status(spec.rootfs.path))) fail(Errc::conflict, "{} exists already", spec.rootfs.path);
    auto item = intent.add("rootfs", rootfs_item);
    storage::unpack_rootfs(tarball, spec.rootfs.path, spec.unprivileged, progress, [&](const std::string& dir) {
        pool->make_rootfs_dir(dir);
        if (spec.rootfs.size == 0) return;
        // The limit is set before unpacking, so the template counts against it.
        try {
            progress.log(pool->limit_rootfs(dir, spec.rootfs.size));
        } catch (const Error& e) {
            if (e.code() != Errc::unsupported) throw;
            progress.log(fmt::format("warning: root filesystem size {} not enforced: {}",
                                     api::format_size(spec.rootfs.size), e.what()));
            spdlog::warn("container {}: root filesystem size not enforced: {}", spec.name, e.what());
        }
    });
    revert.add([path = spec.rootfs.path] { storage::remove_rootfs(path); });
    {
        auto id = storage::PoolManager::identity_of(spec.rootfs.path);
        id.update(rootfs_item);
        intent.update(item, std::move(id));
    }
    if (progress.cancelled()) fail(Errc::cancelled, "create of container '{}' was cancelled", spec.name);
    progress.update(90, "defining the container");
    // The uuid is chosen here so that recovery can tell this domain from another of that name.
    auto uuid = util::random_uuid();
    intent.add("ct-domain", {{"name", spec.name}, {"uuid", uuid}});
    auto xml = ct_domain_xml(spec);
    if (auto at = xml.find("</name>"); at != std::string::npos)
        xml.insert(at + 7, "<uuid>" + uuid + "</uuid>");
    else
        fail(Errc::internal, "container XML without <name>");
    auto dom = conn_->define(xml, spec.name);
    revert.release();
    intent.finish();
    progress.update(100, "created");
    return read_domain(dom.get());
}

void CtManager::remove(const std::string& name, util::Progress& progress) {
    OpLock lock(*this, name);
    auto dom = conn_->domain(name);
    auto state = map_state(domain_state(dom.get()).first);
    if (is_active(state))
        fail(Errc::conflict, "container '{}' is {}: stop it before deleting it", name, api::to_string(state));
    auto info = read_domain(dom.get());
    // A crash between the undefine and the end of the removal must not leave a root filesystem
    // no container owns: the same record as a create's, so recovery finishes the delete.
    auto intent = pools_.intents().begin("ct.delete", "ct/" + name);
    if (info.managed && !info.spec.rootfs.path.empty()) {
        std::string images;
        try {
            images = pools_.content_dir(info.spec.rootfs.pool, "images");
        } catch (const Error&) {
        }
        if (!images.empty() && fs::path(info.spec.rootfs.path).parent_path().string() == images) {
            auto item = storage::PoolManager::identity_of(info.spec.rootfs.path);
            item.update({{"pool", info.spec.rootfs.pool}, {"path", info.spec.rootfs.path},
                         {"partial", storage::rootfs_partial_path(info.spec.rootfs.path)}});
            intent.add("rootfs", std::move(item));
            intent.add("ct-domain", {{"name", name}, {"uuid", info.uuid}});
        }
    }
    progress.update(-1, "removing the container");
    if (virDomainUndefine(dom.get()) < 0) throw_libvirt_error("cannot delete container '" + name + "'");
    if (!info.managed || info.spec.rootfs.path.empty()) return;
    // Only the directory hv made for it, inside the images/ of its pool.
    auto ref_dir = fs::path(info.spec.rootfs.path).parent_path().string();
    std::string images;
    try {
        images = pools_.content_dir(info.spec.rootfs.pool, "images");
    } catch (const Error& e) {
        fail(Errc::internal, "container '{}' was deleted but its root filesystem {} was not removed: {}", name,
             info.spec.rootfs.path, e.what());
    }
    if (ref_dir != images) {
        spdlog::warn("container {}: root filesystem {} is outside pool '{}'; left in place", name, info.spec.rootfs.path,
                     info.spec.rootfs.pool);
        return;
    }
    progress.update(-1, "removing " + info.spec.rootfs.path);
    try {
        storage::remove_rootfs(info.spec.rootfs.path);
    } catch (const Error& e) {
        fail(Errc::internal, "container '{}' was deleted but its root filesystem was not removed: {}", name, e.what());
    }
}

std::string CtManager::definition_for(const std::string& name, const std::string& rootfs_to) const {
    auto dom = conn_->domain(name);
    if (is_active(map_state(domain_state(dom.get()).first)))
        fail(Errc::conflict, "container '{}' runs: it moves stopped (restart migration)", name);
    char* xml = virDomainGetXMLDesc(dom.get(), VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
    if (!xml) throw_libvirt_error("reading the definition of container '" + name + "'");
    std::string text(xml);
    free(xml);
    if (rootfs_to.empty()) return text;
    auto info = read_domain(dom.get());
    return relocate_source(text, "dir", info.spec.rootfs.path, rootfs_to);
}

void CtManager::forget(const std::string& name) {
    OpLock lock(*this, name);
    auto dom = conn_->domain(name);
    if (is_active(map_state(domain_state(dom.get()).first)))
        fail(Errc::conflict, "container '{}' runs: it is not removed here", name);
    if (virDomainUndefine(dom.get()) < 0) throw_libvirt_error("removing container '" + name + "' here");
}

namespace {
struct RemoteConn {
    virConnectPtr c;
    explicit RemoteConn(const std::string& uri) : c(virConnectOpen(uri.c_str())) {
        if (!c) throw_libvirt_error("connecting to the other host's libvirtd through the tunnel");
    }
    ~RemoteConn() { virConnectClose(c); }
};
}  // namespace

void CtManager::define_remote(const std::string& uri, const std::string& xml) {
    RemoteConn rc(uri);
    virDomainPtr d = virDomainDefineXML(rc.c, xml.c_str());
    if (!d) throw_libvirt_error("defining the container on the other host");
    virDomainFree(d);
}

void CtManager::undefine_remote(const std::string& uri, const std::string& name) {
    RemoteConn rc(uri);
    virDomainPtr d = virDomainLookupByName(rc.c, name.c_str());
    if (!d) {
        virResetLastError();
        return;
    }
    if (virDomainUndefine(d) < 0) {
        virDomainFree(d);
        throw_libvirt_error("removing container '" + name + "' from the other host");
    }
    virDomainFree(d);
}

CtInfo CtManager::update(const std::string& name, const api::CtPatch& patch) {
    api::validate(patch);
    if (patch.cpu) fail(Errc::invalid_input, "cpu: a container has no CPU model of its own (it runs on the host's)");
    OpLock lock(*this, name);
    auto dom = conn_->domain(name);
    auto info = read_domain(dom.get());
    if (!info.managed) fail(Errc::conflict, "container '{}' was not created by hv; change it with virsh", name);
    auto spec = apply_patch(info.spec, patch);
    const bool live = is_active(info.state);
    const unsigned both = VIR_DOMAIN_AFFECT_CONFIG | (live ? static_cast<unsigned>(VIR_DOMAIN_AFFECT_LIVE) : 0u);
    auto check = [&](int rc, const char* what) {
        if (rc < 0) throw_libvirt_error(fmt::format("cannot set {} of container '{}'", what, name));
    };
    if (spec.memory != info.spec.memory) {
        auto kib = static_cast<unsigned long>(spec.memory / 1024);
        // <memory> (what the cgroup limit starts from) in the definition; the hard limit in
        // the definition and, while running, in the cgroup right away.
        check(virDomainSetMemoryFlags(dom.get(), kib, static_cast<unsigned>(VIR_DOMAIN_AFFECT_CONFIG) | static_cast<unsigned>(VIR_DOMAIN_MEM_MAXIMUM)), "maximum memory");
        check(virDomainSetMemoryFlags(dom.get(), kib, VIR_DOMAIN_AFFECT_CONFIG), "memory");
        virTypedParameter p{};
        std::strncpy(p.field, VIR_DOMAIN_MEMORY_HARD_LIMIT, VIR_TYPED_PARAM_FIELD_LENGTH - 1);
        p.type = VIR_TYPED_PARAM_ULLONG;
        p.value.ul = kib;
        check(virDomainSetMemoryParameters(dom.get(), &p, 1, both), "memory limit");
    }
    if (spec.cpus != info.spec.cpus) {
        virTypedParameter p[2]{};
        std::strncpy(p[0].field, VIR_DOMAIN_SCHEDULER_CPU_SHARES, VIR_TYPED_PARAM_FIELD_LENGTH - 1);
        p[0].type = VIR_TYPED_PARAM_ULLONG;
        p[0].value.ul = 1024ULL * static_cast<unsigned>(spec.cpus);
        std::strncpy(p[1].field, VIR_DOMAIN_SCHEDULER_VCPU_QUOTA, VIR_TYPED_PARAM_FIELD_LENGTH - 1);
        p[1].type = VIR_TYPED_PARAM_LLONG;
        p[1].value.l = 100000LL * spec.cpus;
        check(virDomainSetSchedulerParametersFlags(dom.get(), p, 2, both), "cpu limits");
    }
    auto md = metadata_body(spec);
    check(virDomainSetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, md.c_str(), kCtMetadataPrefix, kCtMetadataNs, both),
          "hv metadata");
    if (spec.description != info.spec.description)
        check(virDomainSetMetadata(dom.get(), VIR_DOMAIN_METADATA_DESCRIPTION,
                                   spec.description.empty() ? nullptr : spec.description.c_str(), nullptr, nullptr, both),
              "description");
    return read_domain(dom.get());
}

CtInfo CtManager::action(const std::string& name, const std::string& act) {
    OpLock lock(*this, name);
    auto dom = conn_->domain(name);
    auto state = map_state(domain_state(dom.get()).first);
    int rc = 0;
    if (act == "start") {
        if (state == VmState::running) fail(Errc::conflict, "container '{}' is already running", name);
        if (is_active(state)) fail(Errc::conflict, "cannot start container '{}': it is {}", name, api::to_string(state));
        start_and_plug(dom.get(), name);
    } else if (act == "stop") {
        if (!is_active(state)) fail(Errc::conflict, "container '{}' is not running", name);
        rc = virDomainDestroy(dom.get());
    } else if (act == "reboot") {
        if (state != VmState::running)
            fail(Errc::conflict, "cannot reboot container '{}': it is {}", name, api::to_string(state));
        // hv restarts the container itself: libvirt 9.0's LXC reboot did nothing with flags 0
        // (initctl first), left the container stopped with VIR_DOMAIN_REBOOT_SIGNAL, and
        // crashed libvirtd when the connection that started the container was gone.
        // init asked to stop, up to kRebootWait for it to exit, then stop hard, then start.
        if (ask_init_to_stop(dom.get(), lxc_init_pid(static_cast<std::int64_t>(virDomainGetID(dom.get())))) == 0) {
            auto until = std::chrono::steady_clock::now() + kRebootWait;
            while (is_active(map_state(domain_state(dom.get()).first)) && std::chrono::steady_clock::now() < until)
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (is_active(map_state(domain_state(dom.get()).first)) && virDomainDestroy(dom.get()) < 0)
            throw_libvirt_error("cannot stop container '" + name + "' for its reboot");
        start_and_plug(dom.get(), name);
    } else {
        fail(Errc::invalid_input, "unknown action '{}'", act);
    }
    if (rc < 0) throw_libvirt_error("cannot " + act + " container '" + name + "'");
    return read_domain(dom.get());
}

void CtManager::request_shutdown(const std::string& name, util::Progress& progress) {
    OpLock lock(*this, name);
    auto dom = conn_->domain(name);
    require_state(dom.get(), {VmState::running, VmState::shutting_down}, "shut down", "container", name);
    if (ask_init_to_stop(dom.get(), lxc_init_pid(static_cast<std::int64_t>(virDomainGetID(dom.get())))) < 0)
        throw_libvirt_error("cannot shut down container '" + name + "'");
    (void)progress;  // guest::shutdown logs the request
}

bool CtManager::active(const std::string& name) { return domain_running(conn_->domain(name).get()); }

bool CtManager::power_off(const std::string& name) {
    OpLock lock(*this, name);
    return destroy_if_active(conn_->domain(name).get(), "container '" + name + "'");
}

std::shared_ptr<ConsoleStream> CtManager::open_console(const std::string& name, bool force) {
    auto c = conn_->get();
    auto dom = conn_->domain(name);
    auto state = map_state(domain_state(dom.get()).first);
    if (state != VmState::running)
        fail(Errc::conflict, "cannot attach to the console of container '{}': it is {}", name, api::to_string(state));
    return std::make_shared<ConsoleStream>(c.get(), dom.get(), fmt::format("container '{}'", name), force);
}

api::ExecResult CtManager::exec(const std::string& name, const std::vector<std::string>& argv, int timeout_s) {
    if (argv.empty()) fail(Errc::invalid_input, "command must not be empty");
    for (const auto& a : argv)
        if (a.find('\0') != std::string::npos) fail(Errc::invalid_input, "command arguments must not contain NUL");
    auto dom = conn_->domain(name);
    auto state = map_state(domain_state(dom.get()).first);
    if (state != VmState::running)
        fail(Errc::conflict, "cannot run a command in container '{}': it is {}", name, api::to_string(state));
    std::int64_t init_pid = lxc_init_pid(static_cast<std::int64_t>(virDomainGetID(dom.get())));

    int* fds = nullptr;
    int nfds = virDomainLxcOpenNamespace(dom.get(), &fds, 0);
    if (nfds < 0) throw_libvirt_error("cannot open the namespaces of container '" + name + "'");
    std::vector<int> ns(fds, fds + nfds);
    free(fds);
    struct Fds {
        std::vector<int> v;
        ~Fds() {
            for (int f : v)
                if (f >= 0) ::close(f);
        }
    } owned{ns};

    // Everything the child needs is prepared before fork: after it only syscalls.
    std::vector<std::string> paths;
    if (argv[0].find('/') != std::string::npos) paths.push_back(argv[0]);
    else
        for (const char* d : {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"})
            paths.push_back(std::string(d) + "/" + argv[0]);
    std::vector<char*> cargv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    static const char* const kEnv[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                       "HOME=/root", "TERM=dumb", "container=lxc", nullptr};
    std::string not_found = fmt::format("{}: command not found in the container\n", argv[0]);

    int out[2], err[2], sync[2];
    if (::pipe2(out, O_CLOEXEC) != 0) fail(Errc::internal, "pipe: {}", std::strerror(errno));
    if (::pipe2(err, O_CLOEXEC) != 0) {
        ::close(out[0]), ::close(out[1]);
        fail(Errc::internal, "pipe: {}", std::strerror(errno));
    }
    if (::pipe2(sync, O_CLOEXEC) != 0) {
        ::close(out[0]), ::close(out[1]), ::close(err[0]), ::close(err[1]);
        fail(Errc::internal, "pipe: {}", std::strerror(errno));
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        for (int f : {out[0], out[1], err[0], err[1], sync[0], sync[1]}) ::close(f);
        fail(Errc::internal, "fork: {}", std::strerror(errno));
    }
    if (pid == 0) {
        ::setpgid(0, 0);
        int devnull = ::open("/dev/null", O_RDONLY);
        ::dup2(devnull, 0);
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        ::close(sync[1]);
        char b;
        if (::read(sync[0], &b, 1) != 1) ::_exit(126);  // the parent moved us into the cgroups
        for (int f : ns)
            if (::setns(f, 0) != 0) child_fail("cannot enter the container's namespaces\n");
        if (::chdir("/") != 0) child_fail("cannot chdir to / in the container\n");
        // The pid namespace applies to children: the command runs in a grandchild.
        pid_t g = ::fork();
        if (g < 0) child_fail("fork failed\n");
        if (g == 0) {
            ::syscall(SYS_setgroups, 0, nullptr);
            if (::syscall(SYS_setresgid, 0, 0, 0) != 0 || ::syscall(SYS_setresuid, 0, 0, 0) != 0)
                child_fail("cannot become root of the container\n");
            for (const auto& p : paths) ::execve(p.c_str(), cargv.data(), const_cast<char* const*>(kEnv));
            ssize_t r = ::write(2, not_found.data(), not_found.size());
            (void)r;
            ::_exit(127);
        }
        int status = 0;
        while (::waitpid(g, &status, 0) < 0 && errno == EINTR) {
        }
        ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    ::close(out[1]);
    ::close(err[1]);
    ::close(sync[0]);
    join_cgroups(pid, init_pid);
    char go = 1;
    ssize_t w = ::write(sync[1], &go, 1);
    (void)w;
    ::close(sync[1]);

    api::ExecResult res;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    pollfd pf[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[65536];
    while (open_fds > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            res.timed_out = true;
            ::kill(-pid, SIGKILL);
            break;
        }
        int r = ::poll(pf, 2, static_cast<int>(std::min<long>(left.count(), 1000)));
        if (r < 0 && errno != EINTR) break;
        for (int i = 0; i < 2; ++i) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = ::read(pf[i].fd, buf, sizeof buf);
            if (n <= 0) {
                ::close(pf[i].fd);
                pf[i].fd = -1;
                --open_fds;
                continue;
            }
            auto& dst = i == 0 ? res.stdout_text : res.stderr_text;
            if (dst.size() < kMaxOutput) dst.append(buf, std::min<std::size_t>(static_cast<std::size_t>(n), kMaxOutput - dst.size()));
        }
    }
    for (auto& p : pf)
        if (p.fd >= 0) ::close(p.fd);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    res.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (res.timed_out) res.exit_code = 124;
    return res;
}

}  // namespace hv::virt
