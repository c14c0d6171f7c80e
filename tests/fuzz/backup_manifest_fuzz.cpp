// Backup manifests (src/backup/manifest.cpp, manifest_from_json): the whole input is a
// manifest file as a store holds it (backups/<guest>/<time>.json; a store is a directory others
// can write). Bad input ends in invalid_input; an accepted manifest renders, and reads back
// equal from its own rendering (the chunk counts match the sizes, the ids are well formed).
#include "fuzz_common.hpp"
#include "manifest.hpp"

namespace backup = hv::backup;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto j = hvfuzz::parse_json(hvfuzz::text(data, size));
    if (!j) return 0;
    backup::Manifest m;
    if (!hvfuzz::expect([&] { m = backup::manifest_from_json(*j); })) return 0;
    auto out = backup::to_json(m);
    hvfuzz::render(out);
    std::uint64_t total = 0;
    for (const auto& d : m.disks) {
        total += d.size;
        if (d.chunks.size() != (d.size + backup::kChunkSize - 1) / backup::kChunkSize)
            hvfuzz::bug("chunk count", d.name);
        for (const auto& c : d.chunks)
            if (c != backup::kZeroChunk && !backup::valid_chunk_id(c)) hvfuzz::bug("chunk id", c);
    }
    if (total != m.size) hvfuzz::bug("size", "not the sum of the disks");
    auto again = backup::manifest_from_json(out);
    if (backup::to_json(again) != out) hvfuzz::bug("round trip", out.dump());
    return 0;
}
