// The host networking request bodies hvd reads (src/api/net.cpp, src/daemon/net_routes.cpp):
// bridges, bonds, VLANs (create and patch) and hvd's own network.json. The first byte picks the
// reader, the rest is the JSON body. Patches are applied to a valid object of their kind.
#include "fuzz_common.hpp"
#include "hv/api/json_reader.hpp"
#include "hv/api/net.hpp"

namespace api = hv::api;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::size_t which = hvfuzz::select(data, size, 8);
    auto j = hvfuzz::parse_json(hvfuzz::text(data, size));
    if (!j) return 0;
    hvfuzz::expect([&] {
        switch (which) {
            case 0: {  // a: POST /v1/net/bridges
                auto b = api::bridge_spec_from_json(*j);
                hvfuzz::render_value(b);
                api::validate(b);
                break;
            }
            case 1: {  // b: POST /v1/net/bonds
                auto b = api::bond_spec_from_json(*j);
                hvfuzz::render_value(b);
                api::validate(b);
                break;
            }
            case 2: {  // c: POST /v1/net/vlans
                auto v = api::vlan_spec_from_json(*j);
                hvfuzz::render_value(v);
                api::validate(v);
                break;
            }
            case 3: {  // d: PATCH /v1/net/bridges/{name} on a VLAN-aware bridge with a port
                auto p = api::bridge_patch_from_json(*j);
                hvfuzz::render_value(p);
                api::BridgeSpec b;
                b.name = "vmbr0";
                b.ports = {"eth1"};
                b.vlan_aware = true;
                hvfuzz::render_value(api::apply_patch(b, p));
                break;
            }
            case 4: {  // e: PATCH /v1/net/bonds/{name}
                auto p = api::bond_patch_from_json(*j);
                hvfuzz::render_value(p);
                api::BondSpec b;
                b.name = "bond0";
                b.members = {"eth1", "eth2"};
                hvfuzz::render_value(api::apply_patch(b, p));
                break;
            }
            case 5: {  // f: PATCH /v1/net/vlans/{name}
                auto p = api::vlan_patch_from_json(*j);
                hvfuzz::render_value(p);
                api::VlanSpec v;
                v.name = "bond0.100";
                v.parent = "bond0";
                v.id = 100;
                hvfuzz::render_value(api::apply_patch(v, p));
                break;
            }
            case 6: {  // g: <state_dir>/network.json
                auto s = api::net_state_from_json(*j);
                hvfuzz::render_value(s);
                break;
            }
            default: {  // h: POST /v1/net/apply
                api::ObjectReader rd(*j, "");
                auto within = rd.opt<int>("confirm_within").value_or(60);
                rd.finish();
                hvfuzz::render(json{{"confirm_within", within}});
                break;
            }
        }
    });
    return 0;
}
