#include "yaml.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <string_view>

namespace hv::cli {
using nlohmann::json;

namespace {

bool reserved_word(const std::string& s) {
    // YAML 1.1 booleans and nulls (a 1.1 reader such as PyYAML turns "yes" or "off" into a bool).
    static constexpr std::array<std::string_view, 11> words{"null", "~", "true", "false", "yes", "no",
                                                             "on",   "off", "y", "n", "nan"};
    std::string lower(s);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    return std::find(words.begin(), words.end(), lower) != words.end();
}

std::string scalar(const json& v) {
    switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case json::value_t::string: {
        const auto& s = v.get_ref<const std::string&>();
        if (yaml_plain_ok(s)) return s;
        return v.dump(-1, ' ', false, json::error_handler_t::replace);
    }
    case json::value_t::number_float: {
        double d = v.get<double>();
        if (std::isnan(d)) return ".nan";
        if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
        return v.dump();
    }
    default: return v.dump();  // integers
    }
}

bool is_block(const json& v) { return (v.is_object() || v.is_array()) && !v.empty(); }

std::string inline_value(const json& v) {
    if (v.is_object()) return "{}";
    if (v.is_array()) return "[]";
    return scalar(v);
}

// A non-empty container as lines, each starting with `indent` spaces.
void emit(const json& v, std::size_t indent, std::string& out) {
    std::string pad(indent, ' ');
    if (v.is_object()) {
        for (const auto& [k, item] : v.items()) {
            out += pad + scalar(json(k)) + ":";
            if (is_block(item)) {
                out += "\n";
                emit(item, indent + 2, out);
            } else {
                out += " " + inline_value(item) + "\n";
            }
        }
        return;
    }
    for (const auto& item : v) {
        if (!is_block(item)) {
            out += pad + "- " + inline_value(item) + "\n";
            continue;
        }
        // The item as a block two columns further in; its first line's indentation becomes "- ".
        std::string sub;
        emit(item, indent + 2, sub);
        sub.replace(indent, 2, "- ");
        out += sub;
    }
}

}  // namespace

bool yaml_plain_ok(const std::string& s) {
    if (s.empty() || reserved_word(s)) return false;
    unsigned char first = static_cast<unsigned char>(s[0]);
    // A letter or '/' first: never a number, date, anchor, tag, alias, directive or indicator.
    if (!std::isalpha(first) && first != '/' && first != '_') return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (std::isalnum(c)) continue;
        switch (c) {
        case '_': case '-': case '.': case '/': case '@': case '+': case '=': case '(': case ')':
            continue;
        case ' ':
            // Inner single spaces only; " #" would start a comment.
            if (i + 1 == s.size() || s[i + 1] == ' ' || s[i + 1] == '#') return false;
            continue;
        case ':':
            // "a:b" is plain; ": " or a final ':' would make a mapping.
            if (i + 1 == s.size() || s[i + 1] == ' ') return false;
            continue;
        default:
            return false;  // quotes, '#', ',', brackets, control and non-ASCII: quoted
        }
    }
    return true;
}

std::string to_yaml(const json& j) {
    if (!is_block(j)) return inline_value(j) + "\n";
    std::string out;
    emit(j, 0, out);
    return out;
}

}  // namespace hv::cli
