// etcd 3.4's v3 JSON gateway, as pure functions: the request bodies EtcdStore sends and strict
// parsers of the answers (tests/fuzz/etcd_json_fuzz.cpp). Keys and values travel base64;
// int64 fields arrive as JSON strings ("revision":"7") and fields at their default value are
// left out ("succeeded":false, a PUT event's "type"). A malformed answer is
// hv::Error(internal); an etcd error reply ({"error":..,"code":N}) is mapped by its gRPC code
// (error_of_reply).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "hv/error.hpp"
#include "store.hpp"

namespace hv::cluster::etcd_json {

std::string base64_encode(std::string_view in);
// Strict (padding required, no whitespace); throws internal.
std::string base64_decode(std::string_view in);

// --- requests (bodies of POST <path>) --------------------------------------------------------
inline constexpr const char* kRange = "/v3/kv/range";
inline constexpr const char* kPut = "/v3/kv/put";
inline constexpr const char* kDeleteRange = "/v3/kv/deleterange";
inline constexpr const char* kTxn = "/v3/kv/txn";
inline constexpr const char* kCompaction = "/v3/kv/compaction";
inline constexpr const char* kLeaseGrant = "/v3/lease/grant";
inline constexpr const char* kLeaseKeepalive = "/v3/lease/keepalive";
inline constexpr const char* kLeaseRevoke = "/v3/lease/revoke";
inline constexpr const char* kWatch = "/v3/watch";
inline constexpr const char* kMemberList = "/v3/cluster/member/list";
inline constexpr const char* kMemberAdd = "/v3/cluster/member/add";
inline constexpr const char* kMemberRemove = "/v3/cluster/member/remove";
inline constexpr const char* kMemberPromote = "/v3/cluster/member/promote";
inline constexpr const char* kStatus = "/v3/maintenance/status";

std::string range_request(const std::string& key, bool prefix);
std::string put_request(const std::string& key, const std::string& value, std::int64_t lease);
std::string deleterange_request(const std::string& key, bool prefix);
std::string txn_request(const std::vector<Compare>& compares, const std::vector<Op>& success,
                        const std::vector<Op>& failure);
std::string compaction_request(std::int64_t revision);
std::string lease_grant_request(std::int64_t ttl_seconds);
std::string lease_id_request(std::int64_t lease);  // keepalive, revoke
// start_revision 0: from now.
std::string watch_create_request(const std::string& prefix, std::int64_t start_revision);
std::string member_add_request(const std::vector<std::string>& peer_urls, bool learner);
std::string member_id_request(std::uint64_t id);  // remove, promote
std::string empty_request();                      // member list, status

// --- answers ----------------------------------------------------------------------------------
// The answer body as a JSON object. Throws the mapped hv::Error for an etcd error reply and
// internal for anything that is not a JSON object; a non-2xx status without an error reply
// maps by the status.
nlohmann::json parse_answer(std::string_view body, int http_status);
// The hv::Error an etcd error reply stands for ({"error":"etcdserver: ...","code":5}, or the
// watch stream's {"error":{"grpc_code":14,"message":...}}); nullopt when `j` is no error reply.
std::optional<Error> error_of_reply(const nlohmann::json& j);

std::int64_t header_revision(const nlohmann::json& answer);
ListResult parse_range(const nlohmann::json& answer);
std::int64_t parse_put(const nlohmann::json& answer);          // the write's revision
std::int64_t parse_deleterange(const nlohmann::json& answer);  // how many were deleted
TxnResult parse_txn(const nlohmann::json& answer);
std::int64_t parse_lease_grant(const nlohmann::json& answer);  // the lease id
// The remaining TTL (keepalive answers are wrapped in "result"); <= 0 means the lease is gone.
std::int64_t parse_keepalive(const nlohmann::json& answer);
std::vector<StoreMember> parse_member_list(const nlohmann::json& answer);
std::pair<std::uint64_t, std::vector<StoreMember>> parse_member_add(const nlohmann::json& answer);
StoreStatus parse_status(const nlohmann::json& answer);

// One line of the /v3/watch stream ({"result":{...}}).
struct WatchResponse {
    std::int64_t revision = 0;  // header revision
    bool created = false;
    bool canceled = false;
    std::int64_t compact_revision = 0;
    std::string cancel_reason;
    std::vector<WatchEvent> events;
};
// Throws the mapped hv::Error for an error line, internal for a malformed one.
WatchResponse parse_watch_line(std::string_view line);

}  // namespace hv::cluster::etcd_json
