#include "iso_routes.hpp"

#include <sys/stat.h>

#include <memory>

#include "../storage/iso_store.hpp"

namespace hv::daemon {
using nlohmann::json;

void register_file_store_routes(Router& r, ApiContext& c, std::shared_ptr<storage::IsoStore> store,
                                const std::string& collection) {
    const std::string all = "/v1/storage/" + collection, pool = "/v1/storage/pools/{pool}/" + collection,
                      one = pool + "/{name}";
    r.add("GET", all, "host", [store](const Request&) { return Response{200, store->list("")}; });
    r.add("GET", pool, "pool:{pool}", [store](const Request& req) { return Response{200, store->list(req.param("pool"))}; });
    r.add("GET", one, "pool:{pool}",
          [store](const Request& req) { return Response{200, store->get(req.param("pool"), req.param("name"))}; });
    r.add("DELETE", one, "pool:{pool}", [store](const Request& req) {
        store->remove(req.param("pool"), req.param("name"));
        return Response{200, json{{"pool", req.param("pool")}, {"name", req.param("name")}, {"deleted", true}}};
    });
    // Streamed body (Content-Length or chunked): refusals (name, exists, in use, space) come
    // before the first byte is read, so a client sending "Expect: 100-continue" never sends it.
    r.add_streaming("PUT", one, "pool:{pool}", [store, &c](const Request& req) {
        storage::IsoStore::Upload u;
        u.pool = req.param("pool");
        u.name = req.param("name");
        if (auto it = req.query.find("sha256"); it != req.query.end()) u.sha256 = it->second;
        u.replace = req.flag("replace");
        u.length = req.content_length;
        for (const auto& [k, _] : req.query)
            if (k != "sha256" && k != "replace")
                fail(Errc::invalid_input, "unknown query parameter '{}' (known: sha256, replace)", k);
        store->precheck(u);  // before the first byte (and the 100 Continue)
        struct stat st {};
        bool existed =
            ::stat((c.pools.content_dir(u.pool, store->kind().content) + "/" + u.name).c_str(), &st) == 0;
        auto info = store->upload(u, req.read_body);
        return Response{existed ? 200 : 201, info};
    });
}

void register_iso_routes(Router& r, ApiContext& c) {
    // One store for the life of the routes (hvd's): it remembers the uploads in progress.
    register_file_store_routes(r, c, std::make_shared<storage::IsoStore>(c.pools), "isos");
}

}  // namespace hv::daemon
