#include "migrator.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cluster.hpp"
#include "hv/api/size.hpp"
#include "hv/error.hpp"
#include "hv/storage/pool_manager.hpp"
#include "hv/util/fd.hpp"
#include "hv/util/guard.hpp"
#include "https_client.hpp"
#include "libvirt_tunnel.hpp"
#include "vm_manager.hpp"
#include "ct_manager.hpp"
#include "tls_relay.hpp"
#include "volume_stream.hpp"
#include "../storage/ct_templates.hpp"
#include "hv/util/atomic_file.hpp"
#include "hv/util/command.hpp"
#include "hv/client.hpp"

namespace hv::migrate {
using nlohmann::json;

namespace {

// A GET on another member's API over mutual TLS (runs there: no ?host=).
json member_get(const cluster::Cluster& c, const std::string& node, const std::string& path) {
    auto id = c.identity();
    auto addr = c.address_of(node);
    if (!id || !addr) fail(Errc::unavailable, "host {} cannot be reached (no address or no identity)", node);
    cluster::HttpsClient client(*id, std::chrono::seconds(5));
    cluster::HttpsRequest rq;
    rq.target = path;
    auto r = client.request(addr->first, addr->second, rq);
    if (r.status != 200) fail(Errc::unavailable, "host {} answered {} to GET {}", node, r.status, path);
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_discarded()) fail(Errc::unavailable, "host {} sent no JSON for GET {}", node, path);
    return j;
}

// A request to another member's API, run there (never forwarded on); the answer whatever its status.
cluster::HttpsResponse member_call(const cluster::Cluster& c, const std::string& node, const std::string& method,
                                   const std::string& path, const std::string& body = {}, int timeout_s = 10) {
    auto id = c.identity();
    auto addr = c.address_of(node);
    if (!id || !addr) fail(Errc::unavailable, "host {} cannot be reached (no address or no identity)", node);
    cluster::HttpsClient client(*id, std::chrono::seconds(timeout_s));
    cluster::HttpsRequest rq;
    rq.method = method;
    rq.target = path;
    rq.body = body;
    // It runs there, whoever the directory names as a guest's owner (a container being moved
    // is still this host's until it is handed over).
    rq.headers["X-Hv-Forwarded-By"] = c.node();
    return client.request(addr->first, addr->second, rq);
}

// A task on another member: the request (202 expected), then its state until it ends. Returns
// the finished task; throws with the task's error when it did not succeed.
json member_task(const cluster::Cluster& c, const std::string& node, const std::string& method, const std::string& path,
                 const std::string& body, util::Progress& progress, std::chrono::seconds limit,
                 const std::function<bool(const cluster::HttpsResponse&)>& again = {}) {
    auto r = member_call(c, node, method, path, body, 60);
    for (int i = 0; i < 40 && again && again(r); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        r = member_call(c, node, method, path, body, 60);
    }
    if (r.status != 202) {
        auto j = json::parse(r.body, nullptr, false);
        std::string msg = j.is_object() && j.contains("message") && j["message"].is_string() ? j["message"].get<std::string>()
                                                                                            : r.body.substr(0, 300);
        fail(r.status == 404 ? Errc::not_found : r.status == 409 ? Errc::conflict : Errc::unavailable, "{} answered {}: {}",
             node, r.status, msg);
    }
    auto task = json::parse(r.body, nullptr, false);
    std::string tid = task.is_object() ? task.value("id", "") : "";
    if (tid.empty()) fail(Errc::unavailable, "{} queued no task for {} {}", node, method, path);
    auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
        std::string state = task.is_object() ? task.value("state", "") : "";
        if (state == "succeeded") return task;
        if (state == "failed" || state == "cancelled") {
            std::string msg = state;
            if (task.contains("error") && task["error"].is_object()) msg = task["error"].value("message", state);
            fail(Errc::conflict, "{}: task {} {}: {}", node, tid, state, msg);
        }
        if (std::chrono::steady_clock::now() > until) fail(Errc::timeout, "{}: task {} did not end in {} s", node, tid, limit.count());
        if (progress.cancelled()) fail(Errc::cancelled, "cancelled while waiting for task {} on {}", tid, node);
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        auto t = member_call(c, node, "GET", "/v1/tasks/" + tid);
        auto tj = json::parse(t.body, nullptr, false);
        if (t.status == 200 && tj.is_object()) task = tj;
    }
}

// The uid/gid QEMU of a running VM runs as (its pid file of libvirt's), so only it may connect
// to the VM's migration data sockets here.
std::optional<std::pair<unsigned, unsigned>> qemu_owner(const std::string& vm) {
    std::ifstream in("/run/libvirt/qemu/" + vm + ".pid");
    long pid = 0;
    if (!(in >> pid) || pid <= 0) return std::nullopt;
    struct stat st {};
    if (::stat(fmt::format("/proc/{}", pid).c_str(), &st) != 0) return std::nullopt;
    return std::make_pair(static_cast<unsigned>(st.st_uid), static_cast<unsigned>(st.st_gid));
}

using storage::shared_pool;

constexpr std::uint64_t kGiB = 1ULL << 30;

// The record of a migration that makes volumes on the destination (Options::records_dir):
// {vm, to, volumes: [{pool, volume}]}, written before each volume is asked for.
std::string record_path(const std::string& dir, const std::string& vm) { return dir + "/" + vm + ".json"; }

// One guest's migration inside the maintenance task: its percent and status line show in the
// task's status line next to the others that run at the same time, its log lines go to the
// task's log with the guest's name, and cancelling the task cancels it.
class GuestProgress final : public util::Progress {
public:
    struct Shared {
        std::mutex mu;
        std::map<std::string, std::string> running;  // guest -> "40% memory: ..."
        int overall = 0;
    };
    GuestProgress(util::Progress& parent, Shared& shared, std::string vm) : parent_(parent), shared_(shared), vm_(std::move(vm)) {}
    ~GuestProgress() override {
        std::lock_guard lk(shared_.mu);
        shared_.running.erase(vm_);
    }
    void update(int percent, const std::string& message) override {
        std::lock_guard lk(shared_.mu);
        shared_.running[vm_] = percent >= 0 ? fmt::format("{}% {}", percent, message) : message;
        std::string line;
        for (const auto& [vm, status] : shared_.running) line += (line.empty() ? "" : "; ") + ("vm " + vm + ": " + status);
        parent_.update(shared_.overall, line);
    }
    bool cancelled() const override { return parent_.cancelled(); }
    void log(const std::string& line) override { parent_.log("vm " + vm_ + ": " + line); }

private:
    util::Progress& parent_;
    Shared& shared_;
    std::string vm_;
};

std::set<std::string> names_of(const json& list) {
    std::set<std::string> out;
    if (list.is_array())
        for (const auto& e : list)
            if (e.is_object() && e.contains("name") && e["name"].is_string()) out.insert(e["name"].get<std::string>());
    return out;
}

std::atomic<int> tunnel_seq{0};

// A qcow2 image over a backing file (bytes 8-15 of its header: the backing file name's offset).
bool has_backing_file(const std::string& path) {
    util::UniqueFd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    unsigned char h[16];
    if (f.fd < 0 || ::pread(f.fd, h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return false;
    if (!(h[0] == 'Q' && h[1] == 'F' && h[2] == 'I' && h[3] == 0xfb)) return false;
    std::uint64_t off = 0;
    for (int i = 8; i < 16; ++i) off = (off << 8) | h[i];
    return off != 0;
}

}  // namespace

Migrator::Migrator(virt::VmManager& vms, storage::PoolManager& pools, cluster::Cluster& cluster, Options opts)
    : vms_(vms), pools_(pools), cluster_(cluster), opts_(std::move(opts)) {
    // Where this host's QEMU listens for an incoming migration's data (as QEMU's user: it
    // makes its socket there) and this hvd for an outgoing one: writable for that user, not
    // listable, sticky (nobody removes another's socket); the names hold 64 random bits.
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(opts_.socket_dir).parent_path(), ec);
    if (::mkdir(opts_.socket_dir.c_str(), 01733) == 0 || errno == EEXIST) ::chmod(opts_.socket_dir.c_str(), 01733);
    else spdlog::warn("migration socket directory {}: {}", opts_.socket_dir, std::strerror(errno));
}

bool is_stream_socket_name(const std::string& name) {
    return name.size() == 29 && name.rfind("hvm-", 0) == 0 && (name.substr(20) == "-mem.sock" || name.substr(20) == "-nbd.sock") &&
           std::all_of(name.begin() + 4, name.begin() + 20,
                       [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)) != 0 && !std::isupper(static_cast<unsigned char>(ch)); });
}

Migrator::~Migrator() { stop(); }

void Migrator::start() {
    if (opts_.records_dir.empty()) return;
    recovery_ = std::thread([this] { util::guarded("migration records", [this] { recover_records(); }); });
}

void Migrator::stop() {
    {
        std::lock_guard lk(run_mu_);
        stopping_ = true;
    }
    run_cv_.notify_all();
    if (recovery_.joinable()) recovery_.join();
}

void Migrator::recover_records() {
    for (int round = 0;; ++round) {
        std::vector<std::string> left;
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator(opts_.records_dir, ec)) {
            if (e.path().extension() != ".json") continue;
            std::ifstream in(e.path());
            auto rec = json::parse(in, nullptr, false);
            std::string vm = rec.is_object() ? rec.value("vm", "") : "";
            std::string to = rec.is_object() ? rec.value("to", "") : "";
            if (vm.empty() || to.empty() || !rec.contains("volumes") || !rec["volumes"].is_array()) {
                spdlog::warn("migration record {} is not one hv wrote: removed", e.path().string());
                std::filesystem::remove(e.path(), ec);
                continue;
            }
            bool here = true;
            try {
                vms_.get(vm);
            } catch (const Error& err) {
                if (err.code() != Errc::not_found) {  // libvirt not there yet: later
                    left.push_back(vm);
                    continue;
                }
                here = false;
            }
            bool done = true;
            for (const auto& v : rec["volumes"]) {
                std::string pool = v.value("pool", ""), volume = v.value("volume", "");
                if (pool.empty() || volume.empty()) continue;
                try {
                    if (here) {  // it did not move: what was made there goes
                        auto d = member_call(cluster_, to, "DELETE",
                                             "/v1/storage/pools/" + escape_segment(pool) + "/volumes/" + escape_segment(volume), {}, 60);
                        if (d.status != 200 && d.status != 404) done = false;
                        else spdlog::info("vm {}: removed volume {}/{} that an interrupted migration made on {}", vm, pool, volume, to);
                    } else {  // it runs there: the copies here go
                        pools_.delete_volume(pool, volume, {});
                        spdlog::info("vm {}: removed volume {}/{} it left here when it moved to {}", vm, pool, volume, to);
                    }
                } catch (const Error& err) {
                    if (err.code() == Errc::not_found) continue;
                    spdlog::debug("vm {}: migration record: {}", vm, err.what());
                    done = false;
                }
            }
            if (done) std::filesystem::remove(e.path(), ec);
            else left.push_back(vm);
        }
        if (left.empty()) return;
        if (round == 0) spdlog::info("interrupted migrations of {} wait for their destination", fmt::join(left, ", "));
        std::unique_lock lk(run_mu_);
        if (run_cv_.wait_for(lk, std::chrono::seconds(5), [this] { return stopping_; })) return;
    }
}

std::string Migrator::stream_socket(const std::string& name) const {
    if (!is_stream_socket_name(name)) fail(Errc::invalid_input, "'{}' is not a migration socket name", name);
    return opts_.socket_dir + "/" + name;
}

api::MigrateReport Migrator::check(const std::string& name, const api::MigrateRequest& rq) const {
    if (!cluster_.member()) fail(Errc::conflict, "this host is in no cluster: a vm migrates between members (hvctl cluster create/join)");
    api::MigrateReport r;
    r.vm = name;
    r.from = cluster_.node();
    r.to = rq.to;
    r.live = !rq.offline;
    auto info = vms_.get(name);  // 404
    if (rq.to == r.from) fail(Errc::invalid_input, "vm '{}' is on {} already", name, rq.to);
    auto members = cluster_.member_names();
    if (std::find(members.begin(), members.end(), rq.to) == members.end())
        fail(Errc::not_found, "no member named '{}' in the cluster", rq.to);
    auto& b = r.blockers;
    const bool running = info.state == api::VmState::running;
    const bool stopped = info.state == api::VmState::stopped || info.state == api::VmState::crashed;
    if (!rq.offline && !running)
        b.push_back(fmt::format("vm '{}' is {}: only a running vm migrates live (--offline moves a stopped one)", name,
                                api::to_string(info.state)));
    if (rq.offline && !stopped)
        b.push_back(fmt::format("vm '{}' is {}: --offline moves a stopped vm (leave it out to migrate it live)", name,
                                api::to_string(info.state)));
    const auto& spec = info.spec;
    std::vector<const api::DiskSpec*> copies;  // disks only this host sees, to copy
    for (const auto& d : spec.disks) {
        std::optional<api::PoolInfo> pool;
        try {
            pool = pools_.get(d.pool);
        } catch (const Error&) {
        }
        if (pool && shared_pool(*pool)) continue;
        std::string type = pool ? pool->spec.type : "?";
        if (!rq.with_local_disks)
            b.push_back(fmt::format("disk {} is on pool '{}' ({}), which only this host sees: --with-local-disks copies it, "
                                    "or move it to a shared pool (rbd, or a dir pool added with --shared)",
                                    d.name, d.pool, type));
        else if (!pool || (pool->spec.type != "dir" && pool->spec.type != "btrfs"))
            b.push_back(fmt::format("disk {} is on pool '{}' ({}): only file volumes are copied", d.name, d.pool, type));
        else if (d.mode == "independent-nonpersistent")
            b.push_back(fmt::format("disk {} is independent-nonpersistent (an overlay that ends with the vm): it is not copied",
                                    d.name));
        else if (rq.offline && has_backing_file(d.path))
            b.push_back(fmt::format("disk {} is a linked clone (a qcow2 over a base image): an offline copy would leave its "
                                    "base behind; migrate it live (the copy is flattened) or make it a full clone",
                                    d.name));
        else
            copies.push_back(&d);
    }
    if (!spec.cdrom.empty())
        b.push_back(fmt::format("the CD-ROM holds {}, a file of this host: eject it first (hvctl vm cdrom eject {})",
                                spec.cdrom, name));
    if (cluster_.maintenance(rq.to)) b.push_back(fmt::format("host {} is in maintenance", rq.to));
    if (!cluster_.online(rq.to)) {
        b.push_back(fmt::format("host {} is offline", rq.to));
        return r;
    }
    try {
        auto pool_list = member_get(cluster_, rq.to, "/v1/storage/pools");
        auto pools = names_of(pool_list);
        for (const auto& d : spec.disks)
            if (!pools.count(d.pool)) b.push_back(fmt::format("host {} has no storage pool '{}' (disk {})", rq.to, d.pool, d.name));
        std::map<std::string, std::uint64_t> need;  // bytes per destination pool
        for (const auto* d : copies) {
            if (!pools.count(d->pool)) continue;
            auto v = pools_.volume(d->pool, d->volume);
            need[d->pool] += v.capacity;
            auto there = member_call(cluster_, rq.to, "GET",
                                     "/v1/storage/pools/" + escape_segment(d->pool) + "/volumes/" + escape_segment(d->volume));
            if (there.status == 200)
                b.push_back(fmt::format("host {} has a volume '{}' in pool '{}' already (disk {})", rq.to, d->volume, d->pool, d->name));
            else if (there.status != 404)
                b.push_back(fmt::format("host {} cannot say whether pool '{}' holds '{}' (HTTP {})", rq.to, d->pool, d->volume, there.status));
        }
        for (const auto& p : pool_list)
            if (p.is_object() && need.count(p.value("name", "")) ) {
                std::uint64_t free = p.value("free", std::uint64_t{0});
                auto n = need[p.value("name", "")];
                if (free < n)
                    b.push_back(fmt::format("pool '{}' on host {} has {} free, the copied disks need {}", p.value("name", ""), rq.to,
                                            api::format_size(free), api::format_size(n)));
            }
        bool bridged = std::any_of(spec.nics.begin(), spec.nics.end(), [](const auto& n) { return !n.bridge.empty(); });
        if (bridged) {
            auto bridges = names_of(member_get(cluster_, rq.to, "/v1/net/bridges"));
            for (const auto& n : spec.nics)
                if (!n.bridge.empty() && !bridges.count(n.bridge))
                    b.push_back(fmt::format("host {} has no bridge '{}' (nic {})", rq.to, n.bridge, n.name));
        }
        for (const auto& h : cluster_.hosts()) {
            if (h.name != rq.to || h.memory_total == 0) continue;
            std::uint64_t free = h.memory_total > h.memory_used ? h.memory_total - h.memory_used : 0;
            if (free < spec.memory)
                b.push_back(fmt::format("host {} has {} of memory free, vm '{}' needs {}", rq.to, api::format_size(free), name,
                                        api::format_size(spec.memory)));
        }
        check_cpu(spec, rq.to, b);
    } catch (const Error& e) {
        b.push_back(fmt::format("host {} cannot be asked: {}", rq.to, e.what()));
    }
    r.ok = b.empty();
    return r;
}

json Migrator::check_cpu_here(const api::CpuSpec& cpu) const {
    auto why = vms_.cpu_incompatibility(cpu);
    return json{{"compatible", why.empty()}, {"reason", why}};
}

// The VM's CPU on the destination: a named model (the cluster baseline, or the admin's) is
// checked by the destination's libvirt; the host's own CPU (host-passthrough, host-model, and
// KVM's default) moves only to a host whose hypervisor offers the same CPU.
void Migrator::check_cpu(const api::VmSpec& spec, const std::string& to, std::vector<std::string>& b) const {
    const auto& cpu = spec.cpu;
    if (cpu.mode == "custom") {
        auto r = member_call(cluster_, to, "POST", "/v1/host/cpu-check", json{{"cpu", cpu}}.dump());
        auto j = json::parse(r.body, nullptr, false);
        if (r.status != 200 || !j.is_object() || !j.contains("compatible") || !j["compatible"].is_boolean())
            b.push_back(fmt::format("host {} cannot say whether it runs the vm's CPU {} (HTTP {})", to, api::describe(cpu),
                                    r.status));
        else if (!j["compatible"].get<bool>())
            b.push_back(fmt::format("host {} cannot run vm '{}''s CPU ({}): {}", to, spec.name, cpu.model,
                                    j.contains("reason") && j["reason"].is_string() ? j["reason"].get<std::string>() : "incompatible"));
        return;
    }
    const bool own = cpu.mode == "host-passthrough" || cpu.mode == "host-model" ||
                     (cpu.mode.empty() && vms_.accel().domain_type == "kvm");
    if (!own) return;  // QEMU's default model (TCG): every member runs it
    auto cpus = cluster_.member_cpus();
    auto here = cpus.find(cluster_.node()), there = cpus.find(to);
    if (here == cpus.end() || there == cpus.end()) return;  // not published (older hvd): libvirt decides
    if (here->second != there->second)
        b.push_back(fmt::format("vm '{}' uses this host's own CPU ({}) and host {}'s CPU differs ({} here, {} there): give "
                                "the vm a model every member runs (create it with --cpu cluster)",
                                spec.name, cpu.mode.empty() ? "host-passthrough" : cpu.mode, to,
                                here->second.value("model", "?"), there->second.value("model", "?")));
}

// Streams of copies between members (a VM's disk offline, a container's root filesystem).
namespace {

// The root filesystem stream on an upgraded connection, both ways: frames of a 4-byte
// big-endian length and that many bytes of tar, length 0 at the end; then the receiver's one
// line ("OK <path>" or "ERR <why>"), then the sender's "COMMIT" (anything else, or the
// connection ending, makes the receiver remove what it unpacked unless a container of that
// name uses it by then).
constexpr std::uint32_t kMaxFrame = kMaxDataFrame;  // the rootfs stream's frames too

// Reads from a plain fd, what came with the upgrade first; waits at most `wait_ms` for each read.
struct FdReader {
    int fd;
    std::string pending;
    std::size_t off = 0;
    bool read(char* out, std::size_t n, int wait_ms) {
        while (n > 0) {
            if (off < pending.size()) {
                auto k = std::min(n, pending.size() - off);
                std::memcpy(out, pending.data() + off, k);
                off += k, out += k, n -= k;
                continue;
            }
            pollfd p{fd, POLLIN, 0};
            int r = ::poll(&p, 1, wait_ms);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return false;
            auto got = ::read(fd, out, n);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) return false;
            out += got, n -= static_cast<std::size_t>(got);
        }
        return true;
    }
    std::string line(int wait_ms) {
        std::string l;
        char ch;
        while (l.size() < 4096 && read(&ch, 1, wait_ms) && ch != '\n') l += ch;
        return l;
    }
};

const std::vector<std::string> kTarFlags{"--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls"};

// An upgraded connection to another member's hvd (GET `target`, Upgrade: `proto`): 4xx there
// becomes the error here; then frames one way and the receiver's one line back.
class MemberStream {
public:
    MemberStream(const cluster::TlsIdentity& id, const std::string& host, int port, const std::string& target,
                 const std::string& proto)
        : c_(id, host, port, std::chrono::seconds(120)) {
        std::string rest;
        auto head = c_.upgrade(host, port, target, proto, rest);
        if (head.rfind("HTTP/1.1 101", 0) != 0) {
            auto j = json::parse(rest, nullptr, false);
            std::string why = j.is_object() ? j.value("message", rest) : rest;
            fail(head.find(" 409 ") != std::string::npos ? Errc::conflict : Errc::unavailable, "{}: {}",
                 head.substr(0, head.find('\r')), why.substr(0, 300));
        }
        rest_ = rest;
    }

protected:
    void frame(const char* data, std::uint32_t len) {
        char h[4] = {static_cast<char>(len >> 24), static_cast<char>(len >> 16), static_cast<char>(len >> 8), static_cast<char>(len)};
        c_.write_all(h, 4);
        if (data && len) c_.write_all(data, len);
    }
    std::string reply_line() {
        std::string line = rest_;
        char ch;
        while (line.find('\n') == std::string::npos && line.size() < 4096 && c_.read_some(&ch, 1) == 1) line += ch;
        return line.substr(0, line.find('\n'));
    }
    cluster::TlsConnection c_;
    std::string rest_;
};

// A volume's file to the destination's pre-made volume of the same name (offline
// --with-local-disks): data frames as for root filesystems, holes as frames with the top bit
// set (that many bytes not written: the copy stays thin), length 0 at the end; the receiver
// answers "OK <bytes>" once the file is written and synced.

class VolumeSender : public MemberStream {
public:
    VolumeSender(const cluster::TlsIdentity& id, const std::string& host, int port, const std::string& pool, const std::string& vol)
        : MemberStream(id, host, port,
                       fmt::format("/v1/host/volume-data?pool={}&name={}", escape_segment(pool), escape_segment(vol)), "hv-volume") {}
    std::uint64_t send(const std::string& file, util::Progress& progress) {
        util::UniqueFd f(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
        struct stat st {};
        if (f.fd < 0 || ::fstat(f.fd, &st) != 0) fail(Errc::internal, "cannot open {}: {}", file, std::strerror(errno));
        const auto size = static_cast<std::uint64_t>(st.st_size);
        std::vector<char> buf(kMaxFrame);
        std::uint64_t off = 0, sent = 0;
        auto last = std::chrono::steady_clock::now();
        while (off < size) {
            off_t data = ::lseek(f.fd, static_cast<off_t>(off), SEEK_DATA);
            std::uint64_t d = data < 0 ? size : static_cast<std::uint64_t>(data);
            for (std::uint64_t hole = d - off; hole > 0;) {
                auto k = static_cast<std::uint32_t>(std::min<std::uint64_t>(hole, kMaxHoleFrame));
                frame(nullptr, kFrameHoleBit | k);
                hole -= k;
            }
            if (d >= size) break;
            off_t h = ::lseek(f.fd, static_cast<off_t>(d), SEEK_HOLE);
            std::uint64_t end = h < 0 ? size : std::min<std::uint64_t>(size, static_cast<std::uint64_t>(h));
            for (off = d; off < end;) {
                auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kMaxFrame, end - off));
                auto n = ::pread(f.fd, buf.data(), want, static_cast<off_t>(off));
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) fail(Errc::internal, "cannot read {}: {}", file, n < 0 ? std::strerror(errno) : "it shrank");
                frame(buf.data(), static_cast<std::uint32_t>(n));
                off += static_cast<std::uint64_t>(n);
                sent += static_cast<std::uint64_t>(n);
                if (progress.cancelled()) fail(Errc::cancelled, "cancelled while copying {}", file);
                if (std::chrono::steady_clock::now() - last > std::chrono::milliseconds(500)) {
                    last = std::chrono::steady_clock::now();
                    progress.update(static_cast<int>(100 * off / std::max<std::uint64_t>(size, 1)),
                                    fmt::format("disks: {} of {} sent", api::format_size(off), api::format_size(size)));
                }
            }
        }
        frame(nullptr, 0);
        auto line = reply_line();
        if (line != fmt::format("OK {}", size)) fail(Errc::conflict, "the destination did not keep the copy of {}: {}", file, line);
        return sent;
    }
};

// The sender: the stream to the destination's hvd, then define/start there, then commit.
class RootfsSender : public MemberStream {
public:
    RootfsSender(const cluster::TlsIdentity& id, const std::string& host, int port, const std::string& pool,
                 const std::string& ct)
        : MemberStream(id, host, port, fmt::format("/v1/host/ct-rootfs?pool={}&name={}", escape_segment(pool), escape_segment(ct)),
                       "hv-rootfs") {}
    // tar of `dir` into the stream; returns the path the destination unpacked it at.
    std::string send(const std::string& dir, util::Progress& progress) {
        std::uint64_t sent = 0;
        auto last = std::chrono::steady_clock::now();
        std::vector<std::string> argv{"tar", "-c", "-f", "-", "-C", dir, "--sparse"};
        argv.insert(argv.end(), kTarFlags.begin(), kTarFlags.end());
        argv.push_back(".");
        std::vector<char> buf(kMaxFrame + 4);
        auto res = util::run_command_piped(argv, false, [&](int fd) {
            for (;;) {
                auto n = ::read(fd, buf.data() + 4, kMaxFrame);
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) fail(Errc::internal, "reading tar's output: {}", std::strerror(errno));
                if (n == 0) return;
                std::uint32_t len = static_cast<std::uint32_t>(n);
                buf[0] = static_cast<char>(len >> 24), buf[1] = static_cast<char>(len >> 16);
                buf[2] = static_cast<char>(len >> 8), buf[3] = static_cast<char>(len);
                c_.write_all(buf.data(), len + 4);
                sent += len;
                if (progress.cancelled()) fail(Errc::cancelled, "cancelled while copying the root filesystem");
                if (std::chrono::steady_clock::now() - last > std::chrono::milliseconds(500)) {
                    last = std::chrono::steady_clock::now();
                    progress.update(-1, fmt::format("root filesystem: {} sent", api::format_size(sent)));
                }
            }
        }, std::chrono::hours(6));
        if (res.exit_status != 0)
            fail(Errc::internal, "tar of {} failed (exit {}): {}", dir, res.exit_status, res.err.substr(0, 300));
        c_.write_all(std::string(4, '\0'));
        progress.log(fmt::format("root filesystem: {} sent", api::format_size(sent)));
        auto line = reply_line();
        if (line.rfind("OK ", 0) != 0) fail(Errc::conflict, "the destination did not keep the root filesystem: {}", line);
        return line.substr(3);
    }
    void commit() { c_.write_all("COMMIT\n"); }
};

}  // namespace

api::MigrateReport Migrator::migrate(const std::string& name, const api::MigrateRequest& rq, util::Progress& progress) {
    auto r = check(name, rq);
    if (!r.ok)
        fail(Errc::conflict, "cannot migrate vm '{}' to {}: {}", name, rq.to, fmt::join(r.blockers, "; "));
    auto id = cluster_.identity();
    auto addr = cluster_.address_of(rq.to);
    if (!id || !addr) fail(Errc::unavailable, "host {} cannot be reached", rq.to);
    ::mkdir(opts_.run_dir.c_str(), 0700);
    auto info = vms_.get(name);

    // Disks only this host sees (check() let them through only with --with-local-disks).
    struct Copy {
        std::string disk, pool, volume, src, dst;
        api::VolumeInfo vol;
    };
    std::vector<Copy> copies;
    bool shared_files = false;
    for (const auto& d : info.spec.disks) {
            auto pool = pools_.get(d.pool);
            if (shared_pool(pool)) {
                shared_files = shared_files || pool.spec.type != "rbd";
                continue;
            }
            copies.push_back(Copy{d.name, d.pool, d.volume, "", "", pools_.volume(d.pool, d.volume)});
            copies.back().src = copies.back().vol.path;
        }
    // Live: QEMU's streams (the NBD mirror of the copied disks, post-copy). Offline: the copied
    // disks' files go first, each in its own stream to its new volume there.
    const bool data_stream = !rq.offline && (!copies.empty() || rq.postcopy);
    std::vector<Copy> made;  // volumes made on the destination: removed there unless the VM arrived
    auto remove_made = [&] {
        for (const auto& c : made) {
            try {
                auto d = member_call(cluster_, rq.to, "DELETE",
                                     "/v1/storage/pools/" + escape_segment(c.pool) + "/volumes/" + escape_segment(c.volume), {}, 60);
                if (d.status != 200) spdlog::warn("vm {}: removing volume {}/{} on {}: HTTP {}", name, c.pool, c.volume, rq.to, d.status);
            } catch (const std::exception& e) {
                spdlog::warn("vm {}: removing volume {}/{} on {}: {}", name, c.pool, c.volume, rq.to, e.what());
            }
        }
    };
    bool arrived = false;
    cluster_.hold(name);
    try {
        std::uint64_t bytes = info.spec.memory;
        for (auto& c : copies) {
            progress.step(1, fmt::format("creating volume {}/{} ({}) on {}", c.pool, c.volume, api::format_size(c.vol.capacity), rq.to));
            json body{{"name", c.volume},
                      {"size", c.vol.capacity},
                      {"format", c.vol.format},
                      {"provision", api::to_string(c.vol.provision)}};
            made.push_back(c);  // before the request: a create that answers late is removed too
            if (!opts_.records_dir.empty()) {
                json rec{{"vm", name}, {"to", rq.to}, {"volumes", json::array()}};
                for (const auto& m : made) rec["volumes"].push_back(json{{"pool", m.pool}, {"volume", m.volume}});
                ::mkdir(opts_.records_dir.c_str(), 0700);
                util::write_file_atomic(record_path(opts_.records_dir, name), rec.dump(), 0600);
            }
            member_task(cluster_, rq.to, "POST", "/v1/storage/pools/" + escape_segment(c.pool) + "/volumes", body.dump(), progress,
                        std::chrono::hours(6));
            auto v = member_get(cluster_, rq.to, "/v1/storage/pools/" + escape_segment(c.pool) + "/volumes/" + escape_segment(c.volume));
            c.dst = v.is_object() ? v.value("path", "") : "";
            if (c.dst.empty()) fail(Errc::unavailable, "host {} did not say where volume {}/{} is", rq.to, c.pool, c.volume);
            bytes += c.vol.capacity;
            r.copied_disks.push_back(fmt::format("{}: {}/{} ({})", c.disk, c.pool, c.volume, api::format_size(c.vol.capacity)));
        }
        if (rq.offline)
            for (const auto& c : copies) {
                progress.step(5, fmt::format("copying {} ({}) to {}", c.disk, c.src, rq.to));
                VolumeSender sender(*id, addr->first, addr->second, c.pool, c.volume);
                auto sent = sender.send(c.src, progress);
                progress.log(fmt::format("{}: {} of data copied to {}:{}", c.disk, api::format_size(sent), rq.to, c.dst));
            }
        cluster::LibvirtTunnel tunnel(*id, addr->first, addr->second,
                                      fmt::format("{}/migrate-{}.sock", opts_.run_dir, ++tunnel_seq));
        // QEMU's own streams (memory; NBD of the copied disks), each through hvd's TLS to the
        // socket of the same name that the destination's QEMU listens on.
        std::optional<cluster::LibvirtTunnel> mem, nbd;
        virt::VmManager::MigrateParams mp;
        if (data_stream) {
            std::string tag;
            std::random_device rd;
            for (int i = 0; i < 2; ++i) tag += fmt::format("{:08x}", rd());
            auto owner = qemu_owner(name);
            auto open = [&](std::optional<cluster::LibvirtTunnel>& t, const std::string& kind) {
                auto sock = fmt::format("hvm-{}-{}.sock", tag, kind);
                t.emplace(*id, addr->first, addr->second, opts_.socket_dir + "/" + sock,
                          "/v1/host/migration-stream?socket=" + sock, "hv-migration");
                if (owner) t->allow(owner->first, owner->second);
                return "unix://" + t->path();
            };
            mp.migrate_uri = open(mem, "mem");
            if (!copies.empty()) mp.disks_uri = open(nbd, "nbd");
        }
        for (const auto& c : copies) mp.copy_disks[c.src] = c.dst;
        mp.uri = tunnel.uri();
        mp.live = !rq.offline;
        mp.bandwidth_mib = rq.bandwidth;
        mp.max_downtime_ms = rq.max_downtime;
        mp.postcopy = rq.postcopy;
        mp.shared_files = shared_files;
        mp.timeout_s = static_cast<int>(std::max<std::uint64_t>(1, (bytes + kGiB - 1) / kGiB) * opts_.timeout_per_gib);
        progress.log(fmt::format("vm {}: {} migration {} -> {}{}", name, mp.live ? "live" : "offline", r.from, rq.to,
                                 copies.empty() ? "" : fmt::format(", copying {} disk(s)", copies.size())));
        auto stats = vms_.migrate(name, mp, progress);
        arrived = true;
        r.total_ms = stats.value("total_ms", 0);
        r.downtime_ms = stats.value("downtime_ms", -1);
        r.transferred = stats.value("transferred", 0);
        r.postcopy = stats.value("postcopy", false);
    } catch (const std::exception& e) {
        cluster_.release(name);
        if (!arrived) remove_made();  // it runs on here: what was made there goes (a volume in use there stays)
        if (!made.empty() && !opts_.records_dir.empty()) ::unlink(record_path(opts_.records_dir, name).c_str());
        announce("vm", name, rq.to, nullptr, e.what());
        throw;
    }
    cluster_.hand_over(name, rq.to);
    // The VM runs there on its new volumes: the old ones here go.
    for (const auto& c : copies) {
        try {
            pools_.delete_volume(c.pool, c.volume, {});
        } catch (const std::exception& e) {
            r.warnings.push_back(fmt::format("volume {}/{} stays here: {}", c.pool, c.volume, e.what()));
            spdlog::warn("vm {}: volume {}/{} stays here: {}", name, c.pool, c.volume, e.what());
        }
    }
    if (!copies.empty() && !opts_.records_dir.empty()) ::unlink(record_path(opts_.records_dir, name).c_str());
    progress.step(100, fmt::format("vm {} runs on {} ({} ms, downtime {} ms)", name, rq.to, r.total_ms, r.downtime_ms));
    spdlog::info("vm {}: migrated to {} in {} ms (downtime {} ms{})", name, rq.to, r.total_ms, r.downtime_ms,
                 copies.empty() ? "" : fmt::format(", {} disk(s) copied", copies.size()));
    r.ok = true;
    announce("vm", name, rq.to, &r, "");
    return r;
}

// --- containers: restart migration ---------------------------------------------------------

api::MigrateReport Migrator::check_ct(const std::string& name, const api::MigrateRequest& rq) const {
    if (!cts_) fail(Errc::internal, "containers are not wired to migration");
    if (!cluster_.member()) fail(Errc::conflict, "this host is in no cluster: a container migrates between members (hvctl cluster create/join)");
    if (rq.offline || rq.postcopy || rq.with_local_disks)
        fail(Errc::invalid_input, "a container moves by restart (stopped, moved, started): --offline, --postcopy and "
             "--with-local-disks are for VMs");
    api::MigrateReport r;
    r.vm = name;
    r.from = cluster_.node();
    r.to = rq.to;
    r.live = false;
    auto info = cts_->get(name);  // 404
    if (rq.to == r.from) fail(Errc::invalid_input, "container '{}' is on {} already", name, rq.to);
    auto members = cluster_.member_names();
    if (std::find(members.begin(), members.end(), rq.to) == members.end())
        fail(Errc::not_found, "no member named '{}' in the cluster", rq.to);
    auto& b = r.blockers;
    if (!info.managed) b.push_back(fmt::format("container '{}' was not made by hv", name));
    const auto& rootfs = info.spec.rootfs;
    std::optional<api::PoolInfo> pool;
    try {
        pool = pools_.get(rootfs.pool);
    } catch (const Error&) {
    }
    if (!pool) b.push_back(fmt::format("its root filesystem's pool '{}' is not here", rootfs.pool));
    else if (pool->spec.type != "dir" && pool->spec.type != "btrfs")
        b.push_back(fmt::format("its root filesystem is on pool '{}' ({}): only directories move", rootfs.pool, pool->spec.type));
    if (cluster_.maintenance(rq.to)) b.push_back(fmt::format("host {} is in maintenance", rq.to));
    if (!cluster_.online(rq.to)) {
        b.push_back(fmt::format("host {} is offline", rq.to));
        return r;
    }
    try {
        auto pools = names_of(member_get(cluster_, rq.to, "/v1/storage/pools"));
        if (!pools.count(rootfs.pool)) b.push_back(fmt::format("host {} has no storage pool '{}' (root filesystem)", rq.to, rootfs.pool));
        bool bridged = std::any_of(info.spec.nics.begin(), info.spec.nics.end(), [](const auto& n) { return !n.bridge.empty(); });
        if (bridged) {
            auto bridges = names_of(member_get(cluster_, rq.to, "/v1/net/bridges"));
            for (const auto& n : info.spec.nics)
                if (!n.bridge.empty() && !bridges.count(n.bridge))
                    b.push_back(fmt::format("host {} has no bridge '{}' (nic {})", rq.to, n.bridge, n.name));
        }
        for (const auto& h : cluster_.hosts()) {
            if (h.name != rq.to || h.memory_total == 0) continue;
            std::uint64_t free = h.memory_total > h.memory_used ? h.memory_total - h.memory_used : 0;
            if (free < info.spec.memory)
                b.push_back(fmt::format("host {} has {} of memory free, container '{}' may use {}", rq.to, api::format_size(free),
                                        name, api::format_size(info.spec.memory)));
        }
    } catch (const Error& e) {
        b.push_back(fmt::format("host {} cannot be asked: {}", rq.to, e.what()));
    }
    r.ok = b.empty();
    return r;
}

api::MigrateReport Migrator::migrate_ct(const std::string& name, const api::MigrateRequest& rq, util::Progress& progress) {
    auto r = check_ct(name, rq);
    if (!r.ok) fail(Errc::conflict, "cannot migrate container '{}' to {}: {}", name, rq.to, fmt::join(r.blockers, "; "));
    auto id = cluster_.identity();
    auto addr = cluster_.address_of(rq.to);
    if (!id || !addr) fail(Errc::unavailable, "host {} cannot be reached", rq.to);
    ::mkdir(opts_.run_dir.c_str(), 0700);
    const auto t0 = std::chrono::steady_clock::now();
    auto info = cts_->get(name);
    const bool was_running = info.state == api::GuestState::running;
    const bool shared = shared_pool(pools_.get(info.spec.rootfs.pool));
    cluster_.hold(name);
    bool defined_there = false, started_there = false;
    std::optional<cluster::LibvirtTunnel> tunnel;
    std::string lxc_uri;
    try {
        if (was_running) {
            progress.step(5, fmt::format("shutting down container {} here", name));
            shut_down_ct_(name, progress);
        }
        std::optional<RootfsSender> sender;
        std::string there;
        if (!shared) {
            progress.step(10, fmt::format("copying the root filesystem {} to {}", info.spec.rootfs.path, rq.to));
            sender.emplace(*id, addr->first, addr->second, info.spec.rootfs.pool, name);
            there = sender->send(info.spec.rootfs.path, progress);
            r.copied_disks.push_back(fmt::format("rootfs: {} -> {}", info.spec.rootfs.path, there));
        }
        auto xml = cts_->definition_for(name, there);
        tunnel.emplace(*id, addr->first, addr->second, fmt::format("{}/migrate-{}.sock", opts_.run_dir, ++tunnel_seq));
        lxc_uri = "lxc+unix:///system?socket=" + tunnel->path();
        progress.step(80, fmt::format("defining container {} on {}", name, rq.to));
        virt::CtManager::define_remote(lxc_uri, xml);
        defined_there = true;
        if (was_running) {
            progress.step(90, fmt::format("starting container {} on {}", name, rq.to));
            auto s = member_call(cluster_, rq.to, "POST", "/v1/cts/" + escape_segment(name) + "/start", "{}", 120);
            if (s.status != 200) fail(Errc::conflict, "{} did not start it (HTTP {}): {}", rq.to, s.status, s.body.substr(0, 300));
            started_there = true;
        }
        if (sender) sender->commit();
    } catch (...) {
        // Back as it was: nothing of it there, running here again if it ran.
        if (started_there) {
            try {
                member_call(cluster_, rq.to, "POST", "/v1/cts/" + escape_segment(name) + "/stop", "{}", 60);
            } catch (const std::exception& e) {
                spdlog::warn("container {}: not stopped on {}: {}", name, rq.to, e.what());
            }
        }
        if (defined_there) {
            try {
                virt::CtManager::undefine_remote(lxc_uri, name);
            } catch (const std::exception& e) {
                spdlog::warn("container {}: left defined on {}: {}", name, rq.to, e.what());
            }
        }
        cluster_.release(name);
        if (was_running) {
            try {
                cts_->action(name, "start");
            } catch (const std::exception& e) {
                spdlog::error("container {}: not started again here after a failed migration: {}", name, e.what());
            }
        }
        try {
            throw;
        } catch (const std::exception& e) {
            announce("ct", name, rq.to, nullptr, e.what());
            throw;
        }
    }
    cluster_.hand_over(name, rq.to);
    try {
        if (shared) cts_->forget(name);
        else {
            util::NullProgress quiet;
            cts_->remove(name, quiet);  // the domain and the copy that stayed here
        }
    } catch (const std::exception& e) {
        r.warnings.push_back(fmt::format("container {} is left defined here (stopped): {}", name, e.what()));
    }
    r.total_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    if (was_running) r.downtime_ms = r.total_ms;  // stopped here at the start, running there at the end
    r.ok = true;
    progress.step(100, fmt::format("container {} {} on {} ({} ms)", name, was_running ? "runs" : "is", rq.to, r.total_ms));
    spdlog::info("container {}: moved to {} in {} ms", name, rq.to, r.total_ms);
    announce("ct", name, rq.to, &r, "");
    return r;
}

void Migrator::check_rootfs_receive(const std::string& pool, const std::string& ct) const {
    api::validate_name(ct, "query parameter 'name'");
    auto p = pools_.get(pool);  // 404
    if (p.spec.type != "dir" && p.spec.type != "btrfs")
        fail(Errc::invalid_input, "pool '{}' ({}) holds no root filesystems", pool, p.spec.type);
    if (cts_ && cts_->exists(ct)) fail(Errc::conflict, "a container named '{}' is on this host already", ct);
    auto dest = pools_.content_dir(pool, "images") + "/" + ct + ".rootfs";
    struct stat st {};
    if (::lstat(dest.c_str(), &st) == 0) fail(Errc::conflict, "{} exists already", dest);
}

void Migrator::receive_rootfs(int fd, std::string pending, const std::string& pool, const std::string& ct) {
    FdReader in{fd, std::move(pending)};
    std::string dest, partial;
    bool unpacked = false;
    try {
        check_rootfs_receive(pool, ct);
        dest = pools_.content_dir(pool, "images") + "/" + ct + ".rootfs";
        partial = storage::rootfs_partial_path(dest);
        if (::access(partial.c_str(), F_OK) == 0) storage::remove_rootfs(partial);  // an earlier try's
        pools_.pool(pool)->make_rootfs_dir(partial);
        std::vector<std::string> argv{"tar", "-x", "-f", "-", "-C", partial, "-p"};
        argv.insert(argv.end(), kTarFlags.begin(), kTarFlags.end());
        bool ended = false;
        std::vector<char> buf(kMaxFrame);
        auto res = util::run_command_piped(argv, true, [&](int to_tar) {
            for (;;) {
                unsigned char h[4];
                if (!in.read(reinterpret_cast<char*>(h), 4, 60000)) fail(Errc::unavailable, "the stream ended before its end");
                std::uint32_t len = (std::uint32_t{h[0]} << 24) | (std::uint32_t{h[1]} << 16) | (std::uint32_t{h[2]} << 8) | h[3];
                if (len == 0) {
                    ended = true;
                    return;
                }
                if (len > kMaxFrame) fail(Errc::invalid_input, "a frame of {} bytes", len);
                if (!in.read(buf.data(), len, 60000)) fail(Errc::unavailable, "the stream ended in a frame");
                if (!cluster::write_fully(to_tar, buf.data(), len)) fail(Errc::internal, "tar stopped reading");
            }
        }, std::chrono::hours(6));
        if (!ended || res.exit_status != 0)
            fail(Errc::internal, "tar -x failed (exit {}): {}", res.exit_status, res.err.substr(0, 300));
        if (::rename(partial.c_str(), dest.c_str()) != 0) fail(Errc::internal, "rename to {}: {}", dest, std::strerror(errno));
        unpacked = true;
        auto ok = "OK " + dest + "\n";
        cluster::write_fully(fd, ok.data(), ok.size());
        auto word = in.line(15 * 60 * 1000);
        if (word == "COMMIT") {
            spdlog::info("container {}: root filesystem received at {}", ct, dest);
            ::close(fd);
            return;
        }
        spdlog::warn("container {}: the migration ended without its commit ({})", ct, word.empty() ? "connection closed" : word);
    } catch (const std::exception& e) {
        spdlog::warn("container {}: root filesystem not received: {}", ct, e.what());
        auto err = std::string("ERR ") + e.what() + "\n";
        cluster::write_fully(fd, err.data(), err.size());
    }
    ::close(fd);
    try {
        if (!partial.empty() && ::access(partial.c_str(), F_OK) == 0) storage::remove_rootfs(partial);
        bool used = false;
        try {
            used = cts_ && cts_->exists(ct);
        } catch (const Error&) {
            used = true;  // libvirt down: keep it rather than pull it from under a container
        }
        if (unpacked && !used) storage::remove_rootfs(dest);
    } catch (const std::exception& e) {
        spdlog::error("container {}: cleaning up a received root filesystem: {}", ct, e.what());
    }
}

api::VolumeInfo Migrator::check_volume_receive(const std::string& pool, const std::string& name) const {
    api::validate_name(name, "query parameter 'name'");
    auto v = pools_.volume(pool, name);  // 404
    if (!v.used_by.empty()) fail(Errc::conflict, "volume '{}' is used by {}: only a new, unused volume is written", name, fmt::join(v.used_by, ", "));
    if (v.path.empty()) fail(Errc::invalid_input, "volume '{}' of pool '{}' is no file", name, pool);
    return v;
}

void Migrator::receive_volume(int fd, std::string pending, const std::string& pool, const std::string& name) {
    FdReader in{fd, std::move(pending)};
    try {
        const auto v = check_volume_receive(pool, name);
        // The file may grow past the capacity by a qcow2's metadata; not by more.
        const std::uint64_t limit = v.capacity + v.capacity / 8 + (64ULL << 20);
        util::UniqueFd out(::open(v.path.c_str(), O_WRONLY | O_CLOEXEC));
        if (out.fd < 0 || ::ftruncate(out.fd, 0) != 0) fail(Errc::internal, "cannot write {}: {}", v.path, std::strerror(errno));
        const std::uint64_t off =
            receive_frames([&in](char* b, std::size_t n) { return in.read(b, n, 60000); }, out.fd, limit);
        if (::ftruncate(out.fd, static_cast<off_t>(off)) != 0 || ::fsync(out.fd) != 0)
            fail(Errc::internal, "cannot finish {}: {}", v.path, std::strerror(errno));
        spdlog::info("volume {}/{}: {} received", pool, name, api::format_size(off));
        auto ok = fmt::format("OK {}\n", off);
        cluster::write_fully(fd, ok.data(), ok.size());
    } catch (const std::exception& e) {
        // The sender removes the volume it made here (or its record's recovery does).
        spdlog::warn("volume {}/{}: not received: {}", pool, name, e.what());
        auto err = std::string("ERR ") + e.what() + "\n";
        cluster::write_fully(fd, err.data(), err.size());
    }
    ::close(fd);
}

void Migrator::announce(const std::string& kind, const std::string& name, const std::string& to,
                        const api::MigrateReport* r, const std::string& error) const {
    {
        std::lock_guard lk(counters_mu_);
        auto& c = counters_[kind];
        if (r) {
            ++c.ok;
            c.seconds += static_cast<double>(r->total_ms) / 1000.0;
            c.downtime_seconds += static_cast<double>(r->downtime_ms) / 1000.0;
        } else {
            ++c.failed;
        }
    }
    if (!publish_) return;
    json d{{"to", to}, {"from", cluster_.node()}, {"ok", r != nullptr}};
    if (r) {
        d["total_ms"] = r->total_ms;
        d["downtime_ms"] = r->downtime_ms;
        d["copied_disks"] = r->copied_disks;
        d["postcopy"] = r->postcopy;
    } else {
        d["error"] = error;
    }
    publish_(kind + ".migrate", kind + "/" + name, d);
}

std::map<std::string, Migrator::Counters> Migrator::counters() const {
    std::lock_guard lk(counters_mu_);
    auto out = counters_;
    for (const char* k : {"vm", "ct"}) out.try_emplace(k);  // both kinds always present (zeros)
    return out;
}

void Migrator::precheck_maintenance() const {
    if (!cluster_.member()) fail(Errc::conflict, "this host is in no cluster: maintenance moves its guests to other members");
}

json Migrator::enter_maintenance(int parallel, bool with_local_disks, util::Progress& progress, const std::string& reason) {
    precheck_maintenance();
    const std::string self = cluster_.node();
    json doc = cluster_.maintenance(self).value_or(json::object());
    if (reason.empty()) doc.erase("reason");
    else doc["reason"] = reason;
    if (!doc.contains("since")) doc["since"] = static_cast<std::int64_t>(std::time(nullptr));
    if (!doc.contains("moved") || !doc["moved"].is_array()) doc["moved"] = json::array();
    doc["state"] = "entering";
    doc["blockers"] = json::array();
    cluster_.put_maintenance(doc);
    progress.step(1, "no new guests on " + self + "; moving the running VMs");

    std::vector<std::string> queue;  // running VMs not handled yet
    for (const auto& v : vms_.list())
        if (v.state == api::VmState::running) queue.push_back(v.spec.name);
    std::mutex mu;
    std::map<std::string, std::uint64_t> planned;  // memory sent to each host by this run
    std::vector<std::string> blockers;
    std::size_t done = 0;
    GuestProgress::Shared shared;
    // The member with the most free memory (minus what this run sent there) that passes the
    // guest's pre-flight; "" and a blocker naming every member's reasons when none does.
    auto pick = [&](const char* kind, const std::string& name, std::uint64_t memory) -> std::string {
        std::string best;
        std::uint64_t best_free = 0;
        std::vector<std::string> why;
        for (const auto& h : cluster_.hosts()) {
            if (h.name == self || !h.online || cluster_.maintenance(h.name)) continue;
            api::MigrateRequest rq;
            rq.to = h.name;
            const bool ct = std::string_view(kind) == "ct";
            rq.with_local_disks = with_local_disks && !ct;
            auto r = ct ? check_ct(name, rq) : check(name, rq);
            std::uint64_t free = h.memory_total > h.memory_used ? h.memory_total - h.memory_used : 0;
            std::lock_guard lk(mu);
            free = free > planned[h.name] ? free - planned[h.name] : 0;
            if (!r.ok) {
                why.push_back(fmt::format("{}: {}", h.name, fmt::join(r.blockers, "; ")));
                continue;
            }
            if (free >= memory && (best.empty() || free > best_free)) {
                best = h.name;
                best_free = free;
            }
        }
        std::lock_guard lk(mu);
        if (best.empty())
            blockers.push_back(
                fmt::format("{} {}: no member can take it{}{}", kind, name, why.empty() ? "" : ": ", fmt::join(why, " | ")));
        else
            planned[best] += memory;
        return best;
    };
    auto worker = [&] {
        for (;;) {
            std::string vm;
            {
                std::lock_guard lk(mu);
                if (queue.empty() || progress.cancelled()) return;
                vm = queue.back();
                queue.pop_back();
            }
            std::string to;
            bool copied = false;
            try {
                to = pick("vm", vm, vms_.get(vm).spec.memory);
                if (!to.empty()) {
                    api::MigrateRequest rq;
                    rq.to = to;
                    rq.with_local_disks = with_local_disks;
                    GuestProgress sub(progress, shared, vm);
                    copied = !migrate(vm, rq, sub).copied_disks.empty();
                }
            } catch (const std::exception& e) {
                std::lock_guard lk(mu);
                blockers.push_back(fmt::format("vm {}: {}", vm, e.what()));
                to.clear();
            }
            std::lock_guard lk(mu);
            ++done;
            if (!to.empty()) {
                json mv{{"guest", vm}, {"to", to}};
                if (copied) mv["local_disks"] = true;  // exit --return copies them back
                doc["moved"].push_back(mv);
                progress.log(fmt::format("vm {} -> {}", vm, to));
            }
            const int pct = static_cast<int>(5 + 90 * done / std::max<std::size_t>(1, done + queue.size()));
            {
                std::lock_guard slk(shared.mu);
                shared.overall = pct;
            }
            progress.step(pct, fmt::format("{} of the running VMs handled", done));
        }
    };
    std::vector<std::thread> pool;
    for (int i = 0; i < std::max(1, parallel); ++i) pool.emplace_back([&] { util::guarded("maintenance", worker); });
    for (auto& t : pool) t.join();
    // Then the running containers, one at a time (a container moves by restart: shut down
    // here, root filesystem copied unless on a shared pool, started there) to the member with
    // the most free memory that passes its pre-flight.
    std::vector<std::string> cts;
    if (running_cts_ && cts_ && !progress.cancelled()) cts = running_cts_();
    for (std::size_t i = 0; i < cts.size() && !progress.cancelled(); ++i) {
        const std::string& ct = cts[i];
        progress.step(95, fmt::format("moving container {} ({} of {})", ct, i + 1, cts.size()));
        try {
            std::string best = pick("ct", ct, cts_->get(ct).spec.memory);
            if (best.empty()) continue;
            api::MigrateRequest rq;
            rq.to = best;
            GuestProgress sub(progress, shared, ct);
            migrate_ct(ct, rq, sub);
            doc["moved"].push_back(json{{"guest", ct}, {"kind", "ct"}, {"to", best}});
            progress.log(fmt::format("ct {} -> {}", ct, best));
        } catch (const std::exception& e) {
            blockers.push_back(fmt::format("ct {}: {}", ct, e.what()));
        }
    }
    doc["blockers"] = blockers;
    doc["state"] = blockers.empty() ? "in" : "entering";
    cluster_.put_maintenance(doc);
    progress.step(100, blockers.empty() ? self + " is in maintenance: no running guest left"
                                        : fmt::format("{} stays entering maintenance: {} blocker(s)", self, blockers.size()));
    return json{{"host", self}, {"maintenance", doc}};
}

json Migrator::maintenance_status() const {
    if (!cluster_.member()) return json{{"host", cluster_.node()}, {"maintenance", nullptr}};
    auto doc = cluster_.maintenance(cluster_.node());
    return json{{"host", cluster_.node()}, {"maintenance", doc ? *doc : json()}};
}

json Migrator::exit_maintenance(bool bring_back, util::Progress& progress) {
    if (!cluster_.member()) fail(Errc::conflict, "this host is in no cluster");
    const std::string self = cluster_.node();
    auto doc = cluster_.maintenance(self);
    if (!doc) fail(Errc::conflict, "host {} is not in maintenance", self);
    cluster_.clear_maintenance();
    json back = json::array(), failed = json::array();
    if (bring_back && doc->contains("moved") && (*doc)["moved"].is_array()) {
        const auto& moved = (*doc)["moved"];
        std::size_t i = 0;
        for (const auto& m : moved) {
            ++i;
            std::string vm = m.value("guest", ""), from = m.value("to", "");
            const std::string kind = m.value("kind", "vm") == "ct" ? "ct" : "vm";
            if (vm.empty() || from.empty() || cluster_.owner_of(vm) != from) continue;
            progress.step(static_cast<int>(100 * i / (moved.size() + 1)), fmt::format("bringing back {} {} from {}", kind, vm, from));
            // The request runs on the VM's owner: through that member's API. That member may
            // not have seen the end of the maintenance yet (its cache follows the watch): a
            // blocker "in maintenance" is asked again for 10 s. One at a time: they all come
            // back to this one host.
            try {
                json body{{"to", self}};
                if (m.value("local_disks", false)) body["with_local_disks"] = true;
                auto task = member_task(cluster_, from, "POST", "/v1/" + kind + "s/" + escape_segment(vm) + "/migrate",
                                        body.dump(), progress, std::chrono::minutes(10),
                                        [](const cluster::HttpsResponse& r) {
                                            return r.status == 409 && r.body.find("in maintenance") != std::string::npos;
                                        });
                back.push_back(json{{"guest", vm}, {"kind", kind}, {"from", from}, {"task", task.value("id", "")}});
            } catch (const std::exception& e) {
                failed.push_back(json{{"guest", vm}, {"kind", kind}, {"error", e.what()}});
            }
        }
    }
    progress.step(100, fmt::format("{} left maintenance", self));
    return json{{"host", self}, {"returning", back}, {"failed", failed}};
}

}  // namespace hv::migrate
