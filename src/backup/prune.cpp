#include "prune.hpp"

#include <algorithm>
#include <ctime>
#include <functional>
#include <numeric>
#include <set>
#include <string>

namespace hv::backup {

namespace {
std::string period(std::int64_t t, const char* fmt) {
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    ::gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, fmt, &tm);
    return buf;
}
}  // namespace

std::vector<bool> prune_keep(const std::vector<std::int64_t>& times, const KeepPolicy& policy) {
    enum Mark { none, keep, drop };
    std::vector<Mark> mark(times.size(), none);
    std::vector<std::size_t> order(times.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return times[a] > times[b]; });

    auto rule = [&](int n, const std::function<std::string(std::int64_t)>& key) {
        if (n <= 0) return;
        std::set<std::string> covered, chosen;
        for (auto i : order)
            if (mark[i] == keep) covered.insert(key(times[i]));
        for (auto i : order) {
            if (mark[i] != none) continue;
            auto k = key(times[i]);
            if (covered.count(k)) continue;
            if (!chosen.count(k)) {
                if (static_cast<int>(chosen.size()) >= n) break;
                chosen.insert(k);
                mark[i] = keep;
            } else {
                mark[i] = drop;
            }
        }
    };
    {  // keep-last: the N newest
        int n = policy.last;
        for (auto i : order) {
            if (n-- <= 0) break;
            mark[i] = keep;
        }
    }
    rule(policy.daily, [](std::int64_t t) { return period(t, "%Y-%m-%d"); });
    rule(policy.weekly, [](std::int64_t t) { return period(t, "%G-W%V"); });
    rule(policy.monthly, [](std::int64_t t) { return period(t, "%Y-%m"); });
    std::vector<bool> out(times.size());
    for (std::size_t i = 0; i < times.size(); ++i) out[i] = mark[i] == keep;
    return out;
}

}  // namespace hv::backup
