#include "hv/api/time.hpp"

#include <arpa/inet.h>

#include <cctype>
#include <set>

#include "hv/api/json_reader.hpp"
#include "hv/error.hpp"

namespace hv::api {
using nlohmann::json;

namespace {
bool all_digits_and_dots(const std::string& s) {
    for (char c : s)
        if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.')) return false;
    return true;
}
bool is_ipv4(const std::string& s) {
    in_addr a{};
    return inet_pton(AF_INET, s.c_str(), &a) == 1;
}
bool is_ipv6(const std::string& s) {
    in6_addr a{};
    return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}
int parse_port(const std::string& p, const std::string& spec, const std::string& what) {
    if (p.empty() || p.size() > 5)
        fail(Errc::invalid_input, "{} '{}': the port must be a number between 1 and 65535", what, spec);
    for (char c : p)
        if (!std::isdigit(static_cast<unsigned char>(c)))
            fail(Errc::invalid_input, "{} '{}': the port must be a number between 1 and 65535", what, spec);
    int port = std::stoi(p);
    if (port < 1 || port > 65535)
        fail(Errc::invalid_input, "{} '{}': the port must be a number between 1 and 65535", what, spec);
    return port;
}
}  // namespace

// RFC 1123: labels of 1-63 letters, digits and '-', not starting or ending with '-';
// at most 253 characters; a trailing dot is not accepted. A name of only digits and dots
// must be a valid IPv4 address instead (so "300.1.1.1" is rejected, not looked up).
bool valid_hostname(const std::string& s) {
    if (s.empty() || s.size() > 253) return false;
    if (all_digits_and_dots(s)) return is_ipv4(s);
    std::size_t start = 0;
    for (;;) {
        auto dot = s.find('.', start);
        auto label = s.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
        for (char c : label)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
        if (dot == std::string::npos) return true;
        start = dot + 1;
    }
}

NtpEndpoint parse_ntp_endpoint(const std::string& spec, const std::string& what) {
    NtpEndpoint e;
    if (spec.empty()) fail(Errc::invalid_input, "{} must not be empty", what);
    if (spec.front() == '[') {
        auto close = spec.find(']');
        if (close == std::string::npos)
            fail(Errc::invalid_input, "{} '{}': missing ']' after the IPv6 address", what, spec);
        e.host = spec.substr(1, close - 1);
        auto rest = spec.substr(close + 1);
        if (!is_ipv6(e.host)) fail(Errc::invalid_input, "{} '{}': '{}' is not an IPv6 address", what, spec, e.host);
        if (!rest.empty()) {
            if (rest[0] != ':') fail(Errc::invalid_input, "{} '{}': expected ':PORT' after ']'", what, spec);
            e.port = parse_port(rest.substr(1), spec, what);
        }
        return e;
    }
    if (spec.find(':') != spec.rfind(':')) {
        // Two or more colons: a bare IPv6 address (a port needs the [addr]:port form).
        if (!is_ipv6(spec))
            fail(Errc::invalid_input, "{} '{}' is not a valid IPv6 address (use [ADDR]:PORT for a port)", what, spec);
        e.host = spec;
        return e;
    }
    auto colon = spec.find(':');
    e.host = spec.substr(0, colon);
    if (colon != std::string::npos) e.port = parse_port(spec.substr(colon + 1), spec, what);
    if (!valid_hostname(e.host))
        fail(Errc::invalid_input,
             "{} '{}' is not a valid host name or address (RFC 1123 labels of letters, digits and '-', "
             "an IPv4 or IPv6 address)",
             what, e.host);
    return e;
}

void validate(const TimeSettings& s) {
    if (!s.servers && !s.pools && !s.enable)
        fail(Errc::invalid_input, "nothing to change: give servers, pools or enable");
    if (!s.servers && !s.pools) return;
    std::size_t n = (s.servers ? s.servers->size() : 0) + (s.pools ? s.pools->size() : 0);
    if (n == 0) fail(Errc::invalid_input, "the list of NTP servers and pools is empty: give at least one");
    if (n > kMaxTimeSources)
        fail(Errc::invalid_input, "too many NTP servers and pools ({}, at most {})", n, kMaxTimeSources);
    std::set<std::pair<std::string, int>> seen;
    auto check = [&](const std::vector<std::string>& list, const char* field) {
        for (std::size_t i = 0; i < list.size(); ++i) {
            auto what = fmt::format("{}[{}]", field, i);
            auto e = parse_ntp_endpoint(list[i], what);
            std::string key = e.host;
            for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            if (!seen.insert({key, e.port == 0 ? 123 : e.port}).second)
                fail(Errc::invalid_input, "{} '{}' is listed twice", what, list[i]);
        }
    };
    if (s.servers) check(*s.servers, "servers");
    if (s.pools) check(*s.pools, "pools");
}

void to_json(json& j, const TimeSource& v) {
    j = json{{"name", v.name},     {"mode", v.mode},       {"reach", v.reach},
             {"state", v.state},   {"selected", v.selected}, {"stratum", v.stratum},
             {"offset_seconds", v.offset_seconds}};
}

void to_json(json& j, const TimeStatus& v) {
    j = json{{"chronyd_running", v.chronyd_running},
             {"synchronised", v.synchronised},
             {"source", v.source},
             {"stratum", v.stratum},
             {"offset_seconds", v.offset_seconds},
             {"last_update", v.last_update},
             {"last_update_ago", v.last_update_ago},
             {"leap_status", v.leap_status},
             {"servers", v.servers},
             {"timezone", v.timezone},
             {"enabled_at_boot", v.enabled_at_boot},
             {"sources_file", v.sources_file}};
}

void to_json(json& j, const TimeSettings& v) {
    j = json::object();
    if (v.servers) j["servers"] = *v.servers;
    if (v.pools) j["pools"] = *v.pools;
    j["iburst"] = v.iburst;
    j["enable"] = v.enable;
}

TimeSource time_source_from_json(const json& j, const std::string& path) {
    ObjectReader r(j, path);
    TimeSource s;
    s.name = r.req<std::string>("name");
    s.mode = r.opt<std::string>("mode").value_or("server");
    s.reach = r.opt<int>("reach").value_or(0);
    s.state = r.opt<std::string>("state").value_or("");
    s.selected = r.opt<bool>("selected").value_or(false);
    s.stratum = r.opt<int>("stratum").value_or(0);
    s.offset_seconds = r.opt<double>("offset_seconds").value_or(0);
    r.finish();
    return s;
}

TimeStatus time_status_from_json(const json& j) {
    ObjectReader r(j, "");
    TimeStatus s;
    s.chronyd_running = r.opt<bool>("chronyd_running").value_or(false);
    s.synchronised = r.opt<bool>("synchronised").value_or(false);
    s.source = r.opt<std::string>("source").value_or("");
    s.stratum = r.opt<int>("stratum").value_or(0);
    s.offset_seconds = r.opt<double>("offset_seconds").value_or(0);
    s.last_update = r.opt<std::int64_t>("last_update").value_or(0);
    s.last_update_ago = r.opt<std::int64_t>("last_update_ago").value_or(-1);
    s.leap_status = r.opt<std::string>("leap_status").value_or("");
    if (const auto* a = r.raw("servers")) {
        if (!a->is_array()) fail(Errc::invalid_input, "field 'servers' must be an array");
        for (std::size_t i = 0; i < a->size(); ++i)
            s.servers.push_back(time_source_from_json((*a)[i], fmt::format("servers[{}]", i)));
    }
    s.timezone = r.opt<std::string>("timezone").value_or("");
    s.enabled_at_boot = r.opt<std::string>("enabled_at_boot").value_or("");
    s.sources_file = r.opt<std::string>("sources_file").value_or("");
    r.finish();
    return s;
}

TimeSettings time_settings_from_json(const json& j) {
    ObjectReader r(j, "");
    TimeSettings s;
    s.servers = r.opt<std::vector<std::string>>("servers");
    s.pools = r.opt<std::vector<std::string>>("pools");
    s.iburst = r.opt<bool>("iburst").value_or(false);
    s.enable = r.opt<bool>("enable").value_or(false);
    r.finish();
    return s;
}

}  // namespace hv::api
