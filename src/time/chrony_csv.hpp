// chronyd's machine-readable output (`chronyc -c`, CSV) and hv's own chrony sources file.
// Pure functions: unit-tested against captured output in tests/data/chrony/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hv/api/time.hpp"

namespace hv::time {

// `chronyc -c tracking`: one line, 14 fields.
struct Tracking {
    std::string ref_id;      // hex, "00000000" when unsynchronised
    std::string name;        // address or name of the reference; "" when none
    int stratum = 0;
    double ref_time = 0;     // Unix time of the last update; 0 = never
    double system_time = 0;  // chrony's correction: negative = the clock is ahead of NTP time
    double last_offset = 0;
    std::string leap;        // "Normal", "Insert second", "Delete second", "Not synchronised"
};
// Throws hv::Error(internal) naming the problem when the text is not tracking CSV.
Tracking parse_tracking(const std::string& csv);

// `chronyc -c sources`: one line per source.
struct SourceLine {
    char mode = '^';   // '^' server, '=' peer, '#' reference clock
    char state = '?';  // '*' selected, '+' combined, '-' not combined, '?' unreachable,
                       // 'x' falseticker, '~' too variable
    std::string name;
    int stratum = 0;
    int reach = 0;     // the octal register as a number
    double offset = 0; // adjusted offset of the last sample; positive = local clock ahead
};
std::vector<SourceLine> parse_sources(const std::string& csv);

// "normal", "insert_second", ...
std::string leap_name(const std::string& chrony_leap);
// "selected", "combined", ...
std::string state_name(char state);

// One line of hv's sources file.
struct SourceEntry {
    std::string mode;  // "server" | "pool"
    std::string host;
    int port = 0;      // 0 = default
    bool iburst = false;
};
// The file hv writes: a comment header and one line per entry, `server|pool HOST [port N]
// [iburst] [extra options]`.
std::string render_sources_file(const std::vector<SourceEntry>& entries, const std::string& extra_options);
// Reads hv's file back (lines that are not `server`/`pool` directives are ignored).
std::vector<SourceEntry> parse_sources_file(const std::string& text);
// Entries of validated settings, servers first.
std::vector<SourceEntry> entries_of(const api::TimeSettings& s);

// status from the three pieces; `configured` fills mode (pool) and lists entries chronyd does
// not know (yet). now = Unix time for last_update_ago.
api::TimeStatus merge_status(bool running, const Tracking& t, const std::vector<SourceLine>& live,
                             const std::vector<SourceEntry>& configured, std::int64_t now);

}  // namespace hv::time
