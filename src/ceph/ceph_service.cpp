#include "ceph_service.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ceph_conf.hpp"
#include "ceph_status.hpp"
#include "cluster.hpp"
#include "hv/error.hpp"
#include "hv/storage/pool_manager.hpp"
#include "hv/util/atomic_file.hpp"
#include "hv/util/command.hpp"
#include "hv/util/guard.hpp"
#include "rados.hpp"
#include "store.hpp"
#include "supervisor.hpp"

namespace hv::ceph {
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "/hv/ceph/";
constexpr const char* kConfig = "/hv/ceph/config";
std::string mon_key(const std::string& node) { return "/hv/ceph/mons/" + node; }
std::string osd_key(const std::string& uuid) { return "/hv/ceph/osds/" + uuid; }
std::string pool_key(const std::string& name) { return "/hv/ceph/pools/" + name; }

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

struct Rec {
    json doc;
    std::int64_t rev = 0;
};

// One consistent read of /hv/ceph/.
struct View {
    std::optional<Rec> config;
    std::map<std::string, Rec> mons;   // node -> record
    std::map<std::string, Rec> osds;   // uuid -> record
    std::map<std::string, Rec> pools;  // name -> record

    std::string str(const json& j, const char* k) const {
        auto it = j.find(k);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    }
    std::vector<MonAddr> ready_mons() const {
        std::vector<MonAddr> out;
        for (const auto& [n, r] : mons)
            if (str(r.doc, "state") == "ready") out.push_back({n, str(r.doc, "address")});
        return out;
    }
    std::string key(const char* which) const {
        if (!config) return {};
        auto k = config->doc.find("keys");
        if (k == config->doc.end() || !k->is_object()) return {};
        auto it = k->find(which);
        return it != k->end() && it->is_string() ? it->get<std::string>() : std::string();
    }
    // Hosts with a ready OSD record.
    std::set<std::string> osd_hosts() const {
        std::set<std::string> out;
        for (const auto& [u, r] : osds)
            if (str(r.doc, "state") == "ready") out.insert(str(r.doc, "host"));
        return out;
    }
};

bool in_network(const std::string& address, const std::string& cidr) {
    auto slash = cidr.find('/');
    in_addr a{}, n{};
    if (slash == std::string::npos || inet_pton(AF_INET, address.c_str(), &a) != 1 ||
        inet_pton(AF_INET, cidr.substr(0, slash).c_str(), &n) != 1)
        return false;
    int bits = std::atoi(cidr.c_str() + slash + 1);
    std::uint32_t mask = bits <= 0 ? 0 : bits >= 32 ? 0xffffffffu : ~(0xffffffffu >> bits);
    return (ntohl(a.s_addr) & mask) == (ntohl(n.s_addr) & mask);
}

// This host's IPv4 address in `cidr` ("" if none).
std::string local_address_in(const std::string& cidr) {
    ifaddrs* ifs = nullptr;
    if (::getifaddrs(&ifs) != 0) return {};
    std::string out;
    for (auto* i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP)) continue;
        char buf[INET_ADDRSTRLEN] = {};
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
        if (in_network(buf, cidr)) {
            out = buf;
            break;
        }
    }
    ::freeifaddrs(ifs);
    return out;
}

void write_private(const std::string& path, const std::string& text) { util::write_file_atomic(path, text, 0600); }

std::string read_file(const std::string& path) {
    std::ifstream f(path);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string new_uuid() {
    std::string u = read_file("/proc/sys/kernel/random/uuid");
    while (!u.empty() && (u.back() == '\n' || u.back() == ' ')) u.pop_back();
    if (u.size() != 36) fail(Errc::internal, "cannot make a uuid (/proc/sys/kernel/random/uuid)");
    return u;
}

// The key of the first entity of an `auth get-or-create` answer (JSON array).
std::string key_of_auth_answer(const std::string& out, const std::string& entity) {
    json j = json::parse(out, nullptr, false);
    if (j.is_array() && !j.empty() && j[0].is_object() && j[0].contains("key") && j[0]["key"].is_string()) {
        auto k = j[0]["key"].get<std::string>();
        if (valid_key(k)) return k;
    }
    fail(Errc::internal, "the monitors' answer for {} has no key", entity);
}

// Something on the device: mounted, held, a signature (filesystem, partition table, BlueStore).
struct DeviceCheck {
    bool exists = false;
    bool block = false;
    bool regular = false;
    std::string in_use;     // mounted / held: never zapped
    std::string signature;  // "ext4", "gpt", "ceph_bluestore" ... (zap wipes it)
};

DeviceCheck check_device(const std::string& path) {
    DeviceCheck c;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return c;
    c.exists = true;
    c.block = S_ISBLK(st.st_mode);
    c.regular = S_ISREG(st.st_mode);
    if (c.block) {
        unsigned maj = major(st.st_rdev), min = minor(st.st_rdev);
        // Mounted (itself or a partition of it: the same major, the partition's minor after it).
        std::ifstream mi("/proc/self/mountinfo");
        std::string line;
        auto sys = fmt::format("/sys/dev/block/{}:{}", maj, min);
        // The device and its partitions, as "major:minor" (mountinfo's third field).
        std::set<std::string> devs{fmt::format("{}:{}", maj, min)};
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(sys, ec)) {
            if (!fs::exists(e.path() / "partition")) continue;
            auto d = read_file((e.path() / "dev").string());
            while (!d.empty() && d.back() == '\n') d.pop_back();
            devs.insert(d);
        }
        while (std::getline(mi, line)) {
            std::istringstream in(line);
            std::string id, parent, majmin, root, mnt;
            in >> id >> parent >> majmin >> root >> mnt;
            if (devs.count(majmin)) {
                c.in_use = fmt::format("it is mounted on {}", mnt);
                break;
            }
        }
        if (c.in_use.empty()) {
            std::error_code ec2;
            for (const auto& h : fs::directory_iterator(sys + "/holders", ec2)) {
                c.in_use = fmt::format("it is held by {} (device mapper, RAID or LVM)", h.path().filename().string());
                break;
            }
        }
        // A swap device is in /proc/swaps by name.
        std::ifstream sw("/proc/swaps");
        while (c.in_use.empty() && std::getline(sw, line))
            if (line.rfind(path + " ", 0) == 0) c.in_use = "it is in use as swap";
        // Opened exclusively by someone else (a running OSD, a mounted filesystem).
        if (c.in_use.empty()) {
            int fd = ::open(path.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);
            if (fd < 0 && errno == EBUSY) c.in_use = "it is open exclusively by another program";
            if (fd >= 0) ::close(fd);
        }
    }
    if (c.block || c.regular) {
        auto r = util::run_command({"blkid", "-p", "-o", "export", path}, std::chrono::seconds(20));
        std::istringstream in(r.out);
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind("TYPE=", 0) == 0) c.signature = line.substr(5);
            else if (line.rfind("PTTYPE=", 0) == 0 && c.signature.empty()) c.signature = "a " + line.substr(7) + " partition table";
        }
        // BlueStore's label, also where blkid does not know it.
        if (c.signature.empty()) {
            std::ifstream f(path, std::ios::binary);
            char head[22] = {};
            f.read(head, sizeof head);
            if (std::string(head, sizeof head) == "bluestore block device") c.signature = "ceph_bluestore";
        }
    }
    return c;
}

// Wipes signatures and the first 10 MiB (never a device in use).
void zap(const std::string& path) {
    auto r = util::run_command({"wipefs", "--all", path}, std::chrono::seconds(60));
    if (r.exit_status != 0) fail(Errc::internal, "wipefs --all {}: {}", path, r.err);
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail(Errc::internal, "opening {} to wipe it: {}", path, std::strerror(errno));
    std::string zeros(1 << 20, '\0');
    for (int i = 0; i < 10; ++i)
        if (::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(i) << 20) < 0) break;
    ::fsync(fd);
    ::close(fd);
}

}  // namespace

struct CephService::Impl {
    CephOptions o;
    cluster::Cluster& cluster;
    storage::PoolManager& pools;
    Supervisor sup;

    std::mutex mu;
    std::condition_variable cv;
    bool dirty = true;
    bool quit = false;
    bool running = false;
    std::set<std::string> creating;  // store keys of records a command of this hvd works on
    std::unique_ptr<cluster::Watch> watch;
    std::shared_ptr<cluster::Store> watched;  // the store the watch is on
    std::thread thread;
    std::mutex conf_mu;  // ceph.conf, the admin keyring, last_conf
    std::string last_conf;

    Impl(CephOptions opts, cluster::Cluster& c, storage::PoolManager& p)
        : o(std::move(opts)), cluster(c), pools(p), sup(o.dir + "/pids") {}

    std::string conf_path() const { return o.dir + "/ceph.conf"; }
    std::string admin_keyring() const { return o.dir + "/keyring.admin"; }
    std::string hv_keyring() const { return o.dir + "/keyring.hv"; }
    std::string mon_dir(const std::string& n) const { return o.dir + "/mon/ceph-" + n; }
    std::string mgr_dir(const std::string& n) const { return o.dir + "/mgr/ceph-" + n; }
    std::string osd_dir(int id) const { return fmt::format("{}/osd/ceph-{}", o.dir, id); }

    std::shared_ptr<cluster::Store> store() const { return cluster.shared_store(); }

    template <typename F>
    auto guarded(F&& f) const -> decltype(f()) {
        try {
            return f();
        } catch (const Error& e) {
            if (e.code() == Errc::unavailable || e.code() == Errc::timeout) cluster.no_quorum(e.what());
            throw;
        }
    }

    View load() const {
        auto s = store();
        auto all = guarded([&] { return s->list(kPrefix); });
        View v;
        for (const auto& kv : all.kvs) {
            json doc = json::parse(kv.value, nullptr, false);
            if (!doc.is_object()) {
                spdlog::warn("ceph: ignoring {}: not a JSON object", kv.key);
                continue;
            }
            Rec r{doc, kv.mod_revision};
            std::string rest = kv.key.substr(std::strlen(kPrefix));
            if (rest == "config") v.config = r;
            else if (rest.rfind("mons/", 0) == 0) v.mons[rest.substr(5)] = r;
            else if (rest.rfind("osds/", 0) == 0) v.osds[rest.substr(5)] = r;
            else if (rest.rfind("pools/", 0) == 0) v.pools[rest.substr(6)] = r;
        }
        return v;
    }

    View load_initialized() const {
        auto v = load();
        if (!v.config) fail(Errc::conflict, "Ceph is not set up in this cluster: hvctl ceph init --network CIDR first");
        return v;
    }

    void mkdirs() const {
        for (const char* d : {"", "/run", "/log", "/crash", "/mon", "/mgr", "/osd", "/pids", "/tmp"})
            fs::create_directories(o.dir + d);
    }

    // ceph.conf with `mons` (default: the ready ones) and the admin keyring, when changed.
    std::string conf_text(const View& v, std::vector<MonAddr> mons) const {
        ConfInput in;
        in.fsid = v.str(v.config->doc, "fsid");
        in.network = v.str(v.config->doc, "network");
        in.cluster_network = v.str(v.config->doc, "cluster_network");
        in.mons = std::move(mons);
        in.dir = o.dir;
        in.host = o.node;
        in.osd_memory_target_mb = o.osd_memory_target_mb;
        in.mon_data_avail_warn = o.mon_data_avail_warn;
        return render_ceph_conf(in);
    }

    void write_conf(const View& v, std::vector<MonAddr> mons) {
        std::lock_guard lk(conf_mu);  // the reconcile loop and the commands' tasks
        mkdirs();
        auto text = conf_text(v, std::move(mons));
        if (text != last_conf || !fs::exists(conf_path())) {
            util::write_file_atomic(conf_path(), text, 0644);
            last_conf = text;
        }
        auto admin = render_keyring("client.admin", v.key("admin"),
                                    {{"mds", "allow *"}, {"mgr", "allow *"}, {"mon", "allow *"}, {"osd", "allow *"}});
        if (read_file(admin_keyring()) != admin) write_private(admin_keyring(), admin);
    }

    std::unique_ptr<storage::Rados> admin(const View& v, std::vector<MonAddr> mons = {}, int timeout = 10) const {
        if (mons.empty()) mons = v.ready_mons();
        if (mons.empty()) fail(Errc::conflict, "Ceph has no monitor yet: hvctl ceph mon create first");
        storage::RadosOptions ro;
        ro.user = "admin";
        ro.key = v.key("admin");
        ro.mon_host = mon_host(mons);
        ro.mount_timeout = timeout;
        ro.who = "ceph";
        return std::make_unique<storage::Rados>(ro);
    }

    std::vector<std::string> base_argv(const char* prog) const {
        return {prog, "-c", conf_path(), "-f", "--setuser", "root", "--setgroup", "root"};
    }
    DaemonSpec mon_daemon() const {
        auto a = base_argv("ceph-mon");
        a.insert(a.end(), {"-i", o.node});
        return {"mon." + o.node, a, o.dir + "/log/mon." + o.node + ".out"};
    }
    DaemonSpec mgr_daemon() const {
        auto a = base_argv("ceph-mgr");
        a.insert(a.end(), {"-i", o.node});
        return {"mgr." + o.node, a, o.dir + "/log/mgr." + o.node + ".out"};
    }
    DaemonSpec osd_daemon(int id) const {
        auto a = base_argv("ceph-osd");
        a.insert(a.end(), {"-i", std::to_string(id)});
        return {fmt::format("osd.{}", id), a, fmt::format("{}/log/osd.{}.out", o.dir, id)};
    }

    // ---- the reconcile loop

    void trigger() {
        std::lock_guard lk(mu);
        dirty = true;
        cv.notify_all();
    }

    // The watch follows the membership: on the cluster's store while a member.
    void follow_store() {
        std::shared_ptr<cluster::Store> s;
        try {
            s = cluster.shared_store();
        } catch (const Error&) {
        }
        std::lock_guard lk(mu);
        if (s == watched) return;
        watch.reset();
        watched = s;
        if (!s) return;
        cluster::WatchCallbacks cb;
        cb.on_events = [this](const std::vector<cluster::WatchEvent>&) { trigger(); };
        cb.on_error = [this](const std::string& why) {
            spdlog::warn("ceph: the watch on {} ended ({}); watching again", kPrefix, why);
            std::lock_guard lk2(mu);
            watched.reset();  // the loop makes a new one
            dirty = true;
            cv.notify_all();
        };
        try {
            watch = s->watch(kPrefix, 0, std::move(cb));
        } catch (const Error& e) {
            spdlog::warn("ceph: cannot watch {}: {}", kPrefix, e.what());
            watched.reset();
        }
        dirty = true;
    }

    void loop() {
        std::unique_lock lk(mu);
        while (!quit) {
            cv.wait_for(lk, std::chrono::seconds(30), [&] { return dirty || quit; });
            if (quit) break;
            dirty = false;
            lk.unlock();
            bool again = false;
            util::guarded("ceph reconcile", [&] {
                follow_store();
                if (!reconcile()) again = true;
            });
            lk.lock();
            // Something failed (a store or cluster not reachable): again in 5 s.
            if (again && !quit) {
                cv.wait_for(lk, std::chrono::seconds(5), [&] { return quit; });
                dirty = true;
            }
        }
    }

    // One pass: true when everything is as the store says.
    bool reconcile() {
        std::shared_ptr<cluster::Store> s;
        try {
            s = cluster.shared_store();
        } catch (const Error&) {
            return true;  // in no cluster: nothing to do (daemons started before keep running)
        }
        View v;
        try {
            v = load();
        } catch (const Error& e) {
            spdlog::debug("ceph: cannot read the store: {}", e.what());
            return false;
        }
        if (!v.config) {
            sup.want({});
            return true;
        }
        bool ok = true;
        std::set<std::string> busy;
        {
            std::lock_guard lk(mu);
            busy = creating;
        }
        write_conf(v, v.ready_mons());
        // Daemons of the ready records of this host.
        std::vector<DaemonSpec> want;
        if (auto it = v.mons.find(o.node); it != v.mons.end() && v.str(it->second.doc, "state") == "ready") {
            if (fs::exists(mon_dir(o.node) + "/keyring")) want.push_back(mon_daemon());
            if (fs::exists(mgr_dir(o.node) + "/keyring")) want.push_back(mgr_daemon());
        }
        for (const auto& [uuid, r] : v.osds) {
            if (v.str(r.doc, "host") != o.node || v.str(r.doc, "state") != "ready") continue;
            int id = r.doc.value("id", -1);
            if (id >= 0 && fs::exists(osd_dir(id) + "/keyring")) want.push_back(osd_daemon(id));
        }
        sup.want(want);
        // Undo what an interrupted or failed command of this host left in state "creating".
        // (Plain loop variables: clang 14 cannot capture structured bindings.)
        for (const auto& kv : v.mons) {
            const std::string& node = kv.first;
            const Rec& r = kv.second;
            if (node == o.node && v.str(r.doc, "state") == "creating" && !busy.count(mon_key(node)))
                ok = guarded_undo("monitor " + node, [&] { undo_mon(v, r); }) && ok;
        }
        for (const auto& kv : v.osds) {
            const std::string& uuid = kv.first;
            const Rec& r = kv.second;
            if (v.str(r.doc, "host") == o.node && v.str(r.doc, "state") == "creating" && !busy.count(osd_key(uuid)))
                ok = guarded_undo("OSD " + uuid, [&] { undo_osd(v, uuid, r); }) && ok;
        }
        for (const auto& kv : v.pools) {
            const std::string& name = kv.first;
            const Rec& r = kv.second;
            if (v.str(r.doc, "host") == o.node && v.str(r.doc, "state") == "creating" && !busy.count(pool_key(name)))
                ok = guarded_undo("pool " + name, [&] { undo_pool(v, name, r); }) && ok;
        }
        // An hv storage pool for each ready Ceph pool made with one.
        for (const auto& [name, r] : v.pools) {
            if (v.str(r.doc, "state") != "ready" || v.str(r.doc, "storage_pool").empty()) continue;
            try {
                ensure_storage_pool(v, v.str(r.doc, "storage_pool"), name);
            } catch (const Error& e) {
                spdlog::warn("ceph: adding the storage pool {}: {}", name, e.what());
                ok = false;
            }
        }
        return ok;
    }

    template <typename F>
    bool guarded_undo(const std::string& what, F&& f) {
        try {
            spdlog::info("ceph: undoing the interrupted creation of {}", what);
            f();
            return true;
        } catch (const std::exception& e) {
            spdlog::warn("ceph: undoing {}: {} (tried again)", what, e.what());
            return false;
        }
    }

    void del_record(const std::string& key, std::int64_t rev) {
        auto s = store();
        guarded([&] { return s->txn({cluster::Compare::mod_revision_is(key, rev)}, {cluster::Op::del(key)}); });
    }

    void undo_mon(const View& v, const Rec& r) {
        sup.stop("mgr." + o.node);
        sup.stop("mon." + o.node);
        auto others = v.ready_mons();
        if (!others.empty()) {
            try {
                auto a = admin(v, others, 5);
                try {
                    a->mon_command({{"prefix", "mon remove"}, {"name", o.node}}, "removing the monitor");
                } catch (const Error& e) {
                    if (e.code() != Errc::not_found && e.code() != Errc::invalid_input) throw;
                }
                try {
                    a->mon_command({{"prefix", "auth del"}, {"entity", "mgr." + o.node}}, "removing the manager's key");
                } catch (const Error& e) {
                    if (e.code() != Errc::not_found && e.code() != Errc::invalid_input) throw;
                }
            } catch (const Error& e) {
                if (e.code() == Errc::unavailable) throw;
            }
        }
        std::error_code ec;
        fs::remove_all(mon_dir(o.node), ec);
        fs::remove_all(mgr_dir(o.node), ec);
        fs::remove_all(o.dir + "/mon/.partial-" + o.node, ec);
        del_record(mon_key(o.node), r.rev);
    }

    void undo_osd(const View& v, const std::string& uuid, const Rec& r) {
        int id = r.doc.value("id", -1);
        auto a = admin(v, {}, 5);
        // The id Ceph gave the uuid, also when hvd died before it wrote it down.
        json dump = json::parse(a->mon_command({{"prefix", "osd dump"}}, "reading the OSD map"), nullptr, false);
        if (dump.is_object() && dump.contains("osds") && dump["osds"].is_array())
            for (const auto& e : dump["osds"])
                if (e.is_object() && e.value("uuid", "") == uuid) id = e.value("osd", -1);
        if (id >= 0) {
            sup.stop(fmt::format("osd.{}", id));
            try {
                a->mgr_command({{"prefix", "osd purge"}, {"id", id}, {"yes_i_really_mean_it", true}}, "removing the OSD");
            } catch (const Error& e) {
                if (e.code() != Errc::not_found) throw;
            }
            std::error_code ec;
            fs::remove_all(osd_dir(id), ec);
        }
        std::error_code ec;
        fs::remove_all(o.dir + "/osd/.partial-" + uuid, ec);
        del_record(osd_key(uuid), r.rev);
    }

    void undo_pool(const View& v, const std::string& name, const Rec& r) {
        auto a = admin(v, {}, 5);
        try {
            a->mon_command({{"prefix", "osd pool delete"}, {"pool", name}, {"pool2", name},
                            {"yes_i_really_really_mean_it", true}},
                           "removing the half-made pool");
        } catch (const Error& e) {
            if (e.code() != Errc::not_found) throw;
        }
        del_record(pool_key(name), r.rev);
    }

    void ensure_storage_pool(const View& v, const std::string& pool, const std::string& ceph_pool) {
        auto key = v.key("hv");
        if (key.empty()) return;
        auto kr = render_keyring("client.hv", key);
        if (read_file(hv_keyring()) != kr) write_private(hv_keyring(), kr);
        try {
            pools.get(pool);
            return;  // there (made by hand or before): left as it is
        } catch (const Error& e) {
            if (e.code() != Errc::not_found) throw;
        }
        api::PoolSpec spec;
        spec.name = pool;
        spec.type = "rbd";
        for (const auto& m : v.ready_mons()) spec.monitors.push_back(m.address);
        spec.rbd_pool = ceph_pool;
        spec.user = "hv";
        spec.keyring = hv_keyring();
        pools.add(spec);
        spdlog::info("ceph: added the storage pool {} (Ceph pool {})", pool, ceph_pool);
    }

    // ---- commands

    struct Creating {
        Impl& s;
        std::string key;
        Creating(Impl& s, std::string k) : s(s), key(std::move(k)) {
            std::lock_guard lk(s.mu);
            if (!s.creating.insert(key).second) fail(Errc::conflict, "{} is being created already", key);
        }
        ~Creating() {
            {
                std::lock_guard lk(s.mu);
                s.creating.erase(key);
            }
            s.trigger();
        }
    };

    // Puts a "creating" record: absent before, and nothing else of Ceph's state changed since
    // `v` was read when `config_guard` (so two commands that must not overlap, such as two
    // first monitors, never both succeed).
    std::int64_t put_creating(const View& v, const std::string& key, const json& doc, bool config_guard,
                              const std::string& conflict_text) {
        auto s = store();
        std::vector<cluster::Compare> cmp{cluster::Compare::absent(key)};
        std::vector<cluster::Op> ops{cluster::Op::put(key, doc.dump())};
        if (config_guard) {
            cmp.push_back(cluster::Compare::mod_revision_is(kConfig, v.config->rev));
            ops.push_back(cluster::Op::put(kConfig, v.config->doc.dump()));
        }
        auto r = guarded([&] { return s->txn(cmp, ops); });
        if (!r.succeeded) fail(Errc::conflict, "{}", conflict_text);
        return r.revision;
    }

    // The record again as "ready" (guarded by its revision).
    void put_ready(const std::string& key, json doc, std::int64_t rev) {
        doc["state"] = "ready";
        auto s = store();
        auto r = guarded([&] {
            return s->txn({cluster::Compare::mod_revision_is(key, rev)}, {cluster::Op::put(key, doc.dump())});
        });
        if (!r.succeeded) fail(Errc::conflict, "{} changed while it was being created", key);
    }

    void mon_checks(const View& v, std::string* address) const {
        if (v.mons.count(o.node))
            fail(Errc::conflict, "host {} has a monitor already (one monitor per host)", o.node);
        for (const auto& [n, r] : v.mons)
            if (v.str(r.doc, "state") == "creating")
                fail(Errc::conflict, "the monitor on {} is being created; try again when it is done", n);
        if (v.mons.size() >= 7) fail(Errc::conflict, "Ceph has {} monitors already (at most 7)", v.mons.size());
        auto net = v.str(v.config->doc, "network");
        auto addr = local_address_in(net);
        if (addr.empty())
            fail(Errc::conflict, "host {} has no address in Ceph's network {} (hvctl ceph init --network)", o.node, net);
        if (address) *address = addr;
    }

    api::CephMon create_mon(util::Progress& p) {
        auto v = load_initialized();
        std::string addr;
        mon_checks(v, &addr);
        bool first = v.ready_mons().empty();
        Creating hold(*this, mon_key(o.node));
        json rec{{"name", o.node}, {"host", o.node}, {"address", addr}, {"state", "creating"}, {"created", now_s()}};
        auto rev = put_creating(v, mon_key(o.node), rec, true,
                                "Ceph's monitors changed meanwhile (another monitor is being created); try again");
        try {
            p.step(5, first ? "bootstrapping the first monitor" : "getting the monitor map");
            auto mons = v.ready_mons();
            mons.push_back({o.node, addr});
            write_conf(v, v.ready_mons());
            auto tmp = o.dir + "/tmp";
            // mkfs reads a ceph.conf of its own that names the new monitor too (the host's
            // ceph.conf lists ready monitors only and the reconcile loop may rewrite it).
            auto mkfs_conf = tmp + "/ceph.conf.mon-" + o.node;
            util::write_file_atomic(mkfs_conf, conf_text(v, mons), 0644);
            auto monmap = tmp + "/monmap." + o.node;
            auto keyring = tmp + "/mon-keyring." + o.node;
            std::string kr = render_keyring("mon.", v.key("mon"), {{"mon", "allow *"}});
            if (first) {
                kr += render_keyring("client.admin", v.key("admin"),
                                     {{"mds", "allow *"}, {"mgr", "allow *"}, {"mon", "allow *"}, {"osd", "allow *"}});
                std::error_code ec;
                fs::remove(monmap, ec);
                util::run_checked({"monmaptool", "--create", "--fsid", v.str(v.config->doc, "fsid"), "--addv", o.node,
                                   fmt::format("[v2:{0}:3300,v1:{0}:6789]", addr), monmap},
                                  std::chrono::seconds(30));
            } else {
                auto a = admin(v);
                auto map = a->mon_command_binary({{"prefix", "mon getmap"}}, "reading the monitor map");
                write_private(monmap, map);
            }
            write_private(keyring, kr);
            auto partial = o.dir + "/mon/.partial-" + o.node;
            std::error_code ec;
            fs::remove_all(partial, ec);
            p.step(15, "making the monitor's store (ceph-mon --mkfs)");
            util::run_checked({"ceph-mon", "-c", mkfs_conf, "--mkfs", "-i", o.node, "--mon-data", partial, "--monmap",
                               monmap, "--keyring", keyring, "--setuser", "root", "--setgroup", "root"},
                              std::chrono::seconds(60));
            fs::remove(monmap, ec);
            fs::remove(keyring, ec);
            fs::remove(mkfs_conf, ec);
            fs::remove_all(mon_dir(o.node), ec);
            fs::rename(partial, mon_dir(o.node));
            put_ready(mon_key(o.node), rec, rev);
            rev = 0;
            trigger();
            p.step(30, "waiting for the monitor to join the quorum");
            auto until = std::chrono::steady_clock::now() + std::chrono::seconds(o.mon_timeout_s);
            std::string last;
            for (;;) {
                if (p.cancelled()) fail(Errc::cancelled, "cancelled");
                try {
                    auto a = admin(v, mons, 5);
                    json q = json::parse(a->mon_command({{"prefix", "quorum_status"}}, "reading the quorum"), nullptr, false);
                    bool in = false;
                    if (q.is_object() && q.contains("quorum_names") && q["quorum_names"].is_array())
                        for (const auto& n : q["quorum_names"]) in = in || (n.is_string() && n.get<std::string>() == o.node);
                    if (in) break;
                    last = "not in the quorum yet";
                } catch (const Error& e) {
                    last = e.what();
                }
                if (std::chrono::steady_clock::now() > until)
                    fail(Errc::timeout, "the monitor on {} did not join the quorum within {} s: {} (log: {}/log/)", o.node,
                         o.mon_timeout_s, last, o.dir);
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
            }
            p.step(70, "starting the manager");
            auto a = admin(v, mons, 10);
            auto out = a->mon_command({{"prefix", "auth get-or-create"},
                                       {"entity", "mgr." + o.node},
                                       {"caps", {"mon", "allow profile mgr", "osd", "allow *", "mds", "allow *"}}},
                                      "making the manager's key");
            fs::create_directories(mgr_dir(o.node));
            write_private(mgr_dir(o.node) + "/keyring", render_keyring("mgr." + o.node, key_of_auth_answer(out, "mgr")));
            trigger();
            if (!sup.wait_running("mgr." + o.node, std::chrono::seconds(20)))
                fail(Errc::internal, "the manager on {} did not start (log: {}/log/mgr.{}.out)", o.node, o.dir, o.node);
            p.step(100, "monitor and manager running");
            return api::CephMon{o.node, o.node, addr, true};
        } catch (...) {
            util::guarded("undoing the monitor", [&] {
                auto now = load();
                if (auto it = now.mons.find(o.node); it != now.mons.end()) undo_mon(now, it->second);
            });
            throw;
        }
    }

    void osd_checks(const View& v, const api::CephOsdCreate& in) const {
        if (v.ready_mons().empty()) fail(Errc::conflict, "Ceph has no monitor yet: hvctl ceph mon create first");
        for (const auto& [uuid, r] : v.osds) {
            if (v.str(r.doc, "host") != o.node) continue;
            for (const auto* d : {&in.device, &in.db_device}) {
                if (d->empty()) continue;
                if (v.str(r.doc, "device") == *d || v.str(r.doc, "db_device") == *d)
                    fail(Errc::conflict, "{} is used by osd.{} of this cluster already", *d, r.doc.value("id", -1));
            }
        }
        for (const auto* d : {&in.device, &in.db_device}) {
            if (d->empty()) continue;
            auto c = check_device(*d);
            if (!c.exists) fail(Errc::not_found, "host {} has no {}", o.node, *d);
            if (!c.block && !c.regular) fail(Errc::invalid_input, "{} is neither a block device nor a file", *d);
            if (!c.in_use.empty()) fail(Errc::conflict, "{} is in use: {}", *d, c.in_use);
            if (!c.signature.empty() && !in.zap)
                fail(Errc::conflict, "{} holds {} ({}); --zap wipes it", *d, c.signature,
                     c.signature == "ceph_bluestore" ? "an OSD's BlueStore" : "data");
            if (c.regular) {
                struct stat st {};
                ::stat(d->c_str(), &st);
                std::uint64_t min = d == &in.device ? (2ull << 30) : (1ull << 30);
                if (static_cast<std::uint64_t>(st.st_size) < min)
                    fail(Errc::invalid_input, "{} is {} bytes: an OSD's {} needs at least {} GiB", *d, st.st_size,
                         d == &in.device ? "device" : "DB device", min >> 30);
            }
        }
    }

    api::CephOsd create_osd(const api::CephOsdCreate& in, util::Progress& p) {
        auto v = load_initialized();
        osd_checks(v, in);
        auto uuid = new_uuid();
        Creating hold(*this, osd_key(uuid));
        json rec{{"uuid", uuid},          {"id", -1},          {"host", o.node},   {"device", in.device},
                 {"db_device", in.db_device}, {"state", "creating"}, {"created", now_s()}};
        auto rev = put_creating(v, osd_key(uuid), rec, false, "an OSD with this uuid exists");
        try {
            if (in.zap) {
                p.step(5, "wiping " + in.device);
                zap(in.device);
                if (!in.db_device.empty()) zap(in.db_device);
            }
            write_conf(v, v.ready_mons());
            p.step(10, "registering the OSD with the monitors");
            auto a = admin(v);
            auto secret = generate_key();
            auto out = a->mon_command({{"prefix", "osd new"}, {"uuid", uuid}}, "creating the OSD (osd new)",
                                      json{{"cephx_secret", secret}}.dump());
            json ans = json::parse(out, nullptr, false);
            int id = ans.is_object() && ans.contains("osdid") && ans["osdid"].is_number_integer() ? ans["osdid"].get<int>() : -1;
            if (id < 0) fail(Errc::internal, "the monitors gave no OSD id (answer: {})", out.substr(0, 200));
            rec["id"] = id;
            {
                auto s = store();
                auto r = guarded([&] {
                    return s->txn({cluster::Compare::mod_revision_is(osd_key(uuid), rev)},
                                  {cluster::Op::put(osd_key(uuid), rec.dump())});
                });
                if (!r.succeeded) fail(Errc::conflict, "the OSD's record changed while it was being created");
                rev = r.revision;
            }
            auto partial = o.dir + "/osd/.partial-" + uuid;
            std::error_code ec;
            fs::remove_all(partial, ec);
            fs::create_directories(partial);
            write_private(partial + "/keyring", render_keyring(fmt::format("osd.{}", id), secret));
            p.step(20, fmt::format("making BlueStore on {} (ceph-osd --mkfs)", in.device));
            std::vector<std::string> mkfs{"ceph-osd", "-c", conf_path(), "-i", std::to_string(id), "--mkfs",
                                          "--osd-uuid", uuid, "--osd-data", partial, "--keyring", partial + "/keyring",
                                          "--bluestore-block-path", in.device, "--bluestore-block-create=false",
                                          "--setuser", "root", "--setgroup", "root"};
            if (!in.db_device.empty()) {
                mkfs.insert(mkfs.end(), {"--bluestore-block-db-path", in.db_device, "--bluestore-block-db-create=false"});
            }
            auto r = util::run_command(mkfs, std::chrono::seconds(300));
            if (r.exit_status != 0) {
                auto err = r.err.size() > 600 ? r.err.substr(r.err.size() - 600) : r.err;
                fail(Errc::internal, "ceph-osd --mkfs on {} failed: {}", in.device, err);
            }
            fs::remove_all(osd_dir(id), ec);
            fs::rename(partial, osd_dir(id));
            put_ready(osd_key(uuid), rec, rev);
            rev = 0;
            trigger();
            p.step(60, fmt::format("waiting for osd.{} to come up", id));
            auto until = std::chrono::steady_clock::now() + std::chrono::seconds(o.mon_timeout_s);
            for (;;) {
                if (p.cancelled()) fail(Errc::cancelled, "cancelled");
                json dump = json::parse(a->mon_command({{"prefix", "osd dump"}}, "reading the OSD map"), nullptr, false);
                bool up = false;
                if (dump.is_object() && dump.contains("osds") && dump["osds"].is_array())
                    for (const auto& e : dump["osds"])
                        if (e.is_object() && e.value("osd", -1) == id) up = e.value("up", 0) == 1;
                if (up) break;
                if (std::chrono::steady_clock::now() > until)
                    fail(Errc::timeout, "osd.{} did not come up within {} s (log: {}/log/osd.{}.out)", id, o.mon_timeout_s,
                         o.dir, id);
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
            }
            p.step(100, fmt::format("osd.{} up", id));
            return api::CephOsd{id, o.node, in.device, in.db_device, true, true};
        } catch (...) {
            util::guarded("undoing the OSD", [&] {
                auto now = load();
                if (auto it = now.osds.find(uuid); it != now.osds.end()) undo_osd(now, uuid, it->second);
            });
            throw;
        }
    }

    std::string failure_domain(const View& v, const api::CephPoolCreate& in) const {
        auto hosts = v.osd_hosts();
        int n = static_cast<int>(hosts.size());
        if (n >= in.size) return "host";
        if (!in.force)
            fail(Errc::conflict,
                 "size {} needs OSDs on {} hosts, and {} {} OSDs; --force places copies on OSDs of the same host "
                 "(losing that host then loses them all)",
                 in.size, in.size, n, n == 1 ? "host has" : "hosts have");
        return "osd";
    }

    void pool_checks(const View& v, const api::CephPoolCreate& in) const {
        if (v.ready_mons().empty()) fail(Errc::conflict, "Ceph has no monitor yet: hvctl ceph mon create first");
        if (v.osd_hosts().empty()) fail(Errc::conflict, "Ceph has no OSD yet: hvctl ceph osd create DEVICE first");
        if (v.pools.count(in.name)) fail(Errc::conflict, "Ceph pool '{}' exists already", in.name);
        failure_domain(v, in);
        if (in.add_storage) {
            try {
                pools.get(in.name);
                fail(Errc::conflict, "this host has a storage pool '{}' already", in.name);
            } catch (const Error& e) {
                if (e.code() != Errc::not_found) throw;
            }
        }
    }

    api::CephPool create_pool(const api::CephPoolCreate& in, util::Progress& p) {
        auto v = load_initialized();
        pool_checks(v, in);
        auto domain = failure_domain(v, in);
        Creating hold(*this, pool_key(in.name));
        json rec{{"name", in.name},
                 {"size", in.size},
                 {"min_size", in.min_size},
                 {"pg_num", in.pg_num},
                 {"failure_domain", domain},
                 {"storage_pool", in.add_storage ? in.name : ""},
                 {"host", o.node},
                 {"state", "creating"},
                 {"created", now_s()}};
        auto rev = put_creating(v, pool_key(in.name), rec, false, fmt::format("Ceph pool '{}' exists already", in.name));
        try {
            auto a = admin(v);
            p.step(10, "creating the pool");
            std::string rule = domain == "host" ? "hv-host" : "hv-osd";
            a->mon_command({{"prefix", "osd crush rule create-replicated"}, {"name", rule}, {"root", "default"}, {"type", domain}},
                           "making the CRUSH rule " + rule);
            try {
                a->mon_command({{"prefix", "osd pool create"}, {"pool", in.name}, {"pg_num", in.pg_num},
                                {"pgp_num", in.pg_num}, {"pool_type", "replicated"}, {"rule", rule}},
                               "creating the Ceph pool");
            } catch (const Error& e) {
                if (e.code() == Errc::conflict) fail(Errc::conflict, "Ceph has a pool '{}' already (not made by hv)", in.name);
                throw;
            }
            a->mon_command({{"prefix", "osd pool set"}, {"pool", in.name}, {"var", "size"}, {"val", std::to_string(in.size)}},
                           "setting the pool's size");
            a->mon_command({{"prefix", "osd pool set"}, {"pool", in.name}, {"var", "min_size"}, {"val", std::to_string(in.min_size)}},
                           "setting the pool's min_size");
            a->mon_command({{"prefix", "osd pool application enable"}, {"pool", in.name}, {"app", "rbd"}},
                           "enabling rbd on the pool");
            // client.hv: what QEMU and the rbd pools use (the rbd profile on every pool).
            if (v.key("hv").empty()) {
                auto out = a->mon_command({{"prefix", "auth get-or-create"},
                                           {"entity", "client.hv"},
                                           // `osd blocklist`: HA fences a failed host's clients and lifts that again
                                           // (profile rbd may only add entries).
                                           {"caps", {"mon", "profile rbd, allow command \"osd blocklist\"", "osd",
                                                     "profile rbd", "mgr", "profile rbd"}}},
                                          "making the key of client.hv");
                auto key = key_of_auth_answer(out, "client.hv");
                for (int attempt = 0;; ++attempt) {
                    auto now = load_initialized();
                    if (!now.key("hv").empty()) break;
                    auto doc = now.config->doc;
                    doc["keys"]["hv"] = key;
                    auto s = store();
                    auto r = guarded([&] {
                        return s->txn({cluster::Compare::mod_revision_is(kConfig, now.config->rev)},
                                      {cluster::Op::put(kConfig, doc.dump())});
                    });
                    if (r.succeeded) break;
                    if (attempt > 5) fail(Errc::conflict, "Ceph's configuration keeps changing; try again");
                }
            }
            put_ready(pool_key(in.name), rec, rev);
            rev = 0;
            if (in.add_storage) {
                p.step(60, "adding the storage pool " + in.name);
                ensure_storage_pool(load_initialized(), in.name, in.name);
            }
            p.step(100, "pool ready");
            return api::CephPool{in.name, in.size, in.min_size, in.pg_num, domain, in.add_storage ? in.name : ""};
        } catch (...) {
            util::guarded("undoing the pool", [&] {
                auto now = load();
                if (auto it = now.pools.find(in.name); it != now.pools.end() && now.str(it->second.doc, "state") == "creating")
                    undo_pool(now, in.name, it->second);
            });
            throw;
        }
    }

    api::CephStatus init(const api::CephInit& in) {
        auto v = load();
        if (v.config)
            fail(Errc::conflict, "Ceph is set up already in this cluster (fsid {}, network {})", v.str(v.config->doc, "fsid"),
                 v.str(v.config->doc, "network"));
        json doc{{"fsid", new_uuid()},
                 {"network", in.network},
                 {"cluster_network", in.cluster_network},
                 {"created", now_s()},
                 {"keys", {{"mon", generate_key()}, {"admin", generate_key()}}}};
        auto s = store();
        auto r = guarded([&] { return s->txn({cluster::Compare::absent(kConfig)}, {cluster::Op::put(kConfig, doc.dump())}); });
        if (!r.succeeded) fail(Errc::conflict, "Ceph was set up meanwhile by another host");
        trigger();
        return status();
    }

    api::CephStatus status() const {
        api::CephStatus st;
        auto v = load();
        if (!v.config) {
            st.summary.push_back("Ceph is not set up in this cluster (hvctl ceph init --network CIDR)");
            return st;
        }
        st.initialized = true;
        st.fsid = v.str(v.config->doc, "fsid");
        st.network = v.str(v.config->doc, "network");
        st.cluster_network = v.str(v.config->doc, "cluster_network");
        for (const auto& [n, r] : v.mons)
            if (v.str(r.doc, "state") == "ready") st.mons.push_back({n, v.str(r.doc, "host"), v.str(r.doc, "address"), false});
        std::map<int, std::pair<std::string, json>> osd_recs;
        for (const auto& [u, r] : v.osds)
            if (v.str(r.doc, "state") == "ready") osd_recs[r.doc.value("id", -1)] = {u, r.doc};
        for (const auto& [name, r] : v.pools)
            if (v.str(r.doc, "state") == "ready")
                st.pools.push_back({name, r.doc.value("size", 0), r.doc.value("min_size", 0), r.doc.value("pg_num", 0),
                                    v.str(r.doc, "failure_domain"), v.str(r.doc, "storage_pool")});
        if (st.mons.empty()) {
            st.summary.push_back("no monitor yet (hvctl ceph mon create)");
            return st;
        }
        storage::CephHealth h;
        storage::CephTree tree;
        try {
            auto a = admin(v, {}, 5);
            h = storage::parse_ceph_status(a->mon_command({{"prefix", "status"}}, "reading the status"));
            tree = storage::parse_osd_tree(a->mon_command({{"prefix", "osd tree"}}, "reading the OSD tree"));
        } catch (const Error& e) {
            if (e.code() != Errc::unavailable && e.code() != Errc::timeout && e.code() != Errc::invalid_input) throw;
            st.summary.push_back(fmt::format("no monitor answers: {}", e.what()));
            for (const auto& [id, rec] : osd_recs)
                st.osd_list.push_back({id, rec.second.value("host", ""), rec.second.value("device", ""),
                                       rec.second.value("db_device", ""), false, false});
            return st;
        }
        st.health = h.status;
        for (auto& m : st.mons)
            for (const auto& q : h.quorum_names) m.in_quorum = m.in_quorum || q == m.name;
        st.mons_in_quorum = static_cast<int>(h.quorum_names.size());
        st.osds = h.osds;
        st.osds_up = h.osds_up;
        st.osds_in = h.osds_in;
        st.osd_hosts = tree.hosts_with_osds;
        for (const auto& t : tree.osds) {
            api::CephOsd o{t.id, t.host, "", "", t.up, t.in};
            if (auto it = osd_recs.find(t.id); it != osd_recs.end()) {
                o.device = it->second.second.value("device", "");
                o.db_device = it->second.second.value("db_device", "");
                if (o.host.empty()) o.host = it->second.second.value("host", "");
            }
            st.osd_list.push_back(o);
        }
        st.pgs = h.pgs;
        st.pgs_active_clean = h.pgs_active_clean;
        st.pgs_inactive = h.pgs_inactive;
        st.degraded_objects = h.degraded_objects;
        st.degraded_total = h.degraded_total;
        st.recovering_bytes_per_sec = h.recovering_bytes_per_sec;
        st.raw_total = h.bytes_total;
        st.raw_used = h.bytes_used;
        st.raw_avail = h.bytes_avail;
        int quorum_needed = static_cast<int>(st.mons.size()) / 2 + 1;
        std::string words = fmt::format("{}: {} of {} monitors in quorum{}, {} of {} OSDs up and {} in on {} {}, {} of {} "
                                        "placement groups active+clean",
                                        h.status.empty() ? "health unknown" : h.status, st.mons_in_quorum, st.mons.size(),
                                        st.mons_in_quorum < quorum_needed ? " (NO QUORUM)" : "", h.osds_up, h.osds, h.osds_in,
                                        st.osd_hosts, st.osd_hosts == 1 ? "host" : "hosts", h.pgs_active_clean, h.pgs);
        st.summary.push_back(words);
        for (auto& w : storage::health_words(h)) st.summary.push_back(std::move(w));
        for (const auto& p : st.pools) {
            if (p.failure_domain == "osd")
                st.warnings.push_back(fmt::format("pool {}: copies are placed on OSDs, not hosts (made with --force): losing "
                                                  "one host can lose data",
                                                  p.name));
            else if (p.size > 1 && st.osd_hosts == p.size)
                st.warnings.push_back(fmt::format("pool {}: {} copies on exactly {} hosts: losing one host leaves its data "
                                                  "degraded with nowhere to heal until the host is back",
                                                  p.name, p.size, st.osd_hosts));
            else if (st.osd_hosts < p.size)
                st.warnings.push_back(fmt::format("pool {}: {} copies but only {} hosts with OSDs: not every copy can be "
                                                  "placed (degraded)",
                                                  p.name, p.size, st.osd_hosts));
        }
        return st;
    }
};

CephService::CephService(CephOptions o, cluster::Cluster& cluster, storage::PoolManager& pools)
    : impl_(std::make_unique<Impl>(std::move(o), cluster, pools)) {}

CephService::~CephService() { stop(); }

void CephService::start() {
    std::lock_guard lk(impl_->mu);
    if (impl_->running) return;
    impl_->running = true;
    impl_->quit = false;
    impl_->sup.start();
    impl_->thread = std::thread([this] { impl_->loop(); });
}

void CephService::stop() {
    {
        std::lock_guard lk(impl_->mu);
        if (!impl_->running) return;
        impl_->quit = true;
        impl_->running = false;
        impl_->cv.notify_all();
    }
    if (impl_->thread.joinable()) impl_->thread.join();
    std::lock_guard lk(impl_->mu);
    impl_->watch.reset();
    impl_->watched.reset();
}

void CephService::membership_changed() { impl_->trigger(); }

api::CephStatus CephService::init(const api::CephInit& in) { return impl_->init(in); }
void CephService::precheck_mon() const {
    auto v = impl_->load_initialized();
    impl_->mon_checks(v, nullptr);
}
void CephService::precheck_osd(const api::CephOsdCreate& in) const { impl_->osd_checks(impl_->load_initialized(), in); }
void CephService::precheck_pool(const api::CephPoolCreate& in) const { impl_->pool_checks(impl_->load_initialized(), in); }
api::CephMon CephService::create_mon(util::Progress& p) { return impl_->create_mon(p); }
api::CephOsd CephService::create_osd(const api::CephOsdCreate& in, util::Progress& p) { return impl_->create_osd(in, p); }
api::CephPool CephService::create_pool(const api::CephPoolCreate& in, util::Progress& p) { return impl_->create_pool(in, p); }
api::CephStatus CephService::status() const { return impl_->status(); }

}  // namespace hv::ceph
