// One backup's manifest (docs/backup.md): backups/<guest>/<time>.json in a store. It names the
// chunks of every disk in order; it is written last and atomically, so a backup exists exactly
// when its manifest does. The parser is strict (unknown fields, wrong types, bad chunk ids ->
// invalid_input naming the field) and fuzzed (tests/fuzz/backup_manifest_fuzz.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::backup {

inline constexpr std::uint64_t kChunkSize = 4ull * 1024 * 1024;
inline constexpr int kManifestVersion = 1;
// The id of an all-zero chunk in a disk's index: such chunks are never stored.
inline constexpr const char* kZeroChunk = "zero";

struct DiskIndex {
    std::string name;    // the VmSpec disk name: "disk0"
    std::string format;  // the volume's format when it was backed up: "qcow2" | "raw"
    std::uint64_t size = 0;  // guest-visible (virtual) size in bytes
    // One entry per kChunkSize bytes (the last may be short): a SHA-256 hex name or kZeroChunk.
    std::vector<std::string> chunks;
};

struct Manifest {
    int version = kManifestVersion;
    std::string guest;  // "web01"
    std::string time;   // UTC, "2026-12-07T12:00:00Z": the file's name without ".json"
    std::string mode;   // "snapshot" | "stop" | "offline" (the VM was stopped already)
    bool quiesced = false;  // snapshot mode: the guest's filesystems were frozen for the job's start
    std::uint64_t chunk_size = kChunkSize;
    nlohmann::json spec;  // the VmSpec JSON the VM had (hvd's own form, JsonOrigin::hvd)
    std::vector<DiskIndex> disks;
    std::uint64_t size = 0;      // sum of the disks' sizes
    std::uint64_t new_data = 0;  // compressed bytes this backup added to the store
    std::int64_t duration_ms = 0;
};

// true for 64 lower-case hex digits.
bool valid_chunk_id(const std::string& id);
// "2026-12-07T12:00:00Z" (the only form a backup time has).
bool valid_backup_time(const std::string& t);
nlohmann::json to_json(const Manifest& m);
// Strict: throws hv::Error(invalid_input) naming the field. Checks the chunk count of each
// disk against its size.
Manifest manifest_from_json(const nlohmann::json& j);

}  // namespace hv::backup
