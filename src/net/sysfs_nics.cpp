#include "sysfs_nics.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "hv/error.hpp"

namespace hv::net {
namespace fs = std::filesystem;

std::vector<std::string> SysfsNics::names() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root_, ec)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

bool SysfsNics::exists(const std::string& name) const {
    std::error_code ec;
    return !name.empty() && name.find('/') == std::string::npos && fs::exists(fs::path(root_) / name, ec);
}

std::string SysfsNics::attr(const std::string& name, const std::string& rel) const {
    // Reading speed/carrier of a link that is down fails with EINVAL: that is "unknown", not an error.
    std::ifstream in(fs::path(root_) / name / rel);
    std::string s;
    if (!in || !std::getline(in, s)) return "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
    return s;
}

api::NicInfo SysfsNics::read(const std::string& name) const {
    if (!exists(name)) fail(Errc::not_found, "interface '{}' does not exist", name);
    api::NicInfo n;
    n.name = name;
    n.mac = attr(name, "address");
    auto mtu = attr(name, "mtu");
    n.mtu = mtu.empty() ? 0 : std::atoi(mtu.c_str());
    n.carrier = attr(name, "carrier") == "1";
    auto speed = attr(name, "speed");
    // Drivers report -1 or 4294967295 (SPEED_UNKNOWN) when they do not know.
    if (!speed.empty()) {
        long long v = std::atoll(speed.c_str());
        n.speed = (v <= 0 || v >= 4294967295LL) ? -1 : v;
    }
    auto duplex = attr(name, "duplex");
    n.duplex = duplex == "full" || duplex == "half" ? duplex : "unknown";
    n.operstate = attr(name, "operstate");
    std::error_code ec;
    auto dev = fs::path(root_) / name / "device";
    if (fs::exists(dev, ec)) {
        n.kind = "physical";
        auto drv = fs::read_symlink(dev / "driver", ec);
        if (!ec) n.driver = drv.filename().string();
    }
    auto master = fs::read_symlink(fs::path(root_) / name / "master", ec);
    if (!ec) n.master = master.filename().string();
    return n;
}

}  // namespace hv::net
