#include "hv/api/migrate.hpp"

#include "hv/api/cluster.hpp"
#include "hv/api/json_reader.hpp"
#include "hv/error.hpp"

namespace hv::api {
using nlohmann::json;

json to_json(const MigrateRequest& r) {
    return {{"to", r.to},
            {"offline", r.offline},
            {"dry_run", r.dry_run},
            {"bandwidth", r.bandwidth},
            {"max_downtime", r.max_downtime},
            {"with_local_disks", r.with_local_disks},
            {"postcopy", r.postcopy}};
}

MigrateRequest migrate_request_from_json(const json& j) {
    ObjectReader rd(j, "");
    MigrateRequest r;
    r.to = rd.req<std::string>("to");
    r.offline = rd.opt<bool>("offline").value_or(false);
    r.dry_run = rd.opt<bool>("dry_run").value_or(false);
    r.bandwidth = rd.opt<std::uint64_t>("bandwidth").value_or(0);
    r.max_downtime = read_int(rd, "max_downtime", 300);
    r.with_local_disks = rd.opt<bool>("with_local_disks").value_or(false);
    r.postcopy = rd.opt<bool>("postcopy").value_or(false);
    rd.finish();
    check_cluster_name(r.to, "field 'to'");
    if (r.bandwidth > 100000) fail(Errc::invalid_input, "field 'bandwidth' must be at most 100000 MiB/s (0: unlimited)");
    if (r.offline && r.postcopy) fail(Errc::invalid_input, "--postcopy is for a live migration, not --offline");
    if (r.max_downtime < 10 || r.max_downtime > 60000)
        fail(Errc::invalid_input, "field 'max_downtime' must be between 10 and 60000 ms");
    return r;
}

json to_json(const MigrateReport& r) {
    return {{"vm", r.vm},       {"from", r.from},          {"to", r.to},
            {"live", r.live},   {"ok", r.ok},              {"blockers", r.blockers},
            {"total_ms", r.total_ms}, {"downtime_ms", r.downtime_ms}, {"transferred", r.transferred},
            {"copied_disks", r.copied_disks}, {"postcopy", r.postcopy}, {"warnings", r.warnings}};
}

}  // namespace hv::api
