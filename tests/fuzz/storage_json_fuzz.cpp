// The storage request bodies hvd reads (src/api/storage.cpp, src/daemon/storage_routes.cpp):
// pools, volumes, resize, clone; and hv's Ceph (src/api/ceph.cpp): init, OSD create, pool
// create. The first byte picks the reader, the rest is the JSON body.
#include "fuzz_common.hpp"
#include "hv/api/ceph.hpp"
#include "hv/api/json_reader.hpp"
#include "hv/api/storage.hpp"
#include "hv/api/vm.hpp"

namespace api = hv::api;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::size_t which = hvfuzz::select(data, size, 7);
    auto j = hvfuzz::parse_json(hvfuzz::text(data, size));
    if (!j) return 0;
    hvfuzz::expect([&] {
        switch (which) {
            case 0: {  // a: POST /v1/storage/pools
                auto spec = api::pool_spec_from_json(*j);
                hvfuzz::render_value(spec);
                api::validate(spec);
                break;
            }
            case 1: {  // b: POST /v1/storage/pools/local/volumes (the path's pool filled in)
                json body = *j;
                if (body.is_object() && !body.contains("pool")) body["pool"] = "local";
                auto spec = api::volume_spec_from_json(body);
                hvfuzz::render_value(spec);
                api::validate(spec);
                break;
            }
            case 2: {  // c: POST .../volumes/{name}/resize
                api::ObjectReader rd(*j, "");
                auto size = rd.opt_size("size");
                rd.finish();
                if (size) hvfuzz::render(json{{"size", *size}, {"text", api::format_size(*size)}});
                break;
            }
            case 4: {  // e: POST /v1/ceph/init
                auto in = api::ceph_init_from_json(*j);
                hvfuzz::render(api::to_json(in));
                break;
            }
            case 5: {  // f: POST /v1/ceph/osds
                auto in = api::ceph_osd_create_from_json(*j);
                hvfuzz::render(api::to_json(in));
                break;
            }
            case 6: {  // g: POST /v1/ceph/pools
                auto in = api::ceph_pool_create_from_json(*j);
                hvfuzz::render(api::to_json(in));
                break;
            }
            default: {  // d: POST .../volumes/{name}/clone
                api::ObjectReader rd(*j, "");
                auto target = rd.req<std::string>("target");
                rd.finish();
                api::validate_name(target, "volume name");
                hvfuzz::render(json{{"target", target}});
                break;
            }
        }
    });
    return 0;
}
