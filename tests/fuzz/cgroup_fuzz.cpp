// A container's cgroup files as hvd reads them for GET /v1/metrics (src/virt/cgroup_stats.cpp):
// /proc/PID/cgroup, a flat-keyed file (memory.stat) and a limit file (memory.max). The kernel
// writes them, but a container's processes shape their contents (cgroup names inside a
// delegated subtree): bad text is skipped, never a crash or an exception. The input is three
// parts separated by NUL bytes: /proc/PID/cgroup, memory.stat, memory.max.
#include "cgroup_stats.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto part = hvfuzz::nul_parts<3>(hvfuzz::text(data, size));
    auto m = hv::virt::parse_proc_cgroup(part[0]);
    if (m.unified.find('\n') != std::string::npos) hvfuzz::bug("proc cgroup", "a path spans lines");
    for (const auto& [ctrl, path] : m.v1) {
        if (ctrl.empty() || ctrl.find_first_of(",:\n") != std::string::npos) hvfuzz::bug("proc cgroup", ctrl);
        if (path.find('\n') != std::string::npos) hvfuzz::bug("proc cgroup", "a path spans lines");
    }
    for (const auto& [key, value] : hv::virt::parse_flat_keyed(part[1])) {
        (void)value;
        if (key.empty() || key.find_first_of(" \n") != std::string::npos) hvfuzz::bug("flat keyed", key);
    }
    if (auto limit = hv::virt::parse_limit(part[2]); limit && *limit >= (std::uint64_t{1} << 62))
        hvfuzz::bug("limit", "unlimited read as a limit");
    return 0;
}
