// The "rbd" backend: volumes are RBD images in a pool of a Ceph cluster (hv's own, or one the
// site runs), through the librados/librbd C API; nothing parses Ceph's command-line output.
//
//  - One librados connection per pool object, made on first use (cephx user `user`, its
//    keyring file, the monitors of the spec) and dropped after an error that says the
//    cluster is gone, so the next call connects again. Ceph's own logging is off (hvd logs).
//  - Formats: raw only (QEMU's rbd driver; qcow2 on top of RBD is refused, 501).
//    Provisioning: thin (RBD's own) and eager-zeroed (every object written with zeros, with
//    progress and cancel, several writes in flight). lazy-zeroed has no meaning on RBD: 501.
//  - Crash safety like the file pools': an image is made under the hidden name
//    ".partial.<name>" and renamed only when complete; leftovers are removed at hvd start
//    (remove_leftovers) or by the intent record's recovery (remove_partial).
//  - The provisioning mode is the image metadata "hv.provision".
//  - disk_source: a network source rbd "<pool>/<image>" with the monitors and the cephx user,
//    authenticated with the libvirt secret rbd_secret_uuid(pool) (defined by virt's pool
//    mirror with the keyring's key).
#include <rados/librados.h>
#include <rbd/librbd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <chrono>
#include <deque>
#include <optional>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "ceph_keyring.hpp"
#include "ceph_status.hpp"
#include "rados.hpp"
#include "hv/api/size.hpp"
#include "hv/error.hpp"
#include "hv/storage/pool.hpp"
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace hv::storage {

namespace {

constexpr const char* kPartial = ".partial.";  // + host tag + "." + volume name
constexpr const char* kProvisionKey = "hv.provision";
constexpr const char* kBaseSnap = "hv-base";   // the snapshot linked clones of a volume are made from
constexpr std::uint64_t kZeroChunk = 4 * 1024 * 1024;  // RBD's default object size
constexpr int kZeroInFlight = 8;

std::string monitors_text(const api::PoolSpec& s) {
    std::string out;
    for (const auto& m : s.monitors) {
        auto h = api::parse_monitor(m);
        std::string host = h.name.find(':') != std::string::npos ? "[" + h.name + "]" : h.name;
        out += (out.empty() ? "" : ",") + (h.port ? fmt::format("{}:{}", host, h.port) : host);
    }
    return out;
}

// A librados connection and the pool's I/O context. Every operation holds its own reference
// for as long as it runs, so dropping the pool's (after a lost cluster) never frees handles in
// use; the last holder shuts it down.
struct Conn {
    std::unique_ptr<Rados> rados;
    rados_ioctx_t io = nullptr;
    Conn() = default;
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;
    ~Conn() {
        if (io) rados_ioctx_destroy(io);
    }
};

int no_progress(uint64_t, uint64_t, void*) { return 0; }  // librbd calls its callback unchecked

// The host's name, in the names of images being made (a shared pool: each host sweeps only its
// own leftovers).
std::string host_tag() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "host";
    std::string h(buf);
    for (auto& c : h)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) c = '_';
    return h;
}

// An open image, closed on scope exit.
class Image {
public:
    Image(rados_ioctx_t io, const std::string& name, bool read_only, const std::string& pool) {
        int r = read_only ? rbd_open_read_only(io, name.c_str(), &img_, nullptr) : rbd_open(io, name.c_str(), &img_, nullptr);
        if (r < 0) ceph_fail(r, fmt::format("pool '{}': opening image {}", pool, name));
    }
    ~Image() {
        if (img_) rbd_close(img_);
    }
    Image(const Image&) = delete;
    Image& operator=(const Image&) = delete;
    rbd_image_t get() const { return img_; }

private:
    rbd_image_t img_ = nullptr;
};

// librbd's progress callbacks -> hv's Progress (a non-zero return cancels the operation).
struct ProgressBridge {
    util::Progress& p;
    std::string what;
    int last = -1;
    static int cb(uint64_t done, uint64_t total, void* self) {
        auto* b = static_cast<ProgressBridge*>(self);
        int pct = total ? static_cast<int>(done * 100 / total) : 0;
        if (pct != b->last) {
            b->last = pct;
            b->p.update(pct, fmt::format("{} ({}%)", b->what, pct));
        }
        return b->p.cancelled() ? -ECANCELED : 0;
    }
};

int sum_extent(uint64_t, size_t len, int exists, void* arg) {
    if (exists) *static_cast<std::uint64_t*>(arg) += len;
    return 0;
}

class RbdPool final : public StoragePool {
public:
    explicit RbdPool(const api::PoolSpec& s) : spec_(s), host_tag_(host_tag()) {
        if (spec_.rbd_pool.empty()) spec_.rbd_pool = "rbd";
    }
    ~RbdPool() override = default;

    const api::PoolSpec& spec() const override { return spec_; }
    api::PoolCaps caps() const override { return rbd_caps(); }

    void check() const override { conn(); }

    FsUsage usage() const override {
        auto c = conn();
        rados_cluster_stat_t st{};
        int r = rados_cluster_stat(c->rados->handle(), &st);
        if (r < 0) failed(r, "reading the cluster's usage");
        // Raw bytes over the pool's replicas: what the pool can still hold.
        std::uint64_t copies = std::max<std::uint64_t>(1, replicas());
        FsUsage u;
        u.capacity = st.kb * 1024 / copies;
        u.used = st.kb_used * 1024 / copies;
        u.free = st.kb_avail * 1024 / copies;
        return u;
    }

    std::vector<std::string> health() const override {
        auto words = health_words(parse_ceph_status(mon_command({{"prefix", "status"}}, "reading the Ceph cluster's status")));
        // Honest redundancy: as many hosts as copies leaves no host to heal onto.
        auto tree = parse_osd_tree(mon_command({{"prefix", "osd tree"}}, "reading the Ceph OSD tree"));
        int size = replicas();
        if (size > 1 && tree.hosts_with_osds == size)
            words.push_back(fmt::format("{} copies on exactly {} hosts: losing one host leaves its data degraded with "
                                        "nowhere to heal until the host is back",
                                        size, size));
        return words;
    }

    // The whole address (port 0, nonce 0) is blocklisted: every Ceph client of that host,
    // QEMU's librbd among them, is refused by the OSDs from now on. An entry expires after a
    // day if nobody lifts it (a host that never returns).
    // On a connection of its own: the pool's may still be bound to a monitor that died with
    // the failed host (and wait its 15 s timeout); a new one hunts a monitor that answers.
    std::string fence_clients(const std::string& address) override {
        fresh_mon_command({{"prefix", "osd blocklist"}, {"blocklistop", "add"}, {"addr", address + ":0/0"}, {"expire", 86400.0}},
                          fmt::format("blocklisting the Ceph clients at {}", address));
        return fmt::format("pool {}: Ceph clients at {} blocklisted", spec_.name, address);
    }
    void unfence_clients(const std::string& address) override {
        fresh_mon_command({{"prefix", "osd blocklist"}, {"blocklistop", "rm"}, {"addr", address + ":0/0"}},
                          fmt::format("lifting the blocklist of the Ceph clients at {}", address));
    }
    void fresh_mon_command(nlohmann::json cmd, const std::string& what) const {
        RadosOptions ro;
        ro.user = spec_.user;
        ro.mon_host = monitors_text(spec_);
        ro.keyring = spec_.keyring;
        ro.who = fmt::format("pool '{}'", spec_.name);
        ro.mount_timeout = 5;
        Rados r(ro);
        r.mon_command(std::move(cmd), what);
    }

    std::vector<api::VolumeInfo> volumes() const override {
        std::vector<api::VolumeInfo> out;
        for (const auto& n : image_names())
            if (n.rfind(kPartial, 0) != 0)  // being made (or a leftover): not a volume yet
                if (auto v = find_volume(n)) out.push_back(*v);
        return out;
    }

    std::optional<api::VolumeInfo> find_volume(const std::string& name) const override {
        auto conn = this->conn();
        rados_ioctx_t ctx = conn->io;
        rbd_image_t img = nullptr;
        int r = rbd_open_read_only(ctx, name.c_str(), &img, nullptr);
        if (r == -ENOENT) return std::nullopt;
        if (r < 0) failed(r, fmt::format("opening image {}", name));
        struct Closer {
            rbd_image_t i;
            ~Closer() { rbd_close(i); }
        } closer{img};
        api::VolumeInfo v;
        v.name = name;
        v.pool = spec_.name;
        v.format = "raw";
        v.provision = provision_of(img);
        if (int r = rbd_get_size(img, &v.capacity); r < 0) failed(r, fmt::format("reading the size of image {}", name));
        if (v.provision == api::Provision::eager_zeroed) {
            v.allocation = v.capacity;
        } else {
            // Whole objects that exist (fast with the object map, RBD's default).
            std::uint64_t used = 0;
            if (rbd_diff_iterate2(img, nullptr, 0, v.capacity, 1, 1, sum_extent, &used) == 0) v.allocation = used;
        }
        v.path = path_of(name);
        // A linked clone: its parent (the base snapshot of a volume in this pool).
        rbd_linked_image_spec_t parent{};
        rbd_snap_spec_t psnap{};
        if (rbd_get_parent(img, &parent, &psnap) == 0) {
            if (parent.image_name) v.base = parent.image_name;
            rbd_linked_image_spec_cleanup(&parent);
            rbd_snap_spec_cleanup(&psnap);
        }
        return v;
    }

    api::VolumeInfo create_volume(const api::VolumeSpec& vs, util::Progress& progress) override {
        check_mode(vs.format, vs.provision);
        auto conn = this->conn();
        rados_ioctx_t ctx = conn->io;
        if (find_volume(vs.name)) fail(Errc::conflict, "volume {} already exists in pool {}", vs.name, spec_.name);
        const std::string partial = partial_name(vs.name);
        remove_image(ctx, partial);  // a leftover of an interrupted create of this name
        rbd_image_options_t opts;
        rbd_image_options_create(&opts);
        int r = rbd_create4(ctx, partial.c_str(), vs.size, opts);
        rbd_image_options_destroy(opts);
        if (r < 0) failed(r, fmt::format("creating image {}", vs.name));
        try {
            {
                Image img(ctx, partial, false, spec_.name);
                set_provision(img.get(), vs.provision);
                if (vs.provision == api::Provision::eager_zeroed)
                    zero(img.get(), 0, vs.size, fmt::format("zeroing {} ({})", vs.name, api::format_size(vs.size)), progress);
            }
            publish(ctx, partial, vs.name);
        } catch (...) {
            drop_partial(ctx, partial);
            throw;
        }
        return *find_volume(vs.name);
    }

    void delete_volume(const std::string& name) override {
        auto conn = this->conn();
        rados_ioctx_t ctx = conn->io;
        if (!find_volume(name)) fail(Errc::not_found, "volume {} does not exist in pool {}", name, spec_.name);
        drop_base_snapshot(ctx, name);
        int r = rbd_remove(ctx, name.c_str());
        if (r == -EBUSY)
            fail(Errc::conflict, "volume {} of pool {} is open by a client (a running VM, or another host): not deleted",
                 name, spec_.name);
        if (r == -ENOTEMPTY)
            fail(Errc::conflict, "volume {} of pool {} has snapshots: not deleted", name, spec_.name);
        if (r < 0) failed(r, fmt::format("deleting image {}", name));
    }

    api::VolumeInfo resize_volume(const std::string& name, std::uint64_t size, util::Progress& progress) override {
        auto conn = this->conn();
        rados_ioctx_t ctx = conn->io;
        auto v = find_volume(name);
        if (!v) fail(Errc::not_found, "volume {} does not exist in pool {}", name, spec_.name);
        if (size < v->capacity)
            fail(Errc::invalid_input, "volume {} is {}: shrinking is not supported (grow only)", name,
                 api::format_size(v->capacity));
        if (size == v->capacity) return *v;
        {
            Image img(ctx, name, false, spec_.name);
            ProgressBridge b{progress, fmt::format("growing {} to {}", name, api::format_size(size))};
            int r = rbd_resize2(img.get(), size, false, ProgressBridge::cb, &b);
            if (r < 0) failed(r, fmt::format("growing image {}", name));
            if (v->provision == api::Provision::eager_zeroed) {
                try {
                    zero(img.get(), v->capacity, size - v->capacity, fmt::format("zeroing the new space of {}", name), progress);
                } catch (...) {
                    rbd_resize2(img.get(), v->capacity, true, no_progress, nullptr);
                    throw;
                }
            }
        }
        return *find_volume(name);
    }

    void revert_grow(const std::string& name, std::uint64_t old_size) override {
        auto conn = this->conn();
        rados_ioctx_t ctx = conn->io;
        auto v = find_volume(name);
        if (!v || v->capacity <= old_size) return;
        Image img(ctx, name, false, spec_.name);
        int r = rbd_resize2(img.get(), old_size, true, no_progress, nullptr);
        if (r < 0) failed(r, fmt::format("shrinking image {} back to {}", name, api::format_size(old_size)));
    }

    // A full copy (sparse: only the data there is), independent of its source; the source
    // must not be written meanwhile (the manager refuses a running VM's disk).
    api::VolumeInfo clone_volume(const std::string& source, const std::string& target, util::Progress& progress) override {
        auto conn = this->conn();
        rados_ioctx_t ctx = conn->io;
        auto src = find_volume(source);
        if (!src) fail(Errc::not_found, "volume {} does not exist in pool {}", source, spec_.name);
        if (find_volume(target)) fail(Errc::conflict, "volume {} already exists in pool {}", target, spec_.name);
        const std::string partial = partial_name(target);
        remove_image(ctx, partial);
        try {
            {
                Image img(ctx, source, true, spec_.name);
                rbd_image_options_t opts;
                rbd_image_options_create(&opts);
                ProgressBridge b{progress, fmt::format("copying {} to {}", source, target)};
                int r = rbd_copy_with_progress4(img.get(), ctx, partial.c_str(), opts, ProgressBridge::cb, &b, 4096);
                rbd_image_options_destroy(opts);
                if (r == -ECANCELED) fail(Errc::cancelled, "cancelled while copying {}", source);
                if (r < 0) failed(r, fmt::format("copying image {} to {}", source, target));
                // librbd's copy does not stop for its callback: the cancel is honoured here.
                if (progress.cancelled()) fail(Errc::cancelled, "cancelled while copying {}", source);
            }
            {
                Image copy(ctx, partial, false, spec_.name);
                set_provision(copy.get(), src->provision);
                if (src->provision == api::Provision::eager_zeroed)
                    zero_holes(copy.get(), src->capacity, fmt::format("zeroing the holes of {}", target), progress);
            }
            if (progress.cancelled()) fail(Errc::cancelled, "cancelled while copying {}", source);
            publish(ctx, partial, target);
        } catch (...) {
            drop_partial(ctx, partial);
            throw;
        }
        return *find_volume(target);
    }

    // A clone of the source's protected snapshot kBaseSnap (made on the first linked clone and
    // kept while the source is a base): copy-on-write in Ceph, the clone holds only its writes.
    api::VolumeInfo link_volume(const std::string& source, const std::string& target) override {
        auto conn = this->conn();
        rados_ioctx_t ctx = conn->io;
        if (!find_volume(source)) fail(Errc::not_found, "volume {} does not exist in pool {}", source, spec_.name);
        if (find_volume(target)) fail(Errc::conflict, "volume {} already exists in pool {}", target, spec_.name);
        {
            Image img(ctx, source, false, spec_.name);
            int r = rbd_snap_create(img.get(), kBaseSnap);
            if (r < 0 && r != -EEXIST) failed(r, fmt::format("snapshotting image {}", source));
            int prot = 0;
            r = rbd_snap_is_protected(img.get(), kBaseSnap, &prot);
            if (r < 0) failed(r, fmt::format("reading the snapshot {}@{}", source, kBaseSnap));
            if (!prot) {
                r = rbd_snap_protect(img.get(), kBaseSnap);
                if (r < 0 && r != -EBUSY) failed(r, fmt::format("protecting the snapshot {}@{}", source, kBaseSnap));
            }
        }
        const std::string partial = partial_name(target);
        remove_image(ctx, partial);
        try {
            rbd_image_options_t opts;
            rbd_image_options_create(&opts);
            int r = rbd_clone3(ctx, source.c_str(), kBaseSnap, ctx, partial.c_str(), opts);
            rbd_image_options_destroy(opts);
            if (r < 0) failed(r, fmt::format("cloning image {}@{} to {}", source, kBaseSnap, target));
            {
                Image c(ctx, partial, false, spec_.name);
                set_provision(c.get(), api::Provision::thin);
            }
            publish(ctx, partial, target);
        } catch (...) {
            drop_partial(ctx, partial);
            throw;
        }
        return *find_volume(target);
    }

    api::DiskSource disk_source(const std::string& name) const override {
        if (!find_volume(name)) fail(Errc::not_found, "volume {} does not exist in pool {}", name, spec_.name);
        std::vector<api::DiskHost> hosts;
        for (const auto& m : spec_.monitors) hosts.push_back(api::parse_monitor(m));
        api::DiskAuth auth;
        auth.username = spec_.user;
        auth.secret_uuid = rbd_secret_uuid(spec_.name);
        return api::DiskSource::network("rbd", spec_.rbd_pool + "/" + name, hosts, auth);
    }

    // "rbd:<hv pool>:<ceph pool>/<image>" (VolumeInfo::path of this pool's volumes): unique
    // across hv pools, also two on different Ceph clusters with the same Ceph pool name.
    std::optional<std::string> volume_of_path(const std::string& path) const override {
        const std::string prefix = path_of("");
        if (path.rfind(prefix, 0) != 0) return std::nullopt;
        std::string name = path.substr(prefix.size());
        if (name.empty() || name.find('/') != std::string::npos) return std::nullopt;
        return name;
    }

    void remove_leftovers(std::chrono::seconds min_age) const override {
        auto conn = this->conn();
        rados_ioctx_t ctx = conn->io;
        const auto now = std::time(nullptr);
        const std::string mine = std::string(kPartial) + host_tag_ + ".";
        for (const auto& n : image_names()) {
            if (n.rfind(mine, 0) != 0) continue;  // not a leftover, or another host's
            try {
                rbd_image_t img = nullptr;
                if (rbd_open_read_only(ctx, n.c_str(), &img, nullptr) < 0) continue;
                timespec ts{};
                int r = rbd_get_modify_timestamp(img, &ts);
                rbd_close(img);
                if (r < 0 || now - ts.tv_sec < min_age.count()) continue;
                remove_image(ctx, n);
            } catch (const Error&) {
                // Busy (a dead client's watch not yet expired) or gone meanwhile: next sweep.
            }
        }
    }

    std::vector<std::string> remove_partial(const std::string& name) const override {
        auto conn = this->conn();
        rados_ioctx_t ctx = conn->io;
        const std::string partial = partial_name(name);
        try {
            if (!remove_image(ctx, partial)) return {};
        } catch (const Error& e) {
            // Still open by the client that died (its watch expires after ~30 s): the next
            // sweep (hvd start, pool scan) removes it.
            if (e.code() == Errc::conflict) return {};
            throw;
        }
        return {path_of(partial)};
    }

    std::string content_dir(const std::string& content) const override {
        fail(Errc::unsupported, "pool '{}' (rbd) holds VM disk images only, no {} files", spec_.name, content);
    }
    void make_rootfs_dir(const std::string&) const override {
        fail(Errc::unsupported, "pool '{}' (rbd) cannot hold a container's root filesystem (use a dir or btrfs pool)",
             spec_.name);
    }
    std::string limit_rootfs(const std::string&, std::uint64_t) const override {
        fail(Errc::unsupported, "pool '{}' (rbd) holds no root filesystems", spec_.name);
    }
    std::string rootfs_quota(const std::string&, std::uint64_t) const override { return "not applied: rbd pool"; }

private:
    std::string path_of(const std::string& image) const { return rbd_volume_path(spec_.name, spec_.rbd_pool + "/" + image); }
    std::string partial_name(const std::string& volume) const { return std::string(kPartial) + host_tag_ + "." + volume; }

    void check_mode(const std::string& format, api::Provision mode) const {
        if (format != "raw")
            fail(Errc::unsupported,
                 "pool '{}' (rbd) stores raw images only, not {} (RBD is thin by itself): give format=raw (--format raw)",
                 spec_.name, format);
        if (mode == api::Provision::lazy_zeroed)
            fail(Errc::unsupported,
                 "pool '{}' (rbd): lazy-zeroed has no meaning on RBD (unwritten blocks read as zeros already): use thin "
                 "or eager-zeroed",
                 spec_.name);
    }

    // The connection and the pool's I/O context, made on first use.
    std::shared_ptr<Conn> conn() const {
        std::lock_guard lk(mu_);
        if (conn_) return conn_;
        // A cluster that just did not answer is not asked again for 15 s: a pool list must
        // not wait for the monitors' timeout each time.
        if (last_failure_ && std::chrono::steady_clock::now() - last_failure_->first < std::chrono::seconds(15))
            throw last_failure_->second;
        try {
            conn_ = connect_locked();
            last_failure_.reset();
            return conn_;
        } catch (const Error& e) {
            if (e.code() == Errc::unavailable) last_failure_.emplace(std::chrono::steady_clock::now(), e);
            throw;
        }
    }

    std::shared_ptr<Conn> connect_locked() const {
        auto c = std::make_shared<Conn>();
        RadosOptions ro;
        ro.user = spec_.user;
        ro.mon_host = monitors_text(spec_);
        ro.keyring = spec_.keyring;
        ro.who = fmt::format("pool '{}'", spec_.name);
        c->rados = std::make_unique<Rados>(ro);
        int r = rados_ioctx_create(c->rados->handle(), spec_.rbd_pool.c_str(), &c->io);
        if (r == -ENOENT)
            fail(Errc::invalid_input, "pool '{}': the Ceph cluster at {} has no pool '{}'", spec_.name, monitors_text(spec_),
                 spec_.rbd_pool);
        if (r < 0) ceph_fail(r, fmt::format("pool '{}': opening Ceph pool {}", spec_.name, spec_.rbd_pool));
        return c;
    }

    // The next call connects again (operations still running keep the old connection).
    void disconnect() const {
        std::lock_guard lk(mu_);
        conn_.reset();
    }

    // A failed call: the connection goes when the cluster is gone, then hv's error.
    [[noreturn]] void failed(int r, const std::string& what) const {
        if (connection_lost(r)) disconnect();
        ceph_fail(r, fmt::format("pool '{}': {}", spec_.name, what));
    }

    std::vector<std::string> image_names() const {
        auto conn = this->conn();
        rados_ioctx_t ctx = conn->io;
        std::size_t max = 64;
        std::vector<rbd_image_spec_t> specs;
        int r;
        for (;;) {
            specs.resize(max);
            r = rbd_list2(ctx, specs.data(), &max);
            if (r != -ERANGE) break;
        }
        if (r < 0) failed(r, "listing images");
        std::vector<std::string> out;
        for (std::size_t i = 0; i < max; ++i) out.emplace_back(specs[i].name);
        rbd_image_spec_list_cleanup(specs.data(), max);
        return out;
    }

    // A monitor command (JSON answer); `what` names it in the error.
    std::string mon_command(nlohmann::json cmd, const std::string& what) const {
        auto c = conn();
        try {
            return c->rados->mon_command(std::move(cmd), what);
        } catch (const Error& e) {
            if (e.code() == Errc::unavailable) disconnect();
            throw;
        }
    }

    int replicas() const {
        auto j = nlohmann::json::parse(
            mon_command({{"prefix", "osd pool get"}, {"pool", spec_.rbd_pool}, {"var", "size"}},
                        "reading the Ceph pool's replica count (osd pool get size)"),
            nullptr, false);
        int size = j.is_object() && j.contains("size") && j["size"].is_number_integer() ? j["size"].get<int>() : 0;
        if (size <= 0) fail(Errc::unavailable, "pool '{}': the monitors did not say the Ceph pool's size", spec_.name);
        return size;
    }

    api::Provision provision_of(rbd_image_t img) const {
        char buf[64];
        std::size_t len = sizeof buf;
        int r = rbd_metadata_get(img, kProvisionKey, buf, &len);
        if (r == -ENOENT) return api::Provision::thin;  // an image hv did not make: RBD's own thin
        if (r < 0) failed(r, "reading the provisioning mode");
        std::string v(buf, strnlen(buf, len));
        return v == "eager-zeroed" ? api::Provision::eager_zeroed : api::Provision::thin;
    }
    void set_provision(rbd_image_t img, api::Provision p) const {
        int r = rbd_metadata_set(img, kProvisionKey, api::to_string(p).c_str());
        if (r < 0) failed(r, "recording the provisioning mode");
    }

    // Writes zeros over [off, off+len): kZeroInFlight writes of one object each in flight.
    void zero(rbd_image_t img, std::uint64_t off, std::uint64_t len, const std::string& what, util::Progress& progress) const {
        static const std::string zeros(kZeroChunk, '\0');
        std::deque<std::pair<rbd_completion_t, std::uint64_t>> inflight;
        int err = 0;
        auto reap = [&] {
            auto [c, n] = inflight.front();
            inflight.pop_front();
            rbd_aio_wait_for_complete(c);
            auto r = rbd_aio_get_return_value(c);
            rbd_aio_release(c);
            if (r < 0 && err == 0) err = static_cast<int>(r);
        };
        std::uint64_t pos = off, end = off + len;
        int last = -1;
        bool cancelled = false;
        while (pos < end && err == 0) {
            if (progress.cancelled()) {
                cancelled = true;
                break;
            }
            std::uint64_t n = std::min<std::uint64_t>(kZeroChunk - pos % kZeroChunk, end - pos);
            rbd_completion_t c = nullptr;
            rbd_aio_create_completion(nullptr, nullptr, &c);
            int r = rbd_aio_write(img, pos, n, zeros.data(), c);
            if (r < 0) {
                rbd_aio_release(c);
                err = r;
                break;
            }
            inflight.emplace_back(c, n);
            pos += n;
            if (static_cast<int>(inflight.size()) >= kZeroInFlight) reap();
            int pct = static_cast<int>((pos - off) * 100 / std::max<std::uint64_t>(1, len));
            if (pct != last) {
                last = pct;
                progress.update(pct, fmt::format("{}: {}%", what, pct));
            }
        }
        while (!inflight.empty()) reap();
        if (cancelled) fail(Errc::cancelled, "cancelled while {}", what);
        if (err < 0) failed(err, what);
        int r = rbd_flush(img);
        if (r < 0) failed(r, what);
    }

    // After a sparse copy of an eager-zeroed image: the holes written with zeros too.
    void zero_holes(rbd_image_t img, std::uint64_t size, const std::string& what, util::Progress& progress) const {
        std::vector<std::pair<std::uint64_t, std::uint64_t>> have;
        auto cb = [](uint64_t off, size_t len, int exists, void* arg) -> int {
            if (exists) static_cast<std::vector<std::pair<std::uint64_t, std::uint64_t>>*>(arg)->emplace_back(off, len);
            return 0;
        };
        int r = rbd_diff_iterate2(img, nullptr, 0, size, 1, 1, cb, &have);
        if (r < 0) failed(r, what);
        std::uint64_t pos = 0;
        for (const auto& [o, l] : have) {
            if (o > pos) zero(img, pos, o - pos, what, progress);
            pos = std::max(pos, o + l);
        }
        if (pos < size) zero(img, pos, size - pos, what, progress);
    }

    // The complete image under its real name; never over an existing one.
    void publish(rados_ioctx_t ctx, const std::string& partial, const std::string& name) const {
        int r = rbd_rename(ctx, partial.c_str(), name.c_str());
        if (r == -EEXIST) fail(Errc::conflict, "volume {} already exists in pool {}", name, spec_.name);
        if (r < 0) failed(r, fmt::format("renaming image {} to {}", partial, name));
    }

    // Cleanup after a failure: never replaces the failure's own error (a partial that cannot be
    // removed now is a leftover the next sweep removes).
    void drop_partial(rados_ioctx_t ctx, const std::string& partial) const noexcept {
        try {
            remove_image(ctx, partial);
        } catch (...) {
        }
    }

    // Before an image is deleted: its base snapshot goes when no clone depends on it (a base
    // with clones is refused: conflict, nothing changed). Only an image with that snapshot can
    // be a base, so only then are the pool's images looked at.
    void drop_base_snapshot(rados_ioctx_t ctx, const std::string& name) const {
        Image img(ctx, name, false, spec_.name);
        int prot = 0;
        int r = rbd_snap_is_protected(img.get(), kBaseSnap, &prot);
        if (r == -ENOENT) return;
        if (r < 0) failed(r, fmt::format("reading the snapshot {}@{}", name, kBaseSnap));
        std::vector<std::string> clones;
        for (const auto& n : image_names()) {
            if (n == name) continue;
            if (auto v = find_volume(n); v && v->base == name) clones.push_back(n.rfind(kPartial, 0) == 0 ? n + " (being made)" : n);
        }
        if (!clones.empty())
            fail(Errc::conflict, "volume {} of pool {} is the base of linked clone(s) {}: delete them first", name,
                 spec_.name, fmt::join(clones, ", "));
        if (prot) {
            r = rbd_snap_unprotect(img.get(), kBaseSnap);
            if (r == -EBUSY)
                fail(Errc::conflict, "volume {} of pool {} has linked clones elsewhere: not deleted", name, spec_.name);
            if (r < 0 && r != -EINVAL) failed(r, fmt::format("unprotecting the snapshot {}@{}", name, kBaseSnap));
        }
        r = rbd_snap_remove(img.get(), kBaseSnap);
        if (r < 0 && r != -ENOENT) failed(r, fmt::format("removing the snapshot {}@{}", name, kBaseSnap));
    }

    // True when it existed and is gone now.
    bool remove_image(rados_ioctx_t ctx, const std::string& name) const {
        int r = rbd_remove(ctx, name.c_str());
        if (r == -ENOENT) return false;
        if (r < 0) failed(r, fmt::format("removing image {}", name));
        return true;
    }

    api::PoolSpec spec_;
    std::string host_tag_;
    mutable std::mutex mu_;
    mutable std::shared_ptr<Conn> conn_;
    mutable std::optional<std::pair<std::chrono::steady_clock::time_point, Error>> last_failure_;
};

}  // namespace

api::PoolCaps rbd_caps() {
    api::PoolCaps c;
    c.content = {"images"};
    c.formats = {"raw"};
    c.provision = {"thin", "eager-zeroed"};
    c.snapshots = false;
    c.clones = false;
    c.shared = true;
    c.linked_clones = true;  // RBD clones of a protected snapshot
    return c;
}

std::unique_ptr<StoragePool> make_rbd_pool(const api::PoolSpec& spec) { return std::make_unique<RbdPool>(spec); }

std::string rbd_volume_path(const std::string& pool, const std::string& image) { return "rbd:" + pool + ":" + image; }

std::string rbd_secret_uuid(const std::string& pool) {
    // A name-based uuid (SHA-256 of a fixed prefix and the pool name, version 8 layout): the
    // same pool has the same secret on every host and after every restart.
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    std::string in = "hv rbd pool secret:" + pool;
    EVP_Digest(in.data(), in.size(), md, &n, EVP_sha256(), nullptr);
    md[6] = static_cast<unsigned char>((md[6] & 0x0f) | 0x80);
    md[8] = static_cast<unsigned char>((md[8] & 0x3f) | 0x80);
    std::string hex;
    for (int i = 0; i < 16; ++i) {
        hex += fmt::format("{:02x}", md[i]);
        if (i == 3 || i == 5 || i == 7 || i == 9) hex += '-';
    }
    return hex;
}

RbdSecret rbd_secret(const api::PoolSpec& spec) {
    RbdSecret s;
    s.uuid = rbd_secret_uuid(spec.name);
    s.usage = "hv pool " + spec.name;
    std::ifstream f(spec.keyring, std::ios::binary);
    if (!f) fail(Errc::invalid_input, "the keyring {} cannot be read: {}", spec.keyring, std::strerror(errno));
    std::string text(64 * 1024 + 1, '\0');
    f.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(f.gcount()));
    std::string key = keyring_key(text, "client." + spec.user);
    std::string raw(key.size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()), reinterpret_cast<const unsigned char*>(key.data()),
                            static_cast<int>(key.size()));
    if (n < 0) fail(Errc::invalid_input, "the key of client.{} in {} is not base64", spec.user, spec.keyring);
    // EVP_DecodeBlock counts the padding as zero bytes.
    std::size_t pad = key.size() >= 2 && key[key.size() - 2] == '=' ? 2 : key.size() >= 1 && key.back() == '=' ? 1 : 0;
    raw.resize(static_cast<std::size_t>(n) - pad);
    s.value = raw;
    return s;
}

}  // namespace hv::storage
