// Sizes: parse_size (command line and JSON strings) and format_size (human output).
#include <cstdint>
#include <limits>
#include <string>

#include <catch2/catch.hpp>

#include "hv/api/size.hpp"
#include "hv/error.hpp"

using hv::Errc;
using hv::Error;
using hv::api::format_size;
using hv::api::parse_size;

namespace {
constexpr std::uint64_t KiB = 1ULL << 10;
constexpr std::uint64_t MiB = 1ULL << 20;
constexpr std::uint64_t GiB = 1ULL << 30;
constexpr std::uint64_t TiB = 1ULL << 40;

// The error parse_size throws for `text`, or a failed check when it throws none.
Error parse_error(const std::string& text, const std::string& what = "size") {
    try {
        auto v = parse_size(text, what);
        FAIL("parse_size(\"" << text << "\") returned " << v << " instead of throwing");
    } catch (const Error& e) {
        return e;
    }
    return Error(Errc::internal, "unreachable");
}
}  // namespace

TEST_CASE("parse_size: binary suffixes", "[size]") {
    CHECK(parse_size("512M") == 512 * MiB);
    CHECK(parse_size("4G") == 4 * GiB);
    CHECK(parse_size("1T") == TiB);
    CHECK(parse_size("64K") == 64 * KiB);
    CHECK(parse_size("1P") == 1024 * TiB);
    CHECK(parse_size("4g") == 4 * GiB);  // case-insensitive unit
    CHECK(parse_size("4GiB") == 4 * GiB);
    CHECK(parse_size("4GB") == 4 * GiB);
    CHECK(parse_size("100B") == 100);
}

TEST_CASE("parse_size: fractions and plain bytes", "[size]") {
    CHECK(parse_size("1.5G") == 3 * GiB / 2);
    CHECK(parse_size("0.5K") == 512);
    CHECK(parse_size("1024") == 1024);
    CHECK(parse_size("0") == 0);
    // The largest accepted value is INT64_MAX bytes.
    CHECK(parse_size("9223372036854775807") == static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
    CHECK(parse_size("8388607T") == 8388607 * TiB);
}

TEST_CASE("parse_size: malformed input is invalid_input", "[size]") {
    for (const char* bad : {"", "0x10", "4X", "G", "-1G", "1.2.3G", " 4G", "4G ", "4 G", "4GX", "1e3", "0.5",
                            "1.1K", "4BB", "abc", "4M5"}) {
        INFO("input: '" << bad << "'");
        CHECK(parse_error(bad).code() == Errc::invalid_input);
    }
}

TEST_CASE("parse_size: overflow is invalid_input", "[size]") {
    for (const char* big : {"9223372036854775808", "8388608T", "99999999999999999999999", "9999999P",
                            "18446744073709551616"}) {
        INFO("input: " << big);
        auto e = parse_error(big);
        CHECK(e.code() == Errc::invalid_input);
    }
}

TEST_CASE("parse_size: the message names the field and the text", "[size]") {
    auto e = parse_error("4X", "memory");
    CHECK(e.code() == Errc::invalid_input);
    CHECK_THAT(e.what(), Catch::Contains("memory") && Catch::Contains("4X"));
}

TEST_CASE("format_size: exact human units", "[size]") {
    CHECK(format_size(0) == "0B");
    CHECK(format_size(1) == "1B");
    CHECK(format_size(1023) == "1023B");
    CHECK(format_size(KiB) == "1K");
    CHECK(format_size(512 * MiB) == "512M");
    CHECK(format_size(GiB) == "1G");
    CHECK(format_size(4 * GiB) == "4G");
    CHECK(format_size(TiB) == "1T");
    CHECK(format_size(1024 * TiB) == "1P");
}

TEST_CASE("format_size: the documented example 1610612736 -> 1.5G", "[size]") {
    // include/hv/api/size.hpp: "1073741824 -> "1G", 1610612736 -> "1.5G"".
    CHECK(format_size(1610612736) == "1.5G");
}

TEST_CASE("format_size output parses back to the same bytes when exact", "[size]") {
    for (std::uint64_t v : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{1000}, KiB, 3 * KiB, 16 * MiB,
                            512 * MiB, 768 * MiB, GiB, 3 * GiB / 2, 8 * GiB, 2 * TiB}) {
        INFO("bytes: " << v << " -> " << format_size(v));
        CHECK(parse_size(format_size(v)) == v);
    }
}
