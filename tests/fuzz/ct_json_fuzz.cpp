// The container request bodies hvd reads (src/api/ct.cpp, src/daemon/ct_routes.cpp): the first
// byte picks the reader, the rest is the JSON body. Accepted objects are validated as the routes
// do and rendered back.
#include "fuzz_common.hpp"
#include "hv/api/ct.hpp"
#include "hv/api/json_reader.hpp"

namespace api = hv::api;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::size_t which = hvfuzz::select(data, size, 6);
    auto j = hvfuzz::parse_json(hvfuzz::text(data, size));
    if (!j) return 0;
    hvfuzz::expect([&] {
        switch (which) {
            case 0: {  // a: POST /v1/cts
                auto spec = api::ct_spec_from_json(*j);
                hvfuzz::render_value(spec);
                api::validate(spec);
                break;
            }
            case 1: {  // b: PATCH /v1/cts/{name}
                auto patch = api::ct_patch_from_json(*j);
                hvfuzz::render_value(patch);
                api::validate(patch);
                break;
            }
            case 2: {  // c: POST /v1/cts/{name}/exec (request_timeout 30: at most 29 s)
                api::ObjectReader rd(*j, "");
                auto command = rd.req<std::vector<std::string>>("command");
                auto timeout = rd.opt<std::int64_t>("timeout").value_or(20);
                rd.finish();
                if (timeout < 1 || timeout > 29) hv::fail(hv::Errc::invalid_input, "timeout out of range");
                hvfuzz::render(json{{"command", command}, {"timeout", timeout}});
                break;
            }
            case 3: {  // d: the exec result as hvctl reads it
                auto r = api::exec_result_from_json(*j);
                hvfuzz::render_value(r);
                break;
            }
            case 4: {  // e: GET /v1/cts/{name} as hvctl reads it
                auto info = api::ct_info_from_json(*j);
                hvfuzz::render_value(info);
                break;
            }
            default: {  // f: POST /v1/storage/pools/{pool}/templates/build
                api::ObjectReader rd(*j, "");
                auto kind = rd.req<std::string>("kind");
                bool replace = rd.opt<bool>("replace").value_or(false);
                rd.finish();
                hvfuzz::render(json{{"kind", kind}, {"replace", replace}});
                break;
            }
        }
    });
    return 0;
}
