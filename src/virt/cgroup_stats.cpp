#include "cgroup_stats.hpp"

#include <charconv>
#include <fstream>
#include <sstream>

namespace hv::virt {
namespace {

// v1 "unlimited" is PAGE_COUNTER_MAX pages (9223372036854771712 with 4 KiB pages).
constexpr std::uint64_t kUnlimited = std::uint64_t{1} << 62;

std::optional<std::uint64_t> number(std::string_view s) {
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
    return v;
}

std::string_view trim(std::string_view s) {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);
    while (!s.empty() && space(s.back())) s.remove_suffix(1);
    return s;
}

// Calls f(line) for each line of text (without the newline).
template <typename F>
void each_line(std::string_view text, F f) {
    while (!text.empty()) {
        auto nl = text.find('\n');
        f(text.substr(0, nl));
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
}

// A container's cgroup path as the kernel prints it: absolute, not the root ("/": the host's
// own), no "..", no NUL. Anything else is not followed into the filesystem.
bool plausible_path(std::string_view p) {
    if (p.size() < 2 || p.front() != '/' || p.find('\0') != std::string_view::npos) return false;
    for (std::size_t i = 0; i != std::string_view::npos;) {
        auto e = p.find('/', i + 1);
        if (p.substr(i + 1, e == std::string_view::npos ? std::string_view::npos : e - i - 1) == "..") return false;
        i = e;
    }
    return true;
}

std::optional<std::string> slurp(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

bool is_dir_with(const std::string& dir, const char* file) {
    std::ifstream in(dir + "/" + file);
    return static_cast<bool>(in);
}

}  // namespace

CgroupMembership parse_proc_cgroup(std::string_view text) {
    CgroupMembership m;
    each_line(text, [&](std::string_view line) {
        auto a = line.find(':');
        if (a == std::string_view::npos) return;
        auto b = line.find(':', a + 1);
        if (b == std::string_view::npos) return;
        auto ctrls = line.substr(a + 1, b - a - 1);
        std::string path(line.substr(b + 1));
        if (!number(line.substr(0, a))) return;
        if (ctrls.empty()) {
            if (line.substr(0, a) == "0" && m.unified.empty()) m.unified = path;
            return;
        }
        while (!ctrls.empty()) {
            auto c = ctrls.find(',');
            auto ctrl = ctrls.substr(0, c);
            if (!ctrl.empty()) m.v1.emplace(std::string(ctrl), path);
            if (c == std::string_view::npos) break;
            ctrls.remove_prefix(c + 1);
        }
    });
    return m;
}

std::map<std::string, std::uint64_t> parse_flat_keyed(std::string_view text) {
    std::map<std::string, std::uint64_t> out;
    each_line(text, [&](std::string_view line) {
        auto sp = line.find(' ');
        if (sp == std::string_view::npos || sp == 0) return;
        if (auto v = number(trim(line.substr(sp + 1)))) out.emplace(std::string(line.substr(0, sp)), *v);
    });
    return out;
}

std::optional<std::uint64_t> parse_limit(std::string_view text) {
    auto v = number(trim(text));
    if (!v || *v >= kUnlimited) return std::nullopt;
    return v;
}

std::map<std::string, std::uint64_t> cgroup_memory_values(std::int64_t pid, const std::string& root) {
    std::map<std::string, std::uint64_t> out;
    if (pid <= 0) return out;
    auto proc = slurp(root + "/proc/" + std::to_string(pid) + "/cgroup");
    if (!proc) return out;
    auto m = parse_proc_cgroup(*proc);
    const std::string fs = root + "/sys/fs/cgroup";
    if (auto it = m.v1.find("memory"); it != m.v1.end() && plausible_path(it->second)) {
        std::string dir = fs + "/memory" + it->second;
        std::map<std::string, std::uint64_t> stat;
        if (auto t = slurp(dir + "/memory.stat")) stat = parse_flat_keyed(*t);
        // The limit in force, ancestors' included; memory.limit_in_bytes on old kernels.
        std::optional<std::uint64_t> limit;
        if (auto h = stat.find("hierarchical_memory_limit"); h != stat.end()) limit = h->second;
        else if (auto t = slurp(dir + "/memory.limit_in_bytes")) limit = parse_limit(*t);
        if (limit && *limit < kUnlimited) out["memory.max"] = *limit;
        for (auto [from, to] : {std::pair{"total_rss", "memory.anon"}, std::pair{"total_cache", "memory.file"},
                                std::pair{"total_swap", "memory.swap"}})
            if (auto s = stat.find(from); s != stat.end()) out[to] = s->second;
        return out;
    }
    if (!plausible_path(m.unified)) return out;
    std::string dir = fs + m.unified;
    if (!is_dir_with(dir, "memory.stat")) dir = fs + "/unified" + m.unified;
    // The limit in force: the lowest memory.max of the cgroup and its ancestors (libvirt may
    // put the limit on the scope and init in a child of it).
    std::optional<std::uint64_t> limit;
    for (std::string d = dir; d.size() > fs.size(); d = d.substr(0, d.rfind('/')))
        if (auto t = slurp(d + "/memory.max"))
            if (auto v = parse_limit(*t); v && (!limit || *v < *limit)) limit = v;
    if (limit) out["memory.max"] = *limit;
    if (auto t = slurp(dir + "/memory.stat")) {
        auto stat = parse_flat_keyed(*t);
        for (auto [from, to] : {std::pair{"anon", "memory.anon"}, std::pair{"file", "memory.file"}})
            if (auto s = stat.find(from); s != stat.end()) out[to] = s->second;
    }
    if (auto t = slurp(dir + "/memory.swap.current"))
        if (auto v = parse_limit(*t)) out["memory.swap"] = *v;
    return out;
}

}  // namespace hv::virt
