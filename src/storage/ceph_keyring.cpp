#include "ceph_keyring.hpp"

#include <cctype>

#include "hv/error.hpp"
#include "hv/util/utf8.hpp"

namespace hv::storage {
namespace {

std::string trim(const std::string& s) {
    auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return {};
    auto e = s.find_last_not_of(" \t\r");
    return s.substr(b, e - b + 1);
}

bool base64(const std::string& k) {
    if (k.empty() || k.size() > 1024 || k.size() % 4 != 0) return false;
    for (std::size_t i = 0; i < k.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(k[i]);
        if (std::isalnum(c) || c == '+' || c == '/') continue;
        if (c == '=' && i + 2 >= k.size()) continue;  // padding, at the end only
        return false;
    }
    return k.find('=') == std::string::npos || k.find_first_not_of('=', k.find('=')) == std::string::npos;
}

}  // namespace

std::string keyring_key(const std::string& text, const std::string& entity) {
    if (text.size() > 64 * 1024) fail(Errc::invalid_input, "the keyring is larger than 64 KiB: not a Ceph keyring");
    std::string section;
    bool found = false;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        auto nl = text.find('\n', pos);
        std::string line = trim(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
        pos = nl == std::string::npos ? text.size() + 1 : nl + 1;
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        if (line[0] == '[') {
            auto close = line.find(']');
            if (close == std::string::npos) fail(Errc::invalid_input, "the keyring has a section header without ']'");
            section = trim(line.substr(1, close - 1));
            found = found || section == entity;
            continue;
        }
        if (section != entity) continue;
        auto eq = line.find('=');
        if (eq == std::string::npos) continue;
        if (trim(line.substr(0, eq)) != "key") continue;
        std::string key = trim(line.substr(eq + 1));
        if (!base64(key)) fail(Errc::invalid_input, "the key of {} in the keyring is not base64", util::sanitize_utf8(entity));
        return key;
    }
    if (!found) fail(Errc::invalid_input, "the keyring has no section [{}]", util::sanitize_utf8(entity));
    fail(Errc::invalid_input, "the keyring's section [{}] has no key", util::sanitize_utf8(entity));
}

}  // namespace hv::storage
