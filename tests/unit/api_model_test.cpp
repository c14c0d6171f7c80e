// The wire model (include/hv/api/*): JSON round trips, strict input parsing, validation,
// command-line disk/nic forms, the error-code table and the RAII reverter.
#include <functional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "hv/api/host.hpp"
#include "hv/api/storage.hpp"
#include "hv/api/task.hpp"
#include "hv/api/vm.hpp"
#include "hv/error.hpp"
#include "hv/util/reverter.hpp"

using hv::Errc;
using hv::Error;
using nlohmann::json;
namespace api = hv::api;

namespace {

// Runs `f`, expects hv::Error(invalid_input) and returns its message.
template <typename F>
std::string invalid_message(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        CHECK(e.code() == Errc::invalid_input);
        return e.what();
    } catch (const std::exception& e) {
        FAIL("expected hv::Error(invalid_input), got std::exception: " << e.what());
    }
    FAIL("expected hv::Error(invalid_input), nothing was thrown");
    return {};
}

api::VmSpec full_spec() {
    api::VmSpec s;
    s.name = "web01";
    s.cpus = 4;
    s.memory = 2 * api::GiB;
    api::DiskSpec d0;
    d0.name = "disk0";
    d0.size = 20 * api::GiB;
    d0.path = "/var/lib/hv/images/web01-disk0.qcow2";
    d0.owned = true;
    api::DiskSpec d1;
    d1.name = "disk1";
    d1.size = 0;
    d1.format = "raw";
    d1.bus = "sata";
    d1.path = "/srv/images/data.raw";
    s.disks = {d0, d1};
    api::NicSpec n0;
    n0.network = "default";
    api::NicSpec n1;
    n1.bridge = "vmbr0";
    n1.model = "e1000";
    n1.mac = "52:54:00:12:34:56";
    s.nics = {n0, n1};
    s.cdrom = "/var/lib/hv/iso/debian-12.iso";
    s.firmware = api::Firmware::uefi;
    s.machine = "pc-q35-7.2";
    s.kernel = "/boot/vmlinuz";
    s.initrd = "/boot/initrd.img";
    s.cmdline = "console=ttyS0 quiet";
    s.description = "web server \"one\" <&>";
    s.tags = {"prod", "web"};
    return s;
}

api::VmSpec minimal_spec(const std::string& name = "vm1") {
    api::VmSpec s;
    s.name = name;
    return s;
}

json minimal_json() { return json{{"name", "vm1"}}; }

}  // namespace

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

TEST_CASE("VmSpec JSON round trip keeps every field", "[api][json]") {
    api::VmSpec s = full_spec();
    json j = s;
    api::VmSpec back = api::vm_spec_from_json(j);
    CHECK(json(back) == j);
    CHECK(back.name == "web01");
    CHECK(back.cpus == 4);
    CHECK(back.memory == 2 * api::GiB);
    REQUIRE(back.disks.size() == 2);
    CHECK(back.disks[0].owned);
    CHECK(back.disks[0].size == 20 * api::GiB);
    CHECK(back.disks[1].format == "raw");
    CHECK(back.disks[1].bus == "sata");
    REQUIRE(back.nics.size() == 2);
    CHECK(back.nics[0].network == "default");
    CHECK(back.nics[1].bridge == "vmbr0");
    CHECK(back.nics[1].mac == "52:54:00:12:34:56");
    CHECK(back.firmware == api::Firmware::uefi);
    CHECK(back.description == "web server \"one\" <&>");
    CHECK(back.tags == std::vector<std::string>{"prod", "web"});
    CHECK_NOTHROW(api::validate(back));
}

TEST_CASE("VmSpec JSON field names and size forms", "[api][json]") {
    json j = full_spec();
    for (const char* k : {"name", "cpus", "memory", "disks", "nics", "cdrom", "firmware", "machine", "kernel", "initrd",
                          "cmdline", "description", "tags"}) {
        INFO("field " << k);
        CHECK(j.contains(k));
    }
    CHECK(j["memory"].is_number_unsigned());  // sizes go out as integer bytes
    CHECK(j["firmware"] == "uefi");
    // ...and come in as bytes or strings.
    auto s = api::vm_spec_from_json(json{{"name", "a"}, {"memory", "1G"}, {"disks", json::array({{{"size", "4G"}}})}});
    CHECK(s.memory == api::GiB);
    REQUIRE(s.disks.size() == 1);
    CHECK(s.disks[0].size == 4 * api::GiB);
    // Defaults of a minimal spec.
    auto m = api::vm_spec_from_json(minimal_json());
    CHECK(m.cpus == 1);
    CHECK(m.memory == 512 * api::MiB);
    CHECK(m.machine == "q35");
    CHECK(m.firmware == api::Firmware::bios);
    CHECK(m.disks.empty());
}

TEST_CASE("VmSpec template flag: written by hvd when set, refused in a request", "[api][json]") {
    api::VmSpec s;
    s.name = "base";
    CHECK_FALSE(json(s).contains("template"));  // golden metadata of ordinary VMs unchanged
    s.is_template = true;
    json j = s;
    CHECK(j.at("template") == true);
    CHECK(api::vm_spec_from_json(j, api::JsonOrigin::hvd).is_template);
    CHECK_THROWS_AS(api::vm_spec_from_json(j), hv::Error);  // a create cannot make a template
    api::VolumeInfo v;
    v.name = "c1";
    CHECK_FALSE(json(v).contains("base"));
    v.base = "b1";
    CHECK(api::volume_info_from_json(json(v)).base == "b1");
}

TEST_CASE("VmPatch JSON round trip carries only present fields", "[api][json]") {
    api::VmPatch p;
    p.cpus = 2;
    p.memory = api::GiB;
    json j = p;
    CHECK(j == json{{"cpus", 2}, {"memory", api::GiB}});
    api::VmPatch back = api::vm_patch_from_json(j);
    CHECK(back.cpus == 2);
    CHECK(back.memory == api::GiB);
    CHECK_FALSE(back.description);
    CHECK_FALSE(back.tags);
    auto m = api::vm_patch_from_json(json{{"memory", "2G"}, {"tags", {"a"}}});
    CHECK_FALSE(m.cpus);
    CHECK(m.memory == 2 * api::GiB);
    CHECK(m.tags == std::vector<std::string>{"a"});
    CHECK_THAT(invalid_message([] { api::vm_patch_from_json(json{{"name", "x"}}); }), Catch::Contains("name"));
    CHECK_THAT(invalid_message([] { api::validate(api::VmPatch{}); }), Catch::Contains("nothing"));
    api::VmPatch zero;
    zero.cpus = 0;
    CHECK_THAT(invalid_message([&] { api::validate(zero); }), Catch::Contains("cpus"));
}

TEST_CASE("VmInfo JSON round trip", "[api][json]") {
    api::VmInfo v;
    v.spec = full_spec();
    v.state = api::VmState::paused;
    v.reason = "user";
    v.uuid = "3f1e2b1c-0000-4000-8000-000000000001";
    v.managed = false;
    v.started_at = 1764240000;
    v.uptime = 42;
    v.vnc = "127.0.0.1:5900";
    json j = v;
    for (const char* k : {"name", "state", "cpus", "memory", "uuid", "uptime", "disks", "nics", "reason", "managed",
                          "started_at", "vnc"}) {
        INFO("field " << k);
        CHECK(j.contains(k));
    }
    CHECK(j["state"] == "paused");
    api::VmInfo back = api::vm_info_from_json(j);
    CHECK(json(back) == j);
    CHECK(back.state == api::VmState::paused);
    CHECK_FALSE(back.managed);
    CHECK(back.uptime == 42);
    // Output objects may grow: clients ignore fields they do not know.
    j["added_in_v2"] = 1;
    CHECK_NOTHROW(api::vm_info_from_json(j));
}

TEST_CASE("VmState and Firmware names", "[api][json]") {
    for (auto s : {api::VmState::stopped, api::VmState::running, api::VmState::paused, api::VmState::suspended,
                   api::VmState::shutting_down, api::VmState::crashed, api::VmState::unknown}) {
        CHECK(api::vm_state_from_string(api::to_string(s)) == s);
    }
    CHECK(api::to_string(api::VmState::shutting_down) == "shutting_down");
    CHECK(api::vm_state_from_string("bogus") == api::VmState::unknown);
    CHECK(api::firmware_from_string("uefi") == api::Firmware::uefi);
    CHECK_THAT(invalid_message([] { api::firmware_from_string("coreboot"); }), Catch::Contains("coreboot"));
}

TEST_CASE("TaskInfo JSON round trip with error and result", "[api][json]") {
    api::TaskInfo t;
    t.id = "t-000012";
    t.kind = "vm.create";
    t.target = "vm/web01";
    t.state = api::TaskState::failed;
    t.progress = 40;
    t.message = "creating disk0 (4G)";
    t.created_at = 1764240000000;
    t.started_at = 1764240000100;
    t.finished_at = 1764240001000;
    t.error = api::ErrorBody{Errc::conflict, "vm web01 already exists"};
    t.result = json{{"k", "v"}};
    json j = t;
    CHECK(j["state"] == "failed");
    CHECK(j["error"] == json{{"code", "conflict"}, {"message", "vm web01 already exists"}});
    api::TaskInfo back = api::task_info_from_json(j);
    CHECK(json(back) == j);
    REQUIRE(back.error);
    CHECK(back.error->code == Errc::conflict);

    api::TaskInfo ok;
    ok.id = "t-1";
    ok.state = api::TaskState::succeeded;
    json jo = ok;
    CHECK(jo["error"].is_null());
    CHECK_FALSE(api::task_info_from_json(jo).error);
    for (auto s : {api::TaskState::pending, api::TaskState::running, api::TaskState::succeeded, api::TaskState::failed,
                   api::TaskState::cancelled})
        CHECK(api::task_state_from_string(api::to_string(s)) == s);
    CHECK(api::is_final(api::TaskState::cancelled));
    CHECK_FALSE(api::is_final(api::TaskState::running));
}

TEST_CASE("Event and error body JSON", "[api][json]") {
    api::Event e;
    e.seq = 42;
    e.time = 1764240000000;
    e.type = "vm.lifecycle";
    e.target = "vm/web01";
    e.data = json{{"state", "running"}, {"reason", "booted"}};
    json j = e;
    CHECK(json(api::event_from_json(j)) == j);

    json err = api::error_json(Errc::not_found, "vm x not found");
    CHECK(err == json{{"error", {{"code", "not_found"}, {"message", "vm x not found"}}}});
    auto b = api::error_body_from_json(err);
    CHECK(b.code == Errc::not_found);
    CHECK(b.message == "vm x not found");
    CHECK(api::error_body_from_json(err["error"]).code == Errc::not_found);  // bare form too
    CHECK(api::error_body_from_json(json{{"error", {{"code", "what"}}}}).code == Errc::internal);
}

TEST_CASE("HostInfo JSON round trip", "[api][json]") {
    api::HostInfo h;
    h.hostname = "hv1";
    h.version = "0.1.0";
    h.libvirt_uri = "qemu:///system";
    h.libvirt_connected = true;
    h.libvirt_version = "9.0.0";
    h.qemu_version = "7.2.0";
    h.accel_config = "auto";
    h.accel = "tcg";
    h.accel_reason = "/dev/kvm: Permission denied";
    h.cpus = 2;
    h.memory_total = 24 * api::GiB;
    h.memory_available = 20 * api::GiB;
    h.image_dir = "/var/lib/hv/images";
    h.image_dir_free = 100 * api::GiB;
    h.vms_total = 3;
    h.vms_running = 1;
    h.daemon_uptime = 3600;
    json j = h;
    CHECK(json(api::host_info_from_json(j)) == j);
    CHECK(j["libvirt_connected"] == true);
    CHECK(j["accel"] == "tcg");
}

// ---------------------------------------------------------------------------------------
// Strict input
// ---------------------------------------------------------------------------------------

TEST_CASE("Unknown fields are rejected with the field named", "[api][strict]") {
    json j = minimal_json();
    j["colour"] = "blue";
    CHECK_THAT(invalid_message([&] { api::vm_spec_from_json(j); }), Catch::Contains("colour"));

    json d = minimal_json();
    d["disks"] = json::array({{{"size", "1G"}}, {{"size", "1G"}, {"speed", 3}}});
    CHECK_THAT(invalid_message([&] { api::vm_spec_from_json(d); }), Catch::Contains("disks[1].speed"));

    json n = minimal_json();
    n["nics"] = json::array({{{"network", "default"}, {"vlann", 5}}});
    CHECK_THAT(invalid_message([&] { api::vm_spec_from_json(n); }), Catch::Contains("nics[0].vlann"));

    // Output-only fields of VmInfo are not part of a create request.
    json st = minimal_json();
    st["state"] = "running";
    CHECK_THAT(invalid_message([&] { api::vm_spec_from_json(st); }), Catch::Contains("state"));
}

TEST_CASE("Wrong JSON types are rejected with the field named", "[api][strict]") {
    struct Case {
        json body;
        const char* field;
    };
    std::vector<Case> cases = {
        {json{{"name", 5}}, "name"},
        {json{{"name", "a"}, {"cpus", "two"}}, "cpus"},
        {json{{"name", "a"}, {"cpus", 1.5}}, "cpus"},
        {json{{"name", "a"}, {"memory", true}}, "memory"},
        {json{{"name", "a"}, {"memory", -1}}, "memory"},
        {json{{"name", "a"}, {"disks", {{"size", "1G"}}}}, "disks"},  // an object, not an array
        {json{{"name", "a"}, {"disks", json::array({{{"size", "1G"}, {"owned", "yes"}}})}}, "disks[0].owned"},
        {json{{"name", "a"}, {"nics", "default"}}, "nics"},
        {json{{"name", "a"}, {"tags", "prod"}}, "tags"},
        {json{{"name", "a"}, {"kernel", json::array()}}, "kernel"},
    };
    for (const auto& c : cases) {
        INFO("body " << c.body.dump());
        CHECK_THAT(invalid_message([&] { api::vm_spec_from_json(c.body); }), Catch::Contains(c.field));
    }
    CHECK_THAT(invalid_message([] { api::vm_spec_from_json(json::array()); }), Catch::Contains("object"));
    CHECK_THAT(invalid_message([] { api::vm_spec_from_json(json::object()); }), Catch::Contains("name"));
}

TEST_CASE("cpus must be 1-512", "[api][validate]") {
    for (int cpus : {0, -1, -100, 513, 100000}) {
        INFO("cpus " << cpus);
        auto s = minimal_spec();
        s.cpus = cpus;
        CHECK_THAT(invalid_message([&] { api::validate(s); }), Catch::Contains("cpus"));
    }
    // Straight from JSON too (negative numbers must not wrap around).
    CHECK_THAT(invalid_message([] { api::validate(api::vm_spec_from_json(json{{"name", "a"}, {"cpus", -2}})); }),
               Catch::Contains("cpus"));
    CHECK_THAT(invalid_message([] { api::vm_spec_from_json(json{{"name", "a"}, {"cpus", 1LL << 40}}); }),
               Catch::Contains("cpus"));
    for (int cpus : {1, 2, 512}) {
        auto s = minimal_spec();
        s.cpus = cpus;
        CHECK_NOTHROW(api::validate(s));
    }
}

TEST_CASE("memory limits", "[api][validate]") {
    auto s = minimal_spec();
    s.memory = 8 * api::MiB;
    CHECK_THAT(invalid_message([&] { api::validate(s); }), Catch::Contains("memory"));
    s.memory = 64 * api::MiB + 1;
    CHECK_THAT(invalid_message([&] { api::validate(s); }), Catch::Contains("memory"));
    s.memory = 32ULL << 40;
    CHECK_THAT(invalid_message([&] { api::validate(s); }), Catch::Contains("memory"));
    s.memory = 64 * api::MiB;
    CHECK_NOTHROW(api::validate(s));
}

TEST_CASE("VM names", "[api][validate]") {
    for (std::string bad : {std::string(""), std::string(64, 'a'), std::string("bad/name"), std::string(".."),
                            std::string("-leading"), std::string(".hidden"), std::string("a b"), std::string("a\nb"),
                            std::string("ä"), std::string("x;rm")}) {
        INFO("name '" << bad << "'");
        CHECK(!invalid_message([&] { api::validate_name(bad); }).empty());
        auto s = minimal_spec(bad);
        CHECK_THAT(invalid_message([&] { api::validate(s); }), Catch::Contains("name"));
    }
    for (std::string good : {std::string("a"), std::string(63, 'a'), std::string("web01"), std::string("Web-01_a.b"),
                             std::string("0vm")}) {
        INFO("name '" << good << "'");
        CHECK_NOTHROW(api::validate_name(good));
    }
    CHECK_THAT(invalid_message([] { api::validate_name("", "pool name"); }), Catch::Contains("pool name"));
    // The message goes into a JSON error body: a multi-byte character is named whole, never as
    // one byte of it (nlohmann's dump threw type_error 316 on "contains '\xc3'" and ended hvd).
    for (std::string bad : {std::string("Stra\xc3\x9f" "e"), std::string("caf\xc3\xa9"), std::string("a\xe2\x80\xae" "b"),
                            std::string("x\xf0\x9f\x98\x80"), std::string(300, 'a') + "\xc3\xa9"}) {
        auto msg = invalid_message([&] { api::validate_name(bad); });
        INFO(msg);
        CHECK_NOTHROW(nlohmann::json(msg).dump());
        if (bad.size() < 64) CHECK_THAT(msg, Catch::Contains("contains '"));
    }
    CHECK_THAT(invalid_message([] { api::validate_name("caf\xc3\xa9"); }), Catch::Contains("contains '\xc3\xa9'"));
    CHECK_THAT(invalid_message([] { api::validate_name("a\nb"); }), Catch::Contains("contains '\\x0a'"));
    CHECK_THAT(invalid_message([] { api::validate_name("a/b"); }), Catch::Contains("contains '/'"));
    CHECK(invalid_message([] { api::validate_name(std::string(4 << 20, 'a')); }).size() < 200);
    CHECK(api::name_excerpt(std::string(63, 'a') + "\xc3\xa9") == std::string(63, 'a') + "...");
}

TEST_CASE("validate checks disks, nics and boot paths", "[api][validate]") {
    auto with = [](auto&& change) {
        auto s = minimal_spec();
        change(s);
        return invalid_message([&] { api::validate(s); });
    };
    CHECK_THAT(with([](api::VmSpec& s) { s.disks.push_back(api::DiskSpec{}); }), Catch::Contains("size"));
    CHECK_THAT(with([](api::VmSpec& s) {
                   api::DiskSpec d;
                   d.size = api::GiB;
                   d.bus = "usb";
                   s.disks.push_back(d);
               }),
               Catch::Contains("usb"));
    CHECK_THAT(with([](api::VmSpec& s) {
                   api::DiskSpec d;
                   d.path = "relative.qcow2";
                   s.disks.push_back(d);
               }),
               Catch::Contains("absolute"));
    CHECK_THAT(with([](api::VmSpec& s) {
                   api::DiskSpec d;
                   d.path = "/var/lib/hv/../../etc/shadow";
                   s.disks.push_back(d);
               }),
               Catch::Contains(".."));
    CHECK_THAT(with([](api::VmSpec& s) { s.nics.push_back(api::NicSpec{}); }), Catch::Contains("network"));
    CHECK_THAT(with([](api::VmSpec& s) {
                   api::NicSpec n;
                   n.network = "default";
                   n.bridge = "br0";
                   s.nics.push_back(n);
               }),
               Catch::Contains("exactly one"));
    CHECK_THAT(with([](api::VmSpec& s) {
                   api::NicSpec n;
                   n.network = "default";
                   n.mac = "01:00:5e:00:00:01";  // multicast
                   s.nics.push_back(n);
               }),
               Catch::Contains("mac"));
    CHECK_THAT(with([](api::VmSpec& s) { s.initrd = "/boot/initrd"; }), Catch::Contains("kernel"));
    CHECK_THAT(with([](api::VmSpec& s) { s.kernel = "vmlinuz"; }), Catch::Contains("absolute"));
}

// ---------------------------------------------------------------------------------------
// hvctl's --disk / --net forms
// ---------------------------------------------------------------------------------------

TEST_CASE("parse_disk_arg", "[api][cli]") {
    auto d = api::parse_disk_arg("size=4G,bus=sata,format=raw,pool=local");
    CHECK(d.size == 4 * api::GiB);
    CHECK(d.bus == "sata");
    CHECK(d.format == "raw");
    CHECK(d.pool == "local");
    CHECK_FALSE(d.owned);
    auto m = api::parse_disk_arg("size=1G");
    CHECK(m.size == api::GiB);
    CHECK(m.format == "");  // the pool's default (qcow2 on file pools, raw on rbd)
    CHECK(m.bus == "virtio");
    auto p = api::parse_disk_arg("path=/srv/img.qcow2");
    CHECK(p.path == "/srv/img.qcow2");
    CHECK(p.size == 0);

    CHECK_THAT(invalid_message([] { api::parse_disk_arg("size=4G,speed=fast"); }), Catch::Contains("speed"));
    CHECK_THAT(invalid_message([] { api::parse_disk_arg("size=4G,owned=true"); }), Catch::Contains("owned"));
    CHECK_THAT(invalid_message([] { api::parse_disk_arg("size=4G,size=8G"); }), Catch::Contains("size"));
    CHECK_THAT(invalid_message([] { api::parse_disk_arg("4G"); }), Catch::Contains("key=value"));
    CHECK_THAT(invalid_message([] { api::parse_disk_arg("size=4X"); }), Catch::Contains("4X"));
    CHECK_THAT(invalid_message([] { api::parse_disk_arg("=4G"); }), Catch::Contains("key=value"));
    CHECK(!invalid_message([] { api::parse_disk_arg(""); }).empty());
    CHECK(!invalid_message([] { api::parse_disk_arg(","); }).empty());
}

TEST_CASE("parse_nic_arg", "[api][cli]") {
    auto n = api::parse_nic_arg("network=default,model=e1000,mac=52:54:00:12:34:56");
    CHECK(n.network == "default");
    CHECK(n.model == "e1000");
    CHECK(n.mac == "52:54:00:12:34:56");
    auto b = api::parse_nic_arg("bridge=br0");
    CHECK(b.bridge == "br0");
    CHECK(b.network.empty());
    CHECK(b.model == "virtio");
    CHECK_THAT(invalid_message([] { api::parse_nic_arg("network=default,vlan=x"); }), Catch::Contains("vlan"));
    CHECK_THAT(invalid_message([] { api::parse_nic_arg("network=default,colour=red"); }), Catch::Contains("colour"));
    CHECK_THAT(invalid_message([] { api::parse_nic_arg("network=a,network=b"); }), Catch::Contains("network"));
    CHECK(!invalid_message([] { api::parse_nic_arg(""); }).empty());
    // Consistency is validate()'s job: both network and bridge parse, then fail validation.
    auto s = minimal_spec();
    s.nics.push_back(api::parse_nic_arg("network=default,bridge=br0"));
    CHECK(!invalid_message([&] { api::validate(s); }).empty());
}

TEST_CASE("NIC VLANs, trunks and MTU: parsing and validation", "[api][cli][validate]") {
    auto n = api::parse_nic_arg("bridge=vmbr0,vlan=100,trunks=30;10;20-29,mtu=9000,name=lan");
    CHECK(n.vlan == 100);
    CHECK(n.trunks == "10,20-30");  // sorted and merged
    CHECK(n.mtu == 9000);
    CHECK(n.name == "lan");
    auto s = minimal_spec();
    s.nics.push_back(n);
    CHECK_NOTHROW(api::validate(s));
    // JSON round trip keeps every NIC field.
    auto back = api::nic_from_json(nlohmann::json(n));
    CHECK(back.vlan == 100);
    CHECK(back.trunks == "10,20-30");
    CHECK(back.mtu == 9000);
    CHECK(back.name == "lan");
    // Reserved and out-of-range VLAN ids, absurd MTU: 400 with the reason.
    for (const char* bad : {"bridge=vmbr0,vlan=0", "bridge=vmbr0,vlan=4095", "bridge=vmbr0,vlan=-1"})
        CHECK_THAT(invalid_message([&] { api::parse_nic_arg(bad); }), Catch::Contains("VLAN ids are 1..4094"));
    CHECK_THAT(invalid_message([] { api::parse_nic_arg("bridge=vmbr0,trunks=1-4095"); }), Catch::Contains("1..4094"));
    auto big = api::parse_nic_arg("bridge=vmbr0,mtu=100000");
    auto s2 = minimal_spec();
    s2.nics.push_back(big);
    CHECK_THAT(invalid_message([&] { api::validate(s2); }), Catch::Contains("mtu 100000"));
    // A tag needs a bridge.
    auto s3 = minimal_spec();
    s3.nics.push_back(api::parse_nic_arg("network=default,vlan=5"));
    CHECK_THAT(invalid_message([&] { api::validate(s3); }), Catch::Contains("vlan and trunks need bridge="));
    // Two NICs with one name.
    auto s4 = minimal_spec();
    s4.nics.push_back(api::parse_nic_arg("bridge=vmbr0,name=a"));
    s4.nics.push_back(api::parse_nic_arg("bridge=vmbr0,name=a"));
    CHECK_THAT(invalid_message([&] { api::validate(s4); }), Catch::Contains("used twice"));
    // Patches: vlan=0 clears the tag; an empty patch says what can change.
    auto p = api::parse_nic_patch_arg("vlan=0,trunks=5");
    auto changed = api::apply_patch(n, p);
    CHECK(changed.vlan == 0);
    CHECK(changed.trunks == "5");
    CHECK_THAT(invalid_message([] { api::nic_patch_from_json(nlohmann::json::object()); }), Catch::Contains("nothing to change"));
    CHECK_THAT(invalid_message([] { api::parse_nic_patch_arg("vlan=4095"); }), Catch::Contains("out of range"));
}

// ---------------------------------------------------------------------------------------
// Error codes
// ---------------------------------------------------------------------------------------

namespace {
const std::vector<Errc> kAllCodes = {Errc::invalid_input, Errc::not_found, Errc::conflict,    Errc::cancelled,
                                     Errc::internal,      Errc::unavailable, Errc::timeout, Errc::unsupported,
                                     Errc::insufficient_space, Errc::forbidden};
}

TEST_CASE("Errc table: names, HTTP statuses, exit codes", "[api][errors]") {
    std::set<int> exits;
    std::set<std::string> names;
    for (auto c : kAllCodes) {
        std::string name(hv::errc_name(c));
        INFO("code " << name);
        CHECK(names.insert(name).second);
        CHECK(hv::errc_from_name(name) == c);
        int ex = hv::exit_code(c);
        CHECK(exits.insert(ex).second);  // every code has its own exit code
        // 0 = ok, 2 = usage, 10 = unreachable, 11 = task failed are the CLI's own.
        CHECK(ex != 0);
        CHECK(ex != 2);
        CHECK(ex != 10);
        CHECK(ex != 11);
        int st = hv::http_status(c);
        CHECK(st >= 400);
        CHECK(st <= 599);
        if (c != Errc::cancelled) CHECK(hv::errc_from_http_status(st) == c);
    }
    CHECK(hv::errc_from_name("no_such_code") == Errc::internal);
    CHECK(hv::errc_from_http_status(418) == Errc::internal);
    CHECK(hv::errc_from_http_status(405) == Errc::invalid_input);
}

TEST_CASE("Errc table matches the exit codes in docs/api.md", "[api][errors]") {
    struct Row {
        Errc c;
        const char* name;
        int http;
        int exit;
    };
    for (auto r : {Row{Errc::invalid_input, "invalid_input", 400, 3}, Row{Errc::not_found, "not_found", 404, 4},
                   Row{Errc::conflict, "conflict", 409, 5}, Row{Errc::cancelled, "cancelled", 409, 9},
                   Row{Errc::internal, "internal", 500, 1}, Row{Errc::unavailable, "unavailable", 503, 6},
                   Row{Errc::timeout, "timeout", 504, 7}, Row{Errc::unsupported, "unsupported", 501, 8},
                   Row{Errc::insufficient_space, "insufficient_space", 507, 12},
                   Row{Errc::forbidden, "forbidden", 403, 13}}) {
        INFO("code " << r.name);
        CHECK(hv::errc_name(r.c) == r.name);
        CHECK(hv::http_status(r.c) == r.http);
        CHECK(hv::exit_code(r.c) == r.exit);
    }
}

TEST_CASE("hv::fail formats and carries the code", "[api][errors]") {
    try {
        hv::fail(Errc::not_found, "vm {} not found", "web01");
        FAIL("fail() returned");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::not_found);
        CHECK(std::string(e.what()) == "vm web01 not found");
    }
}

// ---------------------------------------------------------------------------------------
// Reverter
// ---------------------------------------------------------------------------------------

TEST_CASE("Reverter undoes in reverse order on failure", "[util][reverter]") {
    std::vector<int> order;
    try {
        hv::util::Reverter r;
        r.add([&] { order.push_back(1); });
        r.add([&] { order.push_back(2); });
        r.add([&] { order.push_back(3); });
        throw std::runtime_error("step 4 failed");
    } catch (const std::runtime_error&) {
    }
    CHECK(order == std::vector<int>{3, 2, 1});
}

TEST_CASE("Reverter runs nothing after release", "[util][reverter]") {
    std::vector<int> order;
    {
        hv::util::Reverter r;
        r.add([&] { order.push_back(1); });
        r.add([&] { order.push_back(2); });
        r.release();
    }
    CHECK(order.empty());
    // Steps added after a release are armed again.
    {
        hv::util::Reverter r;
        r.add([&] { order.push_back(1); });
        r.release();
        r.add([&] { order.push_back(2); });
    }
    CHECK(order == std::vector<int>{2});
}

TEST_CASE("Reverter: a throwing undo step does not stop the others and revert runs once", "[util][reverter]") {
    std::vector<int> order;
    {
        hv::util::Reverter r;
        r.add([&] { order.push_back(1); });
        r.add([&] { throw std::runtime_error("undo failed"); });
        r.add([&] { order.push_back(3); });
        r.revert();
        CHECK(order == std::vector<int>{3, 1});
    }
    CHECK(order == std::vector<int>{3, 1});  // the destructor found nothing left to undo
}

// ---------------------------------------------------------------------------------------
// Disk sources (file now, network/RBD for the next pool type)
// ---------------------------------------------------------------------------------------

namespace {
json rbd_json() {
    return json{{"type", "network"},
                {"protocol", "rbd"},
                {"name", "vms/web01-disk0"},
                {"hosts", json::array({{{"name", "10.0.0.1"}, {"port", 6789}}, {{"name", "fd00::2"}}})},
                {"auth", {{"username", "admin"}, {"secret_type", "ceph"},
                          {"secret_uuid", "3d5a5fe8-af8a-4739-b90f-ac54f21e1711"}}}};
}
json rbd_disk_json() {
    return json{{"name", "disk0"}, {"format", "raw"}, {"pool", "ceph"}, {"volume", "web01-disk0"},
                {"source", rbd_json()}};
}
}  // namespace

TEST_CASE("Disk sources: JSON round trip, and file disks keep their JSON", "[api][disk_source]") {
    auto src = api::disk_source_from_json(rbd_json());
    CHECK(src.type == api::DiskSource::Type::network);
    REQUIRE(src.hosts.size() == 2);
    CHECK(src.hosts[1].port == 0);
    REQUIRE(src.auth);
    CHECK(src.auth->username == "admin");
    CHECK(json(src) == rbd_json());  // port 0 is left out
    CHECK(api::disk_source_from_json(json(src)) == src);
    auto file = api::DiskSource::file("/var/lib/hv/images/images/a.qcow2");
    CHECK(json(file) == json{{"type", "file"}, {"path", "/var/lib/hv/images/images/a.qcow2"}});
    CHECK(api::disk_source_from_json(json(file)) == file);

    // A DiskSpec carries a network source (hvd's metadata and responses)...
    auto d = api::disk_from_json(rbd_disk_json(), "disk", api::JsonOrigin::hvd);
    REQUIRE(d.source);
    CHECK(*d.source == src);
    CHECK(d.path.empty());
    CHECK(api::source_of(d) == src);
    CHECK(api::disk_from_json(json(d), "disk", api::JsonOrigin::hvd).source == d.source);
    api::VmSpec s;
    s.name = "web01";
    s.disks.push_back(d);
    CHECK_NOTHROW(api::validate(s));
    CHECK(api::vm_spec_from_json(json(s), api::JsonOrigin::hvd).disks[0].source == d.source);
    api::VmInfo info;
    info.spec = s;
    CHECK(api::vm_info_from_json(json(info)).spec.disks[0].source == d.source);

    // ...while a file disk has no "source" key at all: its JSON is what it was before.
    api::DiskSpec f;
    f.name = "disk1";
    api::set_source(f, file);
    CHECK(f.path == file.path);
    CHECK_FALSE(f.source);
    CHECK_FALSE(json(f).contains("source"));
    CHECK(api::source_of(f) == file);
    api::set_source(f, src);
    CHECK(f.path.empty());
    CHECK(f.source == src);
}

TEST_CASE("Disk sources are hvd's: a request cannot set one", "[api][disk_source][strict]") {
    CHECK_THAT(invalid_message([] { api::disk_from_json(rbd_disk_json()); }), Catch::Contains("disk.source"));
    json vm{{"name", "web01"}, {"disks", json::array({rbd_disk_json()})}};
    CHECK_THAT(invalid_message([&] { api::vm_spec_from_json(vm); }), Catch::Contains("disks[0].source"));
    CHECK_THAT(invalid_message([] { api::parse_disk_arg("size=4G,source=rbd"); }), Catch::Contains("source"));
}

TEST_CASE("Disk source JSON is read strictly", "[api][disk_source][strict]") {
    struct Case {
        std::function<void(json&)> change;
        const char* expect;
    };
    const std::vector<Case> cases = {
        {[](json& j) { j["colour"] = 1; }, "source.colour"},
        {[](json& j) { j.erase("type"); }, "source.type"},
        {[](json& j) { j["type"] = "block"; }, "source.type"},
        {[](json& j) { j["hosts"] = "10.0.0.1"; }, "source.hosts"},
        {[](json& j) { j["hosts"][0]["weight"] = 1; }, "source.hosts[0].weight"},
        {[](json& j) { j["hosts"][0]["port"] = "6789"; }, "source.hosts[0].port"},
        {[](json& j) { j["hosts"][0]["port"] = 70000; }, "source.hosts[0].port"},
        {[](json& j) { j["hosts"][0]["port"] = -1; }, "source.hosts[0].port"},
        {[](json& j) { j["hosts"][0].erase("name"); }, "source.hosts[0].name"},
        {[](json& j) { j["hosts"][0]["name"] = "10.0.0.1:6789/x"; }, "source.hosts[0].name"},
        {[](json& j) { j["hosts"][0]["name"] = "-oops"; }, "source.hosts[0].name"},
        {[](json& j) { j["hosts"] = json::array(); }, "source.hosts"},
        {[](json& j) { j["hosts"] = json::array(); for (int i = 0; i < 17; ++i) j["hosts"].push_back({{"name", "h"}}); },
         "source.hosts"},
        {[](json& j) { j["auth"]["key"] = "AQB..."; }, "source.auth.key"},
        {[](json& j) { j["auth"].erase("username"); }, "source.auth.username"},
        {[](json& j) { j["auth"]["username"] = "client admin"; }, "source.auth.username"},
        {[](json& j) { j["auth"]["secret_type"] = "iscsi"; }, "source.auth.secret_type"},
        {[](json& j) { j["auth"]["secret_uuid"] = "not-a-uuid"; }, "source.auth.secret_uuid"},
        {[](json& j) { j["auth"] = "admin"; }, "source.auth"},
        {[](json& j) { j["protocol"] = "nbd"; }, "source.protocol"},
        {[](json& j) { j["name"] = "image-only"; }, "source.name"},
        {[](json& j) { j["name"] = "vms/img:conf=/etc/x"; }, "source.name"},
        {[](json& j) { j["name"] = "vms/img@snap"; }, "source.name"},
        {[](json& j) { j["name"] = "vms//img"; }, "source.name"},
        {[](json& j) { j["name"] = "a/b/c/d"; }, "source.name"},
        {[](json& j) { j["path"] = "/x"; }, "network source has no path"},
    };
    for (const auto& c : cases) {
        json j = rbd_json();
        c.change(j);
        INFO("source " << j.dump());
        CHECK_THAT(invalid_message([&] { api::disk_source_from_json(j); }), Catch::Contains(c.expect));
    }
    CHECK_NOTHROW(api::disk_source_from_json([] {
        json j = rbd_json();
        j["name"] = "vms/tenant-a/img";  // POOL/NAMESPACE/IMAGE
        j.erase("auth");
        return j;
    }()));
    CHECK_THAT(invalid_message([] { api::disk_source_from_json(json{{"type", "file"}, {"path", "rel/a.qcow2"}}); }),
               Catch::Contains("absolute"));
    CHECK_THAT(invalid_message([] { api::disk_source_from_json(json{{"type", "file"}, {"path", "/a/../b"}}); }),
               Catch::Contains(".."));
    CHECK_THAT(invalid_message([] {
                   api::disk_source_from_json(json{{"type", "file"}, {"path", "/a"}, {"protocol", "rbd"}});
               }),
               Catch::Contains("only a path"));
}

TEST_CASE("A VM disk with a network source", "[api][disk_source][validate]") {
    auto disk = [](const std::function<void(json&)>& change) {
        json d = rbd_disk_json();
        change(d);
        api::VmSpec s;
        s.name = "web01";
        s.disks.push_back(api::disk_from_json(d, "disks[0]", api::JsonOrigin::hvd));
        api::validate(s);
    };
    CHECK_NOTHROW(disk([](json&) {}));
    CHECK_THAT(invalid_message([&] { disk([](json& d) { d["format"] = "qcow2"; }); }), Catch::Contains("raw"));
    CHECK_THAT(invalid_message([&] { disk([](json& d) { d["path"] = "/var/lib/hv/x.raw"; }); }),
               Catch::Contains("no path"));
    CHECK_THAT(invalid_message([&] { disk([](json& d) { d["mode"] = "independent-nonpersistent"; }); }),
               Catch::Contains("file disk"));
    // A file disk is its path: "source" holds network sources only (one spelling per disk).
    CHECK_THAT(invalid_message([&] {
                   disk([](json& d) { d["source"] = json{{"type", "file"}, {"path", "/var/lib/hv/x.raw"}}; });
               }),
               Catch::Contains("given by path"));
}
