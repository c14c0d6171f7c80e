#include "hv/storage/pool_manager.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "hv/api/size.hpp"
#include "hv/error.hpp"
#include "ct_templates.hpp"
#include "hv/util/atomic_file.hpp"

namespace hv::storage {
namespace fs = std::filesystem;
using nlohmann::json;

PoolManager::PoolManager(std::string state_file, api::PoolSpec builtin)
    : state_file_(std::move(state_file)), intents_((fs::path(state_file_).parent_path() / "pending").string()) {
    register_undo();
    std::error_code ec;
    fs::create_directories(builtin.path, ec);
    if (!ec) ::chmod(builtin.path.c_str(), 0711);  // QEMU's user must traverse to the images
    pools_[builtin.name] = Entry{open_pool(builtin), true};
    std::ifstream in(state_file_);
    if (!in) return;
    json doc;
    try {
        doc = json::parse(in);
    } catch (const json::exception& e) {
        fail(Errc::invalid_input, "{}: not valid JSON: {}", state_file_, e.what());
    }
    for (const auto& p : doc.value("pools", json::array())) {
        auto spec = api::pool_spec_from_json(p);
        if (pools_.count(spec.name)) continue;
        pools_[spec.name] = Entry{open_pool(spec), false};
    }
}

namespace {
// dev/ino of what an operation made: recovery removes only that very file or directory.
json identity(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return json::object();
    return {{"dev", static_cast<std::uint64_t>(st.st_dev)}, {"ino", static_cast<std::uint64_t>(st.st_ino)}};
}
// Same file as recorded; true when nothing was recorded (the crash came before it was known,
// which recovery at start, before hvd serves anyone, may trust).
bool same_identity(const std::string& path, const json& d) {
    if (!d.contains("ino")) return true;
    auto now = identity(path);
    return now.value("dev", std::uint64_t{0}) == d.value("dev", std::uint64_t{0}) &&
           now.value("ino", std::uint64_t{0}) == d.value("ino", std::uint64_t{0});
}
bool exists_nofollow(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}
}  // namespace

json PoolManager::identity_of(const std::string& path) { return identity(path); }

void PoolManager::register_undo() {
    using Lines = std::vector<std::string>;
    // A volume a create/clone made (standalone or for a VM). Kept when a domain uses it (the
    // VM it was made for exists and was kept, e.g. because it runs).
    intents_.on("volume", [this](const json& d) -> Lines {
        auto pn = d.at("pool").get<std::string>(), name = d.at("name").get<std::string>();
        std::shared_ptr<StoragePool> p;
        try {
            p = pool(pn);
        } catch (const Error&) {
            return {fmt::format("pool '{}' is gone: nothing to remove for volume {}", pn, name)};
        }
        Lines out;
        auto v = p->find_volume(name);
        // A partial file is the create's own while the volume is not complete (a complete one
        // means no other create of that name can be running).
        if (!v) {
            for (const auto& f : p->remove_partial(name)) out.push_back("removed " + f);
            return out;
        }
        if (!same_identity(v->path, d))
            return {fmt::format("kept volume {}:{}: it is not the file the operation made", pn, name)};
        if (auto users = users_of(v->path, true); !users.empty())
            return {fmt::format("kept volume {}:{}: used by {}", pn, name, fmt::join(users, ", "))};
        p->delete_volume(name);
        if (mirror_.refresh) mirror_.refresh(pn);
        return {fmt::format("removed volume {}:{} ({})", pn, name, v->path)};
    });
    // A grow that did not finish: back to the old size (see StoragePool::revert_grow).
    intents_.on("resize", [this](const json& d) -> Lines {
        auto pn = d.at("pool").get<std::string>(), name = d.at("name").get<std::string>();
        auto old = d.at("old").get<std::uint64_t>();
        std::shared_ptr<StoragePool> p;
        try {
            p = pool(pn);
        } catch (const Error&) {
            return {};
        }
        auto v = p->find_volume(name);
        if (!v || v->capacity <= old) return {};
        p->revert_grow(name, old);
        if (mirror_.refresh) mirror_.refresh(pn);
        return {fmt::format("volume {}:{} back to its old size {} (the grow to {} did not finish)", pn, name,
                            api::format_size(old), api::format_size(v->capacity))};
    });
    // A hidden partial file (an upload, a template being packed).
    intents_.on("file", [](const json& d) -> Lines {
        auto path = d.at("path").get<std::string>();
        auto base = fs::path(path).filename().string();
        if (base.empty() || base[0] != '.' || !base.ends_with(".partial"))
            fail(Errc::internal, "refusing to remove {}: not a partial file", path);
        if (::unlink(path.c_str()) != 0) {
            if (errno == ENOENT) return {};
            fail(Errc::internal, "cannot remove {}: {}", path, std::strerror(errno));
        }
        return {"removed " + path};
    });
    // A container root filesystem: its partial directory and, unless a container uses it,
    // the published one.
    intents_.on("rootfs", [this](const json& d) -> Lines {
        Lines out;
        auto path = d.at("path").get<std::string>(), partial = d.at("partial").get<std::string>();
        if (exists_nofollow(partial)) {
            remove_rootfs(partial);
            out.push_back("removed " + partial);
        }
        if (!exists_nofollow(path)) return out;
        if (!same_identity(path, d)) {
            out.push_back(fmt::format("kept {}: it is not the directory the operation made", path));
            return out;
        }
        if (auto users = users_of(path, true); !users.empty()) {
            out.push_back(fmt::format("kept {}: used by {}", path, fmt::join(users, ", ")));
            return out;
        }
        remove_rootfs(path);
        out.push_back("removed " + path);
        return out;
    });
}

void PoolManager::sweep_partials() {
    std::vector<std::shared_ptr<StoragePool>> all;
    {
        std::lock_guard lk(mu_);
        for (const auto& [_, e] : pools_) all.push_back(e.pool);
    }
    for (const auto& p : all) {
        try {
            p->remove_leftovers(std::chrono::seconds(0));
        } catch (const Error&) {
        }
    }
}

void PoolManager::set_mirror(Mirror m) {
    std::vector<api::PoolSpec> specs;
    {
        std::lock_guard lk(mu_);
        mirror_ = std::move(m);
        for (const auto& [_, e] : pools_) specs.push_back(e.pool->spec());
    }
    if (mirror_.define)
        for (const auto& s : specs) mirror_.define(s);
}

void PoolManager::save_locked() const {
    json doc{{"pools", json::array()}};
    for (const auto& [_, e] : pools_)
        if (!e.builtin) doc["pools"].push_back(e.pool->spec());
    fs::create_directories(fs::path(state_file_).parent_path());
    util::write_file_atomic(state_file_, doc.dump(2) + "\n");
}

std::shared_ptr<StoragePool> PoolManager::pool(const std::string& name) const {
    std::lock_guard lk(mu_);
    auto it = pools_.find(name);
    if (it == pools_.end()) {
        std::vector<std::string> names;
        for (const auto& [n, _] : pools_) names.push_back(n);
        fail(Errc::not_found, "pool '{}' does not exist (pools: {})", name, fmt::join(names, ", "));
    }
    return it->second.pool;
}

api::PoolInfo PoolManager::info(const Entry& e) const {
    api::PoolInfo i;
    i.spec = e.pool->spec();
    i.caps = e.pool->caps();
    i.builtin = e.builtin;
    try {
        e.pool->check();
        auto u = e.pool->usage();
        i.capacity = u.capacity;
        i.used = u.used;
        i.free = u.free;
        for (const auto& v : e.pool->volumes()) {
            i.committed += v.capacity;
            i.allocated += v.allocation;
            ++i.volumes;
        }
        i.warnings = e.pool->health();
        i.active = true;
    } catch (const Error& err) {
        i.active = false;
        i.error = err.what();
    }
    return i;
}

std::vector<api::PoolInfo> PoolManager::list() const {
    std::vector<Entry> entries;
    {
        std::lock_guard lk(mu_);
        for (const auto& [_, e] : pools_) entries.push_back(Entry{e.pool, e.builtin});
    }
    std::vector<api::PoolInfo> out;
    for (const auto& e : entries) out.push_back(info(e));
    return out;
}

std::vector<std::string> PoolManager::shared_names() const {
    std::lock_guard lk(mu_);
    std::vector<std::string> out;
    for (const auto& [name, e] : pools_)
        if (e.pool->spec().type == "rbd" || e.pool->caps().shared) out.push_back(name);
    return out;
}

api::PoolInfo PoolManager::get(const std::string& name) const {
    auto p = pool(name);
    bool builtin;
    {
        std::lock_guard lk(mu_);
        builtin = pools_.at(name).builtin;
    }
    return info(Entry{p, builtin});
}

api::PoolInfo PoolManager::add(const api::PoolSpec& spec) {
    api::validate(spec);
    backend(spec.type);  // unknown type -> 400 listing the types
    api::PoolSpec s = spec;
    const bool files = spec.type != "rbd";  // a directory on this host (rbd: images in Ceph)
    if (files) {
        struct stat st {};
        if (::stat(spec.path.c_str(), &st) != 0)
            fail(Errc::invalid_input, "pool path {} does not exist: {}", spec.path, std::strerror(errno));
        if (!S_ISDIR(st.st_mode)) fail(Errc::invalid_input, "pool path {} is not a directory", spec.path);
        s.path = fs::canonical(spec.path).string();
    }
    const std::string canonical = s.path;
    std::shared_ptr<StoragePool> p;
    {
        std::lock_guard lk(mu_);
        if (pools_.count(s.name)) fail(Errc::conflict, "pool '{}' already exists", s.name);
        for (const auto& [n, e] : pools_) {
            const auto& o = e.pool->spec();
            if (!files) {
                // The same Ceph pool twice would count its images twice (and name them twice).
                if (o.type == "rbd" && o.rbd_pool == s.rbd_pool && o.monitors == s.monitors)
                    fail(Errc::conflict, "Ceph pool {} at {} is already hv pool '{}'", s.rbd_pool, s.monitors.front(), n);
                continue;
            }
            const auto& other = o.path;
            if (other.empty()) continue;
            if (other == canonical || canonical.rfind(other + "/", 0) == 0 || other.rfind(canonical + "/", 0) == 0)
                fail(Errc::conflict, "pool path {} overlaps pool '{}' at {}", canonical, n, other);
        }
        p = open_pool(s);
        try {
            p->check();
        } catch (const Error& e) {
            fail(Errc::invalid_input, "{}", e.what());
        }
        pools_[s.name] = Entry{p, false};
        try {
            save_locked();
        } catch (...) {
            pools_.erase(s.name);
            throw;
        }
    }
    if (mirror_.define) mirror_.define(p->spec());
    return get(s.name);
}

void PoolManager::remove(const std::string& name) {
    auto p = pool(name);
    {
        std::lock_guard lk(mu_);
        if (pools_.at(name).builtin) fail(Errc::conflict, "pool '{}' is built in and cannot be removed", name);
    }
    // One look at the VMs (their live disks included) for all volumes of the pool.
    auto users = users_ ? users_(true) : std::map<std::string, std::vector<std::string>>{};
    for (const auto& v : p->volumes())
        if (auto it = users.find(v.path); it != users.end() && !it->second.empty())
            fail(Errc::conflict, "pool '{}' is in use: volume '{}' is used by {}", name, v.name,
                 fmt::join(it->second, ", "));
    // Anything else of the pool a guest uses (a container's root filesystem directory).
    const std::string prefix = p->spec().path + "/";
    for (const auto& [path, who] : users)
        if (!p->spec().path.empty() && path.rfind(prefix, 0) == 0 && !who.empty())
            fail(Errc::conflict, "pool '{}' is in use: {} is used by {}", name, path, fmt::join(who, ", "));
    {
        std::lock_guard lk(mu_);
        for (const auto& b : busy_)
            if (b.rfind(name + "/", 0) == 0) fail(Errc::conflict, "pool '{}' has an operation in progress", name);
        auto e = std::move(pools_.at(name));
        pools_.erase(name);
        try {
            save_locked();
        } catch (...) {
            pools_[name] = std::move(e);
            throw;
        }
    }
    if (mirror_.undefine) mirror_.undefine(name);
}

api::PoolInfo PoolManager::scan(const std::string& name) {
    auto p = pool(name);
    p->check();
    // Re-opening creates missing content directories; leftovers of crashes (not written for
    // 10 minutes, so uploads and zeroing in progress are spared) are removed.
    auto fresh = open_pool(p->spec());
    fresh->remove_leftovers(std::chrono::minutes(10));
    {
        std::lock_guard lk(mu_);
        for (const auto& b : busy_)
            if (b.rfind(name + "/", 0) == 0) fail(Errc::conflict, "pool '{}' has an operation in progress", name);
        auto it = pools_.find(name);
        if (it != pools_.end()) it->second.pool = std::shared_ptr<StoragePool>(std::move(fresh));
    }
    if (mirror_.refresh) mirror_.refresh(name);
    return get(name);
}

std::vector<std::string> PoolManager::users_of(const std::string& path, bool live) const {
    if (!users_) return {};
    auto m = users_(live);
    auto it = m.find(path);
    return it == m.end() ? std::vector<std::string>{} : it->second;
}

std::vector<api::VolumeInfo> PoolManager::volumes(const std::string& name) const {
    auto p = pool(name);
    p->check();
    auto vols = p->volumes();
    auto users = users_ ? users_(false) : std::map<std::string, std::vector<std::string>>{};
    for (auto& v : vols)
        if (auto it = users.find(v.path); it != users.end()) v.used_by = it->second;
    return vols;
}

api::VolumeInfo PoolManager::volume(const std::string& pool_name, const std::string& name) const {
    auto p = pool(pool_name);
    p->check();
    auto v = p->find_volume(name);
    if (!v) fail(Errc::not_found, "volume '{}' does not exist in pool '{}'", name, pool_name);
    v->used_by = users_of(v->path);
    return *v;
}

std::shared_ptr<void> PoolManager::mark_busy(const std::string& pool_name, const std::string& name) const {
    auto key = pool_name + "/" + name;
    std::lock_guard lk(mu_);
    if (!busy_.insert(key).second)
        fail(Errc::conflict, "volume '{}' in pool '{}' has an operation in progress", name, pool_name);
    return std::shared_ptr<void>(nullptr, [this, key](void*) {
        std::lock_guard lk2(mu_);
        busy_.erase(key);
    });
}

std::string PoolManager::default_format(const std::string& pool_name) const {
    auto caps = pool(pool_name)->caps();
    return caps.formats.empty() ? std::string("raw") : caps.formats.front();
}

void PoolManager::precheck_create(const api::VolumeSpec& in) const {
    api::validate(in);
    api::VolumeSpec spec = in;
    if (spec.format.empty()) spec.format = default_format(spec.pool);
    auto p = pool(spec.pool);
    p->check();
    auto caps = p->caps();
    auto m = api::to_string(spec.provision);
    if (std::find(caps.formats.begin(), caps.formats.end(), spec.format) == caps.formats.end())
        fail(Errc::unsupported, "pool '{}' ({}) cannot store format {}", spec.pool, p->spec().type, spec.format);
    if (std::find(caps.provision.begin(), caps.provision.end(), m) == caps.provision.end())
        fail(Errc::unsupported, "pool '{}' ({}) cannot provision {} volumes", spec.pool, p->spec().type, m);
    if (p->find_volume(spec.name))
        fail(Errc::conflict, "volume '{}' already exists in pool '{}'", spec.name, spec.pool);
    if (spec.provision != api::Provision::thin) {
        auto u = p->usage();
        if (spec.size > u.free)
            fail(Errc::insufficient_space, "volume '{}' needs {} ({}), but pool '{}' has only {} free", spec.name,
                 api::format_size(spec.size), m, spec.pool, api::format_size(u.free));
    }
}

PoolManager::Created PoolManager::create_volume(const api::VolumeSpec& in, util::Progress& progress,
                                                util::IntentLog::Intent* outer) {
    api::validate(in);
    api::VolumeSpec spec = in;
    if (spec.format.empty()) spec.format = default_format(spec.pool);
    auto p = pool(spec.pool);
    auto guard = mark_busy(spec.pool, spec.name);
    // Checked before the intent is written: recovery must never remove a volume that was there.
    if (p->find_volume(spec.name))
        fail(Errc::conflict, "volume '{}' already exists in pool '{}'", spec.name, spec.pool);
    Created out;
    if (spec.provision == api::Provision::thin) {
        auto u = p->usage();
        std::uint64_t committed = spec.size;
        for (const auto& v : p->volumes()) committed += v.capacity;
        if (committed > u.capacity)
            out.warnings.push_back(fmt::format(
                "pool '{}' is over-committed by {}: thin volumes total {} on {} of capacity ({} free now)", spec.pool,
                api::format_size(committed - u.capacity), api::format_size(committed), api::format_size(u.capacity),
                api::format_size(u.free)));
        else if (spec.size > u.free)
            out.warnings.push_back(fmt::format("volume '{}' ({}) is larger than the {} free in pool '{}'", spec.name,
                                               api::format_size(spec.size), api::format_size(u.free), spec.pool));
    }
    util::IntentLog::Intent own;
    if (!outer) own = intents_.begin("volume.create", "volume/" + spec.pool + "/" + spec.name);
    auto& intent = outer ? *outer : own;
    auto item = intent.add("volume", {{"pool", spec.pool}, {"name", spec.name}});
    out.volume = p->create_volume(spec, progress);
    if (outer) {
        auto d = identity_of(out.volume.path);
        d["pool"] = spec.pool;
        d["name"] = spec.name;
        outer->update(item, std::move(d));
    }
    own.finish();
    if (mirror_.refresh) mirror_.refresh(spec.pool);
    return out;
}

void PoolManager::delete_volume(const std::string& pool_name, const std::string& name,
                                const std::function<void(const std::vector<std::string>&, const std::string&)>& detach) {
    auto p = pool(pool_name);
    auto guard = mark_busy(pool_name, name);
    auto v = p->find_volume(name);
    if (!v) fail(Errc::not_found, "volume '{}' does not exist in pool '{}'", name, pool_name);
    auto users = users_of(v->path, true);
    if (!users.empty()) {
        if (!detach)
            fail(Errc::conflict, "volume '{}' is used by {}; detach it first or use --force", name,
                 fmt::join(users, ", "));
        detach(users, v->path);
        users = users_of(v->path, true);
        if (!users.empty())
            fail(Errc::conflict, "volume '{}' is still used by {} after detaching", name, fmt::join(users, ", "));
    }
    p->delete_volume(name);
    if (mirror_.refresh) mirror_.refresh(pool_name);
}

api::VolumeInfo PoolManager::resize_volume(const std::string& pool_name, const std::string& name, std::uint64_t size,
                                           util::Progress& progress) {
    auto p = pool(pool_name);
    auto guard = mark_busy(pool_name, name);
    auto before = p->find_volume(name);
    if (!before) fail(Errc::not_found, "volume '{}' does not exist in pool '{}'", name, pool_name);
    // Interrupted: the volume goes back to its old size (a grow is all or nothing).
    auto intent = intents_.begin("volume.resize", "volume/" + pool_name + "/" + name);
    if (size > before->capacity)
        intent.add("resize", {{"pool", pool_name}, {"name", name}, {"old", before->capacity}, {"size", size}});
    auto v = p->resize_volume(name, size, progress);
    intent.finish();
    v.used_by = users_of(v.path);
    if (mirror_.refresh) mirror_.refresh(pool_name);
    return v;
}

api::VolumeInfo PoolManager::clone_volume(const std::string& pool_name, const std::string& source,
                                          const std::string& target, util::Progress& progress, bool linked,
                                          util::IntentLog::Intent* outer) {
    auto p = pool(pool_name);
    auto g1 = mark_busy(pool_name, source);
    auto g2 = mark_busy(pool_name, target);
    if (p->find_volume(target)) fail(Errc::conflict, "volume '{}' already exists in pool '{}'", target, pool_name);
    util::IntentLog::Intent own;
    if (!outer) own = intents_.begin("volume.clone", "volume/" + pool_name + "/" + target);
    auto& intent = outer ? *outer : own;
    auto item = intent.add("volume", {{"pool", pool_name}, {"name", target}});
    auto v = linked ? p->link_volume(source, target) : p->clone_volume(source, target, progress);
    if (outer) {
        auto d = identity_of(v.path);
        d["pool"] = pool_name;
        d["name"] = target;
        outer->update(item, std::move(d));
    }
    own.finish();
    if (mirror_.refresh) mirror_.refresh(pool_name);
    return v;
}

api::DiskSource PoolManager::disk_source(const std::string& pool_name, const std::string& name) const {
    return pool(pool_name)->disk_source(name);
}

api::VolumeRef PoolManager::locate(const std::string& path) const {
    std::vector<std::shared_ptr<StoragePool>> all;
    {
        std::lock_guard lk(mu_);
        for (const auto& [_, e] : pools_) all.push_back(e.pool);
    }
    for (const auto& p : all) {
        if (auto n = p->volume_of_path(path)) return api::VolumeRef{p->spec().name, "images", *n};
        auto dir = fs::path(path).parent_path().string();
        try {
            if (!p->spec().path.empty() && dir == p->spec().path + "/iso")
                return api::VolumeRef{p->spec().name, "iso", fs::path(path).filename().string()};
        } catch (const Error&) {
        }
    }
    return {};
}

std::string PoolManager::resolve(const api::VolumeRef& ref) const {
    auto p = pool(ref.pool);
    if (ref.content == "iso") {
        auto path = p->content_dir("iso") + "/" + ref.name;
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
            fail(Errc::not_found, "iso '{}' does not exist in pool '{}'", ref.name, ref.pool);
        return path;
    }
    auto v = p->find_volume(ref.name);
    if (!v) fail(Errc::not_found, "volume '{}' does not exist in pool '{}'", ref.name, ref.pool);
    return v->path;
}

std::string PoolManager::content_dir(const std::string& pool_name, const std::string& content) const {
    return pool(pool_name)->content_dir(content);
}

std::string PoolManager::builtin_path() const {
    std::lock_guard lk(mu_);
    for (const auto& [_, e] : pools_)
        if (e.builtin) return e.pool->spec().path;
    return "";
}

std::uint64_t PoolManager::builtin_free() const {
    std::shared_ptr<StoragePool> p;
    {
        std::lock_guard lk(mu_);
        for (const auto& [_, e] : pools_)
            if (e.builtin) p = e.pool;
    }
    try {
        return p ? p->usage().free : 0;
    } catch (const Error&) {
        return 0;
    }
}

}  // namespace hv::storage
