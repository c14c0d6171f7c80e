// VM snapshots: the create XML (golden files tests/data/snapshot/<case>.json -> <case>.xml,
// HV_REGENERATE_GOLDEN=1 rewrites them; an .xml without .json fails), the snapshot XML reader on
// libvirt 9.0's output, which disks an internal snapshot can cover, the wire model's strict JSON
// mapping and name rules, the tree order, and hvctl's list rows.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "hv/api/snapshot.hpp"
#include "hv/error.hpp"
#include "hv/virt/snapshot_xml.hpp"
#include "snapshot_commands.hpp"

#ifndef HV_TEST_DATA_DIR
#error "HV_TEST_DATA_DIR must name the tests/data directory"
#endif

namespace fs = std::filesystem;
using nlohmann::json;
using hv::Errc;

namespace {

const fs::path kDir = fs::path(HV_TEST_DATA_DIR) / "snapshot";

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<fs::path> files(const std::string& ext) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(kDir))
        if (e.is_regular_file() && e.path().extension() == ext) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

hv::virt::SnapshotCreateXml load_case(const fs::path& p) {
    auto j = json::parse(slurp(p));
    hv::virt::SnapshotCreateXml x;
    x.name = j.at("name");
    x.description = j.value("description", "");
    x.memory_state = j.value("memory_state", false);
    for (const auto& d : j.at("disks")) x.disks.push_back({d.at("target"), d.value("internal", true)});
    return x;
}

Errc code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const hv::Error& e) {
        return e.code();
    }
    FAIL("no hv::Error thrown");
    return Errc::internal;
}

// What libvirt 9.0 answers to virDomainSnapshotGetXMLDesc for a snapshot hv took of a running
// VM without memory (cut to what matters: the saved domain is much longer).
const char* kLibvirtXml = R"(<domainsnapshot>
  <name>after-boot</name>
  <description>first &amp; &lt;best&gt;</description>
  <state>running</state>
  <parent>
    <name>base</name>
  </parent>
  <creationTime>1796515200</creationTime>
  <memory snapshot='internal'/>
  <disks>
    <disk name='vda' snapshot='internal'/>
  </disks>
  <domain type='qemu'>
    <name>web01</name>
    <metadata>
      <hv:vm xmlns:hv="http://hv.dev/xmlns/vm/1"><spec format="json">{}</spec></hv:vm>
      <hvsnap:snapshot xmlns:hvsnap="http://hv.dev/xmlns/snapshot/1" memory="no"/>
    </metadata>
  </domain>
  <active>1</active>
</domainsnapshot>
)";

}  // namespace

TEST_CASE("snapshot create XML matches the golden files", "[virt][golden][snapshot]") {
    auto cases = files(".json");
    REQUIRE(cases.size() >= 2);
    const char* regen = std::getenv("HV_REGENERATE_GOLDEN");
    for (const auto& jp : cases) {
        INFO("case " << jp.string());
        auto actual = hv::virt::snapshot_create_xml(load_case(jp));
        auto xp = fs::path(jp).replace_extension(".xml");
        if (regen && std::string(regen) == "1") {
            std::ofstream(xp, std::ios::binary | std::ios::trunc) << actual;
            continue;
        }
        REQUIRE(fs::exists(xp));
        CHECK(actual == slurp(xp));
    }
    for (const auto& xp : files(".xml")) {
        INFO("unused golden file " << xp.string());
        CHECK(fs::exists(fs::path(xp).replace_extension(".json")));
    }
}

TEST_CASE("snapshot XML from libvirt: name, parent, time, memory, state and hv's marker", "[virt][snapshot]") {
    auto f = hv::virt::parse_snapshot_xml(kLibvirtXml);
    REQUIRE(f);
    CHECK(f->name == "after-boot");
    CHECK(f->parent == "base");
    CHECK(f->description == "first & <best>");
    CHECK(f->created == 1796515200);
    CHECK(f->state == "running");
    CHECK(f->memory_location == "internal");
    REQUIRE(f->hv_memory.has_value());
    CHECK(*f->hv_memory == false);
    auto s = hv::virt::snapshot_info(*f, true);
    CHECK(s.memory == false);  // hv's marker wins over libvirt's saved RAM
    CHECK(s.state == "running");
    CHECK(s.current);

    SECTION("without hv's marker (taken with virsh): memory is what libvirt saved") {
        std::string x = kLibvirtXml;
        auto at = x.find("      <hvsnap:snapshot");
        x.erase(at, x.find('\n', at) - at + 1);
        auto g = hv::virt::parse_snapshot_xml(x);
        REQUIRE(g);
        CHECK(!g->hv_memory);
        CHECK(hv::virt::snapshot_info(*g, false).memory);
    }
    SECTION("a marker in another namespace is not hv's") {
        std::string x = kLibvirtXml;
        x.replace(x.find("http://hv.dev/xmlns/snapshot/1"), 30, "http://example.org/snapshot/1x");
        auto g = hv::virt::parse_snapshot_xml(x);
        REQUIRE(g);
        CHECK(!g->hv_memory);
    }
    SECTION("a stopped VM's snapshot") {
        auto g = hv::virt::parse_snapshot_xml(
            "<domainsnapshot><name>cold</name><state>shutoff</state><creationTime>12</creationTime>"
            "<memory snapshot='no'/></domainsnapshot>");
        REQUIRE(g);
        auto si = hv::virt::snapshot_info(*g, false);
        CHECK(si.state == "stopped");
        CHECK(!si.memory);
        CHECK(si.parent.empty());
        CHECK(si.created == 12);
    }
    SECTION("not a snapshot") {
        CHECK(!hv::virt::parse_snapshot_xml(""));
        CHECK(!hv::virt::parse_snapshot_xml("<domain><name>x</name></domain>"));
        CHECK(!hv::virt::parse_snapshot_xml("<domainsnapshot><name> </name></domainsnapshot>"));
        CHECK(!hv::virt::parse_snapshot_xml("<domainsnapshot><name>x</name>"));
    }
    SECTION("a bad creation time reads as 0") {
        auto g = hv::virt::parse_snapshot_xml("<domainsnapshot><name>x</name><creationTime>-5</creationTime></domainsnapshot>");
        REQUIRE(g);
        CHECK(g->created == 0);
    }
}

TEST_CASE("the marker is what the reader finds", "[virt][snapshot]") {
    for (bool mem : {true, false}) {
        auto marker = hv::virt::snapshot_marker_xml(mem);
        // libvirt stores it with the prefix and namespace virDomainSetMetadata was given.
        std::string el = marker;
        el.replace(1, 8, std::string(hv::virt::kSnapshotPrefix) + ":snapshot xmlns:" + hv::virt::kSnapshotPrefix + "=\"" +
                             hv::virt::kSnapshotNs + "\"");
        auto f = hv::virt::parse_snapshot_xml("<domainsnapshot><name>s</name><domain><metadata>" + el +
                                              "</metadata></domain></domainsnapshot>");
        REQUIRE(f);
        REQUIRE(f->hv_memory);
        CHECK(*f->hv_memory == mem);
    }
}

TEST_CASE("internal snapshots need qcow2 files: the refusal names the disk", "[virt][snapshot]") {
    using hv::virt::XmlDisk;
    auto describe = [](const XmlDisk& d) { return "disk '" + d.target + "-name' (" + d.target + ")"; };
    auto disk = [](std::string target, std::string format) {
        XmlDisk d;
        d.type = "file";
        d.device = "disk";
        d.target = std::move(target);
        d.format = std::move(format);
        return d;
    };
    hv::virt::DeviceFacts f;
    f.disks.push_back(disk("vda", "qcow2"));
    XmlDisk cd = disk("sda", "raw");
    cd.device = "cdrom";
    cd.readonly = true;
    f.disks.push_back(cd);
    XmlDisk ro = disk("vdc", "raw");
    ro.readonly = true;
    f.disks.push_back(ro);
    auto out = hv::virt::snapshot_disks(f, true, describe);
    REQUIRE(out.size() == 1);
    CHECK(out[0].target == "vda");
    CHECK(out[0].internal);

    auto refusal = [&](hv::virt::DeviceFacts g, bool active) -> std::string {
        try {
            hv::virt::snapshot_disks(g, active, describe);
        } catch (const hv::Error& e) {
            CHECK(e.code() == Errc::unsupported);
            return e.what();
        }
        return "";
    };
    SECTION("raw") {
        auto g = f;
        g.disks.push_back(disk("vdb", "raw"));
        CHECK_THAT(refusal(g, false), Catch::Contains("disk 'vdb-name' (vdb) is 'raw'"));
    }
    SECTION("rbd") {
        auto g = f;
        XmlDisk r = disk("vdb", "raw");
        r.type = "network";
        r.protocol = "rbd";
        g.disks.push_back(r);
        CHECK_THAT(refusal(g, true), Catch::Contains("disk 'vdb-name' (vdb) is a rbd network disk"));
    }
    SECTION("independent: left out when stopped, refused when running") {
        auto g = f;
        XmlDisk i = disk("vdb", "qcow2");
        i.snapshot = "no";
        g.disks.push_back(i);
        CHECK_THAT(refusal(g, true), Catch::Contains("disk 'vdb-name' (vdb) is independent"));
        auto cold = hv::virt::snapshot_disks(g, false, describe);
        REQUIRE(cold.size() == 2);
        CHECK(cold[1].target == "vdb");
        CHECK(!cold[1].internal);
    }
}

TEST_CASE("snapshot wire model: strict JSON and the name rule", "[api][snapshot]") {
    auto c = hv::api::snapshot_create_from_json(
        json{{"name", "pre-upgrade"}, {"memory", true}, {"description", "line 1\nline 2"}});
    CHECK(c.name == "pre-upgrade");
    CHECK(c.memory);
    CHECK(!c.quiesce);
    CHECK(c.description == "line 1\nline 2");
    CHECK(hv::api::snapshot_create_from_json(hv::api::to_json(c)).description == c.description);

    auto bad = [](json j) { return code_of([&] { hv::api::snapshot_create_from_json(j); }); };
    CHECK(bad(json::object()) == Errc::invalid_input);                                   // name required
    CHECK(bad({{"name", "a"}, {"color", "red"}}) == Errc::invalid_input);                // unknown field
    CHECK(bad({{"name", "a"}, {"memory", "yes"}}) == Errc::invalid_input);               // wrong type
    CHECK(bad({{"name", "a"}, {"memory", true}, {"quiesce", true}}) == Errc::invalid_input);
    CHECK(bad({{"name", "a"}, {"description", std::string(4097, 'x')}}) == Errc::invalid_input);
    CHECK(bad({{"name", "a"}, {"description", "bell\a"}}) == Errc::invalid_input);
    for (const char* n : {"", "-lead", ".hidden", "a b", "a/b", "../x", "caf\xc3\xa9", "x;y"})
        CHECK(bad({{"name", n}}) == Errc::invalid_input);
    CHECK(bad({{"name", std::string(64, 'a')}}) == Errc::invalid_input);
    CHECK_NOTHROW(hv::api::validate_snapshot_name(std::string(63, 'a')));
    CHECK_NOTHROW(hv::api::validate_snapshot_name("v1.2_rc-3"));

    CHECK(hv::api::snapshot_revert_from_json(json::object()).start == false);
    CHECK(hv::api::snapshot_revert_from_json(json{{"start", true}}).start);
    CHECK(code_of([] { hv::api::snapshot_revert_from_json(json{{"force", true}}); }) == Errc::invalid_input);

    hv::api::SnapshotInfo s{"b", "a", 100, true, "running", "d", true};
    auto j = hv::api::to_json(s);
    CHECK(j["parent"] == "a");
    auto back = hv::api::snapshot_info_from_json(j);
    CHECK(back.name == "b");
    CHECK(back.parent == "a");
    CHECK(back.created == 100);
    CHECK(back.memory);
    CHECK(back.current);
    s.parent.clear();
    CHECK(hv::api::to_json(s)["parent"].is_null());
    CHECK(hv::api::snapshot_info_from_json(hv::api::to_json(s)).parent.empty());
}

TEST_CASE("snapshot tree order and hvctl's rows", "[api][cli][snapshot]") {
    using hv::api::SnapshotInfo;
    std::vector<SnapshotInfo> list{
        {"c2", "b", 30, false, "running", "", false},  {"base", "", 10, false, "stopped", "", false},
        {"b", "base", 20, true, "running", "mem", false}, {"c1", "b", 25, false, "running", "", true},
        {"other", "", 5, false, "stopped", "", false},    {"orphan", "gone", 40, false, "stopped", "", false},
    };
    auto tree = hv::api::snapshot_tree(list);
    std::vector<std::string> order;
    std::vector<int> depth;
    for (const auto& n : tree) {
        order.push_back(n.info.name);
        depth.push_back(n.depth);
    }
    CHECK(order == std::vector<std::string>{"other", "base", "b", "c1", "c2", "orphan"});
    CHECK(depth == std::vector<int>{0, 0, 1, 2, 2, 0});

    auto rows = hv::cli::snapshot_rows(list);
    REQUIRE(rows.size() == 6);
    CHECK(rows[3][0] == "    c1 *");
    CHECK(rows[3][1] == "b");
    CHECK(rows[2][3] == "yes");
    CHECK(rows[2][5] == "mem");
    CHECK(rows[0][1] == "-");

    // A cycle (libvirt never makes one) still lists every snapshot once.
    std::vector<SnapshotInfo> cyc{{"x", "y", 1, false, "", "", false}, {"y", "x", 2, false, "", "", false}};
    CHECK(hv::api::snapshot_tree(cyc).size() == 2);
}
