// Container templates and root filesystems (docs/containers.md).
//
// Templates are tarballs of a root filesystem in the "vztmpl" content of a pool
// (`<pool>/vztmpl/NAME.tar[.gz|.xz|.zst]`). `build` makes one: "busybox" offline from the
// busybox-static package's binary (applet symlinks, an /sbin/init script, /etc/passwd...),
// "debian-12" with debootstrap from a Debian mirror. Builds write a hidden `.NAME.partial`
// and rename it into place, so a failed or cancelled build leaves nothing under a real name.
//
// A container's root filesystem is a directory `<pool>/images/<ct>.rootfs`, unpacked from
// a template with `tar` (argv, never a shell) into `.<ct>.rootfs.partial` and renamed on
// success. For unprivileged containers every file is then owned by the shifted ids
// (uid/gid + api::kUnprivilegedBase), as libvirt's <idmap> expects.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hv/api/ct.hpp"
#include "iso_store.hpp"
#include "hv/storage/pool_manager.hpp"
#include "hv/util/progress.hpp"

namespace hv::storage {

class TemplateStore {
public:
    explicit TemplateStore(PoolManager& pools);

    // The template files: list, get (SHA-256 in an xattr), streamed upload and delete are the
    // ISO library's, on the vztmpl content (IsoStore with kind "template").
    // Shared: the REST routes keep it alive (daemon/iso_routes.cpp registers both stores).
    const std::shared_ptr<IsoStore>& files() const { return files_; }

    // The template file a CtSpec names: "NAME" (NAME.tar.gz/.tar.xz/.tar.zst/.tar, or the exact
    // file name; `pool` first, then every other pool), "POOL:vztmpl/FILE", or an absolute path
    // of a pool's template. not_found / invalid_input (paths outside every pool's vztmpl).
    std::string resolve(const std::string& ref, const std::string& pool) const;

    // Builds template `kind` ("busybox" or "debian-12") as <kind>.tar.gz in `pool`. conflict
    // when it exists and !replace. `mirror` is the Debian mirror for debootstrap.
    api::IsoInfo build(const std::string& pool, const std::string& kind, bool replace, const std::string& mirror,
                            util::Progress& progress);

private:
    std::string existing(const std::string& pool, const std::string& name) const;  // path or not_found

    PoolManager& pools_;
    std::shared_ptr<IsoStore> files_;
};

// Unpacks `tarball` into the new directory `dest` (which must not exist) through
// `<dir>/.<base>.partial`; shifts ownership for unprivileged containers. On failure nothing
// is left. Throws invalid_input when tar cannot read the file.
// debootstrap's "I: ..." lines as task progress (5-58 %; packing follows at 60): retrieving,
// validating, extracting, unpacking and configuring each advance with their package count
// against the number of packages debootstrap found. feed() returns true when the progress changed.
class DebootstrapProgress {
public:
    bool feed(const std::string& line);
    int percent() const { return percent_; }
    const std::string& message() const { return message_; }

private:
    int percent_ = 5;
    std::string message_ = "debootstrap starting";
    std::size_t packages_ = 0;  // from "I: Found ..." lines
    std::string phase_;
    std::size_t done_ = 0;  // packages through the current phase
};

// make_dir makes the empty directory it is given (default: mkdir 0755; a pool's
// make_rootfs_dir, which may also limit it, before anything is unpacked into it).
void unpack_rootfs(const std::string& tarball, const std::string& dest, bool unprivileged, util::Progress& progress,
                   const std::function<void(const std::string& dir)>& make_dir = {});
// Unprivileged containers run as uid/gid kUnprivilegedBase..: libvirt can only mount a rootfs
// they can reach, so every directory from / down to `dir` must be searchable by others (o+x).
// Throws conflict naming the first one that is not and the fix.
void require_searchable(const std::string& dir);
// `<dir>/.<base>.partial`: where unpack_rootfs unpacks `dest` before renaming it.
std::string rootfs_partial_path(const std::string& dest);
// Removes a root filesystem directory tree (never follows symlinks out of it).
void remove_rootfs(const std::string& dir);

}  // namespace hv::storage
