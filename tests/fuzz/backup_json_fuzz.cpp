// The backup request bodies hvd reads (src/api/backup.cpp, src/daemon/backup_routes.cpp):
// store add, create, restore, prune, verify. The first byte picks the reader, the rest is the
// JSON body. Bad input ends in invalid_input; what is accepted renders and reads back equal.
#include "fuzz_common.hpp"
#include "hv/api/backup.hpp"

namespace api = hv::api;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::size_t which = hvfuzz::select(data, size, 5);
    auto j = hvfuzz::parse_json(hvfuzz::text(data, size));
    if (!j) return 0;
    hvfuzz::expect([&] {
        switch (which) {
            case 0: {  // a: POST /v1/backup-stores
                auto s = api::backup_store_from_json(*j);
                auto out = api::to_json(s);
                hvfuzz::render(out);
                if (api::to_json(api::backup_store_from_json(out)) != out) hvfuzz::bug("store round trip", out.dump());
                break;
            }
            case 1: {  // b: POST /v1/vms/{name}/backup
                auto c = api::backup_create_from_json(*j);
                auto out = api::to_json(c);
                hvfuzz::render(out);
                if (api::to_json(api::backup_create_from_json(out)) != out) hvfuzz::bug("create round trip", out.dump());
                break;
            }
            case 2: {  // c: POST .../backups/{guest}/{time}/restore
                auto r = api::backup_restore_from_json(*j);
                auto out = api::to_json(r);
                hvfuzz::render(out);
                if (api::to_json(api::backup_restore_from_json(out)) != out) hvfuzz::bug("restore round trip", out.dump());
                break;
            }
            case 3: {  // d: POST /v1/backup-stores/{store}/prune
                auto p = api::backup_prune_from_json(*j);
                auto out = api::to_json(p);
                hvfuzz::render(out);
                if (api::to_json(api::backup_prune_from_json(out)) != out) hvfuzz::bug("prune round trip", out.dump());
                break;
            }
            default: {  // e: POST /v1/backup-stores/{store}/verify
                auto v = api::backup_verify_from_json(*j);
                hvfuzz::render(json{{"guest", v.guest}, {"time", v.time}});
                break;
            }
        }
    });
    return 0;
}
