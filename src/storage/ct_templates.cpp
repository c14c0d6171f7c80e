#include "ct_templates.hpp"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "hv/error.hpp"
#include "hv/util/command.hpp"
#include "hv/util/reverter.hpp"

namespace hv::storage {
namespace fs = std::filesystem;

namespace {
constexpr const char* kContent = "vztmpl";
const std::vector<std::string> kExtensions{".tar.gz", ".tar.xz", ".tar.zst", ".tar"};
// The busybox-static package's binary (scripts/install-deps.sh installs it).
constexpr const char* kBusybox = "/bin/busybox";

bool is_file(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool has_template_ext(const std::string& n) {
    return std::any_of(kExtensions.begin(), kExtensions.end(),
                       [&](const std::string& e) { return n.size() > e.size() && n.ends_with(e); });
}

std::string last_lines(const std::string& text, std::size_t n = 3) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        if (!l.empty()) lines.push_back(l);
    if (lines.size() > n) lines.erase(lines.begin(), lines.end() - static_cast<long>(n));
    std::string out;
    for (const auto& l : lines) out += (out.empty() ? "" : "; ") + l;
    return out;
}

void write_file(const fs::path& p, const std::string& text, mode_t mode) {
    {
        std::ofstream out(p, std::ios::trunc);
        out << text;
        if (!out) fail(Errc::internal, "cannot write {}", p.string());
    }
    ::chmod(p.c_str(), mode);
}

// Lays out a busybox root filesystem in `root` (an empty directory).
void populate_busybox(const fs::path& root) {
    if (!is_file(kBusybox))
        fail(Errc::unsupported, "{} is missing: install Debian's busybox-static package", kBusybox);
    for (const char* d : {"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "run", "root",
                          "var/log", "home"})
        fs::create_directories(root / d);
    ::chmod((root / "tmp").c_str(), 01777);
    ::chmod((root / "root").c_str(), 0700);
    fs::copy_file(kBusybox, root / "bin/busybox");
    ::chmod((root / "bin/busybox").c_str(), 0755);
    auto applets = util::run_checked({kBusybox, "--list-full"});
    std::istringstream in(applets);
    for (std::string a; std::getline(in, a);) {
        if (a.empty() || a[0] == '/' || a.find("..") != std::string::npos) continue;
        auto link = root / a;
        if (fs::exists(fs::symlink_status(link))) continue;
        fs::create_directories(link.parent_path());
        fs::create_symlink("/bin/busybox", link);
    }
    // init: PID 1 of the container. The kernel ignores signals PID 1 has no handler for, so
    // it traps those libvirt sends to stop (SIGTERM) or reboot (SIGHUP) it.
    fs::remove(root / "sbin/init");
    write_file(root / "sbin/init", R"(#!/bin/sh
# hv busybox container init
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t tmpfs -o mode=1777 tmpfs /tmp 2>/dev/null
[ -s /etc/hostname ] && hostname -F /etc/hostname
ip link set lo up 2>/dev/null
for n in /sys/class/net/*; do
  n=${n##*/}
  [ "$n" = lo ] && continue
  ip link set "$n" up 2>/dev/null && udhcpc -b -q -i "$n" -s /etc/udhcpc.script >/dev/null 2>&1 &
done
trap 'exit 0' TERM HUP INT PWR
echo "hv busybox container started"
# A root shell on the console (hvctl ct console), started again when it exits.
( while :; do setsid -c /bin/sh -l </dev/console >/dev/console 2>&1; sleep 1; done ) &
while :; do sleep 3600 & wait $!; done
)", 0755);
    write_file(root / "etc/udhcpc.script", R"(#!/bin/sh
# udhcpc event script: configure the lease (busybox's own applets only)
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
)", 0755);
    write_file(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0644);
    write_file(root / "etc/group", "root:x:0:\nnogroup:x:65534:\n", 0644);
    write_file(root / "etc/shadow", "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0640);
    write_file(root / "etc/hosts", "127.0.0.1 localhost\n::1 localhost\n", 0644);
    write_file(root / "etc/os-release", "NAME=\"hv busybox\"\nID=busybox\nPRETTY_NAME=\"hv busybox container\"\n", 0644);
}

// Ownership of every file moved into the unprivileged range (what libvirt's <idmap> maps
// back to 0..65535 inside). chown clears set-id bits, so the mode is put back.
thread_local std::string shift_error;
// Hard links are one inode met under several names: shifted once.
thread_local std::set<std::pair<dev_t, ino_t>> shifted_links;
int shift_one(const char* path, const struct stat* st, int, struct FTW*) {
    if (!S_ISDIR(st->st_mode) && st->st_nlink > 1 && !shifted_links.insert({st->st_dev, st->st_ino}).second) return 0;
    if (st->st_uid >= api::kUnprivilegedCount || st->st_gid >= api::kUnprivilegedCount) {
        shift_error = fmt::format("{} is owned by {}:{}, outside the {} ids an unprivileged container maps", path,
                                  st->st_uid, st->st_gid, api::kUnprivilegedCount);
        return 1;
    }
    if (::lchown(path, st->st_uid + api::kUnprivilegedBase, st->st_gid + api::kUnprivilegedBase) != 0) {
        shift_error = fmt::format("cannot chown {}: {}", path, std::strerror(errno));
        return 1;
    }
    if (!S_ISLNK(st->st_mode) && (st->st_mode & 07000) && ::chmod(path, st->st_mode & 07777) != 0) {
        shift_error = fmt::format("cannot chmod {}: {}", path, std::strerror(errno));
        return 1;
    }
    return 0;
}
}  // namespace

TemplateStore::TemplateStore(PoolManager& pools)
    : pools_(pools), files_(std::make_shared<IsoStore>(pools, IsoStore::Kind{kContent, "template", api::validate_template_name})) {}

std::string TemplateStore::existing(const std::string& pool, const std::string& name) const {
    api::validate_template_name(name);
    auto path = pools_.content_dir(pool, kContent) + "/" + name;
    if (!is_file(path)) fail(Errc::not_found, "template '{}' does not exist in pool '{}'", name, pool);
    return path;
}

std::string TemplateStore::resolve(const std::string& ref, const std::string& pool) const {
    if (ref.empty()) fail(Errc::invalid_input, "template is required");
    if (ref[0] == '/') {
        auto p = fs::path(ref).lexically_normal();
        for (const auto& info : pools_.list()) {
            if (!info.active) continue;
            std::string dir;
            try {
                dir = pools_.content_dir(info.spec.name, kContent);
            } catch (const Error&) {
                continue;
            }
            if (p.parent_path() == fs::path(dir)) return existing(info.spec.name, p.filename().string());
        }
        fail(Errc::invalid_input,
             "template {} is not a template of any storage pool (templates live in a pool's vztmpl/: hvctl ct "
             "template build|upload)", ref);
    }
    if (auto colon = ref.find(':'); colon != std::string::npos) {
        std::string pn = ref.substr(0, colon), rest = ref.substr(colon + 1);
        api::validate_name(pn, "pool name");
        if (rest.rfind("vztmpl/", 0) != 0)
            fail(Errc::invalid_input, "template '{}' must be POOL:vztmpl/FILE (e.g. local:vztmpl/busybox.tar.gz)", ref);
        return existing(pn, rest.substr(7));
    }
    api::validate_file_name(ref, "template name");
    std::vector<std::string> candidates;
    if (has_template_ext(ref)) candidates.push_back(ref);
    else
        for (const auto& e : kExtensions) candidates.push_back(ref + e);
    std::vector<std::string> order{pool};
    for (const auto& info : pools_.list())
        if (info.active && info.spec.name != pool) order.push_back(info.spec.name);
    for (const auto& pn : order) {
        std::string dir;
        try {
            dir = pools_.content_dir(pn, kContent);
        } catch (const Error&) {
            continue;
        }
        for (const auto& c : candidates)
            if (is_file(dir + "/" + c)) return dir + "/" + c;
    }
    fail(Errc::not_found, "template '{}' does not exist in any pool (hvctl ct template list; build one with hvctl ct "
         "template build busybox)", ref);
}

api::IsoInfo TemplateStore::build(const std::string& pool, const std::string& kind, bool replace,
                                       const std::string& mirror, util::Progress& progress) {
    if (kind != "busybox" && kind != "debian-12")
        fail(Errc::invalid_input, "template kind '{}' is not one of busybox, debian-12", kind);
    auto dir = pools_.content_dir(pool, kContent);
    std::string name = kind + ".tar.gz";
    std::string final_path = dir + "/" + name, partial = dir + "/." + name + ".partial";
    if (is_file(final_path) && !replace)
        fail(Errc::conflict, "template '{}' already exists in pool '{}' (use --replace to build it again)", name, pool);
    if (fs::exists(fs::symlink_status(partial)))
        fail(Errc::conflict, "template '{}' is being built in pool '{}' already", name, pool);
    // The root filesystem is laid out in the intent's scratch directory (<state_dir>/pending/
    // <id>.d, removed with the record, by recovery after a crash too), then packed into the
    // partial file. Declared before the reverter, so the record goes after it ran.
    auto intent = pools_.intents().begin("template.build", "template/" + pool + "/" + name);
    intent.add("file", {{"path", partial}});
    int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == EEXIST) fail(Errc::conflict, "template '{}' is being built in pool '{}' already", name, pool);
        fail(Errc::internal, "cannot create {}: {}", partial, std::strerror(errno));
    }
    ::close(fd);
    util::Reverter revert;
    revert.add([partial] { ::unlink(partial.c_str()); });

    std::string scratch = intent.scratch_dir();
    ::chmod(scratch.c_str(), 0755);
    std::string root = scratch + "/root";
    fs::create_directory(root);
    ::chmod(root.c_str(), 0755);

    if (kind == "busybox") {
        progress.update(10, "laying out the busybox root filesystem");
        populate_busybox(root);
    } else {
        if (mirror.empty()) fail(Errc::invalid_input, "no Debian mirror configured for debootstrap");
        progress.update(5, "debootstrap bookworm from " + mirror);
        progress.log("debootstrap --variant=minbase bookworm from " + mirror);
        DebootstrapProgress dp;
        auto r = util::run_command_lines({"debootstrap", "--variant=minbase", "--include=systemd-sysv,iproute2,ifupdown",
                                    "bookworm", root, mirror},
                                   std::chrono::minutes(30), [&](const std::string& line) {
                                       if (dp.feed(line)) progress.update(dp.percent(), dp.message());
                                       return !progress.cancelled();
                                   });
        if (progress.cancelled()) fail(Errc::cancelled, "template build was cancelled");
        if (r.exit_status != 0)
            fail(Errc::internal, "debootstrap failed (exit {}): {}", r.exit_status, last_lines(r.out + "\n" + r.err));
    }
    if (progress.cancelled()) fail(Errc::cancelled, "template build was cancelled");
    progress.update(60, "packing " + name);
    auto r = util::run_command({"tar", "--numeric-owner", "--xattrs", "-czf", partial, "-C", root, "."},
                               std::chrono::minutes(30));
    if (r.exit_status != 0) fail(Errc::internal, "tar failed (exit {}): {}", r.exit_status, last_lines(r.err));
    if (progress.cancelled()) fail(Errc::cancelled, "template build was cancelled");
    if (int sfd = ::open(partial.c_str(), O_RDONLY | O_CLOEXEC); sfd >= 0) {
        int rc = ::fdatasync(sfd);
        ::close(sfd);
        if (rc != 0) fail(Errc::internal, "cannot flush {}: {}", partial, std::strerror(errno));
    }
    if (::rename(partial.c_str(), final_path.c_str()) != 0)
        fail(Errc::internal, "cannot rename {} to {}: {}", partial, final_path, std::strerror(errno));
    revert.release();
    intent.finish();
    progress.update(100, "built " + name);
    return files_->get(pool, name);
}

bool DebootstrapProgress::feed(const std::string& line) {
    if (line.rfind("I: ", 0) != 0) return false;
    std::string msg = line.substr(3);
    auto starts = [&](const char* p) { return msg.rfind(p, 0) == 0; };
    // "I: Found packages in base system: a b c" / "I: Found additional required dependencies: ..."
    if (starts("Found ")) {
        if (auto colon = msg.find(": "); colon != std::string::npos) {
            std::istringstream names(msg.substr(colon + 2));
            for (std::string n; names >> n;) ++packages_;
        }
        return false;
    }
    // Per-package phases and the share of 5..58 % each covers.
    struct Phase {
        const char* prefix;
        int from, to;
    };
    static constexpr Phase kPhases[] = {{"Retrieving ", 12, 30}, {"Validating ", 30, 34}, {"Extracting ", 34, 42},
                                        {"Unpacking ", 44, 50},  {"Configuring ", 50, 57}};
    int pct = percent_;
    if (starts("Retrieving InRelease") || starts("Retrieving Release") || starts("Checking Release"))
        pct = 6;
    else if (starts("Retrieving Packages") || starts("Validating Packages"))
        pct = 8;
    else if (starts("Resolving dependencies"))
        pct = 10;
    else if (starts("Installing core packages") || starts("Installing base packages"))
        pct = 43;
    else if (starts("Base system installed successfully"))
        pct = 58;
    else {
        for (const auto& p : kPhases) {
            if (!starts(p.prefix)) continue;
            std::string phase = p.prefix;
            if (phase != phase_) phase_ = phase, done_ = 0;
            ++done_;
            std::size_t total = std::max<std::size_t>(packages_, done_);
            pct = p.from + static_cast<int>((p.to - p.from) * done_ / total);
            break;
        }
    }
    pct = std::max(pct, percent_);  // never backwards
    bool changed = pct != percent_ || msg != message_;
    percent_ = pct;
    message_ = msg;
    return changed;
}

void unpack_rootfs(const std::string& tarball, const std::string& dest, bool unprivileged, util::Progress& progress,
                   const std::function<void(const std::string& dir)>& make_dir) {
    std::string partial = rootfs_partial_path(dest);
    std::error_code ec;
    if (fs::exists(fs::symlink_status(dest, ec))) fail(Errc::conflict, "{} exists already", dest);
    // A leftover of an interrupted create of the same container (callers hold its lock).
    if (fs::exists(fs::symlink_status(partial, ec))) remove_rootfs(partial);
    if (make_dir) {
        try {
            make_dir(partial);
        } catch (...) {
            std::error_code rec;
            if (fs::exists(fs::symlink_status(partial, rec))) remove_rootfs(partial);
            throw;
        }
    } else if (::mkdir(partial.c_str(), 0755) != 0) {
        fail(Errc::internal, "cannot create {}: {}", partial, std::strerror(errno));
    }
    util::Reverter revert;
    revert.add([partial] { remove_rootfs(partial); });
    progress.update(-1, "unpacking " + fs::path(tarball).filename().string());
    auto r = util::run_command({"tar", "-xpf", tarball, "-C", partial, "--numeric-owner"}, std::chrono::minutes(30));
    if (r.exit_status != 0)
        fail(Errc::invalid_input, "cannot unpack template {}: tar exit {}: {}", tarball, r.exit_status, last_lines(r.err));
    if (progress.cancelled()) fail(Errc::cancelled, "cancelled while unpacking {}", tarball);
    struct stat st {};
    if (::lstat((partial + "/sbin/init").c_str(), &st) != 0)
        fail(Errc::invalid_input, "template {} has no /sbin/init: not a container root filesystem", tarball);
    if (unprivileged) {
        progress.update(-1, "shifting file ownership to the container's user namespace");
        shift_error.clear();
        shifted_links.clear();
        if (::nftw(partial.c_str(), shift_one, 64, FTW_PHYS | FTW_MOUNT) != 0)
            fail(Errc::invalid_input, "template {}: {}", tarball, shift_error.empty() ? std::strerror(errno) : shift_error);
    }
    if (::renameat2(AT_FDCWD, partial.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) != 0)
        fail(errno == EEXIST ? Errc::conflict : Errc::internal, "cannot rename {} to {}: {}", partial, dest,
             std::strerror(errno));
    revert.release();
}

std::string rootfs_partial_path(const std::string& dest) {
    fs::path d(dest);
    return (d.parent_path() / ("." + d.filename().string() + ".partial")).string();
}

void require_searchable(const std::string& dir) {
    for (fs::path p = fs::path(dir).lexically_normal(); !p.empty(); p = p.parent_path()) {
        struct stat st {};
        if (::stat(p.c_str(), &st) == 0 && !(st.st_mode & S_IXOTH))
            fail(Errc::conflict,
                 "{} (mode {:o}) is not searchable by an unprivileged container's ids, so it could not reach its root "
                 "filesystem under {}: chmod o+x {} (or create the container with --privileged)",
                 p.string(), st.st_mode & 07777, dir, p.string());
        if (p == p.parent_path()) break;
    }
}

void remove_rootfs(const std::string& dir) {
    auto name = fs::path(dir).filename().string();
    // Only what unpack_rootfs makes: never a path that could be something else.
    if (!(name.ends_with(".rootfs") || name.ends_with(".rootfs.partial")))
        fail(Errc::internal, "refusing to remove {}: not a container root filesystem", dir);
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) fail(Errc::internal, "cannot remove {}: {}", dir, ec.message());
}

}  // namespace hv::storage
