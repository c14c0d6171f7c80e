// `hvctl -o yaml`: the same document as -o json, written as block-style YAML (1.2, which a
// YAML 1.1 reader also reads the same way). No dependency: JSON's data model maps onto a small
// subset of YAML. Strings are written plain only when no YAML reader could take them for
// anything else (a number, a bool, null, a date, an indicator); otherwise double-quoted with
// JSON's escapes, which are valid YAML escapes.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace hv::cli {

// The document, ending with a newline. Empty containers are "{}" / "[]"; lists nested in
// lists are "- - x".
std::string to_yaml(const nlohmann::json& j);

// True when `s` can be written as a plain (unquoted) YAML scalar and read back as that string.
bool yaml_plain_ok(const std::string& s);

}  // namespace hv::cli
