// Invalid input is rejected with the right code and leaves nothing behind; a create that fails
// late undoes what it made.
#include <algorithm>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {
// Names of files in the image dir that belong to `vm`.
std::vector<std::string> images_of(const Hvd& hvd, const std::string& vm) {
    std::vector<std::string> out;
    for (const auto& f : list_dir(hvd.image_dir))
        if (f.find(vm) != std::string::npos) out.push_back(f);
    return out;
}
}  // namespace

TEST_CASE("invalid input from hvctl: exit 3, nothing created", "[integration][input]") {
    Hvd hvd;
    auto name = hvd.vm("inval");

    auto r = hvd.ctl({"vm", "create", "bad/name", "--memory", "64M"});
    INFO(r.describe());
    CHECK(r.exit_code == 3);
    CHECK_FALSE(r.err.empty());

    for (auto bad : std::vector<std::vector<std::string>>{
             {"--cpus", "0"},
             {"--cpus", "-1"},
             {"--cpus", "513"},
             {"--memory", "4X"},
             {"--memory", "1M"},
             {"--disk", "size=1G,speed=fast"},
             {"--disk", "size=0x10"},
             {"--net", "network=default,bridge=br0"},
             {"--net", "network=default,mac=01:00:5e:00:00:01"},
         }) {
        std::vector<std::string> args{"vm", "create", name};
        args.insert(args.end(), bad.begin(), bad.end());
        r = hvd.ctl(args);
        INFO("hvctl vm create " << name << " " << bad[0] << " " << bad[1] << "\n" << r.describe());
        CHECK(r.exit_code == 3);
        CHECK_FALSE(r.err.empty());
    }
    // Bad flags are usage errors (2), not input errors.
    CHECK(hvd.ctl({"vm", "create", name, "--no-such-flag"}).exit_code == 2);
    CHECK(hvd.ctl({"vm", "create", name, "--cpus", "two"}).exit_code == 2);

    CHECK_FALSE(domain_exists(name));
    CHECK_FALSE(domain_exists("bad/name"));
    CHECK(images_of(hvd, name).empty());
}

TEST_CASE("invalid input over HTTP: 400 naming the field, nothing created", "[integration][input]") {
    Hvd hvd;
    auto name = hvd.vm("raw");

    struct Case {
        std::string body;
        std::string mentions;
    };
    std::vector<Case> cases = {
        {R"({"name":")" + name + R"(","memory":"64M","colour":"blue"})", "colour"},
        {R"({"name":")" + name + R"(","memory":"64M","disks":[{"size":"16M","speed":1}]})", "speed"},
        {R"({"name":"bad/name","memory":"64M"})", "name"},
        {R"({"name":"..","memory":"64M"})", "name"},
        {R"({"name":"-lead","memory":"64M"})", "name"},
        {R"({"name":")" + std::string(64, 'a') + R"(","memory":"64M"})", "name"},
        {R"({"name":")" + name + R"(","cpus":0,"memory":"64M"})", "cpus"},
        {R"({"name":")" + name + R"(","cpus":-3,"memory":"64M"})", "cpus"},
        {R"({"name":")" + name + R"(","cpus":"2","memory":"64M"})", "cpus"},
        {R"({"name":")" + name + R"(","memory":"4X"})", "memory"},
        {R"({"name":")" + name + R"(","memory":"64M","disks":[{"size":"16M"}],"nics":[{"network":"default","bridge":"br0"}]})",
         "nics[0]"},
        {R"({"memory":"64M"})", "name"},
        {R"({"name":)", ""},  // malformed JSON
        {R"([1,2])", ""},
    };
    for (const auto& c : cases) {
        auto h = hvd.http("POST", "/v1/vms", c.body);
        INFO("POST /v1/vms " << c.body << "\n-> " << h.status << " " << h.body);
        CHECK(h.status == 400);
        json j = h.json();
        CHECK(j["error"]["code"] == "invalid_input");
        if (!c.mentions.empty()) CHECK_THAT(j["error"]["message"].get<std::string>(), Catch::Contains(c.mentions));
    }
    // A 400 must come back synchronously: no task may have been started for it.
    json tasks = hvd.ctl_json({"task", "list"});
    CHECK(tasks.empty());

    CHECK_FALSE(domain_exists(name));
    CHECK(virsh({"list", "--all", "--name"}).out.find(name) == std::string::npos);
    CHECK(images_of(hvd, name).empty());
    CHECK(list_dir(hvd.image_dir).empty());

    // Routing errors.
    auto nf = hvd.http("GET", "/v1/vms/it-no-such-vm");
    CHECK(nf.status == 404);
    CHECK(nf.json()["error"]["code"] == "not_found");
    CHECK(hvd.http("GET", "/v1/nothing-here").status == 404);
    auto m = hvd.http("PUT", "/v1/vms");
    INFO("PUT /v1/vms -> " << m.status << " " << m.body);
    CHECK(m.status == 405);  // the path exists (GET, POST), the method does not
    CHECK(m.json()["error"]["code"] == "invalid_input");
}

TEST_CASE("a create that fails after making a disk leaves no domain and no disk", "[integration][input][cleanup]") {
    Hvd hvd;

    SECTION("second disk's image name is taken") {
        auto name = hvd.vm("late1");
        // disk1's volume name is taken by a file hvd did not make: refused before anything is made.
        std::string squatter = hvd.image_dir + "/" + name + "-disk1.qcow2";
        std::ofstream(squatter) << "not hvd's\n";
        REQUIRE(file_exists(squatter));
        auto r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M", "--disk", "size=16M"});
        INFO(r.describe());
        CHECK(r.exit_code == 5);  // conflict: the volume name is taken
        CHECK_FALSE(r.err.empty());
        CHECK_FALSE(domain_exists(name));
        CHECK(hvd.ctl({"vm", "show", name}).exit_code == 4);
        auto left = images_of(hvd, name);
        INFO("images left: " << json(left).dump());
        CHECK(left == std::vector<std::string>{name + "-disk1.qcow2"});  // only the squatter
        CHECK(read_file(squatter) == "not hvd's\n");
    }

    SECTION("libvirt rejects the domain after the disk was made") {
        auto name = hvd.vm("late2");
        // A machine type that passes hv's syntax check but that QEMU does not have:
        // libvirt refuses the definition after the disk image exists.
        auto r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M", "--machine",
                          "pc-q35-0.1-nosuch"});
        INFO(r.describe());
        CHECK(r.exit_code == 3);  // invalid input: libvirt's VIR_ERR_CONFIG_UNSUPPORTED
        CHECK_FALSE(domain_exists(name));
        CHECK(hvd.ctl({"vm", "show", name}).exit_code == 4);
        CHECK(images_of(hvd, name).empty());
    }

    SECTION("network that does not exist") {
        auto name = hvd.vm("late3");
        auto r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M", "--net",
                          "network=it-no-such-net"});
        INFO(r.describe());
        CHECK(r.exit_code == 3);  // invalid input: "network '...' does not exist in libvirt"
        CHECK_THAT(r.err, Catch::Contains("it-no-such-net"));
        CHECK_FALSE(domain_exists(name));
        CHECK(images_of(hvd, name).empty());
    }

    SECTION("kernel file that does not exist") {
        auto name = hvd.vm("late4");
        auto r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M", "--kernel",
                          "/nonexistent/vmlinuz"});
        INFO(r.describe());
        CHECK(r.exit_code == 3);  // invalid input: "kernel ... does not exist or is not a regular file"
        CHECK_THAT(r.err, Catch::Contains("/nonexistent/vmlinuz"));
        CHECK_FALSE(domain_exists(name));
        CHECK(images_of(hvd, name).empty());
    }

    // After all that the same names work.
    auto ok = hvd.vm("late-ok");
    auto r = hvd.ctl({"vm", "create", ok, "--memory", "64M", "--disk", "size=16M"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(hvd.ctl({"vm", "delete", ok, "--purge"}).exit_code == 0);
}

TEST_CASE("creating an existing VM is a conflict and keeps the original", "[integration][input]") {
    Hvd hvd;
    auto name = hvd.vm("dup");
    REQUIRE(hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M"}).exit_code == 0);
    std::string uuid = hvd.show(name)["uuid"];
    auto r = hvd.ctl({"vm", "create", name, "--memory", "128M", "--disk", "size=32M"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    json vm = hvd.show(name);
    CHECK(vm["uuid"] == uuid);
    CHECK(vm["memory"] == 64ULL << 20);
    CHECK(images_of(hvd, name).size() == 1);
    REQUIRE(hvd.ctl({"vm", "delete", name, "--purge"}).exit_code == 0);
    CHECK(images_of(hvd, name).empty());
}
