// hv's file pools mirrored as libvirt storage pools ("hv-<name>", type dir, target
// <pool>/images), so `virsh pool-list` / `vol-list` show hv's volumes. hvd stays the owner of
// the files (it creates, zeroes and deletes them); libvirt's view is refreshed after changes.
// Failures (libvirt down) are logged and never fail a storage operation.
#pragma once

#include "connection.hpp"
#include "hv/storage/pool_manager.hpp"

namespace hv::virt {

storage::PoolManager::Mirror libvirt_pool_mirror(Connection& conn);

}  // namespace hv::virt
