// Ceph keyrings (the INI files ceph-authtool writes): the key of one entity, for the libvirt
// secret of an rbd pool. The file comes from the admin (an outside input): fuzzed
// (tests/fuzz/ceph_keyring_fuzz.cpp).
//
//   [client.hv]
//       key = AQBpGhNrRZKEORAA8RIwxBkFqqK1N3/hMJDJOQ==
//       caps mon = "profile rbd"
#pragma once

#include <string>

namespace hv::storage {

// The base64 key of `entity` (e.g. "client.hv"). Throws invalid_input naming what is wrong:
// no such section, no key in it, a key that is not base64, a file too large (64 KiB).
std::string keyring_key(const std::string& text, const std::string& entity);

}  // namespace hv::storage
