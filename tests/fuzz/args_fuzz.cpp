// hvctl's argument parsers that reach hvd's model (src/api/size.cpp, vm.cpp, ct.cpp,
// storage.cpp, net.cpp, time.cpp): the first byte picks the parser, the rest is the argument
// as typed. 'a' sizes ("4G"), 'b' --disk, 'c' --net, 'd' vm nic set, 'e' --rootfs, 'f' volume
// ids ("local:iso/x.iso"), 'g' VLAN id lists, 'h' CIDR addresses, 'i' NTP servers, 'j' names.
// What a parser accepts is what hvctl validates (as its commands do before calling hvd) and
// sends as JSON (render_sent: the client replaces invalid UTF-8, hvd refuses it).
#include "fuzz_common.hpp"
#include "hv/api/ct.hpp"
#include "hv/api/net.hpp"
#include "hv/api/size.hpp"
#include "hv/api/storage.hpp"
#include "hv/api/time.hpp"
#include "hv/api/vm.hpp"

namespace api = hv::api;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::size_t which = hvfuzz::select(data, size, 10);
    std::string arg = hvfuzz::text(data, size);
    hvfuzz::expect([&] {
        switch (which) {
            case 0: {
                auto bytes = api::parse_size(arg, "size");
                if (bytes > static_cast<std::uint64_t>(INT64_MAX)) hvfuzz::bug("parse_size", "above INT64_MAX: " + arg);
                auto shown = api::format_size(bytes);
                // The exact forms read back to the same number.
                if (shown.find('.') == std::string::npos && api::parse_size(shown, "size") != bytes)
                    hvfuzz::bug("format_size", arg + " -> " + shown);
                break;
            }
            case 1: {  // hvctl vm create --disk: the spec is validated before it is sent
                api::VmSpec spec;
                spec.name = "fuzz";
                spec.disks.push_back(api::parse_disk_arg(arg));
                hvfuzz::render_sent(spec);
                api::validate(spec);
                break;
            }
            case 2: {
                auto nic = api::parse_nic_arg(arg);
                hvfuzz::render_sent(nic);
                api::validate(nic, "--net");
                break;
            }
            case 3: hvfuzz::render_sent(api::parse_nic_patch_arg(arg)); break;
            case 4: hvfuzz::render_sent(api::parse_rootfs_arg(arg)); break;
            case 5: {
                auto ref = api::parse_volume_ref(arg, "volume");
                hvfuzz::render_sent(json{{"pool", ref.pool}, {"content", ref.content}, {"name", ref.name}});
                break;
            }
            case 6: {
                for (auto [lo, hi] : api::parse_vids(arg))
                    if (lo < 1 || hi > 4094 || lo > hi) hvfuzz::bug("parse_vids", arg);
                break;
            }
            case 7: {
                int prefix = api::validate_cidr(arg, "address");
                if (prefix < 0 || prefix > 128) hvfuzz::bug("validate_cidr", arg);
                break;
            }
            case 8: {
                auto ep = api::parse_ntp_endpoint(arg, "servers[0]");
                if (ep.port < 0 || ep.port > 65535) hvfuzz::bug("parse_ntp_endpoint", arg);
                hvfuzz::render_sent(json{{"host", ep.host}, {"port", ep.port}});
                break;
            }
            default: {
                api::validate_name(arg, "vm name");
                hvfuzz::render_sent(json{{"name", arg}});
                api::validate_file_name(arg, "file name");
                break;
            }
        }
    });
    return 0;
}
