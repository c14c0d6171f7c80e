// Disks on VMs against a real hvd + private libvirtd (TCG guests without an OS):
// buses and per-disk settings in the domain XML, the three disk modes proven with real writes
// from the QEMU side (qemu-io through the HMP monitor), attach/detach cold and hot, CD/DVD
// insert/eject while running, bad input.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::size_t count(const std::string& hay, const std::string& needle) {
    std::size_t n = 0;
    for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + needle.size())) ++n;
    return n;
}

std::string dumpxml(const std::string& vm, bool inactive = false) {
    std::vector<std::string> args{"dumpxml", vm};
    if (inactive) args.push_back("--inactive");
    auto r = virsh(args);
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    return r.out;
}

// The <disk> element of the (live) XML whose text contains `path`.
std::string disk_element(const std::string& xml, const std::string& path) {
    std::size_t pos = 0;
    while ((pos = xml.find("<disk ", pos)) != std::string::npos) {
        auto end = xml.find("</disk>", pos);
        auto el = xml.substr(pos, end - pos);
        if (el.find(path) != std::string::npos) return el;
        pos = end;
    }
    return "";
}

std::string alias_of(const std::string& disk_el) {
    std::smatch m;
    if (std::regex_search(disk_el, m, std::regex("<alias name='([^']+)'/>"))) return m[1];
    return "";
}

// qemu-io through the HMP monitor, on the BlockBackend of the disk with that live alias.
// virtio-blk: the backend sits on the proxy's child device "virtio-backend".
Result qemu_io(const std::string& vm, const std::string& alias, const std::string& cmd) {
    std::string dev = alias.rfind("virtio-disk", 0) == 0 ? "/machine/peripheral/" + alias + "/virtio-backend" : alias;
    return virsh({"qemu-monitor-command", vm, "--hmp", "qemu-io -d " + dev + " \"" + cmd + "\""});
}

// First `n` bytes of a raw image.
std::string head_bytes(const std::string& path, std::size_t n) {
    std::ifstream in(path, std::ios::binary);
    std::string buf(n, '\0');
    in.read(buf.data(), static_cast<std::streamsize>(n));
    buf.resize(static_cast<std::size_t>(in.gcount()));
    return buf;
}

bool all_bytes(const std::string& s, unsigned char v, std::size_t n) {
    return s.size() == n && std::all_of(s.begin(), s.end(), [v](char c) { return static_cast<unsigned char>(c) == v; });
}

std::string disk_path(const json& vm, const std::string& name) {
    for (const auto& d : vm["disks"])
        if (d["name"] == name) return d["path"];
    return "";
}

const json* find_disk(const json& vm, const std::string& name) {
    for (const auto& d : vm["disks"])
        if (d["name"] == name) return &d;
    return nullptr;
}

// Directory of a pool's content type, from the path of one of its volumes (<pool>/images/<vol>).
std::string pool_root_of(const std::string& volume_path) { return fs::path(volume_path).parent_path().parent_path(); }

void ok(const Result& r) {
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
}

}  // namespace

TEST_CASE("disk buses, one virtio-scsi controller, cache/discard/iotune/modes in the domain XML",
          "[integration][disks]") {
    Hvd hvd;
    auto name = hvd.vm("dbus");
    ok(hvd.ctl({"vm", "create", name, "--memory", "64M",                                  //
                "--disk", "size=16M,bus=sata,cache=writeback",                            //
                "--disk", "size=16M,bus=scsi,discard=on,total_iops=500",                  //
                "--disk", "size=16M,bus=scsi,mode=independent-persistent,write_bps=1M",   //
                "--disk", "size=16M,bus=virtio,cache=directsync,read_bps=10M,read_iops=40,mode=independent-nonpersistent"}));
    auto xml = dumpxml(name, true);
    INFO(xml);
    CHECK(count(xml, "bus='sata'") == 1);
    CHECK(count(xml, "bus='scsi'") == 2);
    CHECK(count(xml, "bus='virtio'") >= 1);
    CHECK(count(xml, "<controller type='scsi'") == 1);
    CHECK(count(xml, "model='virtio-scsi'") == 1);
    CHECK(xml.find("cache='writeback'") != std::string::npos);
    CHECK(xml.find("cache='directsync'") != std::string::npos);
    CHECK(xml.find("discard='unmap'") != std::string::npos);
    CHECK(xml.find("<total_iops_sec>500</total_iops_sec>") != std::string::npos);
    CHECK(xml.find("<write_bytes_sec>1048576</write_bytes_sec>") != std::string::npos);
    CHECK(xml.find("<read_bytes_sec>10485760</read_bytes_sec>") != std::string::npos);
    CHECK(xml.find("<read_iops_sec>40</read_iops_sec>") != std::string::npos);
    CHECK(count(xml, "snapshot='no'") == 2);
    CHECK(count(xml, "<transient/>") == 1);

    auto vm = hvd.show(name);
    REQUIRE(vm["disks"].size() == 4);
    CHECK(vm["disks"][1]["discard"] == true);
    CHECK(vm["disks"][3]["mode"] == "independent-nonpersistent");
    CHECK(vm["disks"][3]["limits"]["read_iops"] == 40);

    // vm show: per disk bus, volume (pool:name), provision, mode, cache, discard, limits.
    auto r = hvd.ctl({"vm", "show", name});
    ok(r);
    INFO(r.out);
    CHECK_THAT(r.out, Catch::Contains("NAME") && Catch::Contains("PROVISION") && Catch::Contains("LIMITS"));
    CHECK_THAT(r.out, Catch::Contains("local:" + name + "-disk0"));
    CHECK_THAT(r.out, Catch::Contains("independent-persistent"));
    CHECK_THAT(r.out, Catch::Contains("writeback"));
    CHECK_THAT(r.out, Catch::Contains("unmap"));
    CHECK_THAT(r.out, Catch::Contains("total_iops=500"));
    CHECK_THAT(r.out, Catch::Contains("thin"));

    // The VM starts with all of it (QEMU accepts the transient disk on virtio, the limits...).
    ok(hvd.ctl({"vm", "start", name}));
    CHECK(domstate(name) == "running");
    ok(hvd.ctl({"vm", "stop", name}));
}

TEST_CASE("disk modes: nonpersistent writes vanish at power off, persistent and dependent stay, "
          "independent disks are left out of snapshots",
          "[integration][disks][modes]") {
    Hvd hvd;
    auto name = hvd.vm("dmode");
    ok(hvd.ctl({"vm", "create", name, "--memory", "64M",                       //
                "--disk", "name=dep,size=16M,format=raw,bus=virtio",          //
                "--disk", "name=pers,size=16M,format=raw,bus=scsi,mode=independent-persistent",  //
                "--disk", "name=nonp,size=16M,format=raw,bus=sata,mode=independent-nonpersistent"}));
    auto vm = hvd.show(name);
    const auto dep = disk_path(vm, "dep"), pers = disk_path(vm, "pers"), nonp = disk_path(vm, "nonp");
    REQUIRE(file_exists(dep));
    REQUIRE(file_exists(pers));
    REQUIRE(file_exists(nonp));
    const std::size_t n = 64 * 1024;
    CHECK(all_bytes(head_bytes(nonp, n), 0, n));

    ok(hvd.ctl({"vm", "start", name}));
    // libvirt 9.0 puts the overlay of a transient disk next to the volume while it runs.
    CHECK(file_exists(nonp + ".TRANSIENT-" + name));
    auto live = dumpxml(name);
    for (const auto& [path, label] : {std::pair{dep, "dep"}, std::pair{pers, "pers"}, std::pair{nonp, "nonp"}}) {
        auto el = disk_element(live, path);
        auto alias = alias_of(el);
        INFO(label << " alias " << alias << "\n" << el);
        REQUIRE_FALSE(alias.empty());
        auto w = qemu_io(name, alias, "write -P 0xab 0 64k");
        INFO(w.describe());
        REQUIRE(w.exit_code == 0);
        CHECK(w.out.find("rror") == std::string::npos);
        // Read back through QEMU: the guest sees the pattern on every disk, nonpersistent included.
        auto rd = qemu_io(name, alias, "read -P 0xab 0 64k");
        INFO(rd.describe());
        CHECK(rd.out.find("fail") == std::string::npos);
        CHECK(rd.out.find("rror") == std::string::npos);
    }
    ok(hvd.ctl({"vm", "stop", name}));  // power off

    CHECK(all_bytes(head_bytes(dep, n), 0xab, n));   // dependent: written
    CHECK(all_bytes(head_bytes(pers, n), 0xab, n));  // independent-persistent: written
    CHECK(all_bytes(head_bytes(nonp, n), 0, n));     // independent-nonpersistent: unchanged
    CHECK_FALSE(file_exists(nonp + ".TRANSIENT-" + name));  // overlay gone with the power off

    // Snapshots: a disk-only external snapshot covers the dependent disk only.
    ok(hvd.ctl({"vm", "start", name}));
    auto snap = virsh({"snapshot-create-as", name, "s1", "--disk-only", "--no-metadata", "--atomic"});
    INFO(snap.describe());
    REQUIRE(snap.exit_code == 0);
    auto blk = virsh({"domblklist", name});
    INFO(blk.describe());
    CHECK(blk.out.find(dep + "\n") == std::string::npos);  // dep now runs on a new overlay
    CHECK(blk.out.find(pers) != std::string::npos);        // independent: untouched
    CHECK(blk.out.find(nonp + ".TRANSIENT-" + name) != std::string::npos);
    CHECK(file_exists(fs::path(dep).replace_extension("s1")));
    CHECK_FALSE(file_exists(fs::path(pers).replace_extension("s1")));
    CHECK_FALSE(file_exists(fs::path(nonp).replace_extension("s1")));
    ok(hvd.ctl({"vm", "stop", name}));
    std::error_code ec;
    fs::remove(fs::path(dep).replace_extension("s1"), ec);
}

TEST_CASE("attach and detach while stopped, hot-plug scsi and virtio on a running VM, sata refused",
          "[integration][disks][attach]") {
    Hvd hvd;
    auto name = hvd.vm("datt");
    ok(hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M"}));

    // Stopped: a sata disk, then two scsi disks (one controller).
    ok(hvd.ctl({"vm", "disk", "attach", name, "--disk", "size=16M,bus=sata,cache=none"}));
    auto vm = hvd.show(name);
    REQUIRE(vm["disks"].size() == 2);
    CHECK(vm["disks"][1]["name"] == "disk1");
    CHECK(vm["disks"][1]["bus"] == "sata");
    CHECK(vm["disks"][1]["owned"] == true);
    CHECK(vm["disks"][1]["volume"] == name + "-disk1");
    const auto sata = disk_path(vm, "disk1");
    CHECK(file_exists(sata));
    ok(hvd.ctl({"vm", "disk", "attach", name, "--disk", "name=data,size=16M,bus=scsi,mode=independent-persistent"}));
    ok(hvd.ctl({"vm", "disk", "attach", name, "--disk", "name=logs,size=16M,bus=scsi,discard=on"}));
    auto xml = dumpxml(name, true);
    INFO(xml);
    CHECK(count(xml, "model='virtio-scsi'") == 1);
    CHECK(count(xml, "bus='scsi'") == 2);
    CHECK(count(xml, "bus='sata'") == 1);
    CHECK(xml.find(sata) != std::string::npos);
    const auto data = disk_path(hvd.show(name), "data");

    // Detach while stopped; --purge deletes the volume hv made.
    ok(hvd.ctl({"vm", "disk", "detach", name, "data", "--purge"}));
    CHECK_FALSE(file_exists(data));
    xml = dumpxml(name, true);
    CHECK(xml.find(data) == std::string::npos);
    CHECK(find_disk(hvd.show(name), "data") == nullptr);
    // Detach without --purge keeps it.
    const auto logs = disk_path(hvd.show(name), "logs");
    ok(hvd.ctl({"vm", "disk", "detach", name, "logs"}));
    CHECK(file_exists(logs));
    CHECK(dumpxml(name, true).find(logs) == std::string::npos);
    // ...and it can come back by volume name (an existing volume: not owned).
    ok(hvd.ctl({"vm", "disk", "attach", name, "--disk", "name=logs,volume=" + name + "-logs,bus=scsi"}));
    vm = hvd.show(name);
    REQUIRE(find_disk(vm, "logs") != nullptr);
    CHECK((*find_disk(vm, "logs"))["owned"] == false);
    CHECK(dumpxml(name, true).find(logs) != std::string::npos);
    // The same volume cannot be attached twice.
    auto r = hvd.ctl({"vm", "disk", "attach", name, "--disk", "name=again,volume=" + name + "-logs"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);

    // Running: scsi hot-plug works (live and persistent; the controller is there already),
    // then virtio; sata is refused with 409 / exit 5.
    ok(hvd.ctl({"vm", "start", name}));
    ok(hvd.ctl({"vm", "disk", "attach", name, "--disk", "name=hot,size=16M,bus=scsi"}));
    const auto hot = disk_path(hvd.show(name), "hot");
    auto blk = virsh({"domblklist", name});
    INFO(blk.describe());
    CHECK(blk.out.find(hot) != std::string::npos);
    CHECK(dumpxml(name, true).find(hot) != std::string::npos);
    // virtio too (a spare PCIe root port is left even after the cold-attached scsi controller).
    ok(hvd.ctl({"vm", "disk", "attach", name, "--disk", "name=hotv,size=16M,bus=virtio,cache=writeback"}));
    const auto hotv = disk_path(hvd.show(name), "hotv");
    blk = virsh({"domblklist", name});
    INFO(blk.describe());
    CHECK(blk.out.find(hotv) != std::string::npos);
    CHECK(dumpxml(name, true).find(hotv) != std::string::npos);

    r = hvd.ctl({"vm", "disk", "attach", name, "--disk", "name=nope,size=16M,bus=sata"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    CHECK_THAT(r.err, Catch::Contains("sata disks cannot be hot-plugged"));
    CHECK_FALSE(file_exists(fs::path(hot).parent_path() / (name + "-nope.qcow2")));
    CHECK(find_disk(hvd.show(name), "nope") == nullptr);
    auto h = hvd.http("POST", "/v1/vms/" + name + "/disks", R"({"name":"nope","size":"16M","bus":"sata"})");
    CHECK(h.status == 409);
    // Detaching a sata disk from a running VM: refused as well.
    r = hvd.ctl({"vm", "disk", "detach", name, "disk1"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    CHECK(virsh({"domblklist", name}).out.find(sata) != std::string::npos);

    // Unknown disk / VM.
    CHECK(hvd.ctl({"vm", "disk", "detach", name, "no-such-disk"}).exit_code == 4);
    CHECK(hvd.ctl({"vm", "disk", "attach", "it-no-such-vm", "--disk", "size=16M"}).exit_code == 4);
    ok(hvd.ctl({"vm", "stop", name}));
}

TEST_CASE("CD/DVD insert and eject on a running VM", "[integration][disks][cdrom]") {
    Hvd hvd;
    auto name = hvd.vm("dcd");
    auto plain = hvd.vm("dcd-nodrive");
    // A VM first, so the pool's directories exist; then two ISOs put there directly.
    ok(hvd.ctl({"vm", "create", plain, "--memory", "64M", "--disk", "size=16M"}));
    const auto root = pool_root_of(disk_path(hvd.show(plain), "disk0"));
    fs::create_directories(root + "/iso");
    std::ofstream(root + "/iso/test.iso") << std::string(64 * 1024, 'A');
    std::ofstream(root + "/iso/other.iso") << std::string(64 * 1024, 'B');
    const auto iso1 = root + "/iso/test.iso", iso2 = root + "/iso/other.iso";

    ok(hvd.ctl({"vm", "create", name, "--memory", "64M", "--cdrom", "local:iso/test.iso"}));
    CHECK(hvd.show(name)["cdrom"] == iso1);
    ok(hvd.ctl({"vm", "start", name}));
    auto blk = virsh({"domblklist", name});
    CHECK(blk.out.find(iso1) != std::string::npos);

    ok(hvd.ctl({"vm", "cdrom", "eject", name}));
    blk = virsh({"domblklist", name});
    INFO(blk.describe());
    CHECK(blk.out.find(iso1) == std::string::npos);
    CHECK(hvd.show(name)["cdrom"] == "");
    CHECK(dumpxml(name, true).find(iso1) == std::string::npos);  // the definition too

    ok(hvd.ctl({"vm", "cdrom", "insert", name, "local:iso/other.iso"}));
    blk = virsh({"domblklist", name});
    INFO(blk.describe());
    CHECK(blk.out.find(iso2) != std::string::npos);
    CHECK(hvd.show(name)["cdrom"] == iso2);
    CHECK(dumpxml(name, true).find(iso2) != std::string::npos);
    CHECK(domstate(name) == "running");

    // Errors: unknown ISO -> 404 (exit 4); a running VM without a drive -> 409 (exit 5).
    auto r = hvd.ctl({"vm", "cdrom", "insert", name, "local:iso/missing.iso"});
    INFO(r.describe());
    CHECK(r.exit_code == 4);
    ok(hvd.ctl({"vm", "start", plain}));
    r = hvd.ctl({"vm", "cdrom", "insert", plain, "local:iso/test.iso"});
    INFO(r.describe());
    CHECK(r.exit_code == 5);
    // Stopped, the drive is added to the definition.
    ok(hvd.ctl({"vm", "stop", plain}));
    ok(hvd.ctl({"vm", "cdrom", "insert", plain, "local:iso/test.iso"}));
    auto xml = dumpxml(plain, true);
    CHECK(xml.find("device='cdrom'") != std::string::npos);
    CHECK(xml.find(iso1) != std::string::npos);
    ok(hvd.ctl({"vm", "stop", name}));
}

TEST_CASE("bad disk input: exit 3 and nothing created, virtio hot-plug, a failed one leaves no volume",
          "[integration][disks][errors]") {
    Hvd hvd;
    auto name = hvd.vm("dbad");
    ok(hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M"}));
    const auto dir = fs::path(disk_path(hvd.show(name), "disk0")).parent_path().string();
    const auto before = list_dir(dir);

    for (const std::string& bad : {"size=16M,cache=fast", "size=16M,mode=sometimes", "size=16M,bus=usb",
                                   "size=16M,total_iops=10,read_iops=5", "size=16M,bus=ide"}) {
        auto r = hvd.ctl({"vm", "disk", "attach", name, "--disk", bad});
        INFO(bad << ": " << r.describe());
        CHECK(r.exit_code == 3);
    }
    // The same through the API (hvctl checks some of it before sending).
    auto h = hvd.http("POST", "/v1/vms/" + name + "/disks", R"({"size":"16M","cache":"fast"})");
    CHECK(h.status == 400);
    h = hvd.http("POST", "/v1/vms/" + name + "/disks", R"({"size":"16M","mode":"independent"})");
    CHECK(h.status == 400);
    h = hvd.http("POST", "/v1/vms/" + name + "/disks", R"({"size":"16M","bus":"ide"})");  // q35
    CHECK(h.status == 400);
    CHECK(hvd.show(name)["disks"].size() == 1);
    CHECK(list_dir(dir) == before);

    // virtio hot-plug, until libvirt itself refuses one after hvd made its volume: on q35 every
    // virtio disk needs its own PCIe root port; hv's domain XML leaves 4 of them empty, so the
    // fifth hot-plugged disk fails. hvd answers 409 and deletes the volume it made.
    ok(hvd.ctl({"vm", "start", name}));
    int attached = 0;
    Result refused;
    for (int i = 0; i < 12; ++i) {
        const auto disk = "h" + std::to_string(i);
        auto r = hvd.ctl({"vm", "disk", "attach", name, "--disk", "name=" + disk + ",size=2M"});
        if (r.exit_code == 0) {
            // Hot-plugged: in the running QEMU and in the definition.
            const auto path = disk_path(hvd.show(name), disk);
            CHECK(virsh({"domblklist", name}).out.find(path) != std::string::npos);
            CHECK(dumpxml(name, true).find(path) != std::string::npos);
        } else {
            refused = r;
            INFO("refused " << disk << ": " << r.describe());
            CHECK(r.exit_code == 5);
            CHECK_THAT(r.err, Catch::Contains("hot-plug"));
            CHECK_FALSE(file_exists(dir + "/" + name + "-" + disk + ".qcow2"));
            CHECK(find_disk(hvd.show(name), disk) == nullptr);
            CHECK(dumpxml(name, true).find(name + "-" + disk) == std::string::npos);
            break;
        }
        ++attached;
    }
    INFO("hot-plugged " << attached << " virtio disks before libvirt refused one: " << refused.describe());
    CHECK(attached == 4);
    CHECK(refused.exit_code == 5);
    ok(hvd.ctl({"vm", "stop", name}));
}
