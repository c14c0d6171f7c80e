// VM lifecycle through hvctl against a real hvd + private libvirtd (TCG guests without an OS).
#include <algorithm>
#include <string>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {
std::string state_of(const Hvd& hvd, const std::string& name) { return hvd.show(name).value("state", ""); }
}  // namespace

TEST_CASE("create, start, stop, delete --purge", "[integration][lifecycle]") {
    Hvd hvd;
    auto name = hvd.vm("life");

    auto r = hvd.ctl({"vm", "create", name, "--cpus", "1", "--memory", "128M", "--disk", "size=1G"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    json vm = hvd.show(name);
    CHECK(vm["state"] == "stopped");
    REQUIRE(vm["disks"].size() == 1);
    std::string disk = vm["disks"][0]["path"];
    CHECK(disk.rfind(hvd.image_dir + "/", 0) == 0);  // in <state-dir>/images
    CHECK(file_exists(disk));
    CHECK(vm["disks"][0]["owned"] == true);
    CHECK(domstate(name) == "shut off");

    r = hvd.ctl({"vm", "start", name});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK(state_of(hvd, name) == "running");
    CHECK(domstate(name) == "running");

    // A running VM cannot be deleted (409 -> exit 5), and nothing is removed.
    r = hvd.ctl({"vm", "delete", name, "--purge"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    CHECK(domain_exists(name));
    CHECK(file_exists(disk));

    r = hvd.ctl({"vm", "stop", name});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK(state_of(hvd, name) == "stopped");
    CHECK(domstate(name) == "shut off");

    r = hvd.ctl({"vm", "delete", name, "--purge"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK_FALSE(file_exists(disk));
    CHECK_FALSE(domain_exists(name));
    r = hvd.ctl({"vm", "show", name});
    CHECK(r.exit_code == 4);
    CHECK(hvd.http("GET", "/v1/vms/" + name).status == 404);
}

TEST_CASE("delete without --purge keeps the disk image", "[integration][lifecycle]") {
    Hvd hvd;
    auto name = hvd.vm("keep");
    REQUIRE(hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M"}).exit_code == 0);
    std::string disk = hvd.show(name)["disks"][0]["path"];
    auto r = hvd.ctl({"vm", "delete", name});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK_FALSE(domain_exists(name));
    CHECK(file_exists(disk));
    // The same name can be created again; its disk name is taken, so hvd must say so or pick
    // another: either way nothing may overwrite the kept image.
    auto size_before = read_file(disk).size();
    hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M"});
    CHECK(read_file(disk).size() == size_before);
}

TEST_CASE("starting a running VM is a conflict: exit 5, HTTP 409", "[integration][lifecycle][errors]") {
    Hvd hvd;
    auto name = hvd.vm("conflict");
    REQUIRE(hvd.ctl({"vm", "create", name, "--memory", "64M"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "start", name}).exit_code == 0);

    auto r = hvd.ctl({"vm", "start", name});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    CHECK_THAT(r.err, Catch::Contains(name));

    auto h = hvd.http("POST", "/v1/vms/" + name + "/start");
    INFO("body: " << h.body);
    CHECK(h.status == 409);
    CHECK(h.json()["error"]["code"] == "conflict");
    CHECK(domstate(name) == "running");

    REQUIRE(hvd.ctl({"vm", "stop", name}).exit_code == 0);
    // Stopping a stopped VM is a conflict as well.
    r = hvd.ctl({"vm", "stop", name});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    CHECK(hvd.http("POST", "/v1/vms/" + name + "/stop").status == 409);
    // Unknown VM: 404 / exit 4.
    CHECK(hvd.ctl({"vm", "start", "it-no-such-vm"}).exit_code == 4);
    auto nf = hvd.http("POST", "/v1/vms/it-no-such-vm/start");
    CHECK(nf.status == 404);
    CHECK(nf.json()["error"]["code"] == "not_found");
    REQUIRE(hvd.ctl({"vm", "delete", name}).exit_code == 0);
}

TEST_CASE("vm set: conflict while running, applied while stopped", "[integration][lifecycle][set]") {
    Hvd hvd;
    auto name = hvd.vm("set");
    REQUIRE(hvd.ctl({"vm", "create", name, "--cpus", "1", "--memory", "128M"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "start", name}).exit_code == 0);

    auto r = hvd.ctl({"vm", "set", name, "--cpus", "2"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    r = hvd.ctl({"vm", "set", name, "--memory", "256M"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    auto h = hvd.http("PATCH", "/v1/vms/" + name, R"({"cpus":2})");
    CHECK(h.status == 409);
    CHECK(hvd.show(name)["cpus"] == 1);
    // Fields that are not hardware may change while it runs.
    r = hvd.ctl({"vm", "set", name, "--description", "changed while running"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(hvd.show(name)["description"] == "changed while running");

    REQUIRE(hvd.ctl({"vm", "stop", name}).exit_code == 0);
    r = hvd.ctl({"vm", "set", name, "--cpus", "2", "--memory", "256M"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    json vm = hvd.show(name);
    CHECK(vm["cpus"] == 2);
    CHECK(vm["memory"] == 256ULL << 20);
    CHECK(vm["description"] == "changed while running");
    auto xml = virsh({"dumpxml", name, "--inactive"});
    REQUIRE(xml.exit_code == 0);
    CHECK_THAT(xml.out, Catch::Contains(">2</vcpu>"));
    CHECK_THAT(xml.out, Catch::Contains("<memory unit='KiB'>262144</memory>"));
    // Invalid values: exit 3 (client-side) and 400 (server-side).
    CHECK(hvd.ctl({"vm", "set", name, "--cpus", "0"}).exit_code == 3);
    auto bad = hvd.http("PATCH", "/v1/vms/" + name, R"({"cpus":0})");
    CHECK(bad.status == 400);
    auto unk = hvd.http("PATCH", "/v1/vms/" + name, R"({"cpus":2,"speed":3})");
    CHECK(unk.status == 400);
    CHECK_THAT(unk.body, Catch::Contains("speed"));

    // The new size is used by the next start.
    REQUIRE(hvd.ctl({"vm", "start", name}).exit_code == 0);
    auto live = virsh({"dumpxml", name});
    CHECK_THAT(live.out, Catch::Contains(">2</vcpu>"));
    REQUIRE(hvd.ctl({"vm", "stop", name}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "delete", name}).exit_code == 0);
}

TEST_CASE("suspend, resume, reset, reboot", "[integration][lifecycle][power]") {
    Hvd hvd;
    auto name = hvd.vm("power");
    REQUIRE(hvd.ctl({"vm", "create", name, "--memory", "64M"}).exit_code == 0);

    // Power actions on a stopped VM are conflicts.
    for (const char* a : {"suspend", "resume", "reboot", "reset"}) {
        auto r = hvd.ctl({"vm", a, name});
        INFO("vm " << a << " on a stopped VM: " << r.describe());
        CHECK(r.exit_code == 5);
    }
    REQUIRE(hvd.ctl({"vm", "start", name}).exit_code == 0);

    auto r = hvd.ctl({"vm", "suspend", name});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK(state_of(hvd, name) == "paused");
    CHECK(domstate(name) == "paused");
    CHECK(hvd.ctl({"vm", "suspend", name}).exit_code == 5);

    r = hvd.ctl({"vm", "resume", name});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK(state_of(hvd, name) == "running");
    CHECK(domstate(name) == "running");
    CHECK(hvd.ctl({"vm", "resume", name}).exit_code == 5);

    r = hvd.ctl({"vm", "reset", name});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(state_of(hvd, name) == "running");
    CHECK(domstate(name) == "running");

    r = hvd.ctl({"vm", "reboot", name});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(state_of(hvd, name) == "running");
    CHECK(domstate(name) == "running");

    // The JSON form of an action prints the VM.
    auto j = hvd.ctl_json({"vm", "suspend", name});
    CHECK(j["state"] == "paused");
    REQUIRE(hvd.ctl({"vm", "stop", name}).exit_code == 0);  // a paused VM can be powered off
    CHECK(domstate(name) == "shut off");
    REQUIRE(hvd.ctl({"vm", "delete", name}).exit_code == 0);
}

TEST_CASE("vm list / show JSON has the documented fields", "[integration][lifecycle][json]") {
    Hvd hvd;
    auto a = hvd.vm("jsona");
    auto b = hvd.vm("jsonb");
    REQUIRE(hvd.ctl({"vm", "create", a, "--cpus", "2", "--memory", "128M", "--disk", "size=64M", "--net",
                     "network=default"})
                .exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "create", b, "--memory", "64M"}).exit_code == 0);
    // A NIC on the NAT network of the private libvirtd (inside its own network namespace).
    auto r = hvd.ctl({"vm", "start", a});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);

    auto check_vm = [](const json& v) {
        INFO(v.dump(2));
        REQUIRE(v.is_object());
        CHECK(v["name"].is_string());
        CHECK(v["state"].is_string());
        CHECK(v["cpus"].is_number_integer());
        CHECK(v["memory"].is_number_unsigned());
        CHECK(v["uuid"].is_string());
        CHECK(v["uptime"].is_number_integer());
        CHECK(v["disks"].is_array());
        CHECK(v["nics"].is_array());
    };
    json list = hvd.ctl_json({"vm", "list"});
    REQUIRE(list.is_array());
    json va, vb;
    for (const auto& v : list) {
        check_vm(v);
        if (v["name"] == a) va = v;
        if (v["name"] == b) vb = v;
    }
    REQUIRE(va.is_object());
    REQUIRE(vb.is_object());
    CHECK(va["state"] == "running");
    CHECK(va["cpus"] == 2);
    CHECK(va["memory"] == 128ULL << 20);
    CHECK(va["uuid"].get<std::string>().size() == 36);
    REQUIRE(va["disks"].size() == 1);
    CHECK(va["disks"][0]["size"] == 64ULL << 20);
    REQUIRE(va["nics"].size() == 1);
    CHECK(va["nics"][0]["network"] == "default");
    CHECK(va["nics"][0]["mac"].get<std::string>().size() == 17);
    CHECK(vb["state"] == "stopped");
    CHECK(vb["uptime"] == 0);
    CHECK(vb["disks"].empty());

    json sa = hvd.show(a);
    check_vm(sa);
    CHECK(sa["name"] == a);
    CHECK(sa["uuid"] == va["uuid"]);
    // libvirt agrees on the identity.
    auto uuid = virsh({"domuuid", a});
    CHECK_THAT(uuid.out, Catch::Contains(sa["uuid"].get<std::string>()));

    // The table lists both by name.
    auto t = hvd.ctl({"vm", "list"});
    REQUIRE(t.exit_code == 0);
    CHECK_THAT(t.out, Catch::Contains(a) && Catch::Contains(b));

    // GET /v1/host reports the VMs and the forced accelerator.
    auto host = hvd.http("GET", "/v1/host");
    REQUIRE(host.status == 200);
    CHECK(host.json()["accel"] == "tcg");
    CHECK(host.json()["libvirt_connected"] == true);
    CHECK(host.json()["vms_total"].get<int>() >= 2);

    REQUIRE(hvd.ctl({"vm", "stop", a}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "delete", a, "--purge"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "delete", b, "--purge"}).exit_code == 0);
}

TEST_CASE("tasks: create and delete leave succeeded tasks", "[integration][tasks]") {
    Hvd hvd;
    auto name = hvd.vm("task");
    // --async prints the task instead of waiting for it.
    auto r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M", "--async", "-o", "json"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    json t = json::parse(r.out, nullptr, false);
    REQUIRE(t.is_object());
    std::string id = t.value("id", "");
    REQUIRE_FALSE(id.empty());
    CHECK(t["kind"] == "vm.create");
    CHECK(t["target"] == "vm/" + name);

    auto w = hvd.ctl({"task", "wait", id});
    INFO(w.describe());
    CHECK(w.exit_code == 0);
    json shown = hvd.ctl_json({"task", "show", id});
    CHECK(shown["state"] == "succeeded");
    CHECK(shown["result"]["name"] == name);
    CHECK(shown["finished_at"].get<std::int64_t>() >= shown["created_at"].get<std::int64_t>());

    json list = hvd.ctl_json({"task", "list"});
    REQUIRE(list.is_array());
    CHECK(std::any_of(list.begin(), list.end(), [&](const json& x) { return x["id"] == id; }));
    // Cancelling a finished task is a conflict; an unknown task is not found.
    CHECK(hvd.ctl({"task", "cancel", id}).exit_code == 5);
    CHECK(hvd.ctl({"task", "show", "t-999999"}).exit_code == 4);

    REQUIRE(hvd.ctl({"vm", "delete", name, "--purge"}).exit_code == 0);
}

TEST_CASE("CPU models: the host's published CPU, a named model that boots, the checks", "[integration][lifecycle][cpu]") {
    Hvd hvd;
    // This host's CPU as its hypervisor offers it (what a cluster's baseline is made of).
    auto hosts = hvd.ctl_json({"host", "list"});
    INFO(hosts.dump());
    REQUIRE(hosts.is_array());
    REQUIRE(hosts.size() == 1);
    const std::string model = hosts[0].value("cpu_model", "");
    REQUIRE(!model.empty());
    std::string full = model;  // hvctl's MODEL,+feature,-feature form of the host's CPU
    for (const auto& f : hosts[0]["cpu_features"]) full += "," + f.get<std::string>();

    // "cluster" outside a cluster: 409 (exit 5), nothing made.
    auto lone = hvd.vm("cpulone");
    auto r = hvd.ctl({"vm", "create", lone, "--memory", "64M", "--cpu", "cluster"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    CHECK_THAT(r.out + r.err, Catch::Contains("no cluster"));
    CHECK_FALSE(domain_exists(lone));
    // Bad forms are refused by hvctl and by hvd (400) alike.
    CHECK(hvd.ctl({"vm", "create", lone, "--memory", "64M", "--cpu", "EPYC,aes"}).exit_code == 3);
    auto h = hvd.http("POST", "/v1/vms",
                      json{{"name", lone}, {"memory", "64M"}, {"cpu", {{"mode", "custom"}, {"model", "x y"}}}}.dump());
    CHECK(h.status == 400);
    CHECK_FALSE(domain_exists(lone));

    // A model with a feature this host's hypervisor lacks (the tests force TCG, which has no
    // AVX-512): refused at create, 409 naming it, nothing made.
    r = hvd.ctl({"vm", "create", lone, "--memory", "64M", "--cpu", model + ",+avx512f"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    CHECK_THAT(r.out + r.err, Catch::Contains("avx512f"));
    CHECK_FALSE(domain_exists(lone));

    // The host's CPU by name: defined with <cpu mode='custom'>, and it runs.
    auto name = hvd.vm("cpumodel");
    r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--cpu", full});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto vm = hvd.show(name);
    CHECK(vm["cpu"]["mode"] == "custom");
    CHECK(vm["cpu"]["model"] == model);
    auto xml = virsh({"dumpxml", name});
    CHECK_THAT(xml.out, Catch::Contains("<model fallback='forbid'>" + model + "</model>"));
    r = hvd.ctl({"vm", "start", name});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(domstate(name) == "running");
    auto shown = hvd.ctl({"vm", "show", name});
    CHECK_THAT(shown.out, Catch::Contains("cpu") && Catch::Contains(model));

    // The destination's side of the migration pre-flight: this host runs its own model, not
    // one that needs a feature no TCG (nor this KVM host, when it lacks it) offers.
    auto host_cpu = json{{"mode", "custom"}, {"model", model}, {"features", hosts[0]["cpu_features"]}};
    h = hvd.http("POST", "/v1/host/cpu-check", json{{"cpu", host_cpu}}.dump());
    INFO(h.body);
    CHECK(h.status == 200);
    CHECK(json::parse(h.body).value("compatible", false));
    h = hvd.http("POST", "/v1/host/cpu-check",
                 json{{"cpu", {{"mode", "custom"}, {"model", model}, {"features", {"+avx512f"}}}}}.dump());
    INFO(h.body);
    CHECK(h.status == 200);
    CHECK_FALSE(json::parse(h.body).value("compatible", true));
    CHECK_THAT(json::parse(h.body).value("reason", ""), Catch::Contains("avx512f"));
    h = hvd.http("POST", "/v1/host/cpu-check", json{{"cpu", {{"mode", "cluster"}}}}.dump());
    CHECK(h.status == 400);
    h = hvd.http("POST", "/v1/host/cpu-check", "{\"cpu\": 5}");
    CHECK(h.status == 400);

    // vm set --cpu: only while stopped (409, nothing changed), refused models refused (409,
    // 400), "cluster" outside a cluster 409; a new model is in the definition and boots; default
    // takes the <cpu> out again (TCG: QEMU's own model). The rest of the definition stays.
    r = hvd.ctl({"vm", "set", name, "--cpu", "host-model"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    CHECK_THAT(r.err, Catch::Contains("stopped"));
    CHECK(hvd.show(name)["cpu"]["model"] == model);
    REQUIRE(hvd.ctl({"vm", "stop", name}).exit_code == 0);
    const auto before = virsh({"dumpxml", "--inactive", name}).out;
    r = hvd.ctl({"vm", "set", name, "--cpu", model + ",+avx512f"});
    CHECK(r.exit_code == 5);
    CHECK_THAT(r.err, Catch::Contains("avx512f"));
    CHECK(hvd.ctl({"vm", "set", name, "--cpu", "cluster"}).exit_code == 5);
    CHECK(hvd.ctl({"vm", "set", name, "--cpu", "EPYC,aes"}).exit_code == 3);
    h = hvd.http("PATCH", "/v1/vms/" + name, json{{"cpu", {{"mode", "custom"}, {"model", "x y"}}}}.dump());
    CHECK(h.status == 400);
    CHECK(virsh({"dumpxml", "--inactive", name}).out == before);
    // The host's CPU less its first required feature (not required then; the model decides).
    std::string fewer = model;
    std::size_t kept = 0;
    std::string dropped;
    for (const auto& f : hosts[0]["cpu_features"]) {
        auto fs = f.get<std::string>();
        if (dropped.empty() && fs[0] == '+') {
            dropped = fs.substr(1);
            continue;
        }
        fewer += "," + fs;
        ++kept;
    }
    REQUIRE(!dropped.empty());
    r = hvd.ctl({"vm", "set", name, "--cpu", fewer, "-o", "json"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto set = json::parse(r.out);
    CHECK(set["cpu"]["model"] == model);
    CHECK(set["cpu"]["features"].size() == kept);
    CHECK(set["memory"] == vm["memory"]);
    CHECK(hvd.show(name)["cpu"]["features"].size() == kept);
    xml = virsh({"dumpxml", "--inactive", name});
    CHECK_THAT(xml.out, Catch::Contains("<model fallback='forbid'>" + model + "</model>"));
    CHECK(xml.out.find("name='" + dropped + "'/>") == std::string::npos);
    REQUIRE(hvd.ctl({"vm", "start", name}).exit_code == 0);
    CHECK(domstate(name) == "running");
    REQUIRE(hvd.ctl({"vm", "stop", name}).exit_code == 0);
    r = hvd.ctl({"vm", "set", name, "--cpu", "default", "-o", "json"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK_FALSE(json::parse(r.out).contains("cpu"));
    xml = virsh({"dumpxml", "--inactive", name});
    // (libvirt may name QEMU's default model in the definition itself: not the one set before.)
    CHECK(xml.out.find("<model fallback='forbid'>" + model + "</model>") == std::string::npos);
    CHECK_THAT(xml.out, Catch::Contains("<name>" + name + "</name>"));
    REQUIRE(hvd.ctl({"vm", "start", name}).exit_code == 0);
    CHECK(domstate(name) == "running");
    hvd.ctl({"vm", "stop", name});
    hvd.ctl({"vm", "delete", name, "--purge"});
}
