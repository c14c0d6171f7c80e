#include "router.hpp"

#include <algorithm>
#include <sstream>

#include "hv/error.hpp"
#include "hv/util/utf8.hpp"

namespace hv::daemon {
namespace {
std::vector<std::string> split_path(const std::string& p) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < p.size()) {
        if (p[i] == '/') {
            ++i;
            continue;
        }
        auto j = p.find('/', i);
        if (j == std::string::npos) j = p.size();
        out.push_back(p.substr(i, j - i));
        i = j;
    }
    return out;
}
int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
}  // namespace

std::string url_decode(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out += static_cast<char>(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else if (s[i] == '+') {
            out += ' ';
        } else {
            out += s[i];
        }
    }
    return out;
}

void split_target(const std::string& target, std::string& path, std::map<std::string, std::string>& query) {
    auto q = target.find('?');
    path = target.substr(0, q);
    util::check_text(path, "the request path");
    if (q == std::string::npos) return;
    std::string qs = target.substr(q + 1);
    std::size_t i = 0;
    while (i <= qs.size()) {
        auto amp = qs.find('&', i);
        if (amp == std::string::npos) amp = qs.size();
        auto item = qs.substr(i, amp - i);
        if (!item.empty()) {
            auto eq = item.find('=');
            auto key = url_decode(item.substr(0, eq));
            auto value = eq == std::string::npos ? std::string() : url_decode(item.substr(eq + 1));
            util::check_text(key, "a query parameter name");
            util::check_text(value, fmt::format("the value of the query parameter '{}'", key));
            query[key] = std::move(value);
        }
        i = amp + 1;
    }
}

nlohmann::json Request::json() const {
    if (body.empty()) return nlohmann::json::object();
    if (auto at = util::invalid_utf8_offset(body); at != std::string::npos)
        fail(Errc::invalid_input, "request body is not valid UTF-8 (byte {} of {})", at + 1, body.size());
    try {
        return nlohmann::json::parse(body);
    } catch (const nlohmann::json::exception& e) {
        // parse_error, and out_of_range for numbers like 1e999.
        fail(Errc::invalid_input, "request body is not valid JSON: {}", e.what());
    }
}

bool Request::flag(const std::string& name) const {
    auto it = query.find(name);
    if (it == query.end()) return false;
    const auto& v = it->second;
    if (v.empty() || v == "1" || v == "true" || v == "yes") return true;
    if (v == "0" || v == "false" || v == "no") return false;
    fail(Errc::invalid_input, "query parameter '{}' must be true or false (got '{}')", name, v);
}

namespace {
// "guest:{name}" against the pattern's segments: the parameter must be one of them.
std::string checked_resource(const std::string& method, const std::string& pattern, const std::vector<std::string>& segs,
                             const Resource& res) {
    const auto& r = res.pattern;
    auto colon = r.find(':');
    if (colon == std::string::npos) {
        if (r != "host") fail(Errc::internal, "route {} {}: resource '{}' is not host or KIND:{{PARAM}}", method, pattern, r);
        return r;
    }
    auto param = r.substr(colon + 1);
    if (param.size() < 3 || param.front() != '{' || param.back() != '}' ||
        std::find(segs.begin(), segs.end(), param) == segs.end())
        fail(Errc::internal, "route {} {}: resource '{}' names no parameter of the path", method, pattern, r);
    return r;
}
}  // namespace

void Router::add(const std::string& method, const std::string& pattern, Resource resource, Handler h, bool fast) {
    auto segs = split_path(pattern);
    auto res = checked_resource(method, pattern, segs, resource);
    routes_.push_back(Route{method, std::move(segs), std::move(h), fast});
    routes_.back().resource = std::move(res);
}

void Router::add_streaming(const std::string& method, const std::string& pattern, Resource resource, Handler h) {
    auto segs = split_path(pattern);
    auto res = checked_resource(method, pattern, segs, resource);
    routes_.push_back(Route{method, std::move(segs), std::move(h), false, true});
    routes_.back().resource = std::move(res);
}

void Router::add_upgrade(const std::string& method, const std::string& pattern, Resource resource, std::string protocol,
                         UpgradeHandler h) {
    auto segs = split_path(pattern);
    auto res = checked_resource(method, pattern, segs, resource);
    routes_.push_back(Route{method, std::move(segs), {}, false, false, std::move(h), std::move(protocol)});
    routes_.back().resource = std::move(res);
}

const Router::Route& Router::match(Request& req) const {
    auto segs = split_path(req.path);
    std::string allowed;
    for (const auto& r : routes_) {
        if (r.segments.size() != segs.size()) continue;
        std::map<std::string, std::string> params;
        bool ok = true;
        for (std::size_t i = 0; i < segs.size() && ok; ++i) {
            const auto& p = r.segments[i];
            if (p.size() > 2 && p.front() == '{' && p.back() == '}') params[p.substr(1, p.size() - 2)] = url_decode(segs[i]);
            else ok = (p == segs[i]);
        }
        if (!ok) continue;
        for (const auto& [k, v] : params) {
            util::check_text(v, fmt::format("the path parameter '{}'", k));
            // A parameter names one thing: never a path of its own.
            if (v.empty() || v == "." || v == ".." || v.find('/') != std::string::npos)
                fail(Errc::invalid_input, "the path parameter '{}' must be one name, not '{}'", k, v);
        }
        if (r.method != req.method) {
            allowed += (allowed.empty() ? "" : ", ") + r.method;
            continue;
        }
        req.params = std::move(params);
        // "guest:{name}" -> "guest:web01"
        req.resource = r.resource;
        if (auto open = req.resource.find('{'); open != std::string::npos)
            req.resource = req.resource.substr(0, open) + req.params.at(req.resource.substr(open + 1, req.resource.size() - open - 2));
        return r;
    }
    if (!allowed.empty()) throw MethodNotAllowed{allowed};
    fail(Errc::not_found, "no such route: {} {}", req.method, req.path);
}

}  // namespace hv::daemon
