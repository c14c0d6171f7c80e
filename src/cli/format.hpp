// Pure text helpers of hvctl (no I/O): tables, key/value blocks, durations, the progress line.
// Header-only so unit tests can use them without linking the CLI.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace hv::cli {

using Row = std::vector<std::string>;

// Columns separated by three spaces, left-aligned; the last column is not padded.
inline std::string render_table(const Row& headers, const std::vector<Row>& rows, bool no_headers = false) {
    std::vector<std::size_t> width(headers.size(), 0);
    auto measure = [&](const Row& r) {
        for (std::size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
    };
    if (!no_headers) measure(headers);
    for (const auto& r : rows) measure(r);
    std::string out;
    auto emit = [&](const Row& r) {
        std::string line;
        for (std::size_t i = 0; i < width.size(); ++i) {
            const std::string cell = i < r.size() ? r[i] : std::string();
            line += cell;
            if (i + 1 < width.size()) line += std::string(width[i] - cell.size() + 3, ' ');
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + "\n";
    };
    if (!no_headers) emit(headers);
    for (const auto& r : rows) emit(r);
    return out;
}

// "key:   value" lines with the values aligned.
inline std::string render_kv(const std::vector<std::pair<std::string, std::string>>& kv) {
    std::size_t w = 0;
    for (const auto& [k, _] : kv) w = std::max(w, k.size());
    std::string out;
    for (const auto& [k, v] : kv) {
        std::string line = fmt::format("{:<{}}  {}", k + ":", w + 1, v);
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + "\n";
    }
    return out;
}

// 35 -> "35s", 307 -> "5m07s", 3720 -> "1h02m", 273600 -> "3d04h"; <= 0 -> "-".
inline std::string format_duration(std::int64_t s) {
    if (s <= 0) return "-";
    if (s < 60) return fmt::format("{}s", s);
    if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
    if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
    return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

// "[#####---------------]  25% creating disk0" for progress 0-100; for -1 a spinner frame
// chosen by `tick` followed by the message. Never wider than `columns` (0 = no limit).
inline std::string progress_line(int progress, const std::string& message, unsigned tick, std::size_t columns = 0) {
    static constexpr int kBar = 20;
    static constexpr char kSpin[] = {'|', '/', '-', '\\'};
    std::string line;
    if (progress < 0) {
        line = fmt::format("{} {}", kSpin[tick % 4], message);
    } else {
        int p = std::min(progress, 100);
        int filled = p * kBar / 100;
        line = fmt::format("[{}{}] {:>3}% {}", std::string(filled, '#'), std::string(kBar - filled, '-'), p, message);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    if (columns > 1 && line.size() >= columns) line.resize(columns - 1);
    return line;
}

}  // namespace hv::cli
