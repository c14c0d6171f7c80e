#include "chrony_csv.hpp"

#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "hv/error.hpp"

namespace hv::time {
namespace {

std::vector<std::string> split_csv_line(const std::string& line) {
    // chronyc -c never quotes: names cannot contain commas.
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
        auto c = line.find(',', start);
        out.push_back(line.substr(start, c == std::string::npos ? std::string::npos : c - start));
        if (c == std::string::npos) break;
        start = c + 1;
    }
    return out;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!line.empty()) out.push_back(line);
    }
    return out;
}

double to_double(const std::string& s, const char* what) {
    try {
        std::size_t n = 0;
        double d = std::stod(s, &n);
        if (n != s.size()) throw std::invalid_argument(s);
        return d;
    } catch (const std::exception&) {
        fail(Errc::internal, "chronyc output: {} '{}' is not a number", what, s);
    }
}

long to_long(const std::string& s, int base, const char* what) {
    try {
        std::size_t n = 0;
        long v = std::stol(s, &n, base);
        if (n != s.size()) throw std::invalid_argument(s);
        return v;
    } catch (const std::exception&) {
        fail(Errc::internal, "chronyc output: {} '{}' is not a number", what, s);
    }
}

}  // namespace

Tracking parse_tracking(const std::string& csv) {
    auto lines = lines_of(csv);
    if (lines.size() != 1) fail(Errc::internal, "chronyc -c tracking: expected one line, got {}", lines.size());
    auto f = split_csv_line(lines[0]);
    if (f.size() < 14) fail(Errc::internal, "chronyc -c tracking: expected 14 fields, got {}", f.size());
    Tracking t;
    t.ref_id = f[0];
    t.name = f[1];
    t.stratum = static_cast<int>(to_long(f[2], 10, "stratum"));
    t.ref_time = to_double(f[3], "ref time");
    t.system_time = to_double(f[4], "system time");
    t.last_offset = to_double(f[5], "last offset");
    t.leap = f[13];
    return t;
}

std::vector<SourceLine> parse_sources(const std::string& csv) {
    std::vector<SourceLine> out;
    for (const auto& line : lines_of(csv)) {
        auto f = split_csv_line(line);
        if (f.size() < 10) fail(Errc::internal, "chronyc -c sources: expected 10 fields, got {} in '{}'", f.size(), line);
        if (f[0].size() != 1 || f[1].size() != 1)
            fail(Errc::internal, "chronyc -c sources: unexpected mode/state in '{}'", line);
        SourceLine s;
        s.mode = f[0][0];
        s.state = f[1][0];
        s.name = f[2];
        s.stratum = static_cast<int>(to_long(f[3], 10, "stratum"));
        s.reach = static_cast<int>(to_long(f[5], 8, "reach"));
        s.offset = to_double(f[7], "offset");
        out.push_back(s);
    }
    return out;
}

std::string leap_name(const std::string& l) {
    if (l == "Normal") return "normal";
    if (l == "Insert second") return "insert_second";
    if (l == "Delete second") return "delete_second";
    if (l == "Not synchronised") return "not_synchronised";
    return l;
}

std::string state_name(char s) {
    switch (s) {
        case '*': return "selected";
        case '+': return "combined";
        case '-': return "not_combined";
        case '?': return "unreachable";
        case 'x': return "falseticker";
        case '~': return "too_variable";
        default: return std::string(1, s);
    }
}

std::string render_sources_file(const std::vector<SourceEntry>& entries, const std::string& extra) {
    std::string out =
        "# Written by hvd (PUT /v1/time, hvctl time set): edits here are replaced on the next change.\n";
    for (const auto& e : entries) {
        out += e.mode + " " + e.host;
        if (e.port) out += fmt::format(" port {}", e.port);
        if (e.iburst) out += " iburst";
        if (!extra.empty()) out += " " + extra;
        out += "\n";
    }
    return out;
}

std::vector<SourceEntry> parse_sources_file(const std::string& text) {
    std::vector<SourceEntry> out;
    for (const auto& line : lines_of(text)) {
        std::istringstream in(line);
        std::string word;
        SourceEntry e;
        if (!(in >> e.mode) || (e.mode != "server" && e.mode != "pool")) continue;
        if (!(in >> e.host)) continue;
        while (in >> word) {
            if (word == "iburst") e.iburst = true;
            else if (word == "port" && (in >> word)) {
                try {
                    e.port = std::stoi(word);
                } catch (const std::exception&) {
                }
            }
        }
        out.push_back(e);
    }
    return out;
}

std::vector<SourceEntry> entries_of(const api::TimeSettings& s) {
    std::vector<SourceEntry> out;
    auto add = [&](const std::vector<std::string>& list, const char* mode, const char* field) {
        for (std::size_t i = 0; i < list.size(); ++i) {
            auto e = api::parse_ntp_endpoint(list[i], fmt::format("{}[{}]", field, i));
            out.push_back({mode, e.host, e.port, s.iburst});
        }
    };
    if (s.servers) add(*s.servers, "server", "servers");
    if (s.pools) add(*s.pools, "pool", "pools");
    return out;
}

api::TimeStatus merge_status(bool running, const Tracking& t, const std::vector<SourceLine>& live,
                             const std::vector<SourceEntry>& configured, std::int64_t now) {
    api::TimeStatus st;
    st.chronyd_running = running;
    if (running) {
        st.leap_status = leap_name(t.leap);
        st.synchronised = t.leap != "Not synchronised" && t.ref_id != "00000000" && !t.name.empty();
        if (st.synchronised) {
            st.source = t.name;
            st.stratum = t.stratum;
        }
        st.offset_seconds = -t.system_time;
        // chronyc's number is read as a double: one beyond any time_t (a broken or hostile
        // chronyc) is not a time (casting it would be undefined behaviour).
        if (t.ref_time > 0 && t.ref_time < 1e15) {
            st.last_update = static_cast<std::int64_t>(std::floor(t.ref_time));
            st.last_update_ago = std::max<std::int64_t>(0, now - st.last_update);
        }
    }
    auto pool_named = [&](const std::string& name) {
        for (const auto& c : configured)
            if (c.mode == "pool" && c.host == name) return true;
        return false;
    };
    for (const auto& l : live) {
        api::TimeSource s;
        s.name = l.name;
        s.mode = l.mode == '=' ? "peer" : l.mode == '#' ? "refclock" : pool_named(l.name) ? "pool" : "server";
        s.reach = l.reach;
        s.state = state_name(l.state);
        s.selected = l.state == '*';
        s.stratum = l.stratum;
        s.offset_seconds = l.offset;
        st.servers.push_back(s);
    }
    for (const auto& c : configured) {
        bool known = false;
        for (const auto& l : live) known = known || l.name == c.host;
        if (known) continue;
        api::TimeSource s;
        s.name = c.host;
        s.mode = c.mode;
        s.state = "configured";
        st.servers.push_back(s);
    }
    return st;
}

}  // namespace hv::time
