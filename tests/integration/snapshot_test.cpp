// VM snapshots against a real hvd + private libvirtd with the TCG test guest
// (scripts/build-test-guest.sh: qemu-ga, and a first disk whose "HV-DISK-MARK" line it prints at
// boot): snapshots of the running guest without and with memory and quiesced, the tree, revert (the guest's
// uptime goes back and it keeps running with memory; without memory it boots from the disks as
// they were), delete in the middle of a chain keeps the children, --children, and bad input
// answered 4xx/501 with nothing made.
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {

std::string base64_decode(const std::string& in) {
    auto val = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string out;
    int bits = 0, acc = 0;
    for (char c : in) {
        int v = val(c);
        if (v < 0) continue;
        acc = (acc << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    return out;
}

// Runs a program in the guest through its agent (guest-exec) and returns its stdout.
std::string guest_exec(const std::string& vm, const std::string& path, const std::vector<std::string>& args) {
    json cmd{{"execute", "guest-exec"}, {"arguments", {{"path", path}, {"arg", args}, {"capture-output", true}}}};
    auto r = virsh({"qemu-agent-command", vm, cmd.dump()});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto pid = json::parse(r.out).at("return").at("pid").get<int>();
    json st{{"execute", "guest-exec-status"}, {"arguments", {{"pid", pid}}}};
    std::string out;
    bool exited = wait_until(
        [&] {
            auto s = virsh({"qemu-agent-command", vm, st.dump()});
            if (s.exit_code != 0) return false;
            auto j = json::parse(s.out, nullptr, false);
            if (!j.is_object() || !j["return"].value("exited", false)) return false;
            out = base64_decode(j["return"].value("out-data", ""));
            return true;
        },
        30s, 200ms);
    REQUIRE(exited);
    return out;
}

// The guest's /proc/uptime, seconds.
double uptime(const std::string& vm) {
    auto text = guest_exec(vm, "/bin/cat", {"/proc/uptime"});
    INFO("uptime text: " << text);
    REQUIRE(!text.empty());
    return std::stod(text);
}

bool agent_answers(const std::string& vm) {
    return virsh({"qemu-agent-command", vm, R"({"execute":"guest-ping"})"}).exit_code == 0;
}

json by_name(const json& list) {
    json out = json::object();
    for (const auto& s : list) out[s.at("name").get<std::string>()] = s;
    return out;
}

std::size_t libvirt_snapshot_count(const std::string& vm) {
    auto r = virsh({"snapshot-list", vm, "--name"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    std::size_t n = 0;
    std::size_t p = 0;
    while (p < r.out.size()) {
        auto e = r.out.find('\n', p);
        if (e == std::string::npos) e = r.out.size();
        if (e > p) ++n;
        p = e + 1;
    }
    return n;
}

}  // namespace

TEST_CASE("snapshot: running test guest without and with memory, tree, revert, delete in a chain",
          "[integration][snapshot][guest]") {
    Hvd hvd;
    const std::string guest = env("HV_TEST_GUEST_DIR");
    auto vm = hvd.vm("snap");
    const std::string serial = hvd.log_dir + "/" + vm + ".serial.log";
    {
        auto r = hvd.ctl({"vm", "create", vm, "--memory", "128M", "--disk", "size=32M", "--kernel", guest + "/vmlinuz",
                          "--initrd", guest + "/initrd.gz", "--cmdline", "console=ttyS0 quiet panic=-1", "--start"},
                         180s);
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
    }
    auto booted = [&] {
        return wait_until([&] { return read_file(serial).find("HV-GUEST-BOOTED") != std::string::npos; }, 180s, 250ms) &&
               wait_until([&] { return agent_answers(vm); }, 60s, 500ms);
    };
    REQUIRE(booted());

    // s1: the disk holds mark one; no memory.
    guest_exec(vm, "/bin/sh", {"-c", "echo HV-DISK-MARK one > /dev/vda && sync"});
    auto c1 = hvd.ctl({"vm", "snapshot", "create", vm, "s1", "--description", "mark one"}, 180s);
    INFO(c1.describe());
    REQUIRE(c1.exit_code == 0);
    CHECK(domstate(vm) == "running");  // paused only for the moment

    // s2: mark two on the disk, with memory.
    guest_exec(vm, "/bin/sh", {"-c", "echo HV-DISK-MARK two > /dev/vda && sync"});
    double u2 = uptime(vm);
    auto c2 = hvd.ctl({"vm", "snapshot", "create", vm, "s2", "--memory", "-o", "json"}, 240s);
    INFO(c2.describe());
    REQUIRE(c2.exit_code == 0);
    auto s2 = json::parse(c2.out);
    CHECK(s2["name"] == "s2");
    CHECK(s2["memory"] == true);
    CHECK(s2["parent"] == "s1");
    CHECK(s2["state"] == "running");
    CHECK(domstate(vm) == "running");

    // s3 quiesced: the agent froze the guest's filesystems for the moment and thawed them after.
    auto t3 = hvd.ctl_json({"vm", "snapshot", "create", vm, "s3", "--quiesce", "--async"});
    const std::string id = t3.value("id", "");
    REQUIRE(!id.empty());
    auto c3 = hvd.ctl({"task", "wait", id}, 180s);
    INFO(c3.describe());
    REQUIRE(c3.exit_code == 0);
    {
        auto st = virsh({"qemu-agent-command", vm, R"({"execute":"guest-fsfreeze-status"})"});
        INFO(st.describe());
        CHECK(st.out.find("thawed") != std::string::npos);
        auto log = hvd.ctl({"task", "log", id});
        INFO(log.describe());
        CHECK(log.out.find("freezing the guest's filesystems") != std::string::npos);
    }

    // The tree: s1 -> s2 -> s3, s3 current.
    auto list = hvd.ctl_json({"vm", "snapshot", "list", vm});
    REQUIRE(list.size() == 3);
    CHECK(list[0]["name"] == "s1");
    CHECK(list[1]["name"] == "s2");
    CHECK(list[2]["name"] == "s3");
    auto m = by_name(list);
    CHECK(m["s1"]["parent"].is_null());
    CHECK(m["s2"]["parent"] == "s1");
    CHECK(m["s3"]["parent"] == "s2");
    CHECK(m["s1"]["memory"] == false);
    CHECK(m["s2"]["memory"] == true);
    CHECK(m["s3"]["memory"] == false);
    CHECK(m["s1"]["description"] == "mark one");
    CHECK(m["s3"]["current"] == true);
    CHECK(m["s1"]["current"] == false);
    CHECK(m["s1"]["created"].get<std::int64_t>() > 1600000000);
    auto table = hvd.ctl({"vm", "snapshot", "list", vm});
    INFO(table.describe());
    CHECK(table.exit_code == 0);
    CHECK(table.out.find("\n  s2 ") != std::string::npos);    // indented under s1
    CHECK(table.out.find("\n    s3 *") != std::string::npos);  // under s2, current
    CHECK(libvirt_snapshot_count(vm) == 3);

    // Revert to the memory snapshot: the guest goes on running from where it was.
    std::this_thread::sleep_for(8s);
    double before = uptime(vm);
    REQUIRE(before > u2 + 7.5);
    auto r2 = hvd.ctl({"vm", "snapshot", "revert", vm, "s2"}, 240s);
    INFO(r2.describe());
    REQUIRE(r2.exit_code == 0);
    CHECK(domstate(vm) == "running");
    REQUIRE(wait_until([&] { return agent_answers(vm); }, 60s, 500ms));
    double after = uptime(vm);
    CHECK(after < before - 4.0);  // the uptime counter went back...
    CHECK(after >= u2);           // ...to the snapshot's moment, and counts on from there
    CHECK(hvd.show(vm)["state"] == "running");
    CHECK(by_name(hvd.ctl_json({"vm", "snapshot", "list", vm}))["s2"]["current"] == true);

    // Revert to s1 (no memory) without --start: the VM is stopped, its RAM never resumed.
    auto r1 = hvd.ctl({"vm", "snapshot", "revert", vm, "s1"}, 240s);
    INFO(r1.describe());
    REQUIRE(r1.exit_code == 0);
    CHECK(domstate(vm) == "shut off");
    CHECK(hvd.show(vm)["state"] == "stopped");
    // ... and with --start it boots from s1's disks: mark one, a fresh uptime.
    auto r1s = hvd.ctl({"vm", "snapshot", "revert", vm, "s1", "--start"}, 240s);
    INFO(r1s.describe());
    REQUIRE(r1s.exit_code == 0);
    REQUIRE(booted());
    auto log = read_file(serial);
    CHECK(log.find("HV-GUEST-DISK HV-DISK-MARK one") != std::string::npos);
    CHECK(log.find("HV-DISK-MARK two") == std::string::npos);

    // Delete s2 in the middle: s3 stays, now under s1.
    auto d2 = hvd.ctl({"vm", "snapshot", "delete", vm, "s2", "-o", "json"}, 180s);
    INFO(d2.describe());
    REQUIRE(d2.exit_code == 0);
    CHECK(json::parse(d2.out)["deleted"] == json::array({"s2"}));
    auto after_del = by_name(hvd.ctl_json({"vm", "snapshot", "list", vm}));
    CHECK(after_del.size() == 2);
    CHECK(!after_del.contains("s2"));
    CHECK(after_del["s3"]["parent"] == "s1");
    CHECK(libvirt_snapshot_count(vm) == 2);

    // --children: s1 and everything under it.
    auto d1 = hvd.ctl({"vm", "snapshot", "delete", vm, "s1", "--children", "-o", "json"}, 180s);
    INFO(d1.describe());
    REQUIRE(d1.exit_code == 0);
    CHECK(json::parse(d1.out)["deleted"] == json::array({"s1", "s3"}));
    CHECK(hvd.ctl_json({"vm", "snapshot", "list", vm}).empty());
    CHECK(libvirt_snapshot_count(vm) == 0);
    CHECK(domstate(vm) == "running");
}

TEST_CASE("snapshot: bad input is refused and leaves nothing", "[integration][snapshot]") {
    Hvd hvd;
    auto vm = hvd.vm("snapbad");
    auto raw = hvd.vm("snapraw");
    REQUIRE(hvd.ctl({"vm", "create", vm, "--memory", "64M", "--disk", "size=16M"}).exit_code == 0);
    REQUIRE(hvd.ctl({"vm", "create", raw, "--memory", "64M", "--disk", "size=16M", "--disk", "size=16M,format=raw"})
                .exit_code == 0);
    const std::string base = "/v1/vms/" + vm + "/snapshots";

    auto status = [&](const std::string& method, const std::string& target, const std::string& body = "") {
        auto r = hvd.http(method, target, body);
        INFO(method << " " << target << " " << body << " -> " << r.status << " " << r.body);
        return r.status;
    };
    CHECK(status("POST", base, R"({"name":"a b"})") == 400);
    CHECK(status("POST", base, R"({"name":"-x"})") == 400);
    CHECK(status("POST", base, R"({"name":"ok","colour":"red"})") == 400);
    CHECK(status("POST", base, R"({"name":"ok","memory":true,"quiesce":true})") == 400);
    CHECK(status("POST", base, R"({})") == 400);
    CHECK(status("POST", base, "not json") == 400);
    CHECK(status("POST", "/v1/vms/it-no-such-vm/snapshots", R"({"name":"ok"})") == 404);
    CHECK(status("GET", "/v1/vms/it-no-such-vm/snapshots") == 404);
    // A stopped VM has no memory to save, and no agent to quiesce.
    CHECK(status("POST", base, R"({"name":"ok","memory":true})") == 409);
    CHECK(status("POST", base, R"({"name":"ok","quiesce":true})") == 409);
    // The raw disk is named in the refusal (501).
    {
        auto r = hvd.http("POST", "/v1/vms/" + raw + "/snapshots", R"({"name":"ok"})");
        INFO(r.body);
        CHECK(r.status == 501);
        CHECK(r.body.find("disk 'disk1'") != std::string::npos);
        CHECK(r.body.find("raw") != std::string::npos);
        auto c = hvd.ctl({"vm", "snapshot", "create", raw, "ok"});
        CHECK(c.exit_code != 0);
        CHECK(c.err.find("disk 'disk1'") != std::string::npos);
    }
    CHECK(libvirt_snapshot_count(vm) == 0);
    CHECK(libvirt_snapshot_count(raw) == 0);

    // A stopped VM's snapshot (qemu-img, no memory), then a duplicate, unknown names.
    auto made = hvd.ctl({"vm", "snapshot", "create", vm, "cold", "-o", "json"}, 120s);
    INFO(made.describe());
    REQUIRE(made.exit_code == 0);
    auto cold = json::parse(made.out);
    CHECK(cold["state"] == "stopped");
    CHECK(cold["memory"] == false);
    CHECK(status("POST", base, R"({"name":"cold"})") == 409);
    auto dup = hvd.ctl({"vm", "snapshot", "create", vm, "cold"});
    CHECK(dup.exit_code == 5);  // conflict
    CHECK(status("GET", base + "/nosuch") == 404);
    CHECK(status("GET", base + "/bad%20name") == 400);
    CHECK(status("POST", base + "/nosuch/revert") == 404);
    CHECK(status("POST", base + "/cold/revert", R"({"start":"yes"})") == 400);
    CHECK(status("DELETE", base + "/nosuch") == 404);
    CHECK(status("DELETE", base + "/cold?children=maybe") == 400);
    CHECK(hvd.ctl({"vm", "snapshot", "revert", vm, "nosuch"}).exit_code == 4);
    CHECK(libvirt_snapshot_count(vm) == 1);
    auto show = hvd.ctl_json({"vm", "snapshot", "show", vm, "cold"});
    CHECK(show["name"] == "cold");
    CHECK(show["current"] == true);

    // Revert of a stopped VM's snapshot leaves it stopped; delete removes it from libvirt.
    REQUIRE(hvd.ctl({"vm", "snapshot", "revert", vm, "cold"}, 120s).exit_code == 0);
    CHECK(domstate(vm) == "shut off");
    REQUIRE(hvd.ctl({"vm", "snapshot", "delete", vm, "cold"}, 120s).exit_code == 0);
    CHECK(libvirt_snapshot_count(vm) == 0);
    // A VM with snapshots can still be deleted (with its snapshots).
    REQUIRE(hvd.ctl({"vm", "snapshot", "create", vm, "again"}, 120s).exit_code == 0);
    auto del = hvd.ctl({"vm", "delete", vm, "--purge"}, 120s);
    INFO(del.describe());
    CHECK(del.exit_code == 0);
    CHECK(!domain_exists(vm));
}

TEST_CASE("clone: a full copy of a stopped VM with its own disks, new uuid and MACs", "[integration][snapshot][clone]") {
    Hvd hvd;
    auto src = hvd.vm("clsrc");
    auto dst = hvd.vm("cldst");
    REQUIRE(hvd.ctl({"vm", "create", src, "--memory", "64M", "--disk", "size=16M", "--disk", "size=8M,format=raw",
                     "--net", "network=default"})
                .exit_code == 0);
    auto s = hvd.show(src);
    // Something on each disk to compare.
    for (const auto& d : s["disks"]) {
        auto path = d.value("path", "");
        REQUIRE(!path.empty());
        auto w = run({"qemu-io", "-f", d.value("format", "qcow2"), "-c", "write -P 0x5a 0 64k", path});
        INFO(w.describe());
        REQUIRE(w.exit_code == 0);
    }
    // Refusals first: nothing made.
    CHECK(hvd.http("POST", "/v1/vms/" + src + "/clone", R"({"name":"bad name"})").status == 400);
    CHECK(hvd.http("POST", "/v1/vms/" + src + "/clone", R"({"name":"x","colour":1})").status == 400);
    CHECK(hvd.http("POST", "/v1/vms/it-no-such-vm/clone", R"({"name":"x"})").status == 404);
    CHECK(hvd.http("POST", "/v1/vms/" + src + "/clone", R"({"name":")" + src + R"("})").status == 409);
    CHECK(hvd.http("POST", "/v1/vms/" + src + "/clone", R"({"name":"x","pool":"nosuchpool"})").status == 404);

    auto c = hvd.ctl({"vm", "clone", src, dst, "-o", "json"}, 180s);
    INFO(c.describe());
    REQUIRE(c.exit_code == 0);
    auto d = hvd.show(dst);
    CHECK(d["uuid"] != s["uuid"]);
    REQUIRE(d["nics"].size() == 1);
    CHECK(d["nics"][0]["mac"] != s["nics"][0]["mac"]);
    REQUIRE(d["disks"].size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        const auto& a = s["disks"][i];
        const auto& b = d["disks"][i];
        CHECK(b["volume"] == dst + "-" + a["name"].get<std::string>());
        CHECK(b["format"] == a["format"]);
        CHECK(b["owned"] == true);
        CHECK(b["path"] != a["path"]);
        auto cmp = run({"qemu-img", "compare", "-f", a.value("format", ""), "-F", b.value("format", ""),
                        a.value("path", ""), b.value("path", "")});
        INFO(cmp.describe());
        CHECK(cmp.exit_code == 0);  // identical contents
    }
    // The copy is independent: deleting it with --purge leaves the source's volumes.
    auto del = hvd.ctl({"vm", "delete", dst, "--purge"}, 120s);
    INFO(del.describe());
    REQUIRE(del.exit_code == 0);
    for (const auto& a : s["disks"]) CHECK(file_exists(a.value("path", "")));
    for (const auto& b : d["disks"]) CHECK(!file_exists(b.value("path", "")));

    // Into another (dir) pool: full copies there with the same contents, in that pool's format.
    const std::string other_dir = hvd.state_dir + "/other-pool";
    std::filesystem::create_directories(other_dir);
    auto addp = hvd.ctl({"storage", "pool", "add", "other", "--path", other_dir});
    INFO(addp.describe());
    REQUIRE(addp.exit_code == 0);
    auto linked_other = hvd.ctl({"vm", "clone", src, dst, "--pool", "other", "--linked"});
    CHECK(linked_other.exit_code != 0);
    CHECK(!domain_exists(dst));
    auto co = hvd.ctl({"vm", "clone", src, dst, "--pool", "other", "-o", "json"}, 180s);
    INFO(co.describe());
    REQUIRE(co.exit_code == 0);
    auto o = hvd.show(dst);
    REQUIRE(o["disks"].size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        const auto& a = s["disks"][i];
        const auto& b = o["disks"][i];
        CHECK(b["pool"] == "other");
        CHECK(b.value("path", "").rfind(other_dir + "/", 0) == 0);
        CHECK(b["format"] == "qcow2");  // the dir pool's default, whatever the source's
        auto cmp = run({"qemu-img", "compare", "-f", a.value("format", ""), "-F", b.value("format", ""),
                        a.value("path", ""), b.value("path", "")});
        INFO(cmp.describe());
        CHECK(cmp.exit_code == 0);
    }
    REQUIRE(hvd.ctl({"vm", "delete", dst, "--purge"}, 120s).exit_code == 0);
    for (const auto& b : o["disks"]) CHECK(!file_exists(b.value("path", "")));

    // A running VM is refused (409) and nothing is made.
    REQUIRE(hvd.ctl({"vm", "start", src}).exit_code == 0);
    CHECK(hvd.http("POST", "/v1/vms/" + src + "/clone", R"({"name":")" + dst + R"("})").status == 409);
    CHECK(!domain_exists(dst));
}

TEST_CASE("template: never started, linked clones read from it and keep it", "[integration][snapshot][clone]") {
    Hvd hvd;
    auto tpl = hvd.vm("tplsrc");
    auto lc = hvd.vm("tpllc");
    auto fc = hvd.vm("tplfc");
    REQUIRE(hvd.ctl({"vm", "create", tpl, "--memory", "64M", "--disk", "size=16M", "--disk", "size=8M,format=raw"})
                .exit_code == 0);
    auto t = hvd.show(tpl);
    for (const auto& d : t["disks"]) {
        auto w = run({"qemu-io", "-f", d.value("format", "qcow2"), "-c", "write -P 0x5a 0 64k", d.value("path", "")});
        INFO(w.describe());
        REQUIRE(w.exit_code == 0);
    }
    // A linked clone needs a template: refused, nothing made.
    CHECK(hvd.http("POST", "/v1/vms/" + tpl + "/clone", R"({"name":")" + lc + R"(","linked":true})").status == 409);
    CHECK(hvd.http("POST", "/v1/vms/" + tpl + "/clone", R"({"name":")" + lc + R"(","linked":"yes"})").status == 400);
    CHECK_FALSE(domain_exists(lc));

    // A VM with snapshots cannot become a template.
    {
        auto snapped = hvd.vm("tplsnap");
        REQUIRE(hvd.ctl({"vm", "create", snapped, "--memory", "64M", "--disk", "size=8M"}).exit_code == 0);
        REQUIRE(hvd.ctl({"vm", "snapshot", "create", snapped, "s1"}, 120s).exit_code == 0);
        auto refused = hvd.ctl({"vm", "template", snapped});
        CHECK(refused.exit_code == 5);
        CHECK_THAT(refused.err, Catch::Contains("snapshot"));
        CHECK(hvd.show(snapped).value("template", false) == false);
        CHECK(hvd.ctl({"vm", "delete", snapped, "--purge"}, 60s).exit_code == 0);
    }

    auto mk = hvd.ctl({"vm", "template", tpl, "-o", "json"});
    INFO(mk.describe());
    REQUIRE(mk.exit_code == 0);
    CHECK(hvd.show(tpl).value("template", false) == true);
    CHECK(hvd.ctl({"vm", "template", tpl}).exit_code == 0);  // idempotent
    // A template is never started and its disks do not change.
    auto start = hvd.ctl({"vm", "start", tpl});
    CHECK(start.exit_code == 5);
    CHECK_THAT(start.err, Catch::Contains("template"));
    CHECK(hvd.ctl({"vm", "snapshot", "create", tpl, "s2"}).exit_code == 5);
    CHECK(hvd.ctl({"vm", "disk", "attach", tpl, "--disk", "size=8M"}).exit_code == 5);
    CHECK(hvd.show(tpl)["disks"].size() == 2);

    auto c = hvd.ctl({"vm", "clone", tpl, lc, "--linked", "-o", "json"}, 120s);
    INFO(c.describe());
    REQUIRE(c.exit_code == 0);
    auto l = hvd.show(lc);
    CHECK(l.value("template", false) == false);
    CHECK(l["uuid"] != t["uuid"]);
    REQUIRE(l["disks"].size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        const auto& a = t["disks"][i];
        const auto& b = l["disks"][i];
        auto vol = hvd.ctl_json({"storage", "volume", "show", "local", b["volume"].get<std::string>()});
        CHECK(vol["base"] == a["volume"]);
        CHECK(vol["format"] == "qcow2");  // an overlay, whatever the base's format
        CHECK(vol["allocation"].get<std::uint64_t>() < (2u << 20));  // holds only its own writes
        auto info = run({"qemu-img", "info", "--output=json", "-U", b.value("path", "")});
        REQUIRE(info.exit_code == 0);
        CHECK(json::parse(info.out).value("backing-filename", "") == a.value("path", ""));
        auto cmp = run({"qemu-img", "compare", "-U", a.value("path", ""), b.value("path", "")});
        INFO(cmp.describe());
        CHECK(cmp.exit_code == 0);
    }
    // Writes to the clone stay in the clone.
    const std::string lpath = l["disks"][0]["path"];
    REQUIRE(run({"qemu-io", "-f", "qcow2", "-c", "write -P 0xa5 0 64k", lpath}).exit_code == 0);
    CHECK(run({"qemu-io", "-f", "qcow2", "-c", "read -P 0xa5 0 64k", lpath}).exit_code == 0);
    auto base_read = run({"qemu-io", "-f", t["disks"][0].value("format", "qcow2"), "-c", "read -P 0x5a 0 64k",
                          t["disks"][0].value("path", "")});
    CHECK(base_read.out.find("Pattern verification failed") == std::string::npos);
    // The clone runs.
    auto st = hvd.ctl({"vm", "start", lc});
    INFO(st.describe());
    CHECK(st.exit_code == 0);
    CHECK(hvd.ctl({"vm", "stop", lc}, 60s).exit_code == 0);

    // The template's disks are the clone's base: not deleted while it exists; nothing changes.
    auto del = hvd.ctl({"vm", "delete", tpl, "--purge"});
    CHECK(del.exit_code == 5);
    CHECK_THAT(del.err, Catch::Contains(lc + "-disk0"));
    CHECK(domain_exists(tpl));
    for (const auto& a : t["disks"]) CHECK(file_exists(a.value("path", "")));
    CHECK(hvd.ctl({"storage", "volume", "delete", "local", t["disks"][0]["volume"].get<std::string>()}).exit_code == 5);

    // A full clone of the linked clone is a volume of its own (no base), same contents.
    auto f = hvd.ctl({"vm", "clone", lc, fc}, 120s);
    INFO(f.describe());
    REQUIRE(f.exit_code == 0);
    auto fv = hvd.show(fc);
    for (std::size_t i = 0; i < 2; ++i) {
        auto vol = hvd.ctl_json({"storage", "volume", "show", "local", fv["disks"][i]["volume"].get<std::string>()});
        CHECK(vol.value("base", "") == "");
        auto cmp = run({"qemu-img", "compare", "-U", l["disks"][i].value("path", ""), fv["disks"][i].value("path", "")});
        CHECK(cmp.exit_code == 0);
    }

    CHECK(hvd.ctl({"vm", "delete", lc, "--purge"}, 60s).exit_code == 0);
    CHECK(hvd.ctl({"vm", "delete", fc, "--purge"}, 60s).exit_code == 0);
    auto gone = hvd.ctl({"vm", "delete", tpl, "--purge"}, 60s);
    INFO(gone.describe());
    CHECK(gone.exit_code == 0);
    for (const auto& a : t["disks"]) CHECK(!file_exists(a.value("path", "")));
}
