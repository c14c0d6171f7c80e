// A container's cgroup files as hvd reads them for GET /v1/metrics (docs/observability.md):
// what libvirt's LXC driver does not report (the memory limit in force, anonymous memory, page
// cache, swap). Pure parsers of outside text (fuzzed: tests/fuzz/cgroup_fuzz.cpp): lines they
// cannot read are skipped, they never throw. Both cgroup layouts: v2 (one unified hierarchy,
// Debian 12's default) and v1 (a hierarchy per controller, where libvirt runs containers on
// hybrid hosts).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace hv::virt {

// /proc/PID/cgroup: "0::/machine.slice/x" (v2) and "4:memory:/machine/x" (v1; "2:cpu,cpuacct:/y"
// names two controllers, "1:name=systemd:/z" a named hierarchy, kept as "name=systemd").
struct CgroupMembership {
    std::string unified;                    // the v2 path; empty when the process has none
    std::map<std::string, std::string> v1;  // controller -> path
};
CgroupMembership parse_proc_cgroup(std::string_view text);

// Flat-keyed files ("key value" lines: memory.stat, cpu.stat). Values that are not unsigned
// decimal integers are dropped; a key given twice keeps its first value.
std::map<std::string, std::uint64_t> parse_flat_keyed(std::string_view text);

// A limit file: v2 "max" and v1's "unlimited" (PAGE_COUNTER_MAX pages, above 2^62) are nullopt,
// as is anything that is not one number.
std::optional<std::uint64_t> parse_limit(std::string_view text);

// The memory facts of the cgroup of `pid` in bytes: "memory.max" (the limit; absent when
// unlimited), "memory.anon" (v2 anon, v1 total_rss), "memory.file" (v2 file, v1 total_cache),
// "memory.swap" (v2 memory.swap.current, v1 total_swap). Files are read under `root` ("" on a
// host: /proc/PID/cgroup and /sys/fs/cgroup; tests pass a fixture tree). v1 when the process
// is in a memory hierarchy, else v2 (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid
// host). Missing files leave their keys out; empty when nothing could be read.
std::map<std::string, std::uint64_t> cgroup_memory_values(std::int64_t pid, const std::string& root = "");

}  // namespace hv::virt
