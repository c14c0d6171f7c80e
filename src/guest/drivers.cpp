#include "drivers.hpp"

#include <cstdlib>

#include <libvirt/libvirt-qemu.h>
#include <spdlog/spdlog.h>

#include "ct_manager.hpp"
#include "domain_state.hpp"
#include "hv/virt/domain_xml.hpp"
#include "autostart.hpp"
#include "probes.hpp"
#include "vm_manager.hpp"

namespace hv::guest {
using nlohmann::json;

namespace {

using autostart::tcp_port;

// A guest's status from its info (VmInfo, CtInfo: GuestStatusInfo + spec).
template <class Info>
GuestStatus status_of(GuestKind k, const Info& v) {
    return GuestStatus{GuestRef{k, v.uuid, v.spec.name}, v.state, v.reason, v.managed};
}
template <class Info>
std::vector<GuestStatus> statuses_of(GuestKind k, const std::vector<Info>& all) {
    std::vector<GuestStatus> out;
    for (const auto& v : all) out.push_back(status_of(k, v));
    return out;
}

std::optional<std::string> element_text(virDomainPtr d, const std::string& ns) {
    auto xml = virt::get_metadata(d, ns.c_str(), VIR_DOMAIN_AFFECT_CONFIG);
    if (!xml) return std::nullopt;
    auto el = virt::read_metadata_element(*xml);
    if (!el) return std::nullopt;
    return el->text;
}

// The element goes into the definition and, while the domain runs, into the live one too.
void write_element(virDomainPtr d, GuestKind kind, const std::string& name, const std::string& ns,
                   const std::string& prefix, const std::string& element) {
    auto [st, reason] = virt::domain_state(d);
    (void)reason;
    bool live = virt::is_active(virt::map_state(st));
    unsigned flags = VIR_DOMAIN_AFFECT_CONFIG | (live ? static_cast<unsigned>(VIR_DOMAIN_AFFECT_LIVE) : 0u);
    if (virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, element.c_str(), prefix.c_str(), ns.c_str(), flags) < 0)
        virt::throw_libvirt_error(fmt::format("cannot set the metadata of {} '{}'", api::kind_noun(kind), name));
}

std::optional<GuestStatus> not_found_is_none(const std::function<GuestStatus()>& f) {
    try {
        return f();
    } catch (const Error& e) {
        if (e.code() == Errc::not_found) return std::nullopt;
        throw;
    }
}

class VmDriver final : public GuestDriver {
public:
    explicit VmDriver(virt::VmManager& vms) : vms_(vms) {
        // For tests: HV_AUTOSTART_TCP_ADDRESS replaces the VM's address for tcp:PORT gates.
        if (const char* a = std::getenv("HV_AUTOSTART_TCP_ADDRESS")) tcp_override_ = a;
    }
    GuestKind kind() const override { return GuestKind::vm; }
    bool wait_connected(std::chrono::milliseconds t) override { return vms_.wait_ready(t); }

    std::vector<GuestStatus> list() override { return statuses_of(kind(), vms_.list()); }
    std::optional<GuestStatus> find(const std::string& name) override {
        return not_found_is_none([&] { return status_of(kind(), vms_.get(name)); });
    }
    json list_json() override { return vms_.list(); }
    json info(const std::string& name) override { return vms_.get(name); }

    const std::vector<std::string>& actions() const override {
        static const std::vector<std::string> a{"start", "stop", "reboot", "reset", "suspend", "resume"};
        return a;
    }
    json action(const std::string& name, const std::string& act) override { return vms_.action(name, act); }
    json update(const std::string& name, const api::VmPatch& patch) override { return vms_.update(name, patch); }
    json remove(const std::string& name, bool purge, util::Progress& p) override {
        vms_.remove(name, purge, p);
        return json{{"name", name}, {"purged", purge}};
    }

    void request_shutdown(const std::string& name, util::Progress& p) override { vms_.request_shutdown(name, p); }
    bool active(const std::string& name) override { return vms_.active(name); }
    bool power_off(const std::string& name) override { return vms_.power_off(name); }
    json settled_info(const std::string& name) override { return vms_.refreshed(name); }
    ShutdownWords shutdown_words() const override {
        return {"ACPI shutdown requested", "waiting for the guest to power off", "power it off", "powering off",
                "powered off after timeout", "guest powered off"};
    }

    std::optional<std::string> metadata(const std::string& name, const std::string& ns) override {
        vms_.get(name);  // 404 first, from the cache
        auto d = vms_.connection().domain(name);
        return element_text(d.get(), ns);
    }
    void set_metadata(const std::string& name, const std::string& ns, const std::string& prefix,
                      const std::string& element) override {
        vms_.get(name);
        auto d = vms_.connection().domain(name);
        write_element(d.get(), kind(), name, ns, prefix, element);
    }
    bool required_for_claims() const override { return true; }
    bool ready(const std::string& name, const std::string& wait_for) override {
        if (vms_.get(name).state != GuestState::running) return false;
        if (wait_for == "running" || wait_for == "none") return true;
        auto d = vms_.connection().domain(name);
        if (wait_for == "guest-agent") {
            char* r = virDomainQemuAgentCommand(d.get(), R"({"execute":"guest-ping"})", 2, 0);
            if (!r) return false;
            free(r);
            return true;
        }
        int port = tcp_port(wait_for);
        if (port <= 0) return false;
        auto addrs = tcp_override_.empty() ? vm_addresses(d.get()) : std::vector<std::string>{tcp_override_};
        for (const auto& a : addrs)
            if (tcp_open(a, port, 1000)) return true;
        return false;
    }

    std::map<std::string, std::vector<std::string>> image_users(bool live) override { return vms_.image_users(live); }
    std::optional<std::string> user_name(const std::string& user) const override {
        if (user.find(' ') != std::string::npos) return std::nullopt;  // another kind's label
        return user;
    }
    void release_image(const std::string& name, const std::string& path) override {
        auto info = vms_.get(name);
        if (info.spec.cdrom == path) vms_.set_cdrom(name, "");
        for (const auto& d : info.spec.disks)
            if (d.path == path) vms_.detach_disk(name, d.name, false);
    }

private:
    virt::VmManager& vms_;
    std::string tcp_override_;  // VMs only: a container's port is checked in its own namespace
};

class CtDriver final : public GuestDriver {
public:
    explicit CtDriver(virt::CtManager& cts) : cts_(cts) {}
    GuestKind kind() const override { return GuestKind::ct; }
    bool wait_connected(std::chrono::milliseconds t) override { return cts_.connection().wait_connected(t); }

    std::vector<GuestStatus> list() override { return statuses_of(kind(), cts_.list()); }
    std::optional<GuestStatus> find(const std::string& name) override {
        if (!cts_.exists(name)) return std::nullopt;
        return not_found_is_none([&] { return status_of(kind(), cts_.get(name)); });  // deleted meanwhile: none
    }
    json list_json() override { return cts_.list(); }
    json info(const std::string& name) override { return cts_.get(name); }

    const std::vector<std::string>& actions() const override {
        static const std::vector<std::string> a{"start", "stop", "reboot"};
        return a;
    }
    json action(const std::string& name, const std::string& act) override { return cts_.action(name, act); }
    json update(const std::string& name, const api::VmPatch& patch) override { return cts_.update(name, patch); }
    json remove(const std::string& name, bool, util::Progress& p) override {
        cts_.remove(name, p);
        return json{{"name", name}, {"deleted", true}};
    }

    void request_shutdown(const std::string& name, util::Progress& p) override { cts_.request_shutdown(name, p); }
    bool active(const std::string& name) override { return cts_.active(name); }
    bool power_off(const std::string& name) override { return cts_.power_off(name); }
    json settled_info(const std::string& name) override { return cts_.get(name); }
    ShutdownWords shutdown_words() const override {
        return {"init asked to stop", "waiting for init to exit", "stop it", "stopping", "stopped after timeout",
                "shut down"};
    }

    std::optional<std::string> metadata(const std::string& name, const std::string& ns) override {
        auto d = cts_.connection().domain(name);
        return element_text(d.get(), ns);
    }
    void set_metadata(const std::string& name, const std::string& ns, const std::string& prefix,
                      const std::string& element) override {
        auto d = cts_.connection().domain(name);
        write_element(d.get(), kind(), name, ns, prefix, element);
    }
    bool required_for_claims() const override { return false; }
    bool ready(const std::string& name, const std::string& wait_for) override {
        auto info = cts_.get(name);
        if (info.state != GuestState::running) return false;
        if (wait_for == "running" || wait_for == "none") return true;
        int port = tcp_port(wait_for);
        return port > 0 && tcp_open_in_netns(info.init_pid, port, 1000);
    }

    std::map<std::string, std::vector<std::string>> image_users(bool) override {
        std::map<std::string, std::vector<std::string>> out;
        for (const auto& c : cts_.list())
            if (!c.spec.rootfs.path.empty()) out[c.spec.rootfs.path].push_back(std::string(kPrefix) + c.spec.name);
        return out;
    }
    std::optional<std::string> user_name(const std::string& user) const override {
        if (user.rfind(kPrefix, 0) != 0) return std::nullopt;
        return user.substr(std::string(kPrefix).size());
    }
    void release_image(const std::string& name, const std::string&) override {
        fail(Errc::conflict, "it is the root filesystem of container '{}'; delete the container instead", name);
    }

private:
    static constexpr const char* kPrefix = "container ";
    virt::CtManager& cts_;
};

}  // namespace

std::unique_ptr<GuestDriver> make_vm_driver(virt::VmManager& vms) { return std::make_unique<VmDriver>(vms); }
std::unique_ptr<GuestDriver> make_ct_driver(virt::CtManager& cts) { return std::make_unique<CtDriver>(cts); }

}  // namespace hv::guest
