// A fresh directory under $TMPDIR for one test, removed with everything in it at scope exit.
// (Older tests still carry a copy of their own; new ones use this.)
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include <catch2/catch.hpp>

namespace hv::test {

struct TempDir {
    std::string path;
    explicit TempDir(const std::string& prefix = "hv-test") {
        std::string t = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

}  // namespace hv::test
