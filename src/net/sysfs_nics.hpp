// NIC facts from sysfs (/sys/class/net/<name>/{address,mtu,carrier,speed,duplex,operstate},
// the driver through the device/driver symlink), behind a root path that tests point at a
// captured tree.
#pragma once

#include <string>
#include <vector>

#include "hv/api/net.hpp"

namespace hv::net {

class SysfsNics {
public:
    explicit SysfsNics(std::string root = "/sys/class/net") : root_(std::move(root)) {}
    // Interface names under the root, sorted.
    std::vector<std::string> names() const;
    bool exists(const std::string& name) const;
    // not_found when the interface does not exist. kind is "physical" when the interface has a
    // device (a real NIC), else "" (the caller fills in the link kind).
    api::NicInfo read(const std::string& name) const;
    // A sysfs attribute below the interface, trimmed; "" when unreadable.
    std::string attr(const std::string& name, const std::string& rel) const;

private:
    std::string root_;
};

}  // namespace hv::net
