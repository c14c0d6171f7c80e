#include "vm_manager.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include "domain_state.hpp"
#include "hv/api/size.hpp"
#include "hv/storage/pool.hpp"
#include "hv/util/guard.hpp"
#include "hv/util/intent_log.hpp"
#include "hv/util/log_context.hpp"
#include "hv/util/reverter.hpp"

namespace hv::virt {
using api::VmInfo;
using api::VmState;

namespace {
constexpr const char* kRuntimeNs = "http://hv.dev/xmlns/runtime/1";

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::int64_t parse_started(const std::string& xml) {
    auto el = read_metadata_element(xml);
    if (!el || !el->attributes.count("started")) return 0;
    try {
        return std::stoll(el->attributes["started"]);
    } catch (...) {
        return 0;
    }
}

// The hv metadata element without namespace prefix, as virDomainSetMetadata takes it.
std::string metadata_body(const api::VmSpec& spec) {
    return "<vm><spec format=\"json\">" + xml_escape(nlohmann::json(spec).dump()) + "</spec></vm>";
}

void require_file(const std::string& path, const char* what) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        fail(Errc::invalid_input, "{} '{}' does not exist or is not a regular file", what, path);
}
}  // namespace

class VmManager::OpLock : public GuestOpLock {
public:
    OpLock(VmManager& m, const std::string& name) : GuestOpLock(m.locks_, name, m.opts_.lock_wait, "vm", "VM") {}
};

std::shared_ptr<void> VmManager::op_lock(const std::string& name) { return std::make_shared<OpLock>(*this, name); }

void VmManager::write_spec(virDomainPtr d, const api::VmSpec& spec, unsigned flags) {
    auto md = metadata_body(spec);
    if (virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, md.c_str(), kMetadataPrefix, kMetadataNs, flags) < 0)
        throw_libvirt_error(fmt::format("cannot set hv metadata of vm '{}'", spec.name));
}

VmManager::VmManager(Options opts, storage::PoolManager& pools, Publisher publish)
    : opts_(std::move(opts)), pools_(pools), publish_(std::move(publish)), locks_(opts_.locks ? *opts_.locks : own_locks_) {
    conn_ = std::make_unique<Connection>(
        opts_.connection, [this](const LifecycleEvent& ev) { on_lifecycle(ev); },
        [this](bool up) { on_connection(up); });
    register_undo();
}

void VmManager::register_undo() {
    // A domain a create defined (or was about to): undefined when it is the one the create
    // made (same uuid) and it does not run; recovery then removes its volumes.
    pools_.intents().on("vm-domain", [this](const nlohmann::json& d) -> std::vector<std::string> {
        auto name = d.at("name").get<std::string>(), uuid = d.at("uuid").get<std::string>();
        if (!conn_->connected() || !ready_)
            fail(Errc::unavailable, "libvirt is not connected: cannot check whether vm '{}' was defined", name);
        unsigned flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                         VIR_DOMAIN_UNDEFINE_NVRAM | VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA;
        std::string undefined;
        auto done = undefine_made_domain(*conn_, name, uuid, "vm", flags, " (delete it to free its disks)", &undefined);
        if (!undefined.empty()) {
            std::lock_guard lk(cache_mu_);
            cache_.erase(undefined);
        }
        return done;
    });
}

VmManager::~VmManager() {
    events_.stop();
    conn_.reset();
}

void VmManager::start() {
    events_.start([this](std::vector<LifecycleEvent>& batch) {
            for (const auto& ev : batch) {
                if (ev.event < 0) {
                    reconnected();
                    continue;
                }
                try {
                    std::optional<VmInfo> info;
                    if (ev.event == VIR_DOMAIN_EVENT_UNDEFINED) {
                        std::lock_guard lk(cache_mu_);
                        cache_.erase(ev.name);
                    } else {
                        if (ev.event == VIR_DOMAIN_EVENT_STARTED) {
                            auto d = conn_->domain(ev.name);
                            auto rt = get_metadata(d.get(), kRuntimeNs, VIR_DOMAIN_AFFECT_LIVE);
                            if (!rt || parse_started(*rt) == 0) record_start(d.get(), now_s());
                        }
                        info = refresh(ev.name);
                        // Started by anyone (hv, virsh, libvirt's own autostart, a restore):
                        // the taps get their VLANs. A no-op when hv's start did it already.
                        if (ev.event == VIR_DOMAIN_EVENT_STARTED && info && info->managed && opts_.ports.plug) {
                            try {
                                auto d = conn_->domain(ev.name);
                                plug_nics(d.get(), info->spec);
                            } catch (const std::exception& e) {
                                spdlog::error("vm {}: NIC VLANs not set after start: {}", ev.name, e.what());
                            }
                        }
                    }
                    nlohmann::json data{{"event", event_name(ev.event)}};
                    if (info) {
                        data["state"] = api::to_string(info->state);
                        data["reason"] = info->reason;
                    } else {
                        data["state"] = ev.event == VIR_DOMAIN_EVENT_UNDEFINED ? "deleted" : "unknown";
                    }
                    publish_("vm.lifecycle", "vm/" + ev.name, data);
                } catch (const std::exception& e) {
                    spdlog::debug("event for vm {}: {}", ev.name, e.what());
                }
            }
    });
    conn_->start();
}

void VmManager::on_lifecycle(const LifecycleEvent& ev) { events_.push(ev); }

void VmManager::on_connection(bool up) {
    if (!up) {
        set_ready(false);
        publish_("daemon", "libvirt", {{"libvirt_connected", false}});
        return;
    }
    // Rebuild on the event worker, in order with lifecycle events, so an older snapshot
    // never overwrites a newer event's state.
    on_lifecycle(LifecycleEvent{"", -1, 0});
}

void VmManager::reconnected() {
    try {
        {
            auto choice = choose_accel(opts_.accel, conn_->get().get());
            std::lock_guard lk(accel_mu_);
            if (choice.accel != accel_.accel) spdlog::info("accelerator: {} ({})", choice.accel, choice.reason);
            accel_ = choice;
            host_cpu_.reset();  // read again for this connection's hypervisor
        }
        rebuild_cache();
        // After an hvd (or libvirtd) restart: every running VM's taps get their VLANs again.
        if (opts_.ports.plug) {
            std::vector<api::VmInfo> running;
            {
                std::lock_guard lk(cache_mu_);
                for (const auto& [n, v] : cache_)
                    if (is_active(v.state) && v.managed) running.push_back(v);
            }
            for (const auto& v : running) {
                try {
                    auto d = conn_->domain(v.spec.name);
                    plug_nics(d.get(), v.spec);
                } catch (const std::exception& e) {
                    spdlog::error("vm {}: NIC VLANs not re-applied: {}", v.spec.name, e.what());
                }
            }
        }
        set_ready(true);
        publish_("daemon", "libvirt", {{"libvirt_connected", true}});
    } catch (const std::exception& e) {
        spdlog::error("cannot read domains after connecting: {}", e.what());
        conn_->drop("the state cache could not be rebuilt");
    }
}

void VmManager::rebuild_cache() {
    auto doms = conn_->list_domains();
    std::map<std::string, VmInfo> fresh;
    std::map<std::string, VmInfo> old;
    {
        std::lock_guard lk(cache_mu_);
        old = cache_;
    }
    for (const auto& d : doms) {
        try {
            const char* nm = virDomainGetName(d.get());
            auto it = old.find(nm ? nm : "");
            auto info = read_domain(d.get(), it == old.end() ? nullptr : &it->second);
            fresh[info.spec.name] = std::move(info);
        } catch (const std::exception& e) {
            spdlog::warn("skipping a domain while listing: {}", e.what());
        }
    }
    std::lock_guard lk(cache_mu_);
    cache_ = std::move(fresh);
    spdlog::info("state cache holds {} domains", cache_.size());
}

VmInfo VmManager::read_domain(virDomainPtr d, const VmInfo* previous) {
    VmInfo info;
    read_guest_domain(d, kMetadataNs, info, [](const std::string& md) { return spec_from_metadata(md); });
    if (info.managed) {
        // VMs defined before NICs had names: net<index>.
        for (std::size_t i = 0; i < info.spec.nics.size(); ++i)
            if (info.spec.nics[i].name.empty()) info.spec.nics[i].name = "net" + std::to_string(i);
    } else {
        info.spec.machine = "";
    }
    if (is_active(info.state)) {
        if (auto rt = get_metadata(d, kRuntimeNs, VIR_DOMAIN_AFFECT_LIVE)) info.started_at = parse_started(*rt);
        if (info.started_at == 0 && previous) info.started_at = previous->started_at;
        if (char* xml = virDomainGetXMLDesc(d, 0)) {
            auto live = parse_live_xml(xml);
            free(xml);
            info.vnc = live.vnc;
            info.interfaces = live_nic_states(live, info.spec.nics);
        }
    }
    return info;
}

std::optional<VmInfo> VmManager::refresh(const std::string& name) {
    auto c = conn_->get();
    virDomainPtr raw = virDomainLookupByName(c.get(), name.c_str());
    if (!raw) {
        virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_DOMAIN) {
            std::lock_guard lk(cache_mu_);
            cache_.erase(name);
            return std::nullopt;
        }
        throw_libvirt_error("vm '" + name + "'");
    }
    DomainHandle d(raw);
    std::optional<VmInfo> prev;
    {
        std::lock_guard lk(cache_mu_);
        if (auto it = cache_.find(name); it != cache_.end()) prev = it->second;
    }
    auto info = read_domain(d.get(), prev ? &*prev : nullptr);
    std::lock_guard lk(cache_mu_);
    cache_[name] = info;
    return info;
}

void VmManager::record_start(virDomainPtr d, std::int64_t when) {
    auto xml = fmt::format("<runtime started=\"{}\"/>", when);
    if (virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, xml.c_str(), "hvrt", kRuntimeNs,
                             VIR_DOMAIN_AFFECT_LIVE) < 0) {
        virErrorPtr e = virGetLastError();
        spdlog::debug("cannot record start time: {}", e && e->message ? e->message : "?");
    }
}

AccelChoice VmManager::accel() const {
    std::lock_guard lk(accel_mu_);
    if (accel_.accel.empty()) return choose_accel(opts_.accel, nullptr);
    return accel_;
}

DomainXmlOptions VmManager::xml_options() const {
    return DomainXmlOptions{accel().domain_type, opts_.serial_log_dir};
}

void VmManager::set_ready(bool r) {
    {
        std::lock_guard lk(ready_mu_);
        ready_ = r;
    }
    ready_cv_.notify_all();
}

bool VmManager::wait_ready(std::chrono::milliseconds timeout) const {
    std::unique_lock lk(ready_mu_);
    return ready_cv_.wait_for(lk, timeout, [&] { return ready_.load(); });
}

void VmManager::require_ready() const {
    // Just after a (re)connection the cache is being rebuilt: a short wait beats a 503.
    if (!ready_ && conn_->connected()) wait_ready(std::chrono::seconds(3));
    if (!conn_->connected() || !ready_)
        throw Error(Errc::unavailable, "libvirt at " + conn_->uri() + " is not reachable (hvd is reconnecting)");
}

std::vector<VmInfo> VmManager::list() const {
    require_ready();
    std::vector<VmInfo> out;
    auto now = now_s();
    std::lock_guard lk(cache_mu_);
    out.reserve(cache_.size());
    for (const auto& [_, v] : cache_) {
        out.push_back(v);
        if (is_active(v.state) && v.started_at > 0) out.back().uptime = std::max<std::int64_t>(0, now - v.started_at);
    }
    return out;
}

VmInfo VmManager::get(const std::string& name) const {
    require_ready();
    std::unique_lock lk(cache_mu_);
    auto it = cache_.find(name);
    if (it == cache_.end()) fail(Errc::not_found, "vm '{}' does not exist", name);
    VmInfo v = it->second;
    lk.unlock();  // copied: the netlink reads below never hold the cache (fast routes read it)
    if (is_active(v.state) && v.started_at > 0) v.uptime = std::max<std::int64_t>(0, now_s() - v.started_at);
    // Live VLAN membership of the taps (netlink reads, no libvirt call).
    fill_port_states(opts_.ports, v.interfaces);
    return v;
}


void VmManager::plug_nics(virDomainPtr d, const api::VmSpec& spec) {
    plug_domain_nics(opts_.ports, d, spec.nics, fmt::format("vm '{}'", spec.name));
}

std::size_t VmManager::count(int* running) const {
    std::lock_guard lk(cache_mu_);
    if (running) {
        *running = 0;
        for (const auto& [_, v] : cache_)
            if (v.state == VmState::running) ++*running;
    }
    return cache_.size();
}

void VmManager::expect_state(const std::string& name, std::initializer_list<VmState> states, const char* verb) const {
    auto v = get(name);
    for (auto s : states)
        if (v.state == s) return;
    fail(Errc::conflict, "cannot {} vm '{}': it is {}", verb, name, api::to_string(v.state));
}

VmInfo VmManager::create(api::VmSpec spec, util::Progress& progress) {
    require_ready();
    api::validate(spec);
    OpLock lock(*this, spec.name);
    auto c = conn_->get();
    if (conn_->find_domain(spec.name)) fail(Errc::conflict, "vm '{}' already exists", spec.name);
    // Check everything the VM refers to before making anything.
    for (const auto& n : spec.nics) {
        if (n.network.empty()) continue;
        virNetworkPtr net = virNetworkLookupByName(c.get(), n.network.c_str());
        if (!net) fail(Errc::invalid_input, "network '{}' does not exist in libvirt", n.network);
        virNetworkFree(net);
    }
    for (std::size_t i = 0; i < spec.disks.size(); ++i) {
        auto& d = spec.disks[i];
        if (d.name.empty()) {
            int k = static_cast<int>(i);
            auto taken = [&](const std::string& n) {
                for (const auto& o : spec.disks)
                    if (o.name == n) return true;
                return false;
            };
            while (taken("disk" + std::to_string(k))) ++k;
            d.name = "disk" + std::to_string(k);
        }
        // Disks are pool volumes: new ones are created in `pool`, existing ones are named by
        // volume or by a path that must lie in a pool (never an arbitrary host file).
        if (!d.path.empty()) {
            auto ref = pools_.locate(d.path);
            if (ref.pool.empty() || ref.content != "images")
                fail(Errc::invalid_input,
                     "disks[{}]: {} is not a volume of any storage pool; add a pool for its directory "
                     "(hvctl storage pool add) or give volume=", i, d.path);
            d.pool = ref.pool;
            d.volume = ref.name;
        }
        if (!d.volume.empty()) {
            auto v = pools_.volume(d.pool, d.volume);
            if (!v.used_by.empty())
                fail(Errc::conflict, "disks[{}]: volume '{}' is already used by {}", i, d.volume,
                     fmt::join(v.used_by, ", "));
            api::set_source(d, pools_.disk_source(d.pool, d.volume));  // a file path, or a network source
            d.format = v.format;
            d.provision = v.provision;
            d.size = v.capacity;
            d.owned = false;
        } else {
            try {
                if (d.format.empty()) d.format = pools_.default_format(d.pool);
                api::VolumeSpec vs{spec.name + "-" + d.name, d.pool, d.size, d.format, d.provision};
                pools_.precheck_create(vs);
            } catch (const Error& e) {
                fail(e.code(), "disks[{}]: {}", i, e.what());
            }
        }
    }
    if (!spec.cdrom.empty()) {
        if (spec.cdrom.find(':') != std::string::npos && spec.cdrom[0] != '/') {
            spec.cdrom = pools_.resolve(api::parse_volume_ref(spec.cdrom, "cdrom"));
        } else {
            auto ref = pools_.locate(spec.cdrom);
            if (ref.pool.empty())
                fail(Errc::invalid_input, "cdrom {} is not an ISO of any storage pool (upload it with hvctl storage iso "
                     "upload, or give POOL:iso/NAME)", spec.cdrom);
        }
    }
    name_nics(spec.nics);
    resolve_cpu(spec, progress);
    api::validate(spec);
    require_runnable_cpu(spec.cpu);  // refused now rather than at every start
    check_nics(opts_.ports, spec.nics);
    if (!spec.cdrom.empty()) require_file(spec.cdrom, "cdrom image");
    for (const auto& d : spec.disks)  // file sources only: a network one (rbd) is no local file
        if (auto src = api::source_of(d); src.is_file() && !src.path.empty()) require_file(src.path, "disk image");
    if (!spec.kernel.empty()) require_file(spec.kernel, "kernel");
    if (!spec.initrd.empty()) require_file(spec.initrd, "initrd");

    // Declared before the reverter: after the reverter ran, the record goes (see intent_log.hpp).
    auto intent = pools_.intents().begin("vm.create", "vm/" + spec.name);
    util::Reverter revert;
    int total = static_cast<int>(spec.disks.size()) + 1;
    int step = 0;
    progress.log(fmt::format("vm {}: {} vCPU(s), {} memory, {} disk(s), {} NIC(s), accelerator {}", spec.name,
                             spec.cpus, api::format_size(spec.memory), spec.disks.size(), spec.nics.size(),
                             xml_options().domain_type));
    for (auto& d : spec.disks) {
        if (progress.cancelled()) fail(Errc::cancelled, "create of vm '{}' was cancelled", spec.name);
        // New unless it names a volume (an existing one has its path, or its network source).
        if (d.volume.empty()) {
            progress.step(100 * step / total, fmt::format("creating {} ({}, {}, {}) in pool {}", d.name,
                                                          api::format_size(d.size), d.format,
                                                          api::to_string(d.provision), d.pool));
            api::VolumeSpec vs{spec.name + "-" + d.name, d.pool, d.size, d.format, d.provision};
            auto created = pools_.create_volume(vs, progress, &intent);
            for (const auto& w : created.warnings) {
                spdlog::warn("vm {}: {}", spec.name, w);
                progress.log("warning: " + w);
            }
            d.volume = created.volume.name;
            api::set_source(d, pools_.disk_source(d.pool, d.volume));
            d.owned = true;
            revert.add([this, &progress, pool = d.pool, vol = d.volume] {
                progress.log(fmt::format("create failed: deleting volume {}:{} it made", pool, vol));
                pools_.delete_volume(pool, vol);
            });
        } else {
            progress.step(100 * step / total, fmt::format("{}: existing volume {}:{} ({})", d.name, d.pool, d.volume,
                                                          api::format_size(d.size)));
        }
        ++step;
    }
    for (const auto& n : spec.nics)
        progress.log(fmt::format("nic {} {} ({})", n.network.empty() ? "bridge=" + n.bridge : "network=" + n.network,
                                 n.mac, n.model));
    if (progress.cancelled()) fail(Errc::cancelled, "create of vm '{}' was cancelled", spec.name);
    progress.step(100 * step / total, "defining the libvirt domain");
    // The uuid is chosen here so that recovery can tell this domain from another of that name.
    auto uuid = util::random_uuid();
    intent.add("vm-domain", {{"name", spec.name}, {"uuid", uuid}});
    auto xml = domain_xml(spec, xml_options(), uuid);
    auto dom = conn_->define(xml, spec.name);
    // From here the VM exists: the create succeeds even if reading it back fails.
    revert.release();
    intent.finish();
    VmInfo info;
    try {
        info = read_domain(dom.get(), nullptr);
    } catch (const std::exception& e) {
        spdlog::warn("vm {} was created but could not be read back yet: {}", spec.name, e.what());
        info.spec = spec;
        info.state = VmState::stopped;
    }
    {
        std::lock_guard lk(cache_mu_);
        cache_[spec.name] = info;
    }
    progress.step(100, fmt::format("created vm {} (uuid {})", spec.name, info.uuid));
    return info;
}

std::map<std::string, std::vector<std::string>> VmManager::image_users(bool live) const {
    std::map<std::string, std::vector<std::string>> out;
    std::vector<std::string> active;
    {
        std::lock_guard lk(cache_mu_);
        for (const auto& [name, v] : cache_) {
            for (const auto& d : v.spec.disks) {
                if (!d.path.empty()) out[d.path].push_back(name);
                // An rbd disk: keyed as the rbd pool's volumes name their path.
                if (d.source && !d.source->is_file() && d.source->protocol == "rbd")
                    out[storage::rbd_volume_path(d.pool, d.source->name)].push_back(name);
            }
            if (!v.spec.cdrom.empty()) out[v.spec.cdrom].push_back(name);
            if (live && v.state != VmState::stopped && v.state != VmState::crashed) active.push_back(name);
        }
    }
    // What QEMU really has open: a disk whose unplug the guest never acknowledged is gone from
    // the definition but still in the running domain (and a transient disk's volume is the
    // backing file of its overlay).
    for (const auto& name : active) {
        try {
            auto dom = conn_->domain(name);
            char* xml = virDomainGetXMLDesc(dom.get(), 0);
            if (!xml) continue;
            std::string text(xml);
            free(xml);
            for (const auto& d : parse_devices(text).disks)
                for (const auto* p : {&d.source, &d.backing}) {
                    if (p->empty()) continue;
                    auto& users = out[*p];
                    if (std::find(users.begin(), users.end(), name) == users.end()) users.push_back(name);
                }
        } catch (const std::exception& e) {
            spdlog::debug("vm {}: live disks not read: {}", name, e.what());
        }
    }
    return out;
}

// The pool volume a disk is: by its path (file pools), or by pool and volume name (a network
// disk has no path).
api::VolumeRef VmManager::volume_ref(const api::DiskSpec& d) const {
    if (d.path.empty() && !d.pool.empty() && !d.volume.empty()) return api::VolumeRef{d.pool, "images", d.volume};
    return pools_.locate(d.path);
}

std::string VmManager::definition(const std::string& name) {
    require_ready();
    auto dom = conn_->domain(name);
    char* xml = virDomainGetXMLDesc(dom.get(), VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
    if (!xml) throw_libvirt_error("reading the definition of vm '" + name + "'");
    std::string text(xml);
    free(xml);
    return text;
}

VmInfo VmManager::define_from(const std::string& name, const std::string& xml) {
    require_ready();
    OpLock lock(*this, name);
    if (conn_->find_domain(name)) fail(Errc::conflict, "vm '{}' is defined here already", name);
    conn_->define(xml, name);
    auto info = refresh(name);
    if (!info) fail(Errc::internal, "vm '{}' vanished right after its define", name);
    return *info;
}

void VmManager::remove(const std::string& name, bool purge, util::Progress& progress) {
    require_ready();
    OpLock lock(*this, name);
    auto dom = conn_->domain(name);
    auto [st, reason] = domain_state(dom.get());
    if (is_active(map_state(st)))
        fail(Errc::conflict, "vm '{}' is {}: stop it before deleting it", name, api::to_string(map_state(st)));
    auto info = read_domain(dom.get(), nullptr);
    // A template's disks that are the base of linked clones: refused before anything changes
    // (the volume delete would refuse them after the domain was gone).
    if (purge)
        for (const auto& d : info.spec.disks) {
            if (!d.owned || d.pool.empty() || d.volume.empty()) continue;
            std::vector<std::string> clones;
            try {
                for (const auto& v : pools_.volumes(d.pool))
                    if (v.base == d.volume) clones.push_back(v.name);
            } catch (const Error&) {
                continue;  // the pool is gone: nothing of it to refuse for
            }
            if (!clones.empty())
                fail(Errc::conflict,
                     "vm '{}': disk '{}' ({}:{}) is the base of linked clone(s) {}: delete those VMs first (or "
                     "delete this one without --purge)",
                     name, d.name, d.pool, d.volume, fmt::join(clones, ", "));
        }
    // With purge, a crash between the undefine and the last volume must not leave volumes no VM
    // owns: the same record as a create's, so recovery finishes the delete (see register_undo).
    auto intent = pools_.intents().begin("vm.delete", "vm/" + name);
    if (purge) {
        for (const auto& d : info.spec.disks) {
            if (!d.owned) continue;
            auto ref = volume_ref(d);
            if (ref.pool.empty() || ref.content != "images") continue;
            auto item = d.path.empty() ? nlohmann::json::object() : storage::PoolManager::identity_of(d.path);
            item["pool"] = ref.pool;
            item["name"] = ref.name;
            intent.add("volume", std::move(item));
        }
        intent.add("vm-domain", {{"name", name}, {"uuid", info.uuid}});
    }
    progress.step(-1, fmt::format("undefining vm {} (uuid {})", name, info.uuid));
    unsigned flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                     VIR_DOMAIN_UNDEFINE_NVRAM | VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA;
    if (virDomainUndefineFlags(dom.get(), flags) < 0) throw_libvirt_error("cannot delete vm '" + name + "'");
    {
        std::lock_guard lk(cache_mu_);
        cache_.erase(name);
    }
    if (!purge) {
        progress.log("disks kept (no purge)");
        return;
    }
    std::vector<std::string> errors;
    for (const auto& d : info.spec.disks) {
        if (!d.owned) continue;
        auto ref = volume_ref(d);
        if (ref.pool.empty() || ref.content != "images") continue;
        progress.step(-1, fmt::format("deleting volume {}:{}", ref.pool, ref.name));
        try {
            pools_.delete_volume(ref.pool, ref.name);
        } catch (const std::exception& e) {
            spdlog::error("vm {}: {}", name, e.what());
            progress.log(fmt::format("cannot delete {}: {}", d.path, e.what()));
            errors.push_back(e.what());
        }
    }
    if (!errors.empty())
        fail(Errc::internal, "vm '{}' was deleted but {} of its disks could not be removed: {}", name, errors.size(),
             fmt::join(errors, "; "));
}

VmInfo VmManager::update(const std::string& name, const api::VmPatch& patch) {
    require_ready();
    api::validate(patch);
    OpLock lock(*this, name);
    auto dom = conn_->domain(name);
    auto info = read_domain(dom.get(), nullptr);
    if (!info.managed) fail(Errc::conflict, "vm '{}' was not created by hv; change it with virsh", name);
    // The CPU as it will be defined: "cluster" becomes the members' baseline now, and a named
    // model must run here (as at create).
    api::VmPatch resolved = patch;
    if (patch.cpu && patch.cpu->mode == "cluster") {
        api::VmSpec probe;
        probe.name = name;
        probe.cpu = *patch.cpu;
        util::NullProgress quiet;
        resolve_cpu(probe, quiet);
        resolved.cpu = probe.cpu;
    }
    const bool cpu_changes = resolved.cpu && *resolved.cpu != info.spec.cpu;
    bool hw = (patch.cpus && *patch.cpus != info.spec.cpus) || (patch.memory && *patch.memory != info.spec.memory) ||
              cpu_changes;
    if (hw && is_active(info.state))
        fail(Errc::conflict, "vm '{}' is {}: cpus, memory and cpu can only be changed while it is stopped", name,
             api::to_string(info.state));
    if (cpu_changes) require_runnable_cpu(*resolved.cpu);
    auto spec = apply_patch(info.spec, resolved);
    // Change only what was asked, through libvirt's own calls, so anything else in the domain
    // (a disk attached with virsh, the domain type) stays as it is.
    const unsigned cfg = VIR_DOMAIN_AFFECT_CONFIG;
    auto check = [&](int rc, const char* what) {
        if (rc < 0) throw_libvirt_error(fmt::format("cannot set {} of vm '{}'", what, name));
    };
    // No libvirt call sets the CPU model: the definition is written again with its <cpu> element
    // replaced (before the calls below, which change the definition this one would overwrite).
    if (cpu_changes) conn_->define(with_cpu_element(definition(name), cpu_element(spec.cpu, xml_options())), name);
    if (spec.cpus != info.spec.cpus) {
        auto n = static_cast<unsigned>(spec.cpus);
        if (spec.cpus > info.spec.cpus) {
            check(virDomainSetVcpusFlags(dom.get(), n, cfg | VIR_DOMAIN_VCPU_MAXIMUM), "maximum cpus");
            check(virDomainSetVcpusFlags(dom.get(), n, cfg), "cpus");
        } else {
            check(virDomainSetVcpusFlags(dom.get(), n, cfg), "cpus");
            check(virDomainSetVcpusFlags(dom.get(), n, cfg | VIR_DOMAIN_VCPU_MAXIMUM), "maximum cpus");
        }
    }
    if (spec.memory != info.spec.memory) {
        auto kib = static_cast<unsigned long>(spec.memory / 1024);
        if (spec.memory > info.spec.memory) {
            check(virDomainSetMemoryFlags(dom.get(), kib, cfg | VIR_DOMAIN_MEM_MAXIMUM), "maximum memory");
            check(virDomainSetMemoryFlags(dom.get(), kib, cfg), "memory");
        } else {
            check(virDomainSetMemoryFlags(dom.get(), kib, cfg), "memory");
            check(virDomainSetMemoryFlags(dom.get(), kib, cfg | VIR_DOMAIN_MEM_MAXIMUM), "maximum memory");
        }
    }
    unsigned flags = cfg | (is_active(info.state) ? static_cast<unsigned>(VIR_DOMAIN_AFFECT_LIVE) : 0u);
    if (spec.description != info.spec.description)
        check(virDomainSetMetadata(dom.get(), VIR_DOMAIN_METADATA_DESCRIPTION,
                                   spec.description.empty() ? nullptr : spec.description.c_str(), nullptr, nullptr, flags),
              "description");
    auto md = metadata_body(spec);
    check(virDomainSetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, md.c_str(), kMetadataPrefix, kMetadataNs, flags),
          "hv metadata");
    if (!refresh(name)) fail(Errc::not_found, "vm '{}' does not exist", name);
    return get(name);
}

VmInfo VmManager::action(const std::string& name, const std::string& act) {
    require_ready();
    {
        OpLock lock(*this, name);
        auto dom = conn_->domain(name);
        auto state = map_state(domain_state(dom.get()).first);
        auto wrong = [&](const char* verb) {
            fail(Errc::conflict, "cannot {} vm '{}': it is {}", verb, name, api::to_string(state));
        };
        int rc = 0;
        if (act == "start") {
            if (state != VmState::stopped && state != VmState::crashed) {
                if (state == VmState::running) fail(Errc::conflict, "vm '{}' is already running", name);
                wrong("start");
            }
            std::optional<api::VmSpec> spec;
            {
                std::lock_guard lk(cache_mu_);
                if (auto it = cache_.find(name); it != cache_.end() && it->second.managed) spec = it->second.spec;
            }
            if (spec) refuse_template(*spec, "be started");
            bool bridged = false;
            if (spec && opts_.ports.plug)
                for (const auto& n : spec->nics) bridged |= !n.bridge.empty();
            if (bridged) {
                for (const auto& n : spec->nics)
                    if (opts_.ports.check) opts_.ports.check(n);
                // Start paused, give the taps their VLANs, then run: the guest never sends a
                // frame on a VLAN it does not belong to.
                rc = virDomainCreateWithFlags(dom.get(), VIR_DOMAIN_START_PAUSED);
                if (rc == 0) {
                    record_start(dom.get(), now_s());
                    try {
                        plug_nics(dom.get(), *spec);
                    } catch (...) {
                        virDomainDestroy(dom.get());
                        refresh(name);
                        throw;
                    }
                    rc = virDomainResume(dom.get());
                }
            } else {
                rc = virDomainCreate(dom.get());
                if (rc == 0) record_start(dom.get(), now_s());
            }
        } else if (act == "stop") {
            if (!is_active(state)) fail(Errc::conflict, "vm '{}' is not running", name);
            rc = virDomainDestroy(dom.get());
        } else if (act == "reboot") {
            if (state != VmState::running) wrong("reboot");
            rc = virDomainReboot(dom.get(), 0);
        } else if (act == "reset") {
            if (state != VmState::running && state != VmState::paused) wrong("reset");
            rc = virDomainReset(dom.get(), 0);
        } else if (act == "suspend") {
            if (state != VmState::running) wrong("suspend");
            rc = virDomainSuspend(dom.get());
        } else if (act == "resume") {
            if (state != VmState::paused) wrong("resume");
            rc = virDomainResume(dom.get());
        } else {
            fail(Errc::invalid_input, "unknown action '{}'", act);
        }
        if (rc < 0) throw_libvirt_error("cannot " + act + " vm '" + name + "'");
        spdlog::info("vm {}: {} (was {})", name, act, api::to_string(state));
        refresh(name);
    }
    return get(name);
}

VmManager::Versions VmManager::versions() const {
    Versions out;
    auto str = [](unsigned long v) { return fmt::format("{}.{}.{}", v / 1000000, (v / 1000) % 1000, v % 1000); };
    try {
        auto c = conn_->get();
        out.connected = true;
        unsigned long v = 0;
        if (virConnectGetLibVersion(c.get(), &v) == 0) out.libvirt = str(v);
        if (virConnectGetVersion(c.get(), &v) == 0) out.hypervisor = str(v);
    } catch (const Error&) {
        out.connected = false;
    }
    return out;
}

std::optional<api::CpuSpec> VmManager::host_cpu() {
    {
        std::lock_guard lk(accel_mu_);
        if (host_cpu_) return *host_cpu_;
    }
    auto c = conn_->get();
    const auto type = xml_options().domain_type;
    char* caps = virConnectGetDomainCapabilities(c.get(), nullptr, "x86_64", nullptr, type.c_str(), 0);
    if (!caps) throw_libvirt_error("cannot read the domain capabilities (" + type + ")");
    std::string xml(caps);
    free(caps);
    auto cpu = parse_cpu_xml(xml);
    if (cpu) try {
            api::validate(*cpu, false);
        } catch (const Error& e) {
            spdlog::warn("host cpu from libvirt not used: {}", e.what());
            cpu.reset();
        }
    std::lock_guard lk(accel_mu_);
    host_cpu_ = cpu;
    return cpu;
}

api::CpuSpec VmManager::baseline_cpu(const std::vector<api::CpuSpec>& cpus) {
    if (cpus.empty()) fail(Errc::invalid_input, "a CPU baseline needs at least one CPU");
    std::vector<std::string> xmls;
    for (const auto& cpu : cpus) {
        api::validate(cpu, false);
        if (cpu.mode != "custom") fail(Errc::invalid_input, "a CPU baseline is made of named CPU models, not '{}'", cpu.mode);
        xmls.push_back(cpu_xml(cpu));
    }
    std::vector<const char*> ptrs;
    for (const auto& x : xmls) ptrs.push_back(x.c_str());
    auto c = conn_->get();
    const auto type = xml_options().domain_type;
    char* out = virConnectBaselineHypervisorCPU(c.get(), nullptr, "x86_64", nullptr, type.c_str(), ptrs.data(),
                                                static_cast<unsigned>(ptrs.size()), VIR_CONNECT_BASELINE_CPU_MIGRATABLE);
    if (!out) {
        virErrorPtr e = virGetLastError();
        fail(Errc::conflict, "no CPU model runs on all of them: {}", e && e->message ? e->message : "libvirt gave no baseline");
    }
    std::string xml(out);
    free(out);
    auto cpu = parse_cpu_xml(xml);
    if (!cpu) fail(Errc::internal, "libvirt's CPU baseline has no model: {}", xml.substr(0, 200));
    api::validate(*cpu, false);
    return *cpu;
}

std::string VmManager::cpu_incompatibility(const api::CpuSpec& cpu) {
    api::validate(cpu, false);
    if (cpu.mode != "custom") return "";
    auto c = conn_->get();
    const auto type = xml_options().domain_type;
    const auto xml = cpu_xml(cpu);
    int r = virConnectCompareHypervisorCPU(c.get(), nullptr, "x86_64", nullptr, type.c_str(), xml.c_str(),
                                           VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE);
    if (r == VIR_CPU_COMPARE_IDENTICAL || r == VIR_CPU_COMPARE_SUPERSET) return "";
    virErrorPtr e = virGetLastError();
    return e && e->message ? e->message : "the CPU is incompatible with this host's";
}

void VmManager::require_runnable_cpu(const api::CpuSpec& cpu) {
    if (cpu.mode != "custom") return;
    if (auto why = cpu_incompatibility(cpu); !why.empty())
        fail(Errc::conflict, "this host cannot run cpu {}: {}", cpu.model, why);
}

void VmManager::resolve_cpu(api::VmSpec& spec, util::Progress& progress) {
    const bool asked = spec.cpu.mode == "cluster";
    if (!asked && !spec.cpu.mode.empty()) return;
    std::vector<api::CpuSpec> cpus = cluster_cpus_ ? cluster_cpus_() : std::vector<api::CpuSpec>{};
    if (cpus.empty()) {
        if (asked) fail(Errc::conflict, "cpu cluster: this host is in no cluster (or no member has published its CPU yet)");
        return;
    }
    try {
        spec.cpu = baseline_cpu(cpus);
        progress.log(fmt::format("cpu: {}, the baseline of {} member(s)' CPUs", api::describe(spec.cpu), cpus.size()));
    } catch (const Error& e) {
        if (asked) throw;
        // The VM gets the host's default CPU; a migration's pre-flight names a member that cannot run it.
        spec.cpu = {};
        spdlog::warn("vm {}: no cluster CPU baseline, the host's default CPU: {}", spec.name, e.what());
        progress.log(fmt::format("warning: no cluster CPU baseline ({}): the host's default CPU", e.what()));
    }
}

void VmManager::request_shutdown(const std::string& name, util::Progress& progress) {
    require_ready();
    OpLock lock(*this, name);
    auto dom = conn_->domain(name);
    require_state(dom.get(), {VmState::running, VmState::shutting_down}, "shut down", "vm", name);
    if (virDomainShutdown(dom.get()) < 0) throw_libvirt_error("cannot shut down vm '" + name + "'");
    (void)progress;  // guest::shutdown logs the request
}

bool VmManager::active(const std::string& name) { return domain_running(conn_->domain(name).get()); }

bool VmManager::power_off(const std::string& name) {
    OpLock lock(*this, name);
    bool cut = destroy_if_active(conn_->domain(name).get(), "vm '" + name + "'");
    refresh(name);
    return cut;
}

VmInfo VmManager::refreshed(const std::string& name) {
    refresh(name);
    return get(name);
}

namespace {

struct JobStats {
    int type = VIR_DOMAIN_JOB_NONE;
    std::uint64_t total = 0, remaining = 0, processed = 0, dirty_rate = 0, bps = 0;
    std::uint64_t mem_total = 0, mem_remaining = 0, mem_processed = 0, disk_total = 0, disk_remaining = 0;
    std::int64_t downtime = -1, elapsed = -1;
};

// A libvirt error saved with virSaveLastError (freed here) as hv's.
[[noreturn]] void fail_saved(virErrorPtr e, const std::string& what) {
    if (!e) fail(Errc::internal, "{}: unknown libvirt error", what);
    Errc code = e->domain == VIR_FROM_RPC ? Errc::unavailable : errc_from_libvirt(e->code);
    std::string msg = e->message ? e->message : "unknown libvirt error";
    virFreeError(e);
    fail(code, "{}: {}", what, msg);
}

std::optional<JobStats> job_stats(virDomainPtr d, unsigned flags) {
    int type = 0, n = 0;
    virTypedParameterPtr p = nullptr;
    if (virDomainGetJobStats(d, &type, &p, &n, flags) < 0) {
        virResetLastError();
        return std::nullopt;
    }
    JobStats s;
    s.type = type;
    unsigned long long u = 0;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DATA_TOTAL, &u) == 1) s.total = u;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DATA_REMAINING, &u) == 1) s.remaining = u;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DATA_PROCESSED, &u) == 1) s.processed = u;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE, &u) == 1) s.dirty_rate = u;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_MEMORY_TOTAL, &u) == 1) s.mem_total = u;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_MEMORY_REMAINING, &u) == 1) s.mem_remaining = u;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_MEMORY_PROCESSED, &u) == 1) s.mem_processed = u;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DISK_TOTAL, &u) == 1) s.disk_total = u;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DISK_REMAINING, &u) == 1) s.disk_remaining = u;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_MEMORY_BPS, &u) == 1) s.bps = u;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DOWNTIME, &u) == 1) s.downtime = static_cast<std::int64_t>(u);
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_TIME_ELAPSED, &u) == 1) s.elapsed = static_cast<std::int64_t>(u);
    virTypedParamsFree(p, n);
    return s;
}

}  // namespace

nlohmann::json VmManager::migrate(const std::string& name, const MigrateParams& mp, util::Progress& progress) {
    require_ready();
    OpLock lock(*this, name);
    auto dom = conn_->domain(name);
    const bool running = domain_running(dom.get());
    if (mp.live && !running) fail(Errc::conflict, "vm '{}' is not running: move it with --offline", name);
    if (!mp.live && running) fail(Errc::conflict, "vm '{}' is running: --offline moves a stopped vm (leave it out for a live migration)", name);
    const auto t0 = std::chrono::steady_clock::now();
    nlohmann::json out{{"downtime_ms", -1}, {"transferred", 0}};
    virConnectPtr dest = virConnectOpen(mp.uri.c_str());
    if (!dest) throw_libvirt_error("connecting to the destination's libvirtd through the tunnel");
    struct Closer {
        virConnectPtr c;
        ~Closer() { virConnectClose(c); }
    } closer{dest};
    if (!mp.live) {
        progress.step(20, "defining the vm on the destination");
        char* xml = virDomainGetXMLDesc(dom.get(), VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
        if (!xml) throw_libvirt_error("reading the definition of vm '" + name + "'");
        std::string text(xml);
        free(xml);
        // Disks copied before (offline --with-local-disks): the definition names the new volumes.
        for (const auto& [src, dst] : mp.copy_disks) text = relocate_source(text, "file", src, dst);
        virDomainPtr nd = virDomainDefineXML(dest, text.c_str());
        if (!nd) throw_libvirt_error("defining vm '" + name + "' on the destination");
        progress.step(80, "removing the definition here");
        if (virDomainUndefineFlags(dom.get(), VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                                                  VIR_DOMAIN_UNDEFINE_KEEP_NVRAM) < 0) {
            virErrorPtr saved = virSaveLastError();
            virDomainUndefine(nd);  // back: it stays here only
            virDomainFree(nd);
            fail_saved(saved, "removing vm '" + name + "' here after defining it there");
        }
        virDomainFree(nd);
    } else {
        const bool tunnelled = mp.migrate_uri.empty();
        if (tunnelled && (mp.postcopy || !mp.copy_disks.empty()))
            fail(Errc::internal, "post-copy and disk copies need QEMU's own migration stream");
        virTypedParameterPtr params = nullptr;
        int np = 0, maxp = 0;
        struct ParamsFree {
            virTypedParameterPtr& p;
            int& n;
            ~ParamsFree() { virTypedParamsFree(p, n); }
        } params_free{params, np};
        if (mp.bandwidth_mib) virTypedParamsAddULLong(&params, &np, &maxp, VIR_MIGRATE_PARAM_BANDWIDTH, mp.bandwidth_mib);
        unsigned flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE |
                         VIR_MIGRATE_ABORT_ON_ERROR | VIR_MIGRATE_AUTO_CONVERGE;
        if (mp.shared_files) flags |= VIR_MIGRATE_UNSAFE;
        if (tunnelled) {
            flags |= VIR_MIGRATE_TUNNELLED;
        } else {
            virTypedParamsAddString(&params, &np, &maxp, VIR_MIGRATE_PARAM_URI, mp.migrate_uri.c_str());
            if (mp.postcopy) flags |= VIR_MIGRATE_POSTCOPY;
        }
        if (!mp.copy_disks.empty()) {
            // The destination's definitions (the running one and the persistent one) name the
            // new volumes; everything else is this one's.
            auto read = [&](unsigned f) {
                char* xml = virDomainGetXMLDesc(dom.get(), f);
                if (!xml) throw_libvirt_error("reading the definition of vm '" + name + "'");
                std::string text(xml);
                free(xml);
                return text;
            };
            std::string live = read(VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_MIGRATABLE);
            std::string persistent = read(VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_MIGRATABLE | VIR_DOMAIN_XML_INACTIVE);
            auto facts = parse_devices(live);
            for (const auto& copy : mp.copy_disks) {
                const std::string& src = copy.first;
                const std::string& dst = copy.second;
                auto it = std::find_if(facts.disks.begin(), facts.disks.end(),
                                       [&src](const XmlDisk& d) { return d.device == "disk" && d.source == src; });
                if (it == facts.disks.end() || it->target.empty())
                    fail(Errc::internal, "vm '{}' has no disk on {} to copy", name, src);
                int in_md = 0;
                live = relocate_source(live, "file", src, dst, &in_md);
                persistent = relocate_source(persistent, "file", src, dst);
                if (in_md == 0) spdlog::warn("vm {}: the path {} is not in hv's metadata", name, src);
                virTypedParamsAddString(&params, &np, &maxp, VIR_MIGRATE_PARAM_MIGRATE_DISKS, it->target.c_str());
            }
            virTypedParamsAddString(&params, &np, &maxp, VIR_MIGRATE_PARAM_DEST_XML, live.c_str());
            virTypedParamsAddString(&params, &np, &maxp, VIR_MIGRATE_PARAM_PERSIST_XML, persistent.c_str());
            virTypedParamsAddString(&params, &np, &maxp, VIR_MIGRATE_PARAM_DISKS_URI, mp.disks_uri.c_str());
            flags |= VIR_MIGRATE_NON_SHARED_DISK;
        }
        std::atomic<bool> done{false};
        std::atomic<bool> aborted{false};
        std::atomic<bool> timed_out{false};
        std::atomic<bool> postcopy{false};
        virDomainPtr d = dom.get();
        // Progress, cancel and the convergence policy beside the blocking migrate call: the
        // max downtime starts at mp.max_downtime_ms and doubles (up to 4x) when the remaining
        // data stopped shrinking for 5 readings (2.5 s); auto-converge throttles the guest;
        // then post-copy if allowed; past the timeout the job is aborted.
        std::thread watcher([&] {
            util::guarded("migration progress", [&] {
                long long downtime = mp.max_downtime_ms;
                bool set = false;
                std::uint64_t best = UINT64_MAX;
                int stuck = 0;
                while (!done) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(500));
                    if (done) break;
                    auto elapsed = std::chrono::steady_clock::now() - t0;
                    if (!aborted && (progress.cancelled() || (mp.timeout_s > 0 && !postcopy && elapsed > std::chrono::seconds(mp.timeout_s)))) {
                        aborted = true;
                        timed_out = !progress.cancelled();
                        if (virDomainAbortJob(d) < 0) virResetLastError();
                    }
                    auto st = job_stats(d, 0);
                    if (!st || st->type == VIR_DOMAIN_JOB_NONE || st->total == 0) continue;
                    if (!set) set = virDomainMigrateSetMaxDowntime(d, static_cast<unsigned long long>(downtime), 0) == 0;
                    const bool copying = st->disk_total > 0 && st->disk_remaining > 0;
                    if (st->remaining < best) {
                        best = st->remaining;
                        stuck = 0;
                    } else if (copying) {
                        stuck = 0;  // the disks first: the memory phase has not begun
                    } else if (++stuck >= 5 && downtime < 4LL * mp.max_downtime_ms) {
                        downtime *= 2;
                        stuck = 0;
                        if (virDomainMigrateSetMaxDowntime(d, static_cast<unsigned long long>(downtime), 0) < 0) virResetLastError();
                        progress.log(fmt::format("not converging: max downtime raised to {} ms", downtime));
                    } else if (stuck >= 5 && mp.postcopy && !postcopy) {
                        if (virDomainMigrateStartPostCopy(d, 0) == 0) {
                            postcopy = true;
                            progress.log("not converging at the highest max downtime: switched to post-copy");
                        } else {
                            virResetLastError();
                        }
                    }
                    int pct = st->total ? static_cast<int>(100 * (st->total - std::min(st->remaining, st->total)) / st->total) : 0;
                    std::string disks;
                    if (st->disk_total > 0)
                        disks = fmt::format("disks: {} of {} copied; ", api::format_size(st->disk_total - std::min(st->disk_remaining, st->disk_total)),
                                            api::format_size(st->disk_total));
                    progress.step(std::min(pct, 99),
                                  fmt::format("{}memory: {} of {} sent, {} left, dirty {} pages/s, {}/s{}", disks,
                                              api::format_size(st->mem_processed), api::format_size(st->mem_total),
                                              api::format_size(st->mem_remaining), st->dirty_rate, api::format_size(st->bps),
                                              postcopy ? " (post-copy)" : ""));
                }
            });
        });
        progress.step(0, tunnelled ? "live migration: starting (tunnelled through hvd's TLS)"
                                   : fmt::format("live migration: starting ({}QEMU's stream through hvd's TLS)",
                                                 mp.copy_disks.empty() ? "" : "disks by NBD mirror, "));
        int rc = virDomainMigrateToURI3(d, mp.uri.c_str(), params, np, flags);
        virErrorPtr saved = rc < 0 ? virSaveLastError() : nullptr;
        done = true;
        watcher.join();
        if (rc < 0) {
            refresh(name);
            if (aborted) {
                if (saved) virFreeError(saved);
                if (timed_out)
                    fail(Errc::timeout, "migration of vm '{}' did not finish in {} s ([cluster] migration_timeout per GiB): "
                         "aborted, it runs on here", name, mp.timeout_s);
                fail(Errc::cancelled, "migration of vm '{}' cancelled: it runs on here", name);
            }
            fail_saved(saved, "migrating vm '" + name + "' (it runs on here)");
        }
        if (saved) virFreeError(saved);
        out["postcopy"] = postcopy.load();
        // What the destination measured for the incoming migration.
        if (virDomainPtr nd = virDomainLookupByName(dest, name.c_str())) {
            if (auto st = job_stats(nd, VIR_DOMAIN_JOB_STATS_COMPLETED)) {
                out["downtime_ms"] = st->downtime;
                out["transferred"] = st->mem_processed ? st->mem_processed : st->processed;
            }
            virDomainFree(nd);
        } else {
            virResetLastError();
        }
    }
    out["total_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    refresh(name);
    return out;
}

}  // namespace hv::virt
