#include "backup_service.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <spdlog/spdlog.h>

#include "hv/api/vm.hpp"
#include "hv/error.hpp"
#include "hv/util/atomic_file.hpp"
#include "hv/util/fd.hpp"
#include "hv/util/command.hpp"
#include "hv/util/reverter.hpp"
#include "hv/virt/domain_xml.hpp"
#include "live_backup.hpp"
#include "prune.hpp"

namespace hv::backup {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr double kMiB = 1024.0 * 1024.0;
// Garbage collection keeps unreferenced chunks written or found within this (docs/backup.md).
constexpr std::int64_t kGcGraceSeconds = 24 * 3600;

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A file in the store's tmp/ that is removed when the operation ends, whichever way.
struct Scratch {
    std::string path;
    explicit Scratch(const std::string& dir, const std::string& base) {
        path = dir + "/" + base + "-" + util::random_uuid().substr(0, 8) + ".raw";
    }
    ~Scratch() { ::unlink(path.c_str()); }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
};

using Fd = util::UniqueFd;

// Runs qemu-img (argv only); the task's cancel kills it.
void qemu_img(const std::vector<std::string>& argv, util::Progress& progress, const std::string& what) {
    auto r = util::run_command_lines(argv, std::chrono::hours(24), [&](const std::string&) { return !progress.cancelled(); });
    if (progress.cancelled()) fail(Errc::cancelled, "{} was cancelled", what);
    if (r.exit_status != 0) fail(Errc::internal, "{}: qemu-img failed ({}): {}", what, r.exit_status, r.out + r.err);
}

// Reads a raw image file chunk by chunk into the store.
struct Chunker {
    ChunkStore& cs;
    util::Progress& progress;
    std::uint64_t total;        // bytes of all disks
    std::uint64_t done = 0;     // bytes read so far
    std::uint64_t new_data = 0; // compressed bytes written
    Clock::time_point started = Clock::now();
    Clock::time_point last_update{};

    std::string rate() const {
        double s = std::chrono::duration<double>(Clock::now() - started).count();
        return fmt::format("{:.1f} MiB/s, new data {:.1f} MiB", s > 0 ? done / kMiB / s : 0.0, new_data / kMiB);
    }

    DiskIndex read(const std::string& file, const std::string& name, const std::string& format, std::uint64_t size) {
        DiskIndex d{name, format, size, {}};
        Fd f(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
        if (f.fd < 0) fail(Errc::internal, "cannot open {}: {}", file, std::strerror(errno));
        std::string buf(kChunkSize, '\0');
        for (std::uint64_t off = 0; off < size; off += kChunkSize) {
            if (progress.cancelled()) fail(Errc::cancelled, "the backup was cancelled");
            std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunkSize, size - off));
            std::size_t got = 0;
            while (got < want) {
                auto r = ::pread(f.fd, buf.data() + got, want - got, static_cast<off_t>(off + got));
                if (r < 0 && errno == EINTR) continue;
                if (r < 0) fail(Errc::internal, "cannot read {}: {}", file, std::strerror(errno));
                if (r == 0) break;  // shorter than its virtual size: the rest reads as zeros
                got += static_cast<std::size_t>(r);
            }
            std::memset(buf.data() + got, 0, want - got);
            auto p = cs.put(std::string_view(buf.data(), want));
            d.chunks.push_back(p.id);
            new_data += p.stored;
            done += want;
            auto now = Clock::now();
            if (now - last_update > std::chrono::milliseconds(500)) {
                last_update = now;
                progress.update(total ? static_cast<int>(100 * done / total) : 0,
                                fmt::format("{}: {:.0f} of {:.0f} MiB, {}", name, done / kMiB, total / kMiB, rate()));
            }
        }
        return d;
    }
};

// The virtual size of an image (qemu-img info).
std::uint64_t virtual_size(const std::string& path, const std::string& format) {
    auto out = util::run_checked({"qemu-img", "info", "--output=json", "-U", "-f", format, path});
    auto j = json::parse(out, nullptr, false);
    if (!j.is_object() || !j.contains("virtual-size") || !j["virtual-size"].is_number_unsigned())
        fail(Errc::internal, "qemu-img info of {} gave no virtual size", path);
    return j["virtual-size"].get<std::uint64_t>();
}

void pwrite_all(int fd, const std::string& data, std::uint64_t off, const std::string& what) {
    std::size_t done = 0;
    while (done < data.size()) {
        auto w = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(off + done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) fail(Errc::internal, "cannot write {}: {}", what, std::strerror(errno));
        done += static_cast<std::size_t>(w);
    }
}

}  // namespace

BackupService::BackupService(std::string state_dir, virt::VmManager& vms, storage::PoolManager& pools,
                             guest::Guests& guests)
    : state_file_(state_dir + "/backup-stores.json"), vms_(vms), pools_(pools), guests_(guests) {
    std::ifstream in(state_file_);
    if (!in) return;
    auto j = json::parse(in, nullptr, false);
    if (!j.is_object() || !j.contains("stores") || !j["stores"].is_array()) {
        spdlog::error("{} is malformed: no backup stores loaded", state_file_);
        return;
    }
    for (const auto& s : j["stores"]) {
        try {
            auto spec = api::backup_store_from_json(s);
            stores_[spec.name] = spec;
        } catch (const Error& e) {
            spdlog::error("{}: a store is skipped: {}", state_file_, e.what());
        }
    }
    // Scratch files an hvd killed in the middle of a backup or restore left (nothing runs yet).
    for (const auto& [name, spec] : stores_) {
        try {
            ChunkStore cs(spec.path);
            if (auto n = cs.sweep_scratch()) spdlog::info("backup store {}: removed {} leftover scratch file(s)", name, n);
        } catch (const Error& e) {
            spdlog::warn("backup store {}: {}", name, e.what());
        }
    }
}

void BackupService::save_locked() const {
    json doc{{"stores", json::array()}};
    for (const auto& [_, s] : stores_) doc["stores"].push_back(api::to_json(s));
    fs::create_directories(fs::path(state_file_).parent_path());
    util::write_file_atomic(state_file_, doc.dump(2) + "\n");
}

std::vector<api::BackupStoreSpec> BackupService::stores() const {
    std::lock_guard lk(mu_);
    std::vector<api::BackupStoreSpec> out;
    for (const auto& [_, s] : stores_) out.push_back(s);
    return out;
}

api::BackupStoreSpec BackupService::store(const std::string& name) const {
    std::lock_guard lk(mu_);
    auto it = stores_.find(name);
    if (it == stores_.end()) fail(Errc::not_found, "backup store '{}' does not exist", name);
    return it->second;
}

api::BackupStoreSpec BackupService::add_store(const api::BackupStoreSpec& in) {
    auto spec = in;
    spec.path = fs::path(spec.path).lexically_normal().string();
    if (spec.path.size() > 1 && spec.path.back() == '/') spec.path.pop_back();
    std::error_code ec;
    if (!fs::is_directory(spec.path, ec))
        fail(Errc::invalid_input, "backup store path {} is no existing directory", spec.path);
    std::lock_guard lk(mu_);
    if (stores_.count(spec.name)) fail(Errc::conflict, "backup store '{}' exists already", spec.name);
    for (const auto& [n, s] : stores_)
        if (s.path == spec.path) fail(Errc::conflict, "backup store '{}' has that directory already", n);
    ChunkStore cs(spec.path, true);  // makes the layout
    stores_[spec.name] = spec;
    try {
        save_locked();
    } catch (...) {
        stores_.erase(spec.name);
        throw;
    }
    return spec;
}

void BackupService::remove_store(const std::string& name) {
    std::lock_guard lk(mu_);
    auto it = stores_.find(name);
    if (it == stores_.end()) fail(Errc::not_found, "backup store '{}' does not exist", name);
    auto keep = it->second;
    stores_.erase(it);
    try {
        save_locked();
    } catch (...) {
        stores_[name] = keep;
        throw;
    }
}

std::shared_mutex& BackupService::store_lock(const std::string& name) {
    std::lock_guard lk(mu_);
    auto& l = locks_[name];
    if (!l) l = std::make_unique<std::shared_mutex>();
    return *l;
}

json BackupService::info_json(const ChunkStore& cs, const Manifest& m, const std::string& store) const {
    json disks = json::array();
    for (const auto& d : m.disks) {
        std::size_t zero = 0;
        for (const auto& c : d.chunks) zero += c == kZeroChunk;
        disks.push_back({{"name", d.name}, {"format", d.format}, {"size", d.size}, {"chunks", d.chunks.size()},
                         {"zero_chunks", zero}});
    }
    return {{"store", store},       {"guest", m.guest},       {"time", m.time},
            {"mode", m.mode},       {"quiesced", m.quiesced}, {"size", m.size}, {"new_data", m.new_data},
            {"duration_ms", m.duration_ms}, {"disks", disks}, {"verified", cs.verified(m.guest, m.time)}};
}

void BackupService::precheck_create(const std::string& vm, const api::BackupCreate& rq) const {
    store(rq.store);
    auto info = vms_.get(vm);  // 404
    if (!info.managed) fail(Errc::conflict, "vm '{}' was not created by hv: it cannot be backed up", vm);
    for (const auto& d : info.spec.disks)
        if (d.path.empty())
            fail(Errc::unsupported, "disk '{}' of vm '{}' is no file volume (pool '{}'): backups of rbd volumes are not built yet",
                 d.name, vm, d.pool);
    bool running = info.state == api::VmState::running || info.state == api::VmState::paused;
    bool stopped = info.state == api::VmState::stopped || info.state == api::VmState::crashed;
    if (!running && !stopped) fail(Errc::conflict, "vm '{}' is {}: wait until it runs or is stopped", vm, api::to_string(info.state));
}

// --mode stop: the VM started again, told as an admin's start (HA records it); HA's agent may
// have started it first, which is as good.
void BackupService::start_again(const std::string& vm) {
    guests_.requested(api::GuestKind::vm, vm, "start");
    try {
        vms_.action(vm, "start");
    } catch (const Error& e) {
        if (e.code() != Errc::conflict || vms_.get(vm).state != api::VmState::running) throw;
    }
}

json BackupService::create(const std::string& vm, const api::BackupCreate& rq, util::Progress& progress) {
    precheck_create(vm, rq);
    auto st = store(rq.store);
    std::shared_lock slk(store_lock(rq.store));
    ChunkStore cs(st.path);
    auto started = Clock::now();
    auto info = vms_.get(vm);
    bool running = info.state == api::VmState::running || info.state == api::VmState::paused;

    Manifest m;
    m.guest = vm;
    m.time = format_backup_time(now_s());
    m.spec = json(info.spec);
    try {
        cs.read_manifest(vm, m.time);
        fail(Errc::conflict, "a backup of '{}' at {} exists already; try again in a second", vm, m.time);
    } catch (const Error& e) {
        if (e.code() != Errc::not_found) throw;
    }

    // --mode stop: shut down (no force: a guest that does not stop fails the backup and keeps
    // running), back up, start again, also when the backup failed.
    util::Reverter restart;
    if (running && rq.mode == "stop") {
        progress.step(0, fmt::format("shutting down vm {}", vm));
        bool forced = false;
        // Told like an admin's shutdown and start (HA records it: its agent does not start the
        // VM again in the middle of the backup).
        guests_.requested(api::GuestKind::vm, vm, "shutdown");
        guest::shutdown(guests_.driver(api::GuestKind::vm), vm, rq.shutdown_timeout, false, progress, &forced);
        restart.add([this, vm, &progress] {
            progress.log(fmt::format("starting vm {} again", vm));
            try {
                start_again(vm);
            } catch (const Error& e) {
                progress.log(fmt::format("vm {} did not start again: {}", vm, e.what()));
                spdlog::error("backup: vm {} did not start again after a failed backup: {}", vm, e.what());
            }
        });
        running = false;
        m.mode = "stop";
    } else {
        m.mode = running ? "snapshot" : "offline";
    }

    std::uint64_t total = 0;
    for (const auto& d : info.spec.disks) total += d.size;
    Chunker ch{cs, progress, total};
    if (running) {
        // libvirt's push backup into scratch files, then those are chunked.
        std::vector<LiveDisk> disks;
        std::vector<std::unique_ptr<Scratch>> scratch;
        for (const auto& d : info.spec.disks) {
            scratch.push_back(std::make_unique<Scratch>(cs.scratch_dir(), vm + "-" + d.name));
            disks.push_back({d.path, scratch.back()->path});
        }
        progress.step(0, fmt::format("libvirt backup job of vm {} into {}", vm, cs.scratch_dir()));
        m.quiesced = live_backup(vms_.connection(), vm, disks, progress);
        for (std::size_t i = 0; i < info.spec.disks.size(); ++i) {
            const auto& d = info.spec.disks[i];
            progress.step(static_cast<int>(total ? 100 * ch.done / total : 0), fmt::format("chunking {}", d.name));
            // The size of what libvirt wrote, not the spec's: a volume grown while the VM was
            // stopped is bigger than the size the spec recorded at create.
            struct stat st {};
            if (::stat(scratch[i]->path.c_str(), &st) != 0)
                fail(Errc::internal, "the backup job wrote no file for disk {}: {}", d.name, ::strerror(errno));
            m.disks.push_back(ch.read(scratch[i]->path, d.name, d.format, static_cast<std::uint64_t>(st.st_size)));
            ::unlink(scratch[i]->path.c_str());
        }
    } else {
        for (const auto& d : info.spec.disks) {
            // qemu-img holds the image's lock while it reads: QEMU cannot open it for writing
            // meanwhile. Its raw output is chunked.
            Scratch s(cs.scratch_dir(), vm + "-" + d.name);
            progress.step(static_cast<int>(total ? 100 * ch.done / total : 0),
                          fmt::format("reading {} ({}, {})", d.name, d.format, d.path));
            auto size = virtual_size(d.path, d.format);
            qemu_img({"qemu-img", "convert", "-f", d.format, "-O", "raw", d.path, s.path}, progress,
                     fmt::format("reading disk {} of vm {}", d.name, vm));
            m.disks.push_back(ch.read(s.path, d.name, d.format, size));
        }
        auto now = vms_.get(vm);
        if (now.state != api::VmState::stopped && now.state != api::VmState::crashed)
            fail(Errc::conflict, "vm '{}' was started during its backup: the disks may not be consistent; backup dropped", vm);
    }
    m.size = 0;
    for (const auto& d : m.disks) m.size += d.size;
    m.new_data = ch.new_data;
    m.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    progress.step(100, fmt::format("writing the manifest ({})", ch.rate()));
    cs.write_manifest(m);
    spdlog::info("backup of vm {} into store {}: {} ({} bytes, {} new)", vm, rq.store, m.time, m.size, m.new_data);
    if (m.mode == "stop") {
        // Started again here, not by the reverter, so that a failed start is the task's error.
        restart.release();
        progress.step(100, fmt::format("starting vm {} again", vm));
        try {
            start_again(vm);
        } catch (const Error& e) {
            fail(e.code(), "backup {}/{} is written, but vm '{}' did not start again: {}", vm, m.time, vm, e.what());
        }
    }
    return info_json(cs, m, rq.store);
}

json BackupService::list(const std::string& store_name, const std::string& guest) const {
    std::vector<api::BackupStoreSpec> sel;
    if (!store_name.empty()) sel.push_back(store(store_name));
    else sel = stores();
    if (!guest.empty()) api::validate_name(guest, "guest");
    json out = json::array();
    for (const auto& s : sel) {
        try {
            ChunkStore cs(s.path);
            for (const auto& m : cs.manifests(guest)) out.push_back(info_json(cs, m, s.name));
        } catch (const Error& e) {
            if (!store_name.empty()) throw;
            spdlog::warn("backup store {}: {}", s.name, e.what());
        }
    }
    return out;
}

void BackupService::precheck_restore(const std::string& store_name, const std::string& guest, const std::string& time,
                                     const api::BackupRestore& rq) const {
    auto st = store(store_name);
    ChunkStore cs(st.path);
    auto m = cs.read_manifest(guest, time);  // 404
    auto name = rq.as.empty() ? guest : rq.as;
    try {
        vms_.get(name);
        fail(Errc::conflict, "vm '{}' exists: restore with --as NEW", name);
    } catch (const Error& e) {
        if (e.code() != Errc::not_found) throw;
    }
    if (!rq.pool.empty()) {
        auto p = pools_.get(rq.pool);  // 404
        if (p.spec.type == "rbd") fail(Errc::unsupported, "restore into rbd pool '{}' is not built yet", rq.pool);
    }
}

json BackupService::restore(const std::string& store_name, const std::string& guest, const std::string& time,
                            const api::BackupRestore& rq, util::Progress& progress) {
    precheck_restore(store_name, guest, time, rq);
    auto st = store(store_name);
    std::shared_lock slk(store_lock(store_name));
    ChunkStore cs(st.path);
    auto m = cs.read_manifest(guest, time);
    auto name = rq.as.empty() ? guest : rq.as;

    auto spec = api::vm_spec_from_json(m.spec, api::JsonOrigin::hvd);
    spec.name = name;
    spec.is_template = false;
    if (name != guest)
        for (auto& n : spec.nics) n.mac = virt::random_mac();
    std::map<std::string, const DiskIndex*> index;
    for (const auto& d : m.disks) index[d.name] = &d;
    for (auto& d : spec.disks) {
        auto it = index.find(d.name);
        if (it == index.end()) fail(Errc::internal, "the manifest has no index for disk '{}'", d.name);
        if (!rq.pool.empty()) d.pool = rq.pool;
        if (pools_.get(d.pool).spec.type == "rbd")
            fail(Errc::unsupported, "restore into rbd pool '{}' is not built yet", d.pool);
        d.volume.clear();
        d.path.clear();
        d.source.reset();
        d.owned = false;
        d.size = it->second->size;
        d.format = it->second->format;
    }

    // The VM with new, empty volumes (its create undoes itself on failure); then the content.
    progress.step(0, fmt::format("creating vm {} with {} new volume(s)", name, spec.disks.size()));
    auto made = vms_.create(spec, progress);
    util::Reverter revert;
    revert.add([this, name, &progress] {
        progress.log(fmt::format("restore failed: deleting vm {} and its volumes", name));
        vms_.remove(name, true, progress);
    });
    std::uint64_t total = m.size, done = 0;
    auto t0 = Clock::now();
    auto last = Clock::time_point{};
    for (const auto& d : made.spec.disks) {
        const auto& ix = *index.at(d.name);
        if (d.path.empty()) fail(Errc::unsupported, "disk '{}' is no file volume: restore needs one", d.name);
        progress.step(static_cast<int>(total ? 100 * done / total : 0),
                      fmt::format("writing {} ({} MiB, {})", d.name, ix.size / (1024 * 1024), d.format));
        // Raw volumes are written in place; qcow2 through a raw scratch file and qemu-img.
        std::unique_ptr<Scratch> scratch;
        std::string target = d.path;
        if (d.format != "raw") {
            scratch = std::make_unique<Scratch>(cs.scratch_dir(), name + "-" + d.name);
            target = scratch->path;
        }
        {
            Fd f(::open(target.c_str(), O_WRONLY | O_CLOEXEC | (scratch ? O_CREAT | O_EXCL : 0), 0600));
            if (f.fd < 0) fail(Errc::internal, "cannot open {}: {}", target, std::strerror(errno));
            if (scratch && ::ftruncate(f.fd, static_cast<off_t>(ix.size)) != 0)
                fail(Errc::internal, "cannot size {}: {}", target, std::strerror(errno));
            for (std::size_t k = 0; k < ix.chunks.size(); ++k) {
                if (progress.cancelled()) fail(Errc::cancelled, "the restore was cancelled");
                std::uint64_t off = k * kChunkSize;
                std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(kChunkSize, ix.size - off));
                done += len;
                if (ix.chunks[k] == kZeroChunk) continue;  // new volumes read as zeros
                auto data = cs.get(ix.chunks[k]);
                if (data.size() != len)
                    fail(Errc::internal, "chunk {} of disk {} has {} bytes, the index expects {}", ix.chunks[k], d.name,
                         data.size(), len);
                pwrite_all(f.fd, data, off, target);
                auto now = Clock::now();
                if (now - last > std::chrono::milliseconds(500)) {
                    last = now;
                    double s = std::chrono::duration<double>(now - t0).count();
                    progress.update(static_cast<int>(total ? 100 * done / total : 0),
                                    fmt::format("{}: {:.0f} of {:.0f} MiB, {:.1f} MiB/s", d.name, done / kMiB,
                                                total / kMiB, s > 0 ? done / kMiB / s : 0.0));
                }
            }
            if (::fsync(f.fd) != 0) fail(Errc::internal, "cannot fsync {}: {}", target, std::strerror(errno));
        }
        if (scratch)
            qemu_img({"qemu-img", "convert", "-n", "--target-is-zero", "-f", "raw", "-O", d.format, scratch->path, d.path},
                     progress, fmt::format("writing disk {} of vm {}", d.name, name));
    }
    if (rq.start) {
        progress.step(100, fmt::format("starting vm {}", name));
        vms_.action(name, "start");
    }
    revert.release();
    spdlog::info("restored {}/{} of store {} as vm {}", guest, time, store_name, name);
    return json(vms_.get(name));
}

json BackupService::verify(const std::string& store_name, const std::string& guest, const std::string& time,
                           util::Progress& progress) {
    auto st = store(store_name);
    std::shared_lock slk(store_lock(store_name));
    ChunkStore cs(st.path);
    std::vector<Manifest> list;
    std::vector<std::string> bad_manifests;
    if (!time.empty()) list.push_back(cs.read_manifest(guest, time));
    else list = cs.manifests(guest, &bad_manifests);
    if (list.empty() && bad_manifests.empty())
        fail(Errc::not_found, "no backups{} in store '{}'", guest.empty() ? "" : " of " + guest, store_name);

    // Each chunk is checked once; its verdict counts for every backup that names it.
    std::map<std::string, std::string> verdict;  // id -> "" (good) or the error
    std::size_t total = 0;
    for (const auto& m : list)
        for (const auto& d : m.disks) total += d.chunks.size();
    std::size_t seen = 0;
    json backups = json::array();
    json bad_chunks = json::array();
    auto at = format_backup_time(now_s());
    for (const auto& m : list) {
        json bad = json::array();
        for (const auto& d : m.disks)
            for (std::size_t i = 0; i < d.chunks.size(); ++i) {
                const auto& id = d.chunks[i];
                if (progress.cancelled()) fail(Errc::cancelled, "the verify was cancelled");
                if (++seen % 16 == 0)
                    progress.update(static_cast<int>(100 * seen / std::max<std::size_t>(total, 1)),
                                    fmt::format("{}/{}: chunk {} of {}", m.guest, m.time, seen, total));
                if (id == kZeroChunk) continue;
                // The index's length of chunk i (the last one of a disk may be short): a chunk
                // whose content hashes right but has another length cannot restore the disk.
                const std::uint64_t off = static_cast<std::uint64_t>(i) * m.chunk_size;
                const std::uint64_t want = off < d.size ? std::min<std::uint64_t>(m.chunk_size, d.size - off) : 0;
                const std::string key = id + ":" + std::to_string(want);
                auto it = verdict.find(key);
                if (it == verdict.end()) {
                    std::string err;
                    try {
                        auto data = cs.get(id);
                        if (data.size() != want)
                            err = fmt::format("chunk {} has {} bytes where disk {} of {}/{} needs {}", id, data.size(), d.name,
                                              m.guest, m.time, want);
                    } catch (const Error& e) {
                        err = e.what();
                    }
                    it = verdict.emplace(key, err).first;
                    if (!err.empty()) bad_chunks.push_back({{"chunk", id}, {"error", err}});
                }
                if (!it->second.empty()) bad.push_back({{"disk", d.name}, {"chunk", id}});
            }
        bool ok = bad.empty();
        cs.set_verified(m.guest, m.time, ok, at);
        progress.log(fmt::format("{}/{}: {}", m.guest, m.time, ok ? "ok" : fmt::format("{} bad chunk(s)", bad.size())));
        backups.push_back({{"guest", m.guest}, {"time", m.time}, {"ok", ok}, {"bad_chunks", bad}});
    }
    json result{{"store", store_name},
                {"backups", backups},
                {"chunks_checked", verdict.size()},
                {"bad_chunks", bad_chunks},
                {"bad_manifests", bad_manifests},
                {"ok", bad_chunks.empty() && bad_manifests.empty()}};
    if (!result["ok"].get<bool>()) {
        std::vector<std::string> names;
        for (const auto& b : bad_chunks) names.push_back(b["error"].get<std::string>());
        for (const auto& b : bad_manifests) names.push_back("manifest " + b);
        fail(Errc::internal, "verify of store '{}' failed: {}", store_name, fmt::join(names, "; "));
    }
    return result;
}

json BackupService::prune(const std::string& store_name, const api::BackupPrune& rq, util::Progress& progress) {
    auto st = store(store_name);
    ChunkStore cs(st.path);
    std::unique_lock xlk(store_lock(store_name), std::defer_lock);
    if (!rq.dry_run) xlk.lock();  // no backup of this store runs while chunks go
    auto list = cs.manifests(rq.guest);
    std::vector<std::int64_t> times;
    for (const auto& m : list) times.push_back(parse_backup_time(m.time));
    auto keep = prune_keep(times, KeepPolicy{rq.keep_last, rq.keep_daily, rq.keep_weekly, rq.keep_monthly});
    json kept = json::array(), removed = json::array();
    for (std::size_t i = 0; i < list.size(); ++i) (keep[i] ? kept : removed).push_back(list[i].time);
    json out{{"store", store_name}, {"guest", rq.guest}, {"dry_run", rq.dry_run}, {"kept", kept}, {"removed", removed}};
    if (rq.dry_run) return out;
    for (std::size_t i = 0; i < list.size(); ++i)
        if (!keep[i]) {
            progress.log(fmt::format("removing backup {}/{}", rq.guest, list[i].time));
            cs.remove_manifest(rq.guest, list[i].time);
        }
    // Garbage collection: the chunks no manifest of any guest names. A manifest that cannot
    // be read stops it (its chunks might be removed otherwise).
    std::vector<std::string> bad;
    auto all = cs.manifests("", &bad);
    if (!bad.empty()) {
        out["gc"] = json{{"skipped", fmt::format("unreadable manifests: {}", fmt::join(bad, "; "))}};
        return out;
    }
    std::set<std::string> used;
    for (const auto& m : all)
        for (const auto& d : m.disks) used.insert(d.chunks.begin(), d.chunks.end());
    // A chunk no manifest names but written or found within the grace period stays: a backup
    // running on another host that shares the store may have found it and not written its
    // manifest yet (this host's lock does not reach there). Proxmox Backup Server's rule too.
    const std::int64_t cutoff = now_s() - kGcGraceSeconds;
    std::uint64_t freed = 0, n = 0, recent = 0;
    for (const auto& id : cs.chunk_ids())
        if (!used.count(id)) {
            if (auto size = cs.remove_chunk(id, cutoff)) {
                freed += *size;
                ++n;
            } else {
                ++recent;
            }
        }
    progress.log(fmt::format("garbage collection: {} chunk(s), {} bytes freed; {} unreferenced chunk(s) of the last {} h kept",
                             n, freed, recent, kGcGraceSeconds / 3600));
    out["gc"] = json{{"chunks_removed", n}, {"bytes_freed", freed}, {"recent_kept", recent}};
    return out;
}

}  // namespace hv::backup
