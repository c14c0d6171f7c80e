#include "manifest.hpp"

#include "hv/api/json_reader.hpp"
#include "hv/api/vm.hpp"
#include "hv/error.hpp"

namespace hv::backup {
using nlohmann::json;

bool valid_chunk_id(const std::string& id) {
    if (id.size() != 64) return false;
    for (char c : id)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

bool valid_backup_time(const std::string& t) {
    // YYYY-MM-DDTHH:MM:SSZ
    static const char* shape = "dddd-dd-ddTdd:dd:ddZ";
    if (t.size() != 20) return false;
    for (std::size_t i = 0; i < t.size(); ++i) {
        if (shape[i] == 'd') {
            if (t[i] < '0' || t[i] > '9') return false;
        } else if (t[i] != shape[i]) {
            return false;
        }
    }
    return true;
}

json to_json(const Manifest& m) {
    json disks = json::array();
    for (const auto& d : m.disks)
        disks.push_back({{"name", d.name}, {"format", d.format}, {"size", d.size}, {"chunks", d.chunks}});
    return {{"version", m.version}, {"guest", m.guest},       {"time", m.time},
            {"mode", m.mode},       {"quiesced", m.quiesced}, {"chunk_size", m.chunk_size}, {"spec", m.spec},
            {"disks", disks},       {"size", m.size},         {"new_data", m.new_data},
            {"duration_ms", m.duration_ms}};
}

Manifest manifest_from_json(const json& j) {
    api::ObjectReader rd(j, "");
    Manifest m;
    m.version = rd.req<int>("version");
    if (m.version != kManifestVersion)
        fail(Errc::invalid_input, "manifest version {} is not supported (this hvd reads {})", m.version,
             kManifestVersion);
    m.guest = rd.req<std::string>("guest");
    api::validate_name(m.guest, "guest");
    m.time = rd.req<std::string>("time");
    if (!valid_backup_time(m.time)) fail(Errc::invalid_input, "field 'time' must look like 2026-12-07T12:00:00Z");
    m.mode = rd.req<std::string>("mode");
    if (m.mode != "snapshot" && m.mode != "stop" && m.mode != "offline")
        fail(Errc::invalid_input, "field 'mode' must be snapshot, stop or offline");
    m.quiesced = rd.opt<bool>("quiesced").value_or(false);
    m.chunk_size = rd.req<std::uint64_t>("chunk_size");
    if (m.chunk_size != kChunkSize) fail(Errc::invalid_input, "field 'chunk_size' must be {}", kChunkSize);
    const auto* spec = rd.raw("spec");
    if (!spec || !spec->is_object()) fail(Errc::invalid_input, "field 'spec' must be a JSON object");
    m.spec = *spec;
    m.size = rd.req<std::uint64_t>("size");
    m.new_data = rd.req<std::uint64_t>("new_data");
    m.duration_ms = rd.opt<std::int64_t>("duration_ms").value_or(0);
    const auto* disks = rd.raw("disks");
    if (!disks || !disks->is_array()) fail(Errc::invalid_input, "field 'disks' must be an array");
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < disks->size(); ++i) {
        auto path = fmt::format("disks[{}]", i);
        api::ObjectReader dr((*disks)[i], path);
        DiskIndex d;
        d.name = dr.req<std::string>("name");
        api::validate_name(d.name, "disk name");
        d.format = dr.req<std::string>("format");
        if (d.format != "raw" && d.format != "qcow2") fail(Errc::invalid_input, "{}.format must be raw or qcow2", path);
        d.size = dr.req<std::uint64_t>("size");
        const auto* chunks = dr.raw("chunks");
        if (!chunks || !chunks->is_array()) fail(Errc::invalid_input, "{}.chunks must be an array", path);
        std::uint64_t want = d.size / kChunkSize + (d.size % kChunkSize ? 1 : 0);
        if (chunks->size() != want)
            fail(Errc::invalid_input, "{}.chunks has {} entries; a disk of {} bytes has {}", path, chunks->size(),
                 d.size, want);
        d.chunks.reserve(chunks->size());
        for (std::size_t k = 0; k < chunks->size(); ++k) {
            const auto& c = (*chunks)[k];
            if (!c.is_string() || (c.get<std::string>() != kZeroChunk && !valid_chunk_id(c.get<std::string>())))
                fail(Errc::invalid_input, "{}.chunks[{}] must be a SHA-256 hex name or \"{}\"", path, k, kZeroChunk);
            d.chunks.push_back(c.get<std::string>());
        }
        dr.finish();
        if (total + d.size < total) fail(Errc::invalid_input, "the disks' sizes overflow");
        total += d.size;
        m.disks.push_back(std::move(d));
    }
    if (total != m.size) fail(Errc::invalid_input, "field 'size' ({}) is not the sum of the disks' sizes ({})", m.size, total);
    rd.finish();
    return m;
}

}  // namespace hv::backup
