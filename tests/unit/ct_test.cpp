// Containers: the wire model, LXC domain XML golden files (tests/data/ct/<case>.json ->
// <case>.xml, HV_REGENERATE_GOLDEN=1 rewrites them; an .xml without .json fails), metadata,
// live-XML NICs, init pid lookup on a procfs fixture, rootfs unpacking with the id shift.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../../src/storage/ct_templates.hpp"
#include "config.hpp"
#include "ct_manager.hpp"
#include "hv/api/ct.hpp"
#include "hv/error.hpp"
#include "hv/util/command.hpp"
#include "hv/virt/ct_xml.hpp"
#include "hv/virt/domain_xml.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
const fs::path kDir = fs::path(HV_TEST_DATA_DIR) / "ct";

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

hv::Errc code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const hv::Error& e) {
        return e.code();
    }
    FAIL("no hv::Error thrown");
    return hv::Errc::internal;
}

struct TmpDir {
    std::string path;
    TmpDir() {
        char t[] = "/tmp/hv-ct-unit-XXXXXX";
        REQUIRE(::mkdtemp(t));
        path = t;
    }
    ~TmpDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};
}  // namespace

TEST_CASE("LXC domain XML matches the golden files", "[ct][golden]") {
    const char* regen_env = std::getenv("HV_REGENERATE_GOLDEN");
    const bool regen = regen_env && std::string(regen_env) == "1";
    int cases = 0;
    for (const auto& e : fs::directory_iterator(kDir)) {
        if (e.path().extension() != ".json") continue;
        ++cases;
        INFO("case " << e.path().string());
        auto spec = hv::api::ct_spec_from_json(json::parse(slurp(e.path())));
        hv::api::validate(spec);
        auto xml = hv::virt::ct_domain_xml(spec);
        auto xml_path = fs::path(e.path()).replace_extension(".xml");
        if (regen) {
            std::ofstream(xml_path, std::ios::trunc) << xml;
            continue;
        }
        REQUIRE(fs::exists(xml_path));
        CHECK(xml == slurp(xml_path));
    }
    CHECK(cases >= 2);
    for (const auto& e : fs::directory_iterator(kDir)) {
        if (e.path().extension() != ".xml") continue;
        INFO("unused golden file " << e.path().string());
        CHECK(fs::exists(fs::path(e.path()).replace_extension(".json")));
    }
}

TEST_CASE("container spec: defaults, strict JSON, validation", "[ct][model]") {
    auto s = hv::api::ct_spec_from_json(json{{"name", "app01"}, {"template", "busybox"}});
    CHECK(s.unprivileged);
    CHECK(s.cpus == 1);
    CHECK(s.memory == 512 * hv::api::MiB);
    CHECK(s.rootfs.pool == "local");
    hv::api::validate(s);
    // Round trip.
    CHECK(json(hv::api::ct_spec_from_json(json(s))) == json(s));

    CHECK(code_of([] { hv::api::ct_spec_from_json(json{{"name", "a"}, {"template", "t"}, {"disks", json::array()}}); }) ==
          hv::Errc::invalid_input);
    CHECK(code_of([] { hv::api::ct_spec_from_json(json{{"name", "a"}, {"rootfs", {{"pool", "x"}, {"format", "raw"}}}}); }) ==
          hv::Errc::invalid_input);
    auto bad = s;
    bad.tmpl = "";
    CHECK(code_of([&] { hv::api::validate(bad); }) == hv::Errc::invalid_input);
    bad = s;
    bad.tmpl = "../etc/shadow";
    CHECK(code_of([&] { hv::api::validate(bad); }) == hv::Errc::invalid_input);
    bad = s;
    bad.memory = 1 * hv::api::MiB;
    CHECK(code_of([&] { hv::api::validate(bad); }) == hv::Errc::invalid_input);
    bad = s;
    bad.name = "-x";
    try {
        hv::api::validate(bad);
        FAIL("accepted");
    } catch (const hv::Error& e) {
        CHECK(std::string(e.what()).find("container name") != std::string::npos);
    }
    bad = s;
    bad.nics.push_back(hv::api::NicSpec{});  // neither network nor bridge
    CHECK(code_of([&] { hv::api::validate(bad); }) == hv::Errc::invalid_input);
    // VLANs, trunks and MTU are the VMs' (checked the same way); a QEMU NIC model is not.
    auto tagged = s;
    tagged.nics.push_back(hv::api::parse_nic_arg("bridge=vmbr0,vlan=100,trunks=10;20-30"));
    CHECK_NOTHROW(hv::api::validate(tagged));
    bad = s;
    bad.nics.push_back(hv::api::parse_nic_arg("bridge=vmbr0,mtu=9000"));
    CHECK(code_of([&] { hv::api::validate(bad); }) == hv::Errc::invalid_input);
    bad = s;
    bad.nics.push_back(hv::api::parse_nic_arg("bridge=vmbr0"));
    bad.nics[0].vlan = 4095;
    CHECK(code_of([&] { hv::api::validate(bad); }) == hv::Errc::invalid_input);
    bad = s;
    bad.nics.push_back(hv::api::parse_nic_arg("bridge=vmbr0,model=e1000"));
    CHECK(code_of([&] { hv::api::validate(bad); }) == hv::Errc::invalid_input);

    auto r = hv::api::parse_rootfs_arg("pool=fast,size=8G");
    CHECK(r.pool == "fast");
    CHECK(r.size == 8 * hv::api::GiB);
    CHECK(code_of([] { hv::api::parse_rootfs_arg("pool=a,format=raw"); }) == hv::Errc::invalid_input);
    CHECK(code_of([] { hv::api::parse_rootfs_arg("pool=a,pool=b"); }) == hv::Errc::invalid_input);

    hv::api::validate_template_name("busybox.tar.gz");
    hv::api::validate_template_name("x.tar.zst");
    CHECK(code_of([] { hv::api::validate_template_name("x.zip"); }) == hv::Errc::invalid_input);
    CHECK(code_of([] { hv::api::validate_template_name(".tar"); }) == hv::Errc::invalid_input);
    CHECK(code_of([] { hv::api::validate(hv::api::CtPatch{}); }) == hv::Errc::invalid_input);
}

TEST_CASE("container metadata round trip and live NICs", "[ct][metadata]") {
    auto spec = hv::api::ct_spec_from_json(json::parse(slurp(kDir / "busybox-unprivileged.json")));
    auto back = hv::virt::ct_spec_from_metadata(hv::virt::ct_metadata_xml(spec));
    REQUIRE(back);
    CHECK(json(*back) == json(spec));
    // As libvirt hands it back: another prefix, entities.
    auto md = "<ns0:ct xmlns:ns0=\"http://hv.dev/xmlns/ct/1\"><ns0:spec format=\"json\">" +
              hv::virt::xml_escape(json(spec).dump()) + "</ns0:spec></ns0:ct>";
    back = hv::virt::ct_spec_from_metadata(md);
    REQUIRE(back);
    CHECK(back->description == "web & <cache>");
    CHECK_FALSE(hv::virt::ct_spec_from_metadata("<vm/>"));
    CHECK_FALSE(hv::virt::ct_spec_from_metadata("not xml"));

    // The live XML of an LXC domain is read by the VMs' parser (one reader of <interface>).
    auto nics = hv::virt::parse_live_xml(R"(<domain type='lxc' id='7'><devices>
      <interface type='bridge'><mac address='52:54:00:12:34:56'/><source bridge='vmbr0'/><target dev='vnet3'/></interface>
      <interface type='network'><mac address='52:54:00:AB:cd:ef'/><source network='default'/><target dev='vnet4'/></interface>
    </devices></domain>)").nics;
    REQUIRE(nics.size() == 2);
    CHECK(nics[0].mac == "52:54:00:12:34:56");
    CHECK(nics[0].tap == "vnet3");
    CHECK(nics[0].bridge == "vmbr0");
    CHECK(nics[1].mac == "52:54:00:ab:cd:ef");
    CHECK(nics[1].tap == "vnet4");
}

TEST_CASE("lxc_init_pid finds the controller's child on a procfs fixture", "[ct]") {
    TmpDir t;
    fs::create_directories(t.path + "/100/task/100");
    std::ofstream(t.path + "/100/task/100/children") << "104 ";
    CHECK(hv::virt::lxc_init_pid(100, t.path) == 104);
    // Without the children file: the process whose parent is the controller.
    fs::create_directories(t.path + "/200/task/200");
    fs::create_directories(t.path + "/201");
    fs::create_directories(t.path + "/202");
    std::ofstream(t.path + "/201/stat") << "201 (sleep) S 1 201 201 0";
    std::ofstream(t.path + "/202/stat") << "202 (sh (init)) S 200 202 202 0";
    CHECK(hv::virt::lxc_init_pid(200, t.path) == 202);
    CHECK(hv::virt::lxc_init_pid(300, t.path) == 0);
    CHECK(hv::virt::lxc_init_pid(0, t.path) == 0);
}

TEST_CASE("the LXC URI follows the libvirt URI unless set", "[ct][config]") {
    hv::daemon::Config c;
    CHECK(c.effective_lxc_uri() == "lxc:///system");
    c.libvirt_uri = "qemu:///system?socket=/tmp/x/run/libvirt-sock";
    CHECK(c.effective_lxc_uri() == "lxc:///system?socket=/tmp/x/run/libvirt-sock");
    c.libvirt_uri = "qemu+ssh://root@h1/system";
    CHECK(c.effective_lxc_uri() == "lxc+ssh://root@h1/system");
    c.lxc_uri = "lxc:///embed?root=/x";
    CHECK(c.effective_lxc_uri() == "lxc:///embed?root=/x");
    auto parsed = hv::daemon::parse_config("[libvirt]\nlxc_uri = \"lxc:///system\"\n[containers]\ndebian_mirror = \"http://m/debian\"\n", "t");
    CHECK(parsed.lxc_uri == "lxc:///system");
    CHECK(parsed.ct_debian_mirror == "http://m/debian");
}

TEST_CASE("rootfs unpacking shifts ids for unprivileged containers and leaves nothing on failure", "[ct][rootfs]") {
    if (::geteuid() != 0) {
        WARN("skipped: needs root (chown)");
        return;
    }
    TmpDir t;
    // A tiny rootfs with a setuid file and a file owned by uid 1000.
    fs::create_directories(t.path + "/src/sbin");
    fs::create_directories(t.path + "/src/home/u");
    std::ofstream(t.path + "/src/sbin/init") << "#!/bin/sh\n";
    std::ofstream(t.path + "/src/suid") << "x";
    REQUIRE(::chmod((t.path + "/src/suid").c_str(), 04755) == 0);
    REQUIRE(::chown((t.path + "/src/home/u").c_str(), 1000, 1000) == 0);
    fs::create_symlink("/sbin/init", t.path + "/src/init-link");
    fs::create_hard_link(t.path + "/src/suid", t.path + "/src/suid-hardlink");  // one inode, two names
    hv::util::run_checked({"tar", "--numeric-owner", "-czf", t.path + "/t.tar.gz", "-C", t.path + "/src", "."});

    hv::util::NullProgress p;
    std::string dest = t.path + "/c1.rootfs";
    hv::storage::unpack_rootfs(t.path + "/t.tar.gz", dest, true, p);
    struct stat st {};
    REQUIRE(::lstat(dest.c_str(), &st) == 0);
    CHECK(st.st_uid == 100000);
    REQUIRE(::lstat((dest + "/home/u").c_str(), &st) == 0);
    CHECK(st.st_uid == 101000);
    CHECK(st.st_gid == 101000);
    REQUIRE(::lstat((dest + "/suid").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 04755);  // chown cleared it; put back
    CHECK(st.st_uid == 100000);  // shifted once, not twice through its second name
    REQUIRE(::lstat((dest + "/init-link").c_str(), &st) == 0);
    CHECK(S_ISLNK(st.st_mode));
    CHECK(st.st_uid == 100000);
    CHECK_FALSE(fs::exists(t.path + "/.c1.rootfs.partial"));
    // Exists already -> conflict, untouched.
    CHECK(code_of([&] { hv::storage::unpack_rootfs(t.path + "/t.tar.gz", dest, true, p); }) == hv::Errc::conflict);

    // Privileged: ids as in the tarball.
    std::string d2 = t.path + "/c2.rootfs";
    hv::storage::unpack_rootfs(t.path + "/t.tar.gz", d2, false, p);
    REQUIRE(::lstat((d2 + "/home/u").c_str(), &st) == 0);
    CHECK(st.st_uid == 1000);

    // Not a tarball / no /sbin/init: invalid_input and no partial left.
    std::ofstream(t.path + "/junk.tar.gz") << "junk";
    CHECK(code_of([&] { hv::storage::unpack_rootfs(t.path + "/junk.tar.gz", t.path + "/c3.rootfs", true, p); }) ==
          hv::Errc::invalid_input);
    CHECK_FALSE(fs::exists(t.path + "/c3.rootfs"));
    CHECK_FALSE(fs::exists(t.path + "/.c3.rootfs.partial"));
    fs::remove(t.path + "/src/sbin/init");
    hv::util::run_checked({"tar", "-czf", t.path + "/noinit.tar.gz", "-C", t.path + "/src", "."});
    CHECK(code_of([&] { hv::storage::unpack_rootfs(t.path + "/noinit.tar.gz", t.path + "/c4.rootfs", true, p); }) ==
          hv::Errc::invalid_input);
    CHECK_FALSE(fs::exists(t.path + "/.c4.rootfs.partial"));

    // remove_rootfs only removes what unpack_rootfs makes.
    CHECK(code_of([&] { hv::storage::remove_rootfs(t.path + "/src"); }) == hv::Errc::internal);
    hv::storage::remove_rootfs(dest);
    CHECK_FALSE(fs::exists(dest));
}

TEST_CASE("require_searchable names the directory an unprivileged container cannot traverse", "[ct][rootfs]") {
    TmpDir t;
    fs::create_directories(t.path + "/a/b");
    REQUIRE(::chmod(t.path.c_str(), 0711) == 0);
    REQUIRE(::chmod((t.path + "/a").c_str(), 0700) == 0);
    try {
        hv::storage::require_searchable(t.path + "/a/b");
        FAIL("accepted");
    } catch (const hv::Error& e) {
        CHECK(e.code() == hv::Errc::conflict);
        CHECK(std::string(e.what()).find("chmod o+x " + t.path + "/a") != std::string::npos);
    }
    REQUIRE(::chmod((t.path + "/a").c_str(), 0755) == 0);
    hv::storage::require_searchable(t.path + "/a/b");
}

TEST_CASE("debootstrap output becomes task progress that only moves forward", "[ct]") {
    hv::storage::DebootstrapProgress p;
    CHECK(p.percent() == 5);
    CHECK_FALSE(p.feed("W: not an info line"));
    CHECK(p.feed("I: Retrieving InRelease "));
    CHECK(p.percent() == 6);
    CHECK(p.feed("I: Resolving dependencies of required packages..."));
    CHECK(p.percent() == 10);
    CHECK_FALSE(p.feed("I: Found packages in base system: a b c d"));
    CHECK_FALSE(p.feed("I: Found additional required dependencies: e f g h"));  // 8 packages
    std::vector<int> seen;
    for (const char* pkg : {"a", "b", "c", "d", "e", "f", "g", "h"}) {
        CHECK(p.feed(std::string("I: Retrieving ") + pkg + " 1.0"));
        seen.push_back(p.percent());
    }
    CHECK(seen.front() > 12);
    CHECK(seen.back() == 30);  // all 8 retrieved: the end of the retrieving share
    CHECK(std::is_sorted(seen.begin(), seen.end()));
    CHECK(p.message() == "Retrieving h 1.0");
    p.feed("I: Extracting a...");
    CHECK(p.percent() > 34);
    p.feed("I: Configuring h...");
    int before = p.percent();
    p.feed("I: Retrieving InRelease");  // an earlier phase's line never moves it back
    CHECK(p.percent() == before);
    CHECK(p.feed("I: Base system installed successfully."));
    CHECK(p.percent() == 58);
}

TEST_CASE("run_command hands over output lines as they come and stops the program when asked", "[util]") {
    std::vector<std::string> lines;
    auto r = hv::util::run_command_lines({"sh", "-c", "echo one; echo two >&2; printf three"}, std::chrono::seconds(10),
                                   [&](const std::string& l) {
                                       if (!l.empty()) lines.push_back(l);
                                       return true;
                                   });
    CHECK(r.exit_status == 0);
    std::sort(lines.begin(), lines.end());
    CHECK(lines == std::vector<std::string>{"one", "three", "two"});
    CHECK(r.out == "one\nthree");
    // Returning false kills it (a cancelled task).
    r = hv::util::run_command_lines({"sh", "-c", "echo started; exec sleep 30"}, std::chrono::seconds(60),
                              [&](const std::string& l) { return l != "started"; });
    CHECK(r.exit_status == 128 + 9);  // killed, not finished
}
