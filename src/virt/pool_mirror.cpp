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

// rbd pools: no libvirt pool, the secret QEMU authenticates to Ceph with (uuid and value from
// the pool: the same uuid on every host), private (its value never leaves libvirt) and kept.
void define_secret(Connection& conn, const api::PoolSpec& spec) {
    auto s = storage::rbd_secret(spec);
    auto c = conn.get();
    auto xml = fmt::format("<secret ephemeral='no' private='yes'><uuid>{}</uuid><usage type='ceph'><name>{}</name></usage>"
                           "<description>hv: cephx key of client.{} for pool {}</description></secret>",
                           xml_escape(s.uuid), xml_escape(s.usage), xml_escape(spec.user), xml_escape(spec.name));
    std::unique_ptr<virSecret, int (*)(virSecretPtr)> sec(virSecretDefineXML(c.get(), xml.c_str(), 0), virSecretFree);
    if (!sec) throw_libvirt_error("cannot define the libvirt secret of rbd pool '" + spec.name + "'");
    if (virSecretSetValue(sec.get(), reinterpret_cast<const unsigned char*>(s.value.data()), s.value.size(), 0) < 0)
        throw_libvirt_error("cannot set the libvirt secret of rbd pool '" + spec.name + "'");
}

void undefine_secret(Connection& conn, const std::string& pool) {
    auto c = conn.get();
    std::unique_ptr<virSecret, int (*)(virSecretPtr)> sec(
        virSecretLookupByUUIDString(c.get(), storage::rbd_secret_uuid(pool).c_str()), virSecretFree);
    if (sec) virSecretUndefine(sec.get());
}

void define(Connection& conn, const api::PoolSpec& spec) {
    if (spec.type == "rbd") return define_secret(conn, spec);
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
            undefine_secret(conn, name);
        } catch (const std::exception& e) {
            spdlog::warn("pool {}: libvirt secret not removed: {}", name, e.what());
        }
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
