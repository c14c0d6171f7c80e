// The REST router (src/daemon/router.cpp): path patterns, query parsing, method errors.
#include <catch2/catch.hpp>

#include "hv/error.hpp"
#include "router.hpp"

using namespace hv::daemon;

namespace {
Request make(const std::string& method, const std::string& path) {
    Request r;
    r.method = method;
    r.path = path;
    return r;
}
}  // namespace

TEST_CASE("router: patterns bind parameters and pick the method", "[router]") {
    Router r;
    r.add("GET", "/v1/vms", "host", [](const Request&) { return Response{200, "list"}; });
    r.add("GET", "/v1/vms/{name}", "host", [](const Request& q) { return Response{200, q.param("name")}; });
    r.add("POST", "/v1/vms/{name}/start", "host", [](const Request& q) { return Response{200, "start " + q.param("name")}; });

    Request q = make("GET", "/v1/vms/web01");
    CHECK(r.match(q).handler(q).body == "web01");
    Request s = make("POST", "/v1/vms/web%2D01/start");
    CHECK(r.match(s).handler(s).body == "start web-01");
    Request l = make("GET", "/v1/vms/");
    CHECK(r.match(l).handler(l).body == "list");

    Request bad = make("DELETE", "/v1/vms/web01");
    CHECK_THROWS_AS(r.match(bad), MethodNotAllowed);
    Request none = make("GET", "/v1/nothing");
    try {
        r.match(none);
        FAIL("no exception");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::not_found);
    }
}

TEST_CASE("router: targets split into path and decoded query", "[router]") {
    std::string path;
    std::map<std::string, std::string> q;
    split_target("/v1/vms/a?purge=1&x=a%20b&flag", path, q);
    CHECK(path == "/v1/vms/a");
    CHECK(q["purge"] == "1");
    CHECK(q["x"] == "a b");
    CHECK(q.count("flag") == 1);

    Request r;
    r.query = q;
    CHECK(r.flag("purge"));
    CHECK(r.flag("flag"));
    CHECK_FALSE(r.flag("absent"));
    r.query["purge"] = "maybe";
    CHECK_THROWS_AS(r.flag("purge"), hv::Error);
}

TEST_CASE("router: request bodies must be JSON", "[router]") {
    Request r;
    CHECK(r.json().is_object());
    r.body = "{\"a\":1}";
    CHECK(r.json()["a"] == 1);
    r.body = "{not json";
    try {
        r.json();
        FAIL("no exception");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::invalid_input);
    }
}
