#include "pool_mirror.hpp"

#include <libvirt/libvirt.h>
#include <spdlog/spdlog.h>

#include "hv/virt/domain_xml.hpp"

namespace hv::virt {
namespace {

std::string libvirt_name(const std::string& pool) { return "hv-" + pool; }

struct PoolDeleter {
    void operator()(virStoragePool* p) const {
        if (p) virStoragePoolFree(p);
    }
};
using PoolHandle = std::unique_ptr<virStoragePool, PoolDeleter>;

PoolHandle lookup(virConnectPtr c, const std::string& pool) {
    return PoolHandle(virStoragePoolLookupByName(c, libvirt_name(pool).c_str()));
}

void define(Connection& conn, const api::PoolSpec& spec) {
    auto c = conn.get();
    auto p = lookup(c.get(), spec.name);
    auto target = fmt::format("<path>{}/images</path>", xml_escape(spec.path));
    if (p) {
        // A pool of that name from an earlier life of this host with another path: replace it.
        char* xml = virStoragePoolGetXMLDesc(p.get(), 0);
        bool same = xml && std::string(xml).find(target) != std::string::npos;
        free(xml);
        if (!same) {
            if (virStoragePoolIsActive(p.get()) == 1) virStoragePoolDestroy(p.get());
            virStoragePoolUndefine(p.get());
            p.reset();
        }
    }
    if (!p) {
        auto xml = fmt::format("<pool type='dir'><name>{}</name><target>{}</target></pool>",
                               xml_escape(libvirt_name(spec.name)), target);
        p.reset(virStoragePoolDefineXML(c.get(), xml.c_str(), 0));
        if (!p) throw_libvirt_error("cannot define libvirt pool for '" + spec.name + "'");
        virStoragePoolSetAutostart(p.get(), 1);
    }
    if (virStoragePoolIsActive(p.get()) != 1 && virStoragePoolCreate(p.get(), 0) < 0)
        throw_libvirt_error("cannot start libvirt pool for '" + spec.name + "'");
}

}  // namespace

storage::PoolManager::Mirror libvirt_pool_mirror(Connection& conn) {
    storage::PoolManager::Mirror m;
    m.define = [&conn](const api::PoolSpec& spec) {
        try {
            define(conn, spec);
        } catch (const std::exception& e) {
            spdlog::warn("pool {}: not mirrored in libvirt: {}", spec.name, e.what());
        }
    };
    m.undefine = [&conn](const std::string& name) {
        try {
            auto c = conn.get();
            if (auto p = lookup(c.get(), name)) {
                if (virStoragePoolIsActive(p.get()) == 1) virStoragePoolDestroy(p.get());
                virStoragePoolUndefine(p.get());
            }
        } catch (const std::exception& e) {
            spdlog::warn("pool {}: libvirt pool not removed: {}", name, e.what());
        }
    };
    m.refresh = [&conn](const std::string& name) {
        try {
            auto c = conn.get();
            if (auto p = lookup(c.get(), name); p && virStoragePoolIsActive(p.get()) == 1)
                virStoragePoolRefresh(p.get(), 0);
        } catch (const std::exception& e) {
            spdlog::debug("pool {}: libvirt refresh failed: {}", name, e.what());
        }
    };
    return m;
}

}  // namespace hv::virt
