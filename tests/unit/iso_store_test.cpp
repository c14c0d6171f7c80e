// ISO library: name checks, checksum parsing, SHA-256 (OpenSSL) against known vectors.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "../../src/storage/iso_store.hpp"
#include "hv/error.hpp"

using hv::storage::normalize_sha256;
using hv::storage::Sha256;
using hv::storage::validate_iso_name;

TEST_CASE("iso names: .iso suffix, no path tricks", "[iso]") {
    CHECK_NOTHROW(validate_iso_name("debian-12.iso"));
    CHECK_NOTHROW(validate_iso_name("Win11_23H2.ISO"));
    CHECK_NOTHROW(validate_iso_name("a b.iso"));
    for (const std::string& bad : std::vector<std::string>{"", "a/b.iso", "../x.iso", "..", ".", "x..iso", ".hidden.iso", "image.img", "iso",
                            ".iso", "x.iso/", std::string(241, 'a') + ".iso", std::string("a\0b.iso", 7), "tab\t.iso"}) {
        INFO(bad);
        try {
            validate_iso_name(bad);
            FAIL("accepted");
        } catch (const hv::Error& e) {
            CHECK(e.code() == hv::Errc::invalid_input);
        }
    }
}

TEST_CASE("sha256: hex parsing and known digests", "[iso]") {
    CHECK(normalize_sha256(std::string(64, 'A')) == std::string(64, 'a'));
    CHECK_THROWS_AS(normalize_sha256("abc"), hv::Error);
    CHECK_THROWS_AS(normalize_sha256(std::string(63, 'a') + "g"), hv::Error);
    {
        Sha256 h;
        CHECK(h.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
    {
        Sha256 h;
        h.update("a", 1);
        h.update("bc", 2);
        CHECK(h.hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
