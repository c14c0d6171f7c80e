// The VM request bodies hvd reads (src/api/vm.cpp, the routes in api_routes.cpp and
// vm_disk_routes.cpp): the first byte picks the reader ('a' = POST /v1/vms, ...), the rest is
// the JSON body. Accepted objects are validated as the routes do and rendered back. 'i' is the
// spec in a domain's hv metadata (spec_from_metadata: editable with virsh), which alone reads a
// disk's network `source` (requests refuse it).
#include "fuzz_common.hpp"
#include "hv/api/json_reader.hpp"
#include "hv/api/storage.hpp"
#include "hv/api/migrate.hpp"
#include "hv/api/ha.hpp"
#include "hv/api/vm.hpp"

namespace api = hv::api;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::size_t which = hvfuzz::select(data, size, 14);
    auto j = hvfuzz::parse_json(hvfuzz::text(data, size));
    if (!j) return 0;
    hvfuzz::expect([&] {
        switch (which) {
            case 0: {  // a: POST /v1/vms
                auto spec = api::vm_spec_from_json(*j);
                hvfuzz::render_value(spec);
                api::validate(spec);
                break;
            }
            case 1: {  // b: PATCH /v1/vms/{name} (and /v1/cts/{name})
                auto patch = api::vm_patch_from_json(*j);
                hvfuzz::render_value(patch);
                api::validate(patch);
                break;
            }
            case 2: {  // c: POST /v1/vms/{name}/disks, validated as a VM's disk
                api::VmSpec spec;
                spec.name = "fuzz";
                spec.disks.push_back(api::disk_from_json(*j, "disk"));
                hvfuzz::render_value(spec.disks.back());
                api::validate(spec);
                break;
            }
            case 3: {  // d: POST /v1/vms/{name}/nics
                auto nic = api::nic_from_json(*j, "nic");
                hvfuzz::render_value(nic);
                api::validate(nic, "nic");
                break;
            }
            case 4: {  // e: PATCH /v1/vms/{name}/nics/{nic}, applied to a NIC on a bridge
                auto patch = api::nic_patch_from_json(*j);
                hvfuzz::render_value(patch);
                api::NicSpec nic;
                nic.name = "net0";
                nic.bridge = "vmbr0";
                hvfuzz::render_value(api::apply_patch(nic, patch));
                break;
            }
            case 5: {  // f: GET /v1/vms/{name} as hvctl reads it
                auto info = api::vm_info_from_json(*j);
                hvfuzz::render_value(info);
                break;
            }
            case 6: {  // g: POST /v1/vms/{name}/shutdown (and the action routes' empty object)
                api::ObjectReader rd(*j, "");
                auto timeout = rd.opt<std::int64_t>("timeout").value_or(60);
                bool force = rd.opt<bool>("force").value_or(false);
                rd.finish();
                hvfuzz::render(json{{"timeout", timeout}, {"force", force}});
                break;
            }
            case 8: {  // i: the spec of hv metadata, disks with network sources
                auto spec = api::vm_spec_from_json(*j, api::JsonOrigin::hvd);
                hvfuzz::render_value(spec);
                api::validate(spec);
                for (const auto& d : spec.disks) hvfuzz::render_value(api::source_of(d));
                break;
            }
            case 9: {  // j: POST /v1/vms/{name}/migrate
                auto rq = api::migrate_request_from_json(*j);
                hvfuzz::render(api::to_json(rq));
                break;
            }
            case 10: {  // k: PUT /v1/ha/resources/{name}
                auto e = api::ha_enable_from_json(*j);
                hvfuzz::render(api::to_json(e));
                break;
            }
            case 11: {  // l: POST /v1/ha/groups, and each host as `hvctl ha group create --host` gives it
                auto g = api::ha_group_from_json(*j);
                hvfuzz::render(api::to_json(g));
                for (const auto& [h, p] : g.hosts) {
                    auto back = api::parse_ha_host(h + ":" + std::to_string(p));
                    if (back.first != h || back.second != p) hvfuzz::bug("ha host", "HOST:PRIORITY changed in a round trip: " + h);
                }
                break;
            }
            case 13: {  // n: PUT /v1/ha/settings (merged into the record), and the record read back
                auto st = api::ha_settings_from_json(*j);
                auto back = api::ha_settings_from_json(api::to_json(st));
                if (back.shutdown_policy != st.shutdown_policy) hvfuzz::bug("ha settings", "changed in a round trip");
                break;
            }
            case 12: {  // m: POST /v1/host/cpu-check ({"cpu": ...}); a valid CPU survives hvctl's form
                api::ObjectReader rd(*j, "");
                const auto* c = rd.raw("cpu");
                if (!c) break;
                auto cpu = api::cpu_from_json(*c, "cpu");
                rd.finish();
                api::validate(cpu, false);
                hvfuzz::render_value(cpu);
                if (cpu.mode == "custom") {
                    std::string arg = cpu.model;
                    for (const auto& f : cpu.features) arg += "," + f;
                    auto back = api::parse_cpu_arg(arg);
                    back.vendor = cpu.vendor;
                    if (!(back == cpu)) hvfuzz::bug("cpu", "MODEL,+feature form changed in a round trip: " + arg);
                }
                break;
            }
            default: {  // h: PUT /v1/vms/{name}/cdrom
                api::ObjectReader rd(*j, "");
                auto iso = rd.req<std::string>("iso");
                rd.finish();
                if (!iso.empty() && iso[0] != '/') {
                    auto ref = api::parse_volume_ref(iso, "iso");
                    hvfuzz::render(json{{"pool", ref.pool}, {"content", ref.content}, {"name", ref.name}});
                }
                break;
            }
        }
    });
    return 0;
}
