// Strict reading of JSON objects for the wire model: every key must be known, types are
// checked, and errors name the full field path ("disks[1].size").
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "hv/api/size.hpp"
#include "hv/error.hpp"

namespace hv::api {

class ObjectReader {
public:
    ObjectReader(const nlohmann::json& j, std::string path) : j_(j), path_(std::move(path)) {
        if (!j_.is_object()) fail(Errc::invalid_input, "{} must be a JSON object", display(""));
    }
    // It keeps a reference to j: a temporary would dangle (ASan: stack-use-after-scope).
    ObjectReader(nlohmann::json&&, std::string) = delete;

    bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }
    std::string field(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

    const nlohmann::json* raw(const std::string& key) {
        seen_.insert(key);
        if (!has(key)) return nullptr;
        return &j_.at(key);
    }

    template <typename T>
    std::optional<T> opt(const std::string& key) {
        const auto* v = raw(key);
        if (!v) return std::nullopt;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
            // Whole JSON numbers within T only: nlohmann's get<T>() would convert 1e300 (undefined
            // behaviour) or wrap -1 and 2^64-1 silently (found by tests/fuzz/vm_json_fuzz).
            if (!v->is_number_integer()) fail(Errc::invalid_input, "field '{}' must be an integer", field(key));
            bool fits = v->is_number_unsigned() ? std::in_range<T>(v->get<std::uint64_t>())
                                                : std::in_range<T>(v->get<std::int64_t>());
            if (!fits) fail(Errc::invalid_input, "field '{}' is out of range", field(key));
            return v->is_number_unsigned() ? static_cast<T>(v->get<std::uint64_t>()) : static_cast<T>(v->get<std::int64_t>());
        }
        try {
            return v->get<T>();
        } catch (const nlohmann::json::exception&) {
            fail(Errc::invalid_input, "field '{}' has the wrong type (expected {})", field(key), type_name<T>());
        }
    }

    template <typename T>
    T req(const std::string& key) {
        auto v = opt<T>(key);
        if (!v) fail(Errc::invalid_input, "field '{}' is required", field(key));
        return *v;
    }

    // An integer that fits an int (JSON numbers only, no strings).
    std::optional<int> opt_int(const std::string& key) {
        const auto* v = raw(key);
        if (!v) return std::nullopt;
        if (!v->is_number_integer()) fail(Errc::invalid_input, "field '{}' must be an integer", field(key));
        auto x = v->get<std::int64_t>();
        if (x < INT32_MIN || x > INT32_MAX) fail(Errc::invalid_input, "field '{}' is out of range", field(key));
        return static_cast<int>(x);
    }

    // A size: integer bytes or a string such as "4G".
    std::optional<std::uint64_t> opt_size(const std::string& key) {
        const auto* v = raw(key);
        if (!v) return std::nullopt;
        if (v->is_number_unsigned()) return v->get<std::uint64_t>();
        if (v->is_string()) return parse_size(v->get<std::string>(), field(key));
        fail(Errc::invalid_input, "field '{}' must be a size (bytes or a string like \"4G\")", field(key));
    }

    // Call after reading: rejects keys nobody asked for.
    void finish() const {
        for (const auto& [k, _] : j_.items())
            if (!seen_.count(k)) fail(Errc::invalid_input, "unknown field '{}'", field(k));
    }

private:
    std::string display(const std::string&) const { return path_.empty() ? "the request body" : "'" + path_ + "'"; }
    template <typename T>
    static const char* type_name() {
        if constexpr (std::is_same_v<T, std::string>) return "string";
        else if constexpr (std::is_same_v<T, bool>) return "boolean";
        else if constexpr (std::is_integral_v<T>) return "integer";
        else if constexpr (std::is_floating_point_v<T>) return "number";
        else return "array or object";
    }

    const nlohmann::json& j_;
    std::string path_;
    std::set<std::string> seen_;
};

// An optional integer field with a default.
inline int read_int(ObjectReader& r, const std::string& key, int dflt) { return r.opt_int(key).value_or(dflt); }

}  // namespace hv::api
