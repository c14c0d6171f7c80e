// The ISO library ("datastore browser"): CD/DVD images in the "iso" content directory of a
// pool (`<pool>/iso/NAME.iso`), next to PoolManager, which knows the pools and who uses a path.
//
// Uploads stream into a hidden `.NAME.partial` in the same directory while SHA-256 is computed
// (OpenSSL EVP); at the end the checksum is verified when one was given, the file is flushed
// (fdatasync), and renamed into place (never over an existing ISO unless `replace`, and never
// over one a VM uses). Any failure, a disconnect or an idle client removes the partial file.
//
// The checksum is kept in the xattr `user.hv.sha256` (64 hex digits) together with
// `user.hv.sha256.stamp` ("<size>:<mtime ns>") so that a file changed behind hvd's back is
// not shown with a stale sum. `list` never hashes: files placed by other means show an empty
// sha256 until `get` (GET .../isos/{name}, `hvctl storage iso show`) computes and stores it.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hv/api/storage.hpp"
#include "hv/storage/pool_manager.hpp"

namespace hv::storage {

// validate_file_name plus: ends in ".iso" (any case). Throws invalid_input.
void validate_iso_name(const std::string& name);
// Lower-case hex of 64 digits; throws invalid_input otherwise. Returns it lower-cased.
std::string normalize_sha256(const std::string& hex);

// Incremental SHA-256 (OpenSSL EVP).
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(const void* data, std::size_t n);
    std::string hex();  // finishes; call once

private:
    void* ctx_;
};

// Also the store of container templates (content "vztmpl", ct_routes.cpp): the same upload,
// checksum and delete rules for another content type of file pools.
class IsoStore {
public:
    struct Kind {
        std::string content;  // pool content directory: "iso", "vztmpl"
        std::string noun;     // in messages: "iso", "template"
        std::function<void(const std::string&)> validate;  // file name rules of uploads
    };
    static Kind iso_kind();
    explicit IsoStore(PoolManager& pools, Kind kind = iso_kind()) : pools_(pools), kind_(std::move(kind)) {}
    const Kind& kind() const { return kind_; }

    // ISOs of one pool, or of every active pool holding iso content when `pool` is empty.
    std::vector<api::IsoInfo> list(const std::string& pool) const;
    // One ISO; computes and stores the checksum when it is not known yet.
    api::IsoInfo get(const std::string& pool, const std::string& name) const;

    struct Upload {
        std::string pool;
        std::string name;
        std::string sha256;  // expected; empty = not checked
        bool replace = false;
        std::optional<std::uint64_t> length;  // Content-Length when known
    };
    // Fast refusals before any byte is read: name, pool, content, existing name without
    // replace (409), replacing an ISO in use (409), Content-Length above free space (507).
    void precheck(const Upload& u) const;
    // Reads the body with `read` (0 = end) into the partial file, then verifies and publishes.
    api::IsoInfo upload(const Upload& u, const std::function<std::size_t(char*, std::size_t)>& read);
    // Refused (409) while a VM uses it.
    void remove(const std::string& pool, const std::string& name);

private:
    api::IsoInfo info(const std::string& pool, const std::string& dir, const std::string& name, bool compute) const;

    std::string label(const std::string& name) const;  // "iso 'NAME'"

    PoolManager& pools_;
    Kind kind_;
    mutable std::mutex mu_;
    std::set<std::string> uploading_;  // "pool/name" of uploads in progress
};

}  // namespace hv::storage
