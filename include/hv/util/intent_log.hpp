// Intent records: what a multi-step operation is about to make, on disk before it makes it,
// so that hvd killed in the middle (SIGKILL, a crash, power loss) can undo it at the next start.
//
// One record per operation, <dir>/<id>.json (hvd: <state_dir>/pending), written with
// tmp + fsync + rename + directory fsync, so a record is either the old or the new version,
// never torn. An operation begins a record, add()s an item before each side effect (a volume
// by pool/name, a domain by name/uuid, a root filesystem directory, a partial file...) and
// update()s it when it learns more (the inode of the file it made); the record is removed
// when the Intent leaves scope: on success, and after the operation's Reverter undid what it
// made (declare the Intent before the Reverter). A record left on disk therefore names an
// operation that was interrupted.
//
// Recovery (hvd start, before it listens): recover() runs, for every record, the undo
// handler of each item type in reverse order. Handlers are idempotent (remove what still
// exists, check identity first: a uuid, an inode) and return what they removed; a record is
// deleted once all its items are undone. A handler that needs libvirt while it is down throws
// Errc::unavailable: the record is kept as it is and tried again by the next recover().
//
// Items are (type, JSON data); the types and their handlers belong to the modules that make
// the things (storage: "volume", "file", "rootfs", "resize"; virt: "vm-domain", "ct-domain").
// Every record also has an optional scratch directory <dir>/<id>.d, removed with it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::util {

class IntentLog {
public:
    struct Item {
        std::string type;
        nlohmann::json data;
    };
    struct Record {
        std::string id;
        std::string op;      // "vm.create", "volume.resize", ...
        std::string target;  // "vm/web01", "volume/local/d1"
        std::string task;    // the task that ran it (TASK_ID of the thread), "" outside tasks
        std::int64_t created = 0;  // unix seconds
        std::vector<Item> items;
    };

    // `dir` is created (0700) on the first write; "" disables the log (nothing written).
    explicit IntentLog(std::string dir);
    const std::string& dir() const { return dir_; }

    class Intent {
    public:
        Intent() = default;
        Intent(Intent&& o) noexcept;
        Intent& operator=(Intent&& o) noexcept;
        Intent(const Intent&) = delete;
        Intent& operator=(const Intent&) = delete;
        // Removes the record and its scratch directory (the operation is over either way).
        ~Intent() { finish(); }

        // Appends an item and writes the record (durable when this returns); returns its index.
        // Throws Errc::internal when the record cannot be written: the operation must not start
        // a side effect it could not undo after a crash.
        std::size_t add(const std::string& type, nlohmann::json data);
        // Replaces the data of item `index` (e.g. with the inode of what was made) and writes.
        void update(std::size_t index, nlohmann::json data);
        // <dir>/<id>.d, created on first use (0700): temporary files of the operation.
        std::string scratch_dir();
        const std::string& id() const { return rec_.id; }
        void finish() noexcept;

    private:
        friend class IntentLog;
        void write();
        IntentLog* log_ = nullptr;
        Record rec_;
        bool scratch_ = false;
    };

    // A new record (not written until the first add()). The task id is taken from the calling
    // thread's log fields (TASK_ID, set by the task runner).
    Intent begin(const std::string& op, const std::string& target);

    // Undo of one item: removes what `data` names if it still exists and is still the one
    // the operation made; returns one line per thing it removed or decided to keep.
    using Undo = std::function<std::vector<std::string>(const nlohmann::json& data)>;
    // Registers the handler of an item type (before recover(); not thread-safe with it).
    void on(const std::string& type, Undo undo);

    struct Outcome {
        Record record;
        std::vector<std::string> done;  // what was removed/kept, in order
        std::string error;              // why the record is still there ("" when removed)
        bool deferred = false;          // a handler said unavailable (libvirt down): retry later
    };
    // Every record on disk, oldest first. `*.tmp` files (a write torn by the crash) are ignored
    // and removed; unreadable records are renamed to <id>.json.bad and reported in the log.
    std::vector<Record> load() const;
    // Rolls back every record on disk (see above); returns what happened to each.
    std::vector<Outcome> recover();
    // How many records are on disk (after recover(): the deferred and failed ones).
    std::size_t pending() const { return load().size(); }

private:
    void write(const Record& r);
    void remove(const std::string& id) noexcept;

    std::string dir_;
    std::atomic<std::uint64_t> seq_{0};
    std::map<std::string, Undo> undo_;
    std::mutex recover_mu_;  // one recovery pass at a time
};

// A random RFC 4122 version 4 UUID ("3f2a...-..."), for domains whose identity an intent
// record must know before libvirt defines them.
std::string random_uuid();

}  // namespace hv::util
