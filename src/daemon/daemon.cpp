#include "daemon.hpp"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "api_routes.hpp"
#include "chrony_manager.hpp"
#include "cluster.hpp"
#include "cluster_dispatcher.hpp"
#include "ceph_service.hpp"
#include "migrator.hpp"
#include "ha_service.hpp"
#include "tls_listener.hpp"
#include "autostart_routes.hpp"
#include "ct_manager.hpp"
#include "ct_routes.hpp"
#include "crash_recovery.hpp"
#include "drivers.hpp"
#include "guest.hpp"
#include "host_service.hpp"
#include "../storage/ct_templates.hpp"
#include "event_bus.hpp"
#include "http_server.hpp"
#include "journal_sink.hpp"
#include "netlink_backend.hpp"
#include "task_manager.hpp"
#include "pool_mirror.hpp"
#include "route_table.hpp"
#include "systemd_notify.hpp"
#include "vm_manager.hpp"
#include "hv/util/guard.hpp"

namespace hv::daemon {

Config resolve_config(const Overrides& o) {
    Config c = load_config(o.config_path, o.config_given);
    if (!o.socket.empty()) c.socket = o.socket;
    if (!o.libvirt_uri.empty()) c.libvirt_uri = o.libvirt_uri;
    if (!o.state_dir.empty()) {
        c.state_dir = o.state_dir;
        // --state-dir moves the images with it unless the config file chose a place.
    }
    if (!o.accel.empty()) {
        if (o.accel != "auto" && o.accel != "kvm" && o.accel != "tcg")
            fail(Errc::invalid_input, "--accel must be auto, kvm or tcg (got '{}')", o.accel);
        c.accel = o.accel;
    }
    if (!o.log_level.empty()) c.log_level = o.log_level;
    if (!o.node_name.empty()) c.cluster_node_name = o.node_name;
    if (c.cluster_node_name.empty()) {
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        c.cluster_node_name = host;
        for (auto& ch : c.cluster_node_name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (auto dot = c.cluster_node_name.find('.'); dot != std::string::npos) c.cluster_node_name.resize(dot);
    }
    if (!o.log_target.empty()) {
        if (o.log_target != "auto" && o.log_target != "journal" && o.log_target != "stderr")
            fail(Errc::invalid_input, "--log-target must be auto, journal or stderr (got '{}')", o.log_target);
        c.log_target = o.log_target;
    }
    namespace fs = std::filesystem;
    for (auto* p : {&c.socket, &c.state_dir}) *p = fs::absolute(*p).lexically_normal().string();
    if (!c.image_dir.empty()) c.image_dir = fs::absolute(c.image_dir).lexically_normal().string();
    if (spdlog::level::from_str(c.log_level) == spdlog::level::off && c.log_level != "off")
        fail(Errc::invalid_input, "log level '{}' is not one of trace, debug, info, warn, error", c.log_level);
    return c;
}

namespace {
void setup_logging(const Config& cfg) {
    // Under systemd stderr is already the journal; the journal sink adds structured fields
    // (VM=, TASK_ID=, ...; src/daemon/journal_sink.hpp).
    if (resolve_log_target(cfg.log_target) == "journal") {
        auto sink = std::make_shared<JournalSink>(systemd_journal_writer(), "hvd");
        spdlog::set_default_logger(std::make_shared<spdlog::logger>("hvd", sink));
    } else {
        auto logger = spdlog::stderr_color_mt("hvd");
        auto formatter = std::make_unique<spdlog::pattern_formatter>();
        formatter->add_flag<LogFieldsFlag>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v%*");
        logger->set_formatter(std::move(formatter));
        spdlog::set_default_logger(logger);
    }
    spdlog::set_level(spdlog::level::from_str(cfg.log_level));
}
// Connections, libvirt, uploads and QEMU logs all take descriptors: the soft limit (1024 by
// default) goes up to the hard one, so the connection limits are what refuses clients.
void raise_fd_limit() {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
    rl.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) spdlog::warn("cannot raise the open-file limit: {}", std::strerror(errno));
}
}  // namespace

int run(const Config& cfg) {
    setup_logging(cfg);
    raise_fd_limit();
    auto started = std::chrono::steady_clock::now();
    spdlog::info("hvd {} starting: socket {}, libvirt {}, state {}", HV_VERSION, cfg.socket, cfg.libvirt_uri,
                 cfg.state_dir);
    // Directories hvd creates get 0711 (QEMU must traverse them); existing ones are left as they are.
    for (const auto& dir : {cfg.state_dir, cfg.state_dir + "/logs"})
        if (std::filesystem::create_directories(dir)) ::chmod(dir.c_str(), 0711);
    std::string log_dir = cfg.state_dir + "/logs";

    // Declared before the io_context: sessions destroyed with it still unsubscribe from it.
    EventBus bus;
    boost::asio::io_context io;
    boost::asio::thread_pool request_pool(static_cast<std::size_t>(cfg.workers));
    boost::asio::thread_pool task_pool(static_cast<std::size_t>(std::max(4, cfg.workers)));
    // The task journal (task list/show across restarts, ids never repeat): private to hvd.
    std::string task_dir = cfg.state_dir + "/tasks";
    if (std::filesystem::create_directories(task_dir)) ::chmod(task_dir.c_str(), 0700);
    TaskManager tasks(task_pool, bus, static_cast<std::size_t>(cfg.task_history), task_dir);
    // Storage pools: the built-in "local" (a dir pool) plus those added at run time.
    api::PoolSpec local{"local", "dir", cfg.effective_image_dir(), {}};
    storage::PoolManager pools(cfg.state_dir + "/pools.json", local);

    // Host networking: hv's bridges/bonds/VLANs re-applied before anything (VMs, autostart)
    // needs them.
    net::NetManager net(cfg.state_dir + "/network.json", std::make_unique<net::NetlinkBackend>());
    net.recover();  // an apply never confirmed (hvd died in the window) is rolled back first
    net.apply_all();

    // Guest NICs on bridges (VM taps, container veths) carry exactly the NIC's VLANs (set by
    // hv, not libvirt).
    virt::PortHooks ports;
    ports.check = [&net](const api::NicSpec& n) {
        if (!n.bridge.empty()) net.check_port(n.bridge, n.vlan, n.trunks);
    };
    ports.plug = [&net](const std::string& port, const api::NicSpec& n) {
        net.plug_port(port, n.bridge, n.vlan, n.trunks);
    };
    ports.state = [&net](const std::string& port) { return net.port_state(port); };
    // The guest layer: one name space, one operation lock per name and the lifecycle events
    // of every kind (src/guest/guest.hpp). Declared before the managers that publish through it.
    // Every event of a guest also tells the cluster's directory publisher to look at it again
    // (level-triggered: it compares the guest with its record and writes what differs).
    std::atomic<cluster::Cluster*> cluster_ptr{nullptr};
    guest::Guests guests([&bus, &cluster_ptr](const std::string& type, const std::string& target, const nlohmann::json& d) {
        bus.publish(type, target, d);
        if (auto* c = cluster_ptr.load(); c && (target.rfind("vm/", 0) == 0 || target.rfind("ct/", 0) == 0))
            c->touch(target.substr(3));
    });
    virt::VmManager::Options vo;
    vo.locks = &guests.locks();
    vo.ports = ports;
    vo.connection.uri = cfg.libvirt_uri;
    vo.connection.reconnect_interval_ms = cfg.reconnect_interval_ms;
    vo.connection.keepalive_interval_s = cfg.keepalive_interval;
    vo.accel = cfg.accel;
    vo.serial_log_dir = log_dir;
    virt::VmManager vms(vo, pools, guests.publisher(api::GuestKind::vm));
    auto vm_driver = guest::make_vm_driver(vms);
    guests.add(*vm_driver);

    Router router;
    // Containers: libvirt's LXC driver through a second connection (docs/containers.md).
    storage::TemplateStore templates(pools);
    virt::CtManager::Options co;
    co.locks = &guests.locks();
    co.ports = ports;
    co.connection.uri = cfg.effective_lxc_uri();
    co.connection.reconnect_interval_ms = cfg.reconnect_interval_ms;
    co.connection.keepalive_interval_s = cfg.keepalive_interval;
    virt::CtManager cts(co, pools, templates, guests.publisher(api::GuestKind::ct));
    auto ct_driver = guest::make_ct_driver(cts);
    guests.add(*ct_driver);
    // What guests use in the pools: VM disks and CD/DVDs, container root filesystems.
    pools.set_users([&guests](bool live) { return guests.image_users(live); });
    cts.start();
    HostService host(cfg, vms, pools, net, started);
    ApiContext ctx{cfg, vms, tasks, pools, guests, host};
    guest::AutostartService autostart(
        guests, [&tasks](const std::string& kind, const std::string& target, TaskManager::Work work) {
            return tasks.submit(kind, target, std::move(work));
        },
        [&bus](const std::string& type, const std::string& target, const nlohmann::json& d) { bus.publish(type, target, d); },
        cfg.state_dir,
        {cfg.autostart_boot_delay, cfg.autostart_max_parallel, cfg.autostart_retries, cfg.autostart_retry_delay});
    // The cluster (docs/cluster.md): membership, the store, the guest directory.
    cluster::ClusterOptions clo;
    clo.state_dir = cfg.state_dir + "/cluster";
    clo.node_name = cfg.cluster_node_name;
    clo.port = cfg.cluster_port;
    for (std::size_t pos = 0; pos < cfg.cluster_endpoints.size();) {
        auto comma = cfg.cluster_endpoints.find(',', pos);
        auto e = cfg.cluster_endpoints.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        if (!e.empty()) clo.endpoints.push_back(e);
        pos = comma == std::string::npos ? cfg.cluster_endpoints.size() : comma + 1;
    }
    clo.etcd_binary = cfg.cluster_etcd_binary;
    clo.etcd_ca_file = cfg.cluster_etcd_ca;
    clo.etcd_cert_file = cfg.cluster_etcd_cert;
    clo.etcd_key_file = cfg.cluster_etcd_key;
    clo.etcd_client_port = cfg.cluster_etcd_client_port;
    clo.etcd_peer_port = cfg.cluster_etcd_peer_port;
    clo.voters = cfg.cluster_voters;
    clo.lease_ttl = std::chrono::seconds(cfg.cluster_lease_ttl);
    clo.clock_warn_ms = cfg.cluster_clock_warn_ms;
    clo.version = HV_VERSION;
    time::ChronyOptions chrony_options;
    chrony_options.chronyc = cfg.time_chronyc;
    chrony_options.command_address = cfg.time_command_address;
    chrony_options.sources_file = cfg.time_sources_file;
    time::ChronyManager chrony(chrony_options);
    cluster::LocalHooks hooks;
    auto local_guest = [](guest::GuestDriver& d, const nlohmann::json& info) {
        cluster::LocalGuest g;
        g.kind = std::string(api::kind_name(d.kind()));
        g.name = info.value("name", "");
        g.uuid = info.value("uuid", "");
        g.state = info.value("state", "");
        g.info = info;
        return g;
    };
    hooks.guests = [&guests, local_guest] {
        std::vector<cluster::LocalGuest> out;
        for (auto* d : guests.drivers())
            for (const auto& info : d->list_json())
                if (info.is_object()) out.push_back(local_guest(*d, info));
        return out;
    };
    hooks.guest = [&guests, local_guest](const std::string& name) -> std::optional<cluster::LocalGuest> {
        for (auto* d : guests.drivers()) {
            if (!d->find(name)) continue;
            return local_guest(*d, d->info(name));
        }
        return std::nullopt;
    };
    hooks.facts = [&chrony, &vms] {
        cluster::HostFacts f;
        try {
            if (auto cpu = vms.host_cpu()) f.cpu = *cpu;  // read once, then cached
        } catch (const std::exception& e) {
            spdlog::debug("host cpu not read: {}", e.what());
        }
        f.cpus = static_cast<int>(std::thread::hardware_concurrency());
        f.memory_total = HostService::meminfo("MemTotal:");
        auto avail = HostService::meminfo("MemAvailable:");
        f.memory_used = f.memory_total > avail ? f.memory_total - avail : 0;
        try {
            auto t = chrony.status();
            if (t.chronyd_running && t.synchronised) f.clock_offset_ms = t.offset_seconds * 1000.0;
        } catch (const Error&) {
        }
        return f;
    };
    std::function<void()> follow_cluster;
    hooks.changed = [&io, &follow_cluster] { boost::asio::post(io, [&follow_cluster] { follow_cluster(); }); };
    cluster::Cluster cluster(clo, hooks);
    // A VM created in a cluster gets the baseline of the members' CPUs (docs/migration.md).
    vms.set_cluster_cpus([&cluster_ptr] {
        std::vector<api::CpuSpec> out;
        auto* c = cluster_ptr.load();
        if (!c || !c->member()) return out;
        for (const auto& [node, j] : c->member_cpus()) try {
                auto cpu = api::cpu_from_json(j, "cpu of " + node);
                api::validate(cpu, false);
                if (cpu.mode == "custom") out.push_back(std::move(cpu));
            } catch (const Error& e) {
                spdlog::warn("member {}: its published cpu is not used: {}", node, e.what());
            }
        return out;
    });
    // Guest events stop reaching the cluster before it goes (the managers outlive it).
    struct Unhook {
        std::atomic<cluster::Cluster*>& p;
        ~Unhook() { p = nullptr; }
    } unhook{cluster_ptr};
    ClusterDirectory directory(cluster);
    guests.set_directory(&directory);
    ClusterDispatcher dispatcher(cluster, std::chrono::seconds(cfg.request_timeout));
    // Hyperconverged Ceph (docs/ceph.md): its reconcile loop over the cluster store.
    ceph::CephOptions cephopts;
    cephopts.dir = cfg.state_dir + "/ceph";
    cephopts.node = cfg.cluster_node_name;
    cephopts.osd_memory_target_mb = cfg.ceph_osd_memory_target_mb;
    cephopts.mon_data_avail_warn = cfg.ceph_mon_data_avail_warn;
    ceph::CephService ceph(cephopts, cluster, pools);
    migrate::Migrator migrator(vms, pools, cluster,
                               {cfg.state_dir + "/run", cfg.cluster_migration_socket_dir, cfg.cluster_migration_timeout,
                                cfg.state_dir + "/migrations"});
    migrator.set_publisher(
        [&bus](const std::string& type, const std::string& target, const nlohmann::json& d) { bus.publish(type, target, d); });
    migrator.set_containers(cts, [&guests](const std::string& name, util::Progress& p) {
        for (auto* d : guests.drivers())
            if (d->kind() == api::GuestKind::ct) guest::shutdown(*d, name, 60, true, p, nullptr);
    });
    migrator.set_running_containers([&guests] {
        std::vector<std::string> out;
        for (auto* d : guests.drivers())
            for (const auto& g : d->list())
                if (g.ref.kind == api::GuestKind::ct && g.state == api::GuestState::running) out.push_back(g.ref.name);
        return out;
    });
    // HA (docs/ha.md): manager + local agent over the store; autostart leaves its guests to it.
    // Declared after the cluster: it stops (freezing this host's HA guests) before the lease goes.
    ha::HaService ha({cfg.ha_watchdog, cfg.ha_watchdog_timeout, cfg.cluster_lease_ttl}, cluster, guests, vms, pools, autostart);
    autostart.set_left_out([&ha](const std::string& name) { return ha.managed(name); });
    // Failback: the agent's live migration is a task like `vm migrate`'s (tasks end before ha).
    ha.set_migrate([&ha, &tasks, &migrator](const std::string& vm, const std::string& to) {
        api::MigrateRequest rq;
        rq.to = to;
        tasks.submit("vm.migrate", "vm/" + vm, [&ha, &migrator, vm, rq](util::Progress& p) {
            try {
                auto report = migrator.migrate(vm, rq, p);
                ha.migration_done(vm, "");
                return api::to_json(report);
            } catch (const std::exception& e) {
                ha.migration_done(vm, e.what());
                throw;
            }
        });
    });
    // The host shuts down (hv-guests.service's stop-all): HA's shutdown policy first (docs/ha.md).
    // "migrate" enters maintenance, marked as the shutdown's (left again after the next boot),
    // unless an admin's maintenance is already in (it stays theirs).
    autostart.set_before_stop_all([&ha, &migrator, parallel = cfg.cluster_maintenance_parallel](util::Progress& p) {
        return ha.host_shutdown(p, [&migrator, parallel](util::Progress& mp) {
            auto cur = migrator.maintenance_status().at("maintenance");
            bool admins = cur.is_object() && cur.value("reason", "") != "host shutdown";
            return migrator.enter_maintenance(parallel, false, mp, admins ? "" : "host shutdown");
        });
    });
    guests.set_request_hook([&ha](api::GuestKind k, const std::string& name, const std::string& action) {
        if (k == api::GuestKind::vm) ha.requested(name, action);
    });
    // The one list of route registrations (also behind hvd --print-routes).
    register_all_routes(router, RouteParts{ctx, net, cts, templates, autostart, cluster, ceph, migrator, ha});

    ServerLimits limits;
    limits.header_timeout = std::chrono::seconds(cfg.header_timeout);
    limits.max_connections = static_cast<std::size_t>(cfg.max_connections);
    limits.max_connections_per_uid = static_cast<std::size_t>(cfg.max_connections_per_uid);
    limits.max_root_connections = static_cast<std::size_t>(cfg.max_root_connections);
    HttpServer server(io, request_pool, router, bus, std::chrono::seconds(cfg.request_timeout), limits);
    server.set_dispatcher(&dispatcher);
    // The TLS listener follows the membership (made at create/join, gone at leave), on the I/O
    // thread.
    std::unique_ptr<TlsListener> tls;
    std::string tls_cert;
    follow_cluster = [&] {
        util::guarded("following the cluster membership", [&] {
            auto id = cluster.identity();
            ceph.membership_changed();
            tasks.set_node(id ? cluster.node() : std::string());
            bus.set_host(id ? cluster.node() : std::string());
            if (!id) {
                tls.reset();
                tls_cert.clear();
                return;
            }
            if (tls && tls_cert == id->cert_pem) return;
            tls.reset();
            tls = std::make_unique<TlsListener>(io, server, cluster.address(), cluster.port(), *id);
            tls_cert = id->cert_pem;
        });
    };
    // Every way out of here, also an exception, first stops and joins the threads that use the
    // objects above (tasks, requests), then destroys them: declared after all of them.
    struct JoinFirst {
        TaskManager& tasks;
        boost::asio::thread_pool& requests;
        boost::asio::thread_pool& task_threads;
        ~JoinFirst() {
            // Waiting operations (a shutdown's wait, a create between disks) stop at their next
            // check; nothing is done to the VMs themselves.
            tasks.cancel_all();
            requests.stop();
            requests.join();
            task_threads.stop();
            task_threads.join();
            util::guarded("stop", [] { spdlog::info("hvd stopped"); });
        }
    } join_first{tasks, request_pool, task_pool};
    // Listen once the state cache is built, so the first answers are complete; without
    // libvirt, listen anyway after a few seconds and answer 503 until it is back.
    vms.start();
    if (!vms.wait_ready(std::chrono::seconds(5)))
        spdlog::warn("libvirt is not reachable yet; VM calls answer 503 until it is");
    // hv's pools appear in libvirt (virsh pool-list); without libvirt now, at their next change.
    pools.set_mirror(virt::libvirt_pool_mirror(vms.connection()));
    // What a kill -9 left half-made (intent records in <state_dir>/pending) is undone before
    // anyone can ask; records that need libvirt wait for it (retried in the background).
    auto recovery = recover_interrupted(pools, tasks);
    SocketOptions so{cfg.socket, cfg.socket_group, 0660};
    std::string activated;
    so.inherited_fd = systemd_listen_fd(&activated);
    if (so.inherited_fd >= 0) {
        if (activated != cfg.socket)
            spdlog::warn("systemd passed the socket {}, not the configured {}: serving {}", activated, cfg.socket,
                         activated);
        so.path = activated;
    }
    server.listen(so);
    cluster_ptr = &cluster;
    cluster.start();
    ceph.start();
    migrator.start();
    ha.start();
    follow_cluster();
    if (vms.ready() && autostart.at_daemon_start())
        ha.after_boot([&tasks, &migrator] {
            tasks.submit("host.maintenance.exit", "host", [&migrator](util::Progress& p) { return migrator.exit_maintenance(true, p); });
        });
    // systemd (Type=notify): READY=1 once the I/O loop serves the socket and libvirt is connected.
    SystemdNotifier notifier(io, [&vms] { return vms.ready(); });
    notifier.start(fmt::format("serving {} (libvirt {})", cfg.socket, cfg.libvirt_uri));

    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code&, int sig) {
        spdlog::info("signal {}: stopping (running VMs are not touched)", sig);
        notifier.stopping();
        server.close();
        io.stop();
        // A libvirt call stuck on a hung libvirtd must not keep hvd from exiting; that exit is
        // not a clean one (exit status kStuckExit, so systemd and scripts can tell).
        std::thread([] {
            std::this_thread::sleep_for(std::chrono::seconds(10));
            util::guarded("stop watchdog", [] { spdlog::warn("still stopping after 10 s (libvirt calls hang); exiting now (status {})", kStuckExit); });
            spdlog::shutdown();
            std::_Exit(kStuckExit);
        }).detach();
    });
    ::signal(SIGPIPE, SIG_IGN);
    // A handler that throws on the I/O thread is logged and the loop goes on (the session that
    // threw answers 500 itself, see http_server.cpp); run() returns only when stopped.
    while (!util::guarded("I/O thread", [&] { io.run(); })) {
    }
    spdlog::info("hvd stopping: waiting for requests and tasks to end");
    return 0;
}

}  // namespace hv::daemon
