// A backup store on a directory (docs/backup.md "The store"):
//   chunks/<2 hex>/<sha256 hex>   one chunk: kChunkSize bytes (or the last, shorter) of a disk's
//                                 raw content, zstd-compressed, named by the SHA-256 of the plain data
//   backups/<guest>/<time>.json   one manifest per backup (manifest.hpp), written last
//   backups/<guest>/<time>.verified.json  the last verify of that backup
//   tmp/<host>/                   scratch files of this host's running operations (removed by
//                                 them; what a killed hvd left is swept at its next start)
// Crash safety: a chunk is written to a dot-temp file beside its name, fsynced and renamed, so
// a name always holds a whole chunk; manifests likewise, after fsyncing every chunk directory
// the backup wrote into, so a manifest only ever names chunks that are durable. A backup
// without its manifest is invisible (its chunks are unreferenced until a later backup uses them).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "manifest.hpp"

namespace hv::backup {

// SHA-256 of data as 64 lower-case hex digits.
std::string sha256_hex(std::string_view data);
bool all_zero(std::string_view data);

class ChunkStore {
public:
    // Opens (and makes the layout of) the store at `root`, which must be an existing directory.
    // `create`: make the layout (store add); otherwise it must be there (a store whose
    // directory lost it, e.g. an unmounted NAS, answers 503).
    explicit ChunkStore(std::string root, bool create = false);

    const std::string& root() const { return root_; }
    std::string tmp_dir() const { return root_ + "/tmp"; }
    // tmp/<this host's name>/, made when missing: a store shared by hosts keeps their scratch
    // files apart, so one host's sweep never removes another's.
    std::string scratch_dir() const;
    // Removes every file in scratch_dir() (at hvd start: no operation of this host runs).
    // Returns how many.
    std::size_t sweep_scratch();
    std::string chunk_path(const std::string& id) const;

    struct Put {
        std::string id;           // SHA-256 hex, or kZeroChunk
        bool written = false;     // a new chunk file was made
        std::uint64_t stored = 0; // its compressed size when written
    };
    // Stores one chunk of plain data (at most kChunkSize bytes). All-zero data is not stored.
    // An existing chunk of that name is not written again (deduplication).
    Put put(std::string_view data);
    // Makes the chunk directories written into since the last sync durable (fsync of each).
    void sync_dirs();
    bool has(const std::string& id) const;
    // Reads, decompresses and checks a chunk: not_found when missing, internal when it is
    // corrupt (the message names the chunk). kZeroChunk gives `zero_size` zero bytes.
    std::string get(const std::string& id, std::size_t zero_size = kChunkSize) const;

    // The manifest is written atomically (temp, fsync, rename, fsync of the directory), after
    // sync_dirs(). conflict when a backup of that guest and time exists.
    void write_manifest(const Manifest& m);
    Manifest read_manifest(const std::string& guest, const std::string& time) const;
    // All manifests (of one guest when given), oldest first. Unreadable ones are skipped and
    // named in *bad when given.
    std::vector<Manifest> manifests(const std::string& guest = "", std::vector<std::string>* bad = nullptr) const;
    void remove_manifest(const std::string& guest, const std::string& time);

    // The last verify of a backup: {"time": "...", "ok": bool} or null.
    nlohmann::json verified(const std::string& guest, const std::string& time) const;
    void set_verified(const std::string& guest, const std::string& time, bool ok, const std::string& at);

    // Every chunk file name in the store.
    std::vector<std::string> chunk_ids() const;
    // Removes a chunk file (garbage collection) unless its time (written, or found by a backup:
    // put() touches it) is at or after `older_than` (Unix seconds): nullopt. Returns its size.
    std::optional<std::uint64_t> remove_chunk(const std::string& id, std::int64_t older_than);

private:
    std::string manifest_path(const std::string& guest, const std::string& time) const;
    std::string root_;
    std::mutex mu_;
    std::set<std::string> dirty_dirs_;
};

// "2026-12-07T12:00:00Z" of a Unix time.
std::string format_backup_time(std::int64_t unix_seconds);
// Inverse of format_backup_time (UTC). invalid_input when malformed.
std::int64_t parse_backup_time(const std::string& t);

}  // namespace hv::backup
