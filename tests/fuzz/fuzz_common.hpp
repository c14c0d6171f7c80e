// What every fuzz target of tests/fuzz checks (docs/fuzzing.md):
//  - bad input may end in hv::Error, and only hv::Error: any other exception escapes the
//    target, std::terminate aborts and libFuzzer keeps the input as a crash;
//  - an hv::Error for a client's input carries a 4xx code (`expect(..., codes)`), and its JSON
//    error body renders;
//  - whatever a parser accepted renders back to JSON with nlohmann's strict dump() (invalid
//    UTF-8 in a string throws there), since every accepted object is answered or stored as JSON;
//    command-line arguments render as hvctl's client sends them (render_sent).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "hv/api/task.hpp"
#include "hv/error.hpp"

namespace hvfuzz {

inline std::string text(const std::uint8_t* data, std::size_t size) {
    return std::string(reinterpret_cast<const char*>(data), size);
}

// The first N parts of `in` split by NUL bytes (the last part takes the rest, NULs included);
// missing parts are empty.
template <std::size_t N>
std::array<std::string, N> nul_parts(const std::string& in) {
    std::array<std::string, N> part;
    std::size_t p = 0;
    for (std::size_t i = 0; i < N; ++i) {
        auto e = i + 1 < N ? in.find('\0', p) : std::string::npos;
        part[i] = p <= in.size() ? in.substr(p, e == std::string::npos ? std::string::npos : e - p) : "";
        p = e == std::string::npos ? in.size() + 1 : e + 1;
    }
    return part;
}

// A broken expectation: print it and abort, so libFuzzer stores the input.
[[noreturn]] inline void bug(std::string_view what, std::string_view detail) {
    std::fprintf(stderr, "hv fuzz: %.*s: %.*s\n", static_cast<int>(what.size()), what.data(),
                 static_cast<int>(detail.size()), detail.data());
    std::abort();
}

// Strict rendering of an accepted object (throws nlohmann::json::type_error on invalid UTF-8).
inline void render(const nlohmann::json& j) {
    std::string s = j.dump();
    if (s.empty()) bug("render", "empty JSON text");
}
template <typename T>
void render_value(const T& v) {
    nlohmann::json j = v;
    render(j);
}
// What hvctl sends: hv::Client renders request bodies with invalid UTF-8 replaced by U+FFFD
// (src/client/client.cpp), so command-line bytes can never make it throw; hvd then refuses them.
template <typename T>
void render_sent(const T& v) {
    nlohmann::json j = v;
    if (j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).empty()) bug("render", "empty JSON text");
}

// Client input: bad input is invalid_input (400) unless the caller allows other codes.
inline constexpr std::initializer_list<hv::Errc> kClientErrors = {hv::Errc::invalid_input};

// Runs f. Returns true when it succeeded, false when it threw hv::Error with one of `codes`
// (after rendering the error body as the daemon does). Any other exception propagates.
template <typename F>
bool expect(F&& f, std::initializer_list<hv::Errc> codes = kClientErrors) {
    try {
        f();
        return true;
    } catch (const hv::Error& e) {
        bool ok = false;
        for (auto c : codes) ok = ok || c == e.code();
        if (!ok) bug(std::string("unexpected error code ") + std::string(hv::errc_name(e.code())), e.what());
        // The daemon renders errors without failing on bytes that are not UTF-8 (they become
        // U+FFFD there); the body itself must build.
        auto body = hv::api::error_json(e.code(), e.what()).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        if (body.empty()) bug("error body", e.what());
        return false;
    }
}

// The input as JSON, or nothing when it is not JSON (nlohmann's parser itself is fuzzed
// through Request::json() in http_request_fuzz).
inline std::optional<nlohmann::json> parse_json(std::string_view s) {
    auto j = nlohmann::json::parse(s.begin(), s.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return std::nullopt;
    return j;
}

// Targets that hold several readers pick one with the first byte: 'a' = 0, 'b' = 1, ...
// (modulo their count), so seeds stay readable text. Returns the index and drops that byte.
inline std::size_t select(const std::uint8_t*& data, std::size_t& size, std::size_t count) {
    if (size == 0) return 0;
    std::size_t i = static_cast<std::uint8_t>(data[0] - 'a') % count;
    ++data;
    --size;
    return i;
}

}  // namespace hvfuzz
