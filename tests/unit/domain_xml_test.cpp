// Domain XML: golden files plus the metadata, escaping and live-XML readers.
//
// Golden files: every tests/data/<case>.json is a VmSpec as hvd holds it just before it
// generates XML (disks with name and path, or a network source, set; rbd-*.json are RBD disks). The test generates the domain XML and compares
// it byte-for-byte with tests/data/<case>.xml. A case may carry generator options in one
// reserved top-level key, removed before the VmSpec is parsed:
//     "_options": {"domain_type": "kvm", "serial_log_dir": "/var/log/hv", "uuid": "..."}
// (all optional; defaults are DomainXmlOptions{} and no uuid).
// HV_REGENERATE_GOLDEN=1 writes the .xml files instead of comparing. An .xml file without a
// .json partner fails the test, so stale goldens do not linger.
// Check new goldens against libvirt's schema: virt-xml-validate tests/data/<case>.xml domain
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "hv/api/vm.hpp"
#include "hv/error.hpp"
#include "hv/virt/domain_xml.hpp"

#ifndef HV_TEST_DATA_DIR
#error "HV_TEST_DATA_DIR must name the tests/data directory"
#endif

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + p.string());
}

std::vector<fs::path> data_files(const std::string& ext) {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(HV_TEST_DATA_DIR)) {
        if (entry.is_regular_file() && entry.path().extension() == ext) out.push_back(entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

bool regenerate() {
    const char* v = std::getenv("HV_REGENERATE_GOLDEN");
    return v && std::string(v) == "1";
}

// "line N: expected '...' got '...'" for the first line that differs.
std::string first_difference(const std::string& expected, const std::string& actual) {
    std::istringstream e(expected), a(actual);
    std::string el, al;
    for (int line = 1;; ++line) {
        const bool he = static_cast<bool>(std::getline(e, el));
        const bool ha = static_cast<bool>(std::getline(a, al));
        if (!he && !ha) return "only the trailing newline differs";
        if (he != ha || el != al)
            return "line " + std::to_string(line) + ": expected '" + (he ? el : "<end of file>") + "' got '" +
                   (ha ? al : "<end of file>") + "'";
    }
}

struct GoldenCase {
    hv::api::VmSpec spec;
    hv::virt::DomainXmlOptions opts;
    std::string uuid;
};

GoldenCase load_case(const fs::path& p) {
    json j = json::parse(read_file(p));
    GoldenCase c;
    if (j.contains("_options")) {
        json o = j["_options"];
        j.erase("_options");
        for (const auto& [key, value] : o.items()) {
            if (key == "domain_type") c.opts.domain_type = value.get<std::string>();
            else if (key == "serial_log_dir") c.opts.serial_log_dir = value.get<std::string>();
            else if (key == "uuid") c.uuid = value.get<std::string>();
            else throw std::runtime_error("unknown _options key '" + key + "'");
        }
    }
    c.spec = hv::api::vm_spec_from_json(j, hv::api::JsonOrigin::hvd);  // as read from metadata
    // A disk without a format gets its pool's (qcow2 on the dir pools of these cases) before
    // hvd writes XML.
    for (auto& d : c.spec.disks)
        if (d.format.empty()) d.format = "qcow2";
    hv::api::validate(c.spec);  // cases are specs hvd would accept
    return c;
}

hv::api::VmSpec full_spec() {
    hv::api::VmSpec s;
    s.name = "db-1.prod";
    s.cpus = 4;
    s.memory = 2 * hv::api::GiB;
    hv::api::DiskSpec d;
    d.name = "disk0";
    d.size = 8 * hv::api::GiB;
    d.path = "/var/lib/hv/images/db-1.prod-disk0.qcow2";
    d.format = "qcow2";
    d.owned = true;
    s.disks.push_back(d);
    d.name = "data";
    d.format = "raw";
    d.bus = "scsi";
    d.path = "/srv/images/data & more.raw";
    d.owned = false;
    s.disks.push_back(d);
    hv::api::NicSpec n;
    n.bridge = "vmbr0";
    n.mac = "52:54:00:aa:bb:cc";
    s.nics.push_back(n);
    s.cdrom = "/var/lib/hv/iso/debian-12.iso";
    s.firmware = hv::api::Firmware::uefi;
    s.machine = "pc-q35-7.2";
    s.description = "Tom's <db> & \"cache\"\nsecond line\ttab, caf\xC3\xA9";
    s.tags = {"prod", "db"};
    return s;
}

bool same_spec(const hv::api::VmSpec& a, const hv::api::VmSpec& b) { return json(a) == json(b); }

// Escapes like libxml2 does when libvirt re-serializes text: only & < > (quotes stay literal).
std::string libxml2_text_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '&') out += "&amp;";
        else if (c == '<') out += "&lt;";
        else if (c == '>') out += "&gt;";
        else out += c;
    }
    return out;
}

}  // namespace

TEST_CASE("domain XML matches the golden files", "[virt][golden]") {
    const auto cases = data_files(".json");
    REQUIRE(!cases.empty());
    const bool regen = regenerate();
    for (const auto& json_path : cases) {
        const auto name = json_path.stem().string();
        const auto xml_path = fs::path(json_path).replace_extension(".xml");
        INFO("case " << name << " (" << json_path.string() << ")");

        GoldenCase c;
        REQUIRE_NOTHROW(c = load_case(json_path));
        const auto actual = hv::virt::domain_xml(c.spec, c.opts, c.uuid);
        CHECK(actual == hv::virt::domain_xml(c.spec, c.opts, c.uuid));  // deterministic

        if (regen) {
            write_file(xml_path, actual);
            WARN("wrote " << xml_path.string());
            continue;
        }
        INFO("HV_REGENERATE_GOLDEN=1 rewrites the golden files");
        REQUIRE(fs::exists(xml_path));
        const auto expected = read_file(xml_path);
        const bool same = actual == expected;
        INFO(first_difference(expected, actual));
        CHECK(same);
    }
}

TEST_CASE("every golden XML file has a JSON case", "[virt][golden]") {
    for (const auto& xml_path : data_files(".xml")) {
        INFO("unused golden file " << xml_path.string() << ": add " << xml_path.stem().string()
                                   << ".json or delete it");
        CHECK(fs::exists(fs::path(xml_path).replace_extension(".json")));
    }
}

TEST_CASE("ide disks need an i440fx machine", "[virt]") {
    hv::api::VmSpec s;
    s.name = "old";
    hv::api::DiskSpec d;
    d.name = "disk0";
    d.bus = "ide";
    d.path = "/var/lib/hv/images/old-disk0.qcow2";
    d.format = "qcow2";
    s.disks.push_back(d);

    for (const char* machine : {"q35", "pc-q35-7.2"}) {
        s.machine = machine;
        INFO("machine " << machine);
        try {
            hv::virt::domain_xml(s, {});
            FAIL("expected hv::Error");
        } catch (const hv::Error& e) {
            CHECK(e.code() == hv::Errc::invalid_input);
            CHECK_THAT(e.what(), Catch::Contains("ide needs machine type pc (i440fx)"));
        }
    }

    s.machine = "pc";
    CHECK_NOTHROW(hv::virt::domain_xml(s, {}));
    s.machine = "pc-i440fx-7.2";
    CHECK_NOTHROW(hv::virt::domain_xml(s, {}));

    // One IDE controller, four units; the CD/DVD drive is IDE on i440fx and takes one.
    s.disks.assign(4, d);
    for (std::size_t i = 0; i < s.disks.size(); ++i) s.disks[i].name = "disk" + std::to_string(i);
    CHECK_NOTHROW(hv::virt::domain_xml(s, {}));
    s.cdrom = "/var/lib/hv/iso/x.iso";
    try {
        hv::virt::domain_xml(s, {});
        FAIL("expected hv::Error");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::invalid_input);
    }
}

TEST_CASE("disks without a source are a caller bug", "[virt]") {
    hv::api::VmSpec s;
    s.name = "x";
    hv::api::DiskSpec d;
    d.name = "disk0";
    d.size = hv::api::GiB;
    s.disks.push_back(d);
    try {
        hv::virt::domain_xml(s, {});
        FAIL("expected hv::Error");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::internal);
    }
}

TEST_CASE("xml_escape", "[virt]") {
    CHECK(hv::virt::xml_escape("<>&'\"") == "&lt;&gt;&amp;&apos;&quot;");
    CHECK(hv::virt::xml_escape("plain text, caf\xC3\xA9") == "plain text, caf\xC3\xA9");
    CHECK(hv::virt::xml_escape("a\tb\nc\rd") == "a&#9;b&#10;c&#13;d");
    CHECK(hv::virt::xml_escape(std::string("x\x01y", 3)) == "x\xEF\xBF\xBDy");
    CHECK(hv::virt::xml_escape("") == "");
}

TEST_CASE("user values are escaped in the domain XML", "[virt]") {
    hv::api::VmSpec s;
    s.name = "esc";
    s.description = "<b>bold</b> & 'single' \"double\"";
    const auto xml = hv::virt::domain_xml(s, {});
    CHECK_THAT(xml, Catch::Contains("<description>&lt;b&gt;bold&lt;/b&gt; &amp; &apos;single&apos; "
                                    "&quot;double&quot;</description>"));
    CHECK_THAT(xml, !Catch::Contains("<b>"));

    // Paths land in attributes: a quote must not end the attribute.
    s.cdrom = "/iso/it's \"here\".iso";
    CHECK_THAT(hv::virt::domain_xml(s, {}), Catch::Contains("<source file='/iso/it&apos;s &quot;here&quot;.iso'/>"));
}

TEST_CASE("metadata round trip", "[virt][metadata]") {
    const auto spec = full_spec();
    const auto meta = hv::virt::metadata_xml(spec);
    CHECK_THAT(meta, Catch::StartsWith("<hv:vm xmlns:hv=\"http://hv.dev/xmlns/vm/1\">"));

    SECTION("as written") {
        auto back = hv::virt::spec_from_metadata(meta);
        REQUIRE(back);
        CHECK(same_spec(*back, spec));
    }

    SECTION("embedded in the domain XML") {
        const auto xml = hv::virt::domain_xml(spec, {});
        const auto begin = xml.find("<hv:vm");
        const auto end = xml.find("</hv:vm>");
        REQUIRE(begin != std::string::npos);
        REQUIRE(end != std::string::npos);
        auto back = hv::virt::spec_from_metadata(xml.substr(begin, end + 8 - begin));
        REQUIRE(back);
        CHECK(same_spec(*back, spec));
    }

    // What virDomainGetMetadata may hand back after libvirt (libxml2) re-serialized it.
    const std::string js = json(spec).dump();
    SECTION("libvirt 9.0 style: namespace and prefix stripped") {
        // Exactly what `virsh metadata web01 --uri http://hv.dev/xmlns/vm/1` printed for the
        // web01 golden case on libvirt 9.0 (qemu:///session and test:///default alike).
        const std::string from_libvirt =
            "<vm>\n"
            "  <spec format=\"json\">{\"cdrom\":\"\",\"cmdline\":\"\",\"cpus\":2,\"description\":\"\",\"disks\":[{\"bus\":"
            "\"virtio\",\"format\":\"qcow2\",\"name\":\"disk0\",\"owned\":true,\"path\":\"/var/lib/hv/images/"
            "web01-disk0.qcow2\",\"pool\":\"local\",\"size\":10737418240}],\"firmware\":\"bios\",\"initrd\":\"\","
            "\"kernel\":\"\",\"machine\":\"q35\",\"memory\":1073741824,\"name\":\"web01\",\"nics\":[{\"mac\":\"\","
            "\"model\":\"virtio\",\"network\":\"default\"}],\"tags\":[\"web\",\"prod\"]}</spec>\n"
            "</vm>\n";
        auto back = hv::virt::spec_from_metadata(from_libvirt);
        REQUIRE(back);
        CHECK(back->name == "web01");
        CHECK(back->disks.at(0).path == "/var/lib/hv/images/web01-disk0.qcow2");
        CHECK(back->tags == std::vector<std::string>{"web", "prod"});

        std::string stripped = "<vm>\n  <spec format=\"json\">" + libxml2_text_escape(js) + "</spec>\n</vm>\n";
        back = hv::virt::spec_from_metadata(stripped);
        REQUIRE(back);
        CHECK(same_spec(*back, spec));
    }
    SECTION("libvirt style: &quot; entities, other whitespace") {
        std::string q;
        for (char c : libxml2_text_escape(js)) q += c == '"' ? std::string("&quot;") : std::string(1, c);
        const auto text = "<hv:vm xmlns:hv=\"http://hv.dev/xmlns/vm/1\">\n    <hv:spec   format=\"json\">" + q +
                          "</hv:spec>\n\n</hv:vm>\n";
        auto back = hv::virt::spec_from_metadata(text);
        REQUIRE(back);
        CHECK(same_spec(*back, spec));
    }
    SECTION("libxml2 style: literal quotes, other prefix, single-quoted attributes, XML declaration") {
        const auto text = "<?xml version=\"1.0\"?>\n<meta:vm xmlns:meta='http://hv.dev/xmlns/vm/1'><meta:spec format='json'>" +
                          libxml2_text_escape(js) + "</meta:spec></meta:vm>";
        auto back = hv::virt::spec_from_metadata(text);
        REQUIRE(back);
        CHECK(same_spec(*back, spec));
    }
    SECTION("default namespace, numeric and &apos; references, CDATA") {
        std::string refs;
        for (char c : js) {
            if (c == '"') refs += "&#34;";
            else if (c == '\'') refs += "&apos;";
            else if (c == '&') refs += "&#x26;";
            else if (c == '<') refs += "&#x3C;";
            else if (c == '>') refs += "&gt;";
            else refs += c;
        }
        auto back = hv::virt::spec_from_metadata("<vm xmlns=\"http://hv.dev/xmlns/vm/1\">\r\n\t<spec>" + refs + "</spec></vm>");
        REQUIRE(back);
        CHECK(same_spec(*back, spec));

        // Split across a CDATA section (text nodes are concatenated).
        const auto half = js.size() / 2;
        back = hv::virt::spec_from_metadata("<hv:vm xmlns:hv='http://hv.dev/xmlns/vm/1'><hv:spec><![CDATA[" +
                                            js.substr(0, half) + "]]>" + libxml2_text_escape(js.substr(half)) +
                                            "</hv:spec></hv:vm>");
        REQUIRE(back);
        CHECK(same_spec(*back, spec));
    }
}

TEST_CASE("metadata that is not readable hv metadata", "[virt][metadata]") {
    using hv::virt::spec_from_metadata;
    const std::string ns = "xmlns:hv='http://hv.dev/xmlns/vm/1'";
    const std::string good = json(full_spec()).dump();
    CHECK_FALSE(spec_from_metadata(""));
    CHECK_FALSE(spec_from_metadata("not xml at all"));
    CHECK_FALSE(spec_from_metadata("<hv:vm " + ns + "><hv:spec>" + good));  // truncated
    CHECK_FALSE(spec_from_metadata("<hv:vm xmlns:hv='http://example.com/other'><hv:spec>" +
                                   libxml2_text_escape(good) + "</hv:spec></hv:vm>"));
    CHECK_FALSE(spec_from_metadata("<hv:vm " + ns + "/>"));
    CHECK_FALSE(spec_from_metadata("<hv:vm " + ns + "><hv:other>" + libxml2_text_escape(good) + "</hv:other></hv:vm>"));
    CHECK_FALSE(spec_from_metadata("<hv:vm " + ns + "><hv:spec format='yaml'>" + libxml2_text_escape(good) +
                                   "</hv:spec></hv:vm>"));
    CHECK_FALSE(spec_from_metadata("<hv:vm " + ns + "><hv:spec>{not json</hv:spec></hv:vm>"));
    CHECK_FALSE(spec_from_metadata("<hv:vm " + ns + "><hv:spec>{\"name\":\"x\",\"bogus\":1}</hv:spec></hv:vm>"));
    CHECK_FALSE(spec_from_metadata("<hv:vm " + ns + "><hv:spec>[]</hv:spec></hv:vm>"));
    CHECK(spec_from_metadata("<hv:vm " + ns + "><hv:spec>{\"name\":\"x\"}</hv:spec></hv:vm>"));
}

TEST_CASE("parse_live_xml reads the VNC address", "[virt]") {
    const std::string live = R"(<domain type='kvm' id='3'>
  <name>web01</name>
  <metadata>
    <hv:vm xmlns:hv="http://hv.dev/xmlns/vm/1">
      <hv:spec format="json">{&quot;name&quot;:&quot;web01&quot;}</hv:spec>
    </hv:vm>
  </metadata>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='pty'>
      <source path='/dev/pts/3'/>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
      <alias name='serial0'/>
    </serial>
    <graphics type='spice' port='5930' autoport='yes' listen='0.0.0.0'/>
    <graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
  </devices>
</domain>
)";
    CHECK(hv::virt::parse_live_xml(live).vnc == "127.0.0.1:5901");

    auto with = [](const std::string& graphics) {
        return "<domain type='qemu'><name>x</name><devices>" + graphics + "</devices></domain>";
    };
    CHECK(hv::virt::parse_live_xml(with("<graphics type=\"vnc\" port=\"5900\" autoport=\"yes\">"
                                        "<listen type=\"address\" address=\"::1\"/></graphics>"))
              .vnc == "[::1]:5900");
    CHECK(hv::virt::parse_live_xml(with("<graphics type='vnc' port='5902'/>")).vnc == "127.0.0.1:5902");
    // Defined but not running: libvirt keeps port='-1'.
    CHECK(hv::virt::parse_live_xml(with("<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>")).vnc.empty());
    CHECK(hv::virt::parse_live_xml(with("<graphics type='vnc' autoport='yes'/>")).vnc.empty());
    CHECK(hv::virt::parse_live_xml(with("")).vnc.empty());
    CHECK(hv::virt::parse_live_xml("<domain").vnc.empty());
    CHECK(hv::virt::parse_live_xml("").vnc.empty());
}

// ---- single disk devices (also what `vm disk attach` sends to libvirt) --------------------

TEST_CASE("disk modes, cache, discard and limits in one disk element", "[virt][disks]") {
    hv::api::DiskSpec d;
    d.name = "data";
    d.path = "/var/lib/hv/images/vm-data.qcow2";
    d.format = "qcow2";  // as its pool resolved it

    SECTION("dependent: plain disk, hypervisor defaults") {
        CHECK(hv::virt::disk_device_xml(d, "vdb") ==
              "<disk type='file' device='disk'>\n"
              "  <driver name='qemu' type='qcow2'/>\n"
              "  <source file='/var/lib/hv/images/vm-data.qcow2'/>\n"
              "  <target dev='vdb' bus='virtio'/>\n"
              "</disk>");
    }
    SECTION("independent-persistent: excluded from snapshots, no overlay") {
        d.mode = "independent-persistent";
        auto x = hv::virt::disk_device_xml(d, "vdb");
        CHECK_THAT(x, Catch::StartsWith("<disk type='file' device='disk' snapshot='no'>"));
        CHECK_THAT(x, !Catch::Contains("transient"));
    }
    SECTION("independent-nonpersistent: snapshot='no' and <transient/>") {
        d.mode = "independent-nonpersistent";
        d.bus = "sata";
        auto x = hv::virt::disk_device_xml(d, "sdb");
        CHECK_THAT(x, Catch::StartsWith("<disk type='file' device='disk' snapshot='no'>"));
        CHECK_THAT(x, Catch::Contains("  <transient/>\n</disk>"));
        CHECK_THAT(x, Catch::Contains("<target dev='sdb' bus='sata'/>"));
    }
    SECTION("cache, discard, iotune") {
        d.cache = "writeback";
        d.discard = true;
        d.limits.read_iops = 100;
        d.limits.write_iops = 50;
        d.limits.total_bps = 10 * hv::api::MiB;
        CHECK(hv::virt::disk_device_xml(d, "vdc") ==
              "<disk type='file' device='disk'>\n"
              "  <driver name='qemu' type='qcow2' cache='writeback' discard='unmap'/>\n"
              "  <source file='/var/lib/hv/images/vm-data.qcow2'/>\n"
              "  <target dev='vdc' bus='virtio'/>\n"
              "  <iotune>\n"
              "    <total_bytes_sec>10485760</total_bytes_sec>\n"
              "    <read_iops_sec>100</read_iops_sec>\n"
              "    <write_iops_sec>50</write_iops_sec>\n"
              "  </iotune>\n"
              "</disk>");
    }
}

TEST_CASE("check_disk refuses what libvirt/QEMU cannot do", "[virt][disks]") {
    hv::api::DiskSpec d;
    d.name = "x";
    d.bus = "ide";
    CHECK_THROWS_AS(hv::virt::check_disk(d, "q35", "disk 'x'"), hv::Error);
    CHECK_NOTHROW(hv::virt::check_disk(d, "pc", "disk 'x'"));
    d.bus = "virtio";
    d.mode = "independent";
    try {
        hv::virt::check_disk(d, "q35", "disk 'x'");
        FAIL("expected hv::Error");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::invalid_input);
        CHECK_THAT(e.what(), Catch::Contains("disk 'x': mode 'independent'"));
    }
    d.mode = "independent-nonpersistent";
    d.cache = "fast";
    CHECK_THROWS_AS(hv::virt::check_disk(d, "q35", "disk 'x'"), hv::Error);
    // Transient disks work on every bus hv offers (checked against libvirt 9.0 / QEMU 7.2).
    d.cache = "none";
    for (const char* bus : {"virtio", "sata", "scsi"}) {
        d.bus = bus;
        CHECK_NOTHROW(hv::virt::check_disk(d, "q35", "disk 'x'"));
    }
    d.bus = "ide";
    CHECK_NOTHROW(hv::virt::check_disk(d, "pc", "disk 'x'"));
}

TEST_CASE("target names, CD/DVD bus and hot-plug buses", "[virt][disks]") {
    using hv::virt::free_target;
    CHECK(free_target("virtio", {}) == "vda");
    CHECK(free_target("virtio", {"vda", "vdc", "sda"}) == "vdb");
    CHECK(free_target("sata", {"sda", "sdb"}) == "sdc");
    CHECK(free_target("scsi", {"sda", "vda"}) == "sdb");  // sata and scsi share "sd"
    CHECK(free_target("ide", {"hda"}) == "hdb");
    std::set<std::string> many;
    for (char c = 'a'; c <= 'z'; ++c) many.insert(std::string("vd") + c);
    CHECK(free_target("virtio", many) == "vdaa");
    CHECK(hv::virt::cdrom_bus("q35") == "sata");
    CHECK(hv::virt::cdrom_bus("pc-i440fx-7.2") == "ide");
    CHECK(hv::virt::hotpluggable_bus("virtio"));
    CHECK(hv::virt::hotpluggable_bus("scsi"));
    CHECK_FALSE(hv::virt::hotpluggable_bus("sata"));
    CHECK_FALSE(hv::virt::hotpluggable_bus("ide"));
    CHECK(hv::virt::cdrom_device_xml("", "sata", "sdc") ==
          "<disk type='file' device='cdrom'>\n"
          "  <driver name='qemu' type='raw'/>\n"
          "  <target dev='sdc' bus='sata'/>\n"
          "  <readonly/>\n"
          "</disk>");
}

TEST_CASE("parse_devices reads disks of live and persistent XML", "[virt][disks]") {
    // Shape of libvirt 9.0's live XML of a running transient disk (trimmed).
    const std::string xml = R"(<domain type='qemu' id='3'>
  <name>vm</name>
  <devices>
    <disk type='file' device='disk' snapshot='no'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/vm-scratch.qcow2.TRANSIENT-vm' index='2'/>
      <backingStore type='file' index='1'>
        <format type='qcow2'/>
        <source file='/img/vm-scratch.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='sda' bus='sata'/>
      <transient/>
      <alias name='sata0-0-0'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/img/vm-disk0.raw' index='3'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sdb' bus='sata'/>
      <readonly/>
      <alias name='sata0-0-1'/>
    </disk>
    <controller type='scsi' index='0' model='virtio-scsi'>
      <alias name='scsi0'/>
    </controller>
  </devices>
</domain>)";
    auto f = hv::virt::parse_devices(xml);
    REQUIRE(f.disks.size() == 3);
    CHECK(f.virtio_scsi);
    CHECK(f.scsi_controller);
    CHECK(f.disks[0].transient);
    CHECK(f.disks[0].snapshot == "no");
    CHECK(f.disks[0].source == "/img/vm-scratch.qcow2.TRANSIENT-vm");
    CHECK(f.disks[0].backing == "/img/vm-scratch.qcow2");
    CHECK(f.disks[0].alias == "sata0-0-0");
    CHECK(f.disks[1].target == "vda");
    CHECK(f.disks[1].bus == "virtio");
    CHECK_FALSE(f.disks[1].transient);
    CHECK(f.disks[2].device == "cdrom");
    CHECK(f.disks[2].source.empty());
    CHECK_THROWS_AS(hv::virt::parse_devices("<domain"), hv::Error);
}

// ---- network (RBD) disks -------------------------------------------------------------------

namespace {
hv::api::DiskSource rbd_source(int hosts, bool auth) {
    hv::api::DiskSource s;
    s.type = hv::api::DiskSource::Type::network;
    s.protocol = "rbd";
    s.name = "vms/vm-disk0";
    for (int i = 1; i <= hosts; ++i) s.hosts.push_back({"10.0.0." + std::to_string(i), i == 3 ? 0 : 6789});
    if (auth) s.auth = hv::api::DiskAuth{"admin", "ceph", "3d5a5fe8-af8a-4739-b90f-ac54f21e1711"};
    return s;
}
}  // namespace

TEST_CASE("a network disk element: protocol, name, hosts and auth", "[virt][disks][rbd]") {
    hv::api::DiskSpec d;
    d.name = "disk0";
    d.format = "raw";
    d.source = rbd_source(3, true);
    CHECK(hv::virt::disk_device_xml(d, "vda") ==
          "<disk type='network' device='disk'>\n"
          "  <driver name='qemu' type='raw'/>\n"
          "  <source protocol='rbd' name='vms/vm-disk0'>\n"
          "    <host name='10.0.0.1' port='6789'/>\n"
          "    <host name='10.0.0.2' port='6789'/>\n"
          "    <host name='10.0.0.3'/>\n"
          "  </source>\n"
          "  <auth username='admin'>\n"
          "    <secret type='ceph' uuid='3d5a5fe8-af8a-4739-b90f-ac54f21e1711'/>\n"
          "  </auth>\n"
          "  <target dev='vda' bus='virtio'/>\n"
          "</disk>");

    // No hosts (librbd then reads ceph.conf's monitors; api::validate asks for them) and no auth.
    d.source = rbd_source(0, false);
    d.mode = "independent-persistent";
    CHECK(hv::virt::disk_device_xml(d, "vdb") ==
          "<disk type='network' device='disk' snapshot='no'>\n"
          "  <driver name='qemu' type='raw'/>\n"
          "  <source protocol='rbd' name='vms/vm-disk0'/>\n"
          "  <target dev='vdb' bus='virtio'/>\n"
          "</disk>");
}

TEST_CASE("every value of a network source is escaped", "[virt][disks][rbd]") {
    // Not valid input (api::validate refuses it): the renderer escapes whatever it is given.
    hv::api::DiskSpec d;
    d.name = "disk0";
    d.format = "raw";
    d.source = rbd_source(1, true);
    d.source->protocol = "rbd' x='1";
    d.source->name = "p/<img>&'\"";
    d.source->hosts[0].name = "h'/><evil/>";
    d.source->auth->username = "u\"ser'";
    d.source->auth->secret_type = "ce<ph";
    d.source->auth->secret_uuid = "&uuid'";
    const auto x = hv::virt::disk_device_xml(d, "vd'a");
    CHECK_THAT(x, Catch::Contains("<source protocol='rbd&apos; x=&apos;1' name='p/&lt;img&gt;&amp;&apos;&quot;'>"));
    CHECK_THAT(x, Catch::Contains("<host name='h&apos;/&gt;&lt;evil/&gt;' port='6789'/>"));
    CHECK_THAT(x, Catch::Contains("<auth username='u&quot;ser&apos;'>"));
    CHECK_THAT(x, Catch::Contains("<secret type='ce&lt;ph' uuid='&amp;uuid&apos;'/>"));
    CHECK_THAT(x, Catch::Contains("<target dev='vd&apos;a' bus='virtio'/>"));
    CHECK_THAT(x, !Catch::Contains("<evil"));
    // The result is still one well-formed <disk> that reads back.
    auto f = hv::virt::parse_devices("<domain><devices>" + x + "</devices></domain>");
    REQUIRE(f.disks.size() == 1);
    CHECK(f.disks[0].name == "p/<img>&'\"");
    CHECK(f.disks[0].protocol == "rbd' x='1");
}

TEST_CASE("detach XML for file and network disks", "[virt][disks][rbd]") {
    CHECK(hv::virt::disk_detach_xml(hv::api::DiskSource::file("/img/a & b.qcow2"), "vdb", "virtio") ==
          "<disk type='file' device='disk'>\n"
          "  <source file='/img/a &amp; b.qcow2'/>\n"
          "  <target dev='vdb' bus='virtio'/>\n"
          "</disk>");
    auto net = rbd_source(1, false);
    CHECK(hv::virt::disk_detach_xml(net, "sda", "scsi") ==
          "<disk type='network' device='disk'>\n"
          "  <source protocol='rbd' name='vms/vm-disk0'>\n"
          "    <host name='10.0.0.1' port='6789'/>\n"
          "  </source>\n"
          "  <target dev='sda' bus='scsi'/>\n"
          "</disk>");
}

TEST_CASE("parse_devices reads a network disk's protocol and name", "[virt][disks][rbd]") {
    // libvirt 9.0 live XML of an RBD disk (trimmed); auth inside <source> as libvirt may write it.
    const std::string xml = R"(<domain type='kvm' id='7'>
  <devices>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='vms/web01-disk0' index='1'>
        <host name='10.0.0.1' port='6789'/>
        <auth username='admin'>
          <secret type='ceph' uuid='3d5a5fe8-af8a-4739-b90f-ac54f21e1711'/>
        </auth>
      </source>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/img/web01-disk1.qcow2'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
  </devices>
</domain>)";
    auto f = hv::virt::parse_devices(xml);
    REQUIRE(f.disks.size() == 2);
    CHECK(f.disks[0].type == "network");
    CHECK(f.disks[0].protocol == "rbd");
    CHECK(f.disks[0].name == "vms/web01-disk0");
    CHECK(f.disks[0].source.empty());  // no file: not counted as an image path
    CHECK(f.disks[0].target == "vda");
    CHECK(f.disks[1].type == "file");
    CHECK(f.disks[1].source == "/img/web01-disk1.qcow2");
    CHECK(f.disks[1].protocol.empty());
}

TEST_CASE("network disks: what libvirt cannot do, and the metadata keeps the source", "[virt][disks][rbd]") {
    hv::api::DiskSpec d;
    d.name = "disk0";
    d.format = "raw";
    d.source = rbd_source(1, true);
    CHECK_NOTHROW(hv::virt::check_disk(d, "q35", "disk 'disk0'"));
    d.mode = "independent-nonpersistent";  // <transient/> needs a local overlay file
    try {
        hv::virt::check_disk(d, "q35", "disk 'disk0'");
        FAIL("expected hv::Error");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::invalid_input);
        CHECK_THAT(e.what(), Catch::Contains("needs a file disk"));
    }
    d.mode = "dependent";

    hv::api::VmSpec s;
    s.name = "rbd";
    s.disks.push_back(d);
    auto back = hv::virt::spec_from_metadata(hv::virt::metadata_xml(s));
    REQUIRE(back);
    REQUIRE(back->disks.size() == 1);
    REQUIRE(back->disks[0].source);
    CHECK(*back->disks[0].source == *d.source);
    CHECK(back->disks[0].path.empty());
    CHECK(same_spec(*back, s));
}

TEST_CASE("relocate_source: a migration's definition names the new volume, in <source> and in hv's metadata", "[xml][migrate]") {
    const std::string xml =
        "<domain><metadata><hv:vm xmlns:hv='http://hv.dev/xmlns/vm/1'><hv:spec format='json'>"
        "{\"disks\":[{\"path\":\"/a/b&amp;c.raw\",\"volume\":\"v\"},{\"path\":\"/a/other.raw\"}],\"note\":\"/a/b&amp;c.raw.bak\"}"
        "</hv:spec></hv:vm></metadata><devices>"
        "<disk type='file' device='disk'><source file='/a/b&amp;c.raw' index='1'/><target dev='vda'/></disk>"
        "<disk type='file' device='disk'><source file='/a/other.raw'/><target dev='vdb'/></disk>"
        "</devices></domain>";
    int n = -1;
    auto out = hv::virt::relocate_source(xml, "file", "/a/b&c.raw", "/x/y.raw", &n);
    CHECK(n == 1);
    CHECK(out.find("<source file='/x/y.raw' index='1'/>") != std::string::npos);
    CHECK(out.find("\"path\":\"/x/y.raw\"") != std::string::npos);
    CHECK(out.find("\"note\":\"/a/b&amp;c.raw.bak\"") != std::string::npos);  // only whole JSON strings
    CHECK(out.find("<source file='/a/other.raw'/>") != std::string::npos);
    auto devs = hv::virt::parse_devices(out);
    REQUIRE(devs.disks.size() == 2);
    CHECK(devs.disks[0].source == "/x/y.raw");
    CHECK_THROWS_AS(hv::virt::relocate_source(xml, "file", "/not/there.raw", "/x.raw"), hv::Error);
    CHECK_THROWS_AS(hv::virt::relocate_source(xml, "dir", "/a/other.raw", "/x.raw"), hv::Error);
}

TEST_CASE("CPU models: hvctl's form, the JSON, libvirt's XML both ways", "[vm][cpu]") {
    using hv::api::CpuSpec;
    auto c = hv::api::parse_cpu_arg("EPYC,+aes,-vme");
    CHECK(c.mode == "custom");
    CHECK(c.model == "EPYC");
    CHECK(c.features == std::vector<std::string>{"+aes", "-vme"});
    CHECK(hv::api::parse_cpu_arg("host").mode == "host-passthrough");
    CHECK(hv::api::parse_cpu_arg("cluster").mode == "cluster");
    CHECK(hv::api::parse_cpu_arg("default").mode.empty());
    for (const char* bad : {"EPYC,aes", "EPYC,+aes,+aes", "EP YC", "<x>", "EPYC,+", ",+aes", "EPYC,+a'b"})
        CHECK_THROWS_AS(hv::api::parse_cpu_arg(bad), hv::Error);
    // Round trip; only the stored modes: "cluster" is a request that create resolves.
    CpuSpec back = hv::api::cpu_from_json(json(c));
    CHECK(back == c);
    CHECK_THROWS_AS(hv::api::validate(CpuSpec{"cluster", "", "", {}}, false), hv::Error);
    CHECK_THROWS_AS(hv::api::validate(CpuSpec{"host-model", "EPYC", "", {}}, true), hv::Error);
    CHECK_THROWS_AS(hv::api::cpu_from_json(json{{"mode", "custom"}, {"model", "EPYC"}, {"extra", 1}}), hv::Error);
    // A VM without a cpu keeps its JSON (and the golden files' metadata) as it was.
    hv::api::VmSpec s;
    s.name = "v";
    CHECK_FALSE(json(s).contains("cpu"));
    s.cpu = c;
    CHECK(hv::api::vm_spec_from_json(json(s), hv::api::JsonOrigin::hvd).cpu == c);

    // What libvirt answers: a baseline's <cpu>, and the host-model of domain capabilities.
    auto b = hv::virt::parse_cpu_xml(
        "<cpu mode='custom' match='exact'>\n  <model fallback='forbid'>EPYC</model>\n  <vendor>AMD</vendor>\n"
        "  <feature policy='require' name='acpi'/>\n  <feature policy='disable' name='vme'/>\n</cpu>\n");
    REQUIRE(b);
    CHECK(*b == CpuSpec{"custom", "EPYC", "AMD", {"+acpi", "-vme"}});
    auto h = hv::virt::parse_cpu_xml(
        "<domainCapabilities><cpu><mode name='host-passthrough' supported='no'/>"
        "<mode name='host-model' supported='yes'><model fallback='forbid'>Skylake-Server</model><vendor>Intel</vendor>"
        "<feature policy='require' name='ss'/></mode><mode name='custom' supported='yes'><model usable='yes'>qemu64</model>"
        "</mode></cpu></domainCapabilities>");
    REQUIRE(h);
    CHECK(*h == CpuSpec{"custom", "Skylake-Server", "Intel", {"+ss"}});
    CHECK_FALSE(hv::virt::parse_cpu_xml("<domainCapabilities><cpu><mode name='host-model' supported='no'/></cpu></domainCapabilities>"));
    CHECK_FALSE(hv::virt::parse_cpu_xml("not xml"));
    CHECK(hv::virt::cpu_xml(CpuSpec{"host-passthrough", "", "", {}}) == "<cpu mode='host-passthrough'/>");
    CHECK(hv::virt::cpu_xml(CpuSpec{}).empty());
}

TEST_CASE("with_cpu_element replaces, adds and removes a domain's <cpu>, nothing else") {
    using hv::api::CpuSpec;
    using hv::virt::with_cpu_element;
    // As libvirt writes a definition (virDomainGetXMLDesc), with metadata that names a <cpu> of
    // another namespace, which must stay.
    const std::string head =
        "<domain type='qemu'>\n  <name>v</name>\n  <metadata>\n    <x:vm xmlns:x='urn:x'><cpu xmlns='urn:x'/></x:vm>\n"
        "  </metadata>\n  <vcpu placement='static'>2</vcpu>\n  <cputune>\n    <shares>1024</shares>\n  </cputune>\n";
    const std::string tail = "  <clock offset='utc'/>\n  <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
                             "  </devices>\n</domain>\n";
    const std::string custom = hv::virt::cpu_xml(CpuSpec{"custom", "EPYC", "", {"+aes", "-vme"}});
    const std::string custom_block = "  <cpu mode='custom' match='exact' check='partial'>\n"
                                     "    <model fallback='forbid'>EPYC</model>\n"
                                     "    <feature policy='require' name='aes'/>\n"
                                     "    <feature policy='disable' name='vme'/>\n  </cpu>\n";
    // None (TCG's default) -> added before <clock>.
    CHECK(with_cpu_element(head + tail, custom) == head + custom_block + tail);
    // Replaced: a libvirt-expanded one with <topology>, and a self-closing one.
    const std::string expanded = "  <cpu mode='custom' match='exact' check='full'>\n    <model fallback='forbid'>qemu64</model>\n"
                                 "    <topology sockets='1' dies='1' cores='2' threads='1'/>\n  </cpu>\n";
    CHECK(with_cpu_element(head + expanded + tail, custom) == head + custom_block + tail);
    CHECK(with_cpu_element(head + "  <cpu mode='host-passthrough' check='none' migratable='on'/>\n" + tail, custom) ==
          head + custom_block + tail);
    CHECK(with_cpu_element(head + expanded + tail, "<cpu mode='host-model'/>") ==
          head + "  <cpu mode='host-model'/>\n" + tail);
    // Removed (mode "" on TCG), and nothing to remove.
    CHECK(with_cpu_element(head + expanded + tail, "") == head + tail);
    CHECK(with_cpu_element(head + tail, "") == head + tail);
    // The default per domain type.
    hv::virt::DomainXmlOptions kvm{.domain_type = "kvm"}, tcg{.domain_type = "qemu"};
    CHECK(hv::virt::cpu_element(CpuSpec{}, kvm) == "<cpu mode='host-passthrough'/>");
    CHECK(hv::virt::cpu_element(CpuSpec{}, tcg).empty());
    CHECK(hv::virt::cpu_element(CpuSpec{"custom", "EPYC", "", {"+aes", "-vme"}}, tcg) == custom);
    // XML it cannot place the element in.
    CHECK_THROWS_AS(with_cpu_element("<domain><cpu mode='custom'>", custom), hv::Error);
    CHECK_THROWS_AS(with_cpu_element("<domain><metadata>", custom), hv::Error);
}
