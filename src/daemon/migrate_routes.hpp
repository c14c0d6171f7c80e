// POST /v1/vms/{name}/migrate (runs on the VM's owner) and GET /v1/host/libvirt, the
// host-to-host upgrade that carries a libvirt connection to this host's libvirtd (only for
// cluster members' host certificates). Thin: the work is migrate::Migrator's.
#pragma once

#include <string>

#include "migrator.hpp"
#include "router.hpp"
#include "task_manager.hpp"

namespace hv::daemon {

// `libvirt_uri`: this hvd's libvirt URI; its Unix socket is what the tunnel reaches.
// `parallel`: migrations at once when this host enters maintenance ([cluster] maintenance_parallel).
void register_migrate_routes(Router& r, migrate::Migrator& m, TaskManager& tasks, const std::string& libvirt_uri,
                             int parallel);
// The Unix socket of a libvirt URI: its ?socket=, else libvirt's default for qemu:///system.
std::string libvirt_socket_of(const std::string& uri);

}  // namespace hv::daemon
