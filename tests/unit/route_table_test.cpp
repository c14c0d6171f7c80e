// hvd --print-routes (src/daemon/route_table.cpp): the table the request fuzzer walks.
#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "route_table.hpp"

using nlohmann::json;

TEST_CASE("route table: every registered route once, with its kind", "[router]") {
    json t = hv::daemon::route_table_json();
    REQUIRE(t.is_array());
    std::set<std::string> seen;
    std::map<std::string, std::string> kind;
    for (const auto& r : t) {
        std::string key = r.at("method").get<std::string>() + " " + r.at("pattern").get<std::string>();
        CHECK(seen.insert(key).second);  // no route registered twice
        kind[key] = r.at("kind");
        CHECK(r.at("pattern").get<std::string>().rfind("/v1/", 0) == 0);
    }
    CHECK(kind["GET /v1/vms"] == "fast");
    CHECK(kind["POST /v1/vms"] == "normal");
    CHECK(kind["PUT /v1/storage/pools/{pool}/isos/{name}"] == "streaming");
    CHECK(kind["PUT /v1/storage/pools/{pool}/templates/{name}"] == "streaming");
    CHECK(kind["GET /v1/cts/{name}/console"] == "upgrade");
    CHECK(kind["POST /v1/autostart/stop-all"] == "normal");
    CHECK(kind["GET /v1/net/bridges/{name}"] == "normal");
    CHECK(kind["PUT /v1/time"] == "normal");
}
