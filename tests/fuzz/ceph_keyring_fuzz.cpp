// Ceph keyrings (src/storage/ceph_keyring.cpp, keyring_key): the whole input is the keyring
// file an admin names with `hvctl storage pool add --type rbd --keyring FILE`. Bad input ends
// in invalid_input; an accepted key is base64 and renders as JSON (it goes into a libvirt
// secret as text).
#include "ceph_keyring.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string in = hvfuzz::text(data, size);
    for (const char* entity : {"client.hv", "client.admin"}) {
        std::string key;
        if (!hvfuzz::expect([&] { key = hv::storage::keyring_key(in, entity); })) continue;
        if (key.empty() || key.size() % 4 != 0 || key.find_first_of(" \t\r\n\"'<>&") != std::string::npos)
            hvfuzz::bug("accepted key", key.c_str());
        hvfuzz::render(nlohmann::json{{"key", key}});
    }
    return 0;
}
