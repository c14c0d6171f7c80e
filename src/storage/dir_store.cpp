#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "hv/api/size.hpp"
#include "hv/error.hpp"
#include "hv/storage/disk_store.hpp"
#include "hv/util/command.hpp"
#include "hv/util/reverter.hpp"

namespace hv::storage {
namespace fs = std::filesystem;

namespace {
class DirStore final : public DiskStore {
public:
    DirStore(std::string pool, std::string dir) : pool_(std::move(pool)), dir_(std::move(dir)) {
        std::error_code ec;
        bool created = fs::create_directories(dir_, ec);
        if (ec) fail(Errc::internal, "cannot create image directory {}: {}", dir_, ec.message());
        // QEMU runs as its own user: it must be able to traverse to the images.
        if (created) ::chmod(dir_.c_str(), 0711);
        dir_ = fs::canonical(dir_).string();
    }

    std::string pool() const override { return pool_; }
    std::string location() const override { return dir_; }

    std::string create(const std::string& vm, const api::DiskSpec& disk, util::Progress& progress) override {
        if (disk.format != "qcow2" && disk.format != "raw")
            fail(Errc::invalid_input, "format '{}' is not supported by pool '{}'", disk.format, pool_);
        if (disk.size == 0) fail(Errc::invalid_input, "disk {} needs a size", disk.name);
        std::string path = fmt::format("{}/{}-{}.{}", dir_, vm, disk.name, disk.format);
        util::Reverter revert;
        // O_EXCL claims the name atomically, so two creates can never share an image.
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno == EEXIST)
                fail(Errc::conflict,
                     "disk image {} already exists and belongs to no new VM (left from an interrupted create, or "
                     "another VM's); remove it or choose another name",
                     path);
            fail(Errc::internal, "cannot create {}: {}", path, std::strerror(errno));
        }
        revert.add([path] { ::unlink(path.c_str()); });
        progress.update(-1, fmt::format("creating {} ({})", disk.name, api::format_size(disk.size)));
        if (disk.format == "raw") {
            int rc = ::ftruncate(fd, static_cast<off_t>(disk.size));
            int err = errno;
            ::close(fd);
            if (rc != 0) fail(Errc::internal, "cannot size {}: {}", path, std::strerror(err));
        } else {
            ::close(fd);
            util::run_checked({"qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=off", path,
                               std::to_string(disk.size)},
                              std::chrono::seconds(120));
        }
        revert.release();
        return path;
    }

    void remove(const std::string& path) override {
        if (!contains(path)) fail(Errc::conflict, "{} is not an image of pool '{}'; not removing it", path, pool_);
        if (::unlink(path.c_str()) != 0 && errno != ENOENT)
            fail(Errc::internal, "cannot remove {}: {}", path, std::strerror(errno));
    }

    bool contains(const std::string& path) const override {
        auto parent = fs::path(path).parent_path().lexically_normal().string();
        return parent == dir_;
    }

    std::uint64_t free_bytes() const override {
        struct statvfs st {};
        if (::statvfs(dir_.c_str(), &st) != 0) return 0;
        return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
    }

private:
    std::string pool_;
    std::string dir_;
};
}  // namespace

std::unique_ptr<DiskStore> make_dir_store(std::string pool_name, std::string directory) {
    return std::make_unique<DirStore>(std::move(pool_name), std::move(directory));
}

}  // namespace hv::storage
