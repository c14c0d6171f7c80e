// Wire model of the host's time service (chrony): GET /v1/time answers TimeStatus,
// PUT /v1/time takes TimeSettings. from_json is strict (unknown fields -> invalid_input).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::api {

// At most this many servers + pools in one PUT.
inline constexpr std::size_t kMaxTimeSources = 32;

// One NTP source as chronyd sees it (plus what hv configured).
struct TimeSource {
    // Host name or address as configured. Example: "ntp1.example.org", "127.0.0.1".
    std::string name;
    // "server" | "pool" | "peer" | "refclock".
    std::string mode = "server";
    // Reachability register of the last 8 polls as a number 0-255 (chronyc prints it in
    // octal: 377 = 255 = the last 8 polls all answered).
    int reach = 0;
    // chronyd's selection state: "selected" (the current sync source), "combined",
    // "not_combined", "unreachable", "falseticker", "too_variable", "configured" (in hv's
    // sources file but not (yet) known to chronyd).
    std::string state;
    bool selected = false;
    int stratum = 0;
    // Offset of this source's last sample, seconds; positive = the local clock is ahead.
    double offset_seconds = 0;
};

struct TimeStatus {
    // False when chronyc cannot talk to chronyd (then only servers from hv's file are listed).
    bool chronyd_running = false;
    // True when chronyd has a selected source and its leap status is not "Not synchronised".
    bool synchronised = false;
    // Address or name of the current reference. Example: "127.0.0.1"; empty when unsynchronised.
    std::string source;
    int stratum = 0;
    // How far the system clock is from NTP time, seconds; positive = the local clock is ahead.
    double offset_seconds = 0;
    // Unix time (seconds) of the last clock update; 0 = never.
    std::int64_t last_update = 0;
    // Seconds since that update (at the time of the answer); -1 = never.
    std::int64_t last_update_ago = -1;
    // "normal" | "insert_second" | "delete_second" | "not_synchronised" | "" (chronyd down).
    std::string leap_status;
    std::vector<TimeSource> servers;
    // IANA name. Example: "Europe/Berlin"; "" when unknown.
    std::string timezone;
    // "enabled" | "disabled" | "unknown: no systemd" | "unknown: <reason>".
    std::string enabled_at_boot;
    // hv's own chrony sources file. Example: "/etc/chrony/sources.d/hv.sources".
    std::string sources_file;
};

// PUT /v1/time. servers/pools, when given, replace every source in hv's sources file
// (given together they must not be empty). Entries: "host", "host:port", "[v6]:port".
struct TimeSettings {
    std::optional<std::vector<std::string>> servers;
    std::optional<std::vector<std::string>> pools;
    // Adds "iburst" to every line (faster first synchronisation).
    bool iburst = false;
    // Makes chronyd start at boot (systemd only; 501 otherwise).
    bool enable = false;
};

// A "host[:port]" entry, checked: RFC 1123 host name, IPv4 or IPv6 literal; port 1-65535.
struct NtpEndpoint {
    std::string host;
    int port = 0;  // 0 = NTP's default (123)
};
// Throws invalid_input naming `what` (e.g. "servers[1]").
NtpEndpoint parse_ntp_endpoint(const std::string& spec, const std::string& what);
bool valid_hostname(const std::string& s);
// Checks every entry, duplicates (the same host and port twice, across servers and pools),
// the count, and that there is something to do.
void validate(const TimeSettings& s);

void to_json(nlohmann::json& j, const TimeSource& v);
void to_json(nlohmann::json& j, const TimeStatus& v);
void to_json(nlohmann::json& j, const TimeSettings& v);
TimeSource time_source_from_json(const nlohmann::json& j, const std::string& path = "");
TimeStatus time_status_from_json(const nlohmann::json& j);
TimeSettings time_settings_from_json(const nlohmann::json& j);

}  // namespace hv::api
