#include "hv/api/backup.hpp"

#include "hv/api/json_reader.hpp"
#include "hv/api/vm.hpp"
#include "hv/error.hpp"

namespace hv::api {
using nlohmann::json;

json to_json(const BackupStoreSpec& s) { return {{"name", s.name}, {"path", s.path}}; }
json to_json(const BackupCreate& c) {
    return {{"store", c.store}, {"mode", c.mode}, {"shutdown_timeout", c.shutdown_timeout}};
}
json to_json(const BackupRestore& r) { return {{"as", r.as}, {"pool", r.pool}, {"start", r.start}}; }
json to_json(const BackupPrune& p) {
    return {{"guest", p.guest},           {"keep_last", p.keep_last},       {"keep_daily", p.keep_daily},
            {"keep_weekly", p.keep_weekly}, {"keep_monthly", p.keep_monthly}, {"dry_run", p.dry_run}};
}

BackupStoreSpec backup_store_from_json(const json& j) {
    ObjectReader rd(j, "");
    BackupStoreSpec s;
    s.name = rd.req<std::string>("name");
    s.path = rd.req<std::string>("path");
    rd.finish();
    validate_name(s.name, "backup store name");
    if (s.path.empty() || s.path[0] != '/') fail(Errc::invalid_input, "field 'path' must be an absolute path");
    return s;
}

BackupCreate backup_create_from_json(const json& j) {
    ObjectReader rd(j, "");
    BackupCreate c;
    c.store = rd.req<std::string>("store");
    c.mode = rd.opt<std::string>("mode").value_or("snapshot");
    c.shutdown_timeout = rd.opt_int("shutdown_timeout").value_or(60);
    rd.finish();
    if (c.shutdown_timeout < 1 || c.shutdown_timeout > 3600)
        fail(Errc::invalid_input, "field 'shutdown_timeout' must be 1-3600 seconds");
    validate_name(c.store, "backup store name");
    if (c.mode != "snapshot" && c.mode != "stop") fail(Errc::invalid_input, "field 'mode' must be snapshot or stop");
    return c;
}

BackupRestore backup_restore_from_json(const json& j) {
    ObjectReader rd(j, "");
    BackupRestore r;
    r.as = rd.opt<std::string>("as").value_or("");
    r.pool = rd.opt<std::string>("pool").value_or("");
    r.start = rd.opt<bool>("start").value_or(false);
    rd.finish();
    if (!r.as.empty()) validate_name(r.as, "vm name");
    if (!r.pool.empty()) validate_name(r.pool, "pool name");
    return r;
}

BackupPrune backup_prune_from_json(const json& j) {
    ObjectReader rd(j, "");
    BackupPrune p;
    p.guest = rd.req<std::string>("guest");
    validate_name(p.guest, "guest");
    auto keep = [&](const char* k) {
        int v = rd.opt_int(k).value_or(0);
        if (v < 0 || v > 100000) fail(Errc::invalid_input, "field '{}' must be 0-100000", k);
        return v;
    };
    p.keep_last = keep("keep_last");
    p.keep_daily = keep("keep_daily");
    p.keep_weekly = keep("keep_weekly");
    p.keep_monthly = keep("keep_monthly");
    p.dry_run = rd.opt<bool>("dry_run").value_or(false);
    rd.finish();
    if (p.keep_last + p.keep_daily + p.keep_weekly + p.keep_monthly == 0)
        fail(Errc::invalid_input, "give at least one keep option (keep_last, keep_daily, keep_weekly, keep_monthly)");
    return p;
}

BackupVerify backup_verify_from_json(const json& j) {
    ObjectReader rd(j, "");
    BackupVerify v;
    v.guest = rd.opt<std::string>("guest").value_or("");
    v.time = rd.opt<std::string>("time").value_or("");
    rd.finish();
    if (!v.guest.empty()) validate_name(v.guest, "guest");
    if (!v.time.empty() && v.guest.empty()) fail(Errc::invalid_input, "field 'time' needs 'guest'");
    return v;
}

}  // namespace hv::api
