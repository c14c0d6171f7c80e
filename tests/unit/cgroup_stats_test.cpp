// Container cgroup files (src/virt/cgroup_stats.cpp): /proc/PID/cgroup, flat-keyed files,
// limits, and the memory facts of a container read from fixture trees under
// tests/data/cgroup (v1 as libvirt 9.0 runs containers on a hybrid host, v2 unified).
#include <string>

#include <catch2/catch.hpp>

#include "../../src/virt/cgroup_stats.hpp"

using namespace hv::virt;

namespace {
const std::string kData = HV_TEST_DATA_DIR "/cgroup";
}

TEST_CASE("cgroup: /proc/PID/cgroup in v1, v2 and hybrid layouts", "[cgroup][metrics]") {
    auto m = parse_proc_cgroup("9:name=systemd:/\n4:memory:/machine/lxc-1-web.libvirt-lxc\n"
                               "2:cpu,cpuacct:/machine/x\n0::/machine.slice/web.scope\n");
    CHECK(m.unified == "/machine.slice/web.scope");
    CHECK(m.v1.at("memory") == "/machine/lxc-1-web.libvirt-lxc");
    CHECK(m.v1.at("cpu") == "/machine/x");
    CHECK(m.v1.at("cpuacct") == "/machine/x");
    CHECK(m.v1.at("name=systemd") == "/");
    // Lines that are not "N:controllers:path" are skipped; the first v2 line wins.
    m = parse_proc_cgroup("garbage\nx:memory:/a\n0::/first\n0::/second\n3:memory\n");
    CHECK(m.unified == "/first");
    CHECK(m.v1.empty());
    CHECK(parse_proc_cgroup("").unified.empty());
}

TEST_CASE("cgroup: flat-keyed files and limits", "[cgroup][metrics]") {
    auto s = parse_flat_keyed("anon 3145728\nfile 8388608\nbad -1\nword x\n\nnokey\n 5\nanon 7\nlast 9");
    CHECK(s.size() == 3);
    CHECK(s.at("anon") == 3145728);  // the first of a repeated key
    CHECK(s.at("file") == 8388608);
    CHECK(s.at("last") == 9);
    CHECK(parse_limit("100663296\n") == 100663296u);
    CHECK_FALSE(parse_limit("max\n"));
    CHECK_FALSE(parse_limit("9223372036854771712\n"));  // v1 unlimited
    CHECK_FALSE(parse_limit(""));
    CHECK_FALSE(parse_limit("12 34"));
    CHECK_FALSE(parse_limit("99999999999999999999999"));
}

TEST_CASE("cgroup: memory facts of a container on cgroup v1 (hierarchical limit, total_* counters)",
          "[cgroup][metrics]") {
    auto v = cgroup_memory_values(4242, kData + "/v1");
    CHECK(v.size() == 4);
    CHECK(v["memory.max"] == 67108864);
    CHECK(v["memory.anon"] == 167936);
    CHECK(v["memory.file"] == 8396800);
    CHECK(v["memory.swap"] == 0);
    // No limit (the kernel's "unlimited"), no total_swap: those keys are absent.
    v = cgroup_memory_values(4300, kData + "/v1");
    CHECK(v.count("memory.max") == 0);
    CHECK(v.count("memory.swap") == 0);
    CHECK(v["memory.anon"] == 8192);
    CHECK(v["memory.file"] == 4096);
}

TEST_CASE("cgroup: memory facts of a container on cgroup v2 (limit of an ancestor, hybrid host)",
          "[cgroup][metrics]") {
    // init in <scope>/init.scope, the limit on the scope.
    auto v = cgroup_memory_values(5151, kData + "/v2");
    CHECK(v.size() == 4);
    CHECK(v["memory.max"] == 100663296);
    CHECK(v["memory.anon"] == 3145728);
    CHECK(v["memory.file"] == 8388608);
    CHECK(v["memory.swap"] == 0);
    // Unified hierarchy at /sys/fs/cgroup/unified, memory.max "max".
    v = cgroup_memory_values(6161, kData + "/v2");
    CHECK(v.count("memory.max") == 0);
    CHECK(v["memory.anon"] == 1024);
    CHECK(v["memory.file"] == 2048);
    // The root cgroup (the host's own figures), a path with "..", no such process, no pid.
    CHECK(cgroup_memory_values(7171, kData + "/v2").empty());
    CHECK(cgroup_memory_values(8181, kData + "/v2").empty());
    CHECK(cgroup_memory_values(9999, kData + "/v2").empty());
    CHECK(cgroup_memory_values(0, kData + "/v2").empty());
}
