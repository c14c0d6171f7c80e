// A snapshot's XML as libvirt returns it (virDomainSnapshotGetXMLDesc), read for `vm snapshot
// list/show` (src/virt/snapshot_xml.cpp). libvirt writes it, but a guest's owner shapes parts
// of it (the description, the saved domain's metadata): bad XML is "not a snapshot", never a
// crash or an exception, and what is read renders as JSON.
#include "fuzz_common.hpp"
#include "hv/virt/snapshot_xml.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto f = hv::virt::parse_snapshot_xml(hvfuzz::text(data, size));
    if (!f) return 0;
    if (f->name.empty()) hvfuzz::bug("snapshot xml", "accepted without a name");
    if (f->created < 0) hvfuzz::bug("snapshot xml", "negative creation time");
    auto info = hv::virt::snapshot_info(*f, false);
    (void)hv::api::to_json(info).dump();
    return 0;
}
