// Pure text helpers of hvctl (src/cli/format.hpp is header-only, so no CLI library is linked).
#include <catch2/catch.hpp>

#include "../../src/cli/format.hpp"

using namespace hv::cli;

TEST_CASE("cli: durations are short and human", "[cli]") {
    CHECK(format_duration(0) == "-");
    CHECK(format_duration(-5) == "-");
    CHECK(format_duration(35) == "35s");
    CHECK(format_duration(60) == "1m00s");
    CHECK(format_duration(307) == "5m07s");
    CHECK(format_duration(3720) == "1h02m");
    CHECK(format_duration(86399) == "23h59m");
    CHECK(format_duration(273600) == "3d04h");
}

TEST_CASE("cli: tables align columns and honour --no-headers", "[cli]") {
    std::vector<Row> rows{{"web01", "running", "2"}, {"db", "stopped", "16"}};
    CHECK(render_table({"NAME", "STATE", "CPUS"}, rows) ==
          "NAME    STATE     CPUS\n"
          "web01   running   2\n"
          "db      stopped   16\n");
    CHECK(render_table({"NAME", "STATE", "CPUS"}, rows, true) ==
          "web01   running   2\n"
          "db      stopped   16\n");
    CHECK(render_table({"NAME"}, {}) == "NAME\n");
    CHECK(render_table({"NAME"}, {}, true).empty());
    // A trailing empty cell leaves no trailing spaces.
    CHECK(render_table({"A", "B"}, {{"x", ""}}, true) == "x\n");
}

TEST_CASE("cli: key/value blocks align values", "[cli]") {
    CHECK(render_kv({{"name", "web01"}, {"description", "-"}}) ==
          "name:         web01\n"
          "description:  -\n");
}

TEST_CASE("cli: progress line", "[cli]") {
    CHECK(progress_line(0, "queued", 0) == "[--------------------]   0% queued");
    CHECK(progress_line(42, "creating disk0", 0) == "[########------------]  42% creating disk0");
    CHECK(progress_line(100, "", 0) == "[####################] 100%");
    CHECK(progress_line(150, "x", 0) == "[####################] 100% x");
    CHECK(progress_line(-1, "waiting", 0) == "| waiting");
    CHECK(progress_line(-1, "waiting", 1) == "/ waiting");
    CHECK(progress_line(-1, "waiting", 5) == "/ waiting");
    CHECK(progress_line(42, "creating disk0", 0, 20).size() == 19);
}
