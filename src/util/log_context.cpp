#include "hv/util/log_context.hpp"

#include <algorithm>

namespace hv::util {
namespace {
thread_local LogFields t_fields;
}

bool valid_journal_field_name(const std::string& name) {
    if (name.empty() || name.size() > 64 || name[0] == '_' || (name[0] >= '0' && name[0] <= '9')) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; });
}

LogScope::LogScope(const LogFields& fields) : restore_size_(t_fields.size()) {
    for (const auto& [k, v] : fields) {
        if (!valid_journal_field_name(k)) continue;
        // (clang 14, the sanitizer build's compiler, cannot capture a structured binding.)
        auto it = std::find_if(t_fields.begin(), t_fields.end(), [&key = k](const auto& f) { return f.first == key; });
        if (it == t_fields.end()) {
            t_fields.emplace_back(k, v);
        } else {
            if (static_cast<std::size_t>(it - t_fields.begin()) < restore_size_) replaced_.push_back(*it);
            it->second = v;
        }
    }
}

LogScope::~LogScope() {
    t_fields.resize(restore_size_);
    for (const auto& [k, v] : replaced_)
        for (auto& f : t_fields)
            if (f.first == k) f.second = v;
}

const LogFields& log_fields() { return t_fields; }

std::string log_field(const std::string& name) {
    for (const auto& [k, v] : t_fields)
        if (k == name) return v;
    return {};
}

LogFields target_log_fields(const std::string& target) {
    auto slash = target.find('/');
    if (slash == std::string::npos || slash + 1 >= target.size()) return {};
    auto kind = target.substr(0, slash);
    auto rest = target.substr(slash + 1);
    if (kind == "vm") return {{"VM", rest}};
    if (kind == "ct") return {{"CT", rest}};
    if (kind == "pool") return {{"POOL", rest}};
    if (kind == "volume") {
        auto s2 = rest.find('/');
        if (s2 == std::string::npos) return {{"POOL", rest}};
        return {{"POOL", rest.substr(0, s2)}, {"VOLUME", rest.substr(s2 + 1)}};
    }
    return {};
}

}  // namespace hv::util
