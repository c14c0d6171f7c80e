// Storage pools as VMs see them: the disk source of a volume (file pools: its path).
#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "hv/error.hpp"
#include "hv/storage/pool.hpp"
#include "hv/storage/pool_manager.hpp"
#include "hv/util/progress.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;

TEST_CASE("file pools return file disk sources with the volume's path", "[storage][disk_source]") {
    hv::test::TempDir d("hv-pool");
    hv::api::PoolSpec spec;
    spec.name = "local";
    spec.type = "dir";
    spec.path = d.path + "/images";
    fs::create_directories(spec.path);
    hv::util::NullProgress progress;

    auto pool = hv::storage::open_pool(spec);
    auto v = pool->create_volume({"vm1-disk0", "local", 1ULL << 20, "qcow2", hv::api::Provision::thin}, progress);
    auto src = pool->disk_source("vm1-disk0");
    CHECK(src.type == hv::api::DiskSource::Type::file);
    CHECK(src == hv::api::DiskSource::file(v.path));
    CHECK(src.path == spec.path + "/images/vm1-disk0.qcow2");
    CHECK(src.hosts.empty());
    CHECK_FALSE(src.auth);
    try {
        pool->disk_source("nope");
        FAIL("expected hv::Error");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::not_found);
    }

    // Through the manager (what VmManager asks), for a raw volume too.
    hv::storage::PoolManager pools(d.path + "/pools.json", spec);
    auto raw = pools.create_volume({"vm1-disk1", "local", 1ULL << 20, "raw", hv::api::Provision::thin}, progress);
    CHECK(pools.disk_source("local", "vm1-disk1") == hv::api::DiskSource::file(raw.volume.path));
    CHECK(pools.disk_source("local", "vm1-disk0").path == v.path);
    CHECK_THROWS_AS(pools.disk_source("other", "vm1-disk0"), hv::Error);
}
