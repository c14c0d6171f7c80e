// hvctl vm ...: create, disk, cdrom, nic; list, show, the power actions, shutdown, set and delete
// come from the definition VMs and containers share (guest_commands.cpp).
#include <memory>

#include <CLI/CLI.hpp>

#include "context.hpp"
#include "guest_commands.hpp"
#include "hv/api/size.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace hv::cli {
namespace {

struct CreateOpts {
    std::string name, memory = "512M", cdrom, firmware = "bios", machine = "q35", description;
    std::string kernel, initrd, cmdline, host, cpu;
    int cpus = 1;
    std::vector<std::string> disks, nets, tags;
    bool start = false, async = false;
};

api::VmSpec build_spec(const CreateOpts& o) {
    api::VmSpec s;
    s.name = o.name;
    s.cpus = o.cpus;
    s.memory = api::parse_size(o.memory, "memory");
    for (const auto& d : o.disks) s.disks.push_back(api::parse_disk_arg(d));
    for (const auto& n : o.nets) s.nics.push_back(api::parse_nic_arg(n));
    s.cdrom = o.cdrom;
    s.firmware = api::firmware_from_string(o.firmware);
    s.machine = o.machine;
    if (!o.cpu.empty()) s.cpu = api::parse_cpu_arg(o.cpu);
    s.kernel = o.kernel;
    s.initrd = o.initrd;
    s.cmdline = o.cmdline;
    s.description = o.description;
    s.tags = o.tags;
    api::validate(s);  // fail fast, before talking to hvd
    return s;
}

int run_create(const Globals& g, const CreateOpts& o) {
    api::VmSpec spec = build_spec(o);
    Client c = g.client();
    return finish_create(g, c, GuestType::vm, c.create_vm(spec, o.host), spec.name, o.async, o.start);
}

void add_create(CLI::App& vm, Context& ctx) {
    auto o = std::make_shared<CreateOpts>();
    auto* cmd = vm.add_subcommand("create", "Create a VM (waits for the create task unless --async)");
    cmd->add_option("name", o->name, "VM name")->required();
    cmd->add_option("--cpus", o->cpus, "Virtual CPUs (1-512)")->capture_default_str();
    cmd->add_option("--memory", o->memory, "Memory, e.g. 1G or 512M")->capture_default_str();
    cmd->add_option("--disk", o->disks, "Disk: size=4G[,bus=virtio|sata|scsi|ide][,format=qcow2|raw][,pool=local]"
                                        " or path=/abs/image (repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("--net", o->nets,
                    "NIC: network=default|bridge=vmbr0[,vlan=100][,trunks=10;20-30][,model=virtio][,mac=52:54:00:..]"
                    "[,mtu=9000][,name=net0] (repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("--cdrom", o->cdrom, "ISO image to attach as a CD/DVD drive (absolute path)");
    cmd->add_option("--firmware", o->firmware, "bios or uefi")->capture_default_str();
    cmd->add_option("--machine", o->machine, "QEMU machine type (q35, pc, ...)")->capture_default_str();
    cmd->add_option("--cpu", o->cpu,
                    "CPU model: cluster (the baseline every member runs; the default in a cluster), host "
                    "(host-passthrough), host-model, default (the host's default), or MODEL[,+feature,-feature...]");
    cmd->add_option("--description", o->description, "Free text");
    cmd->add_option("--tag", o->tags, "Tag (repeatable)")->allow_extra_args(false);
    cmd->add_option("--kernel", o->kernel, "Kernel for direct boot (absolute path)");
    cmd->add_option("--initrd", o->initrd, "Initrd for direct boot (absolute path)");
    cmd->add_option("--cmdline", o->cmdline, "Kernel command line for direct boot");
    cmd->add_option("--host", o->host, "Cluster member that gets the VM (default: the host asked)");
    auto* start = cmd->add_flag("--start", o->start, "Start the VM once it is created");
    auto* async = cmd->add_flag("--async", o->async, "Do not wait: print the task and exit");
    start->excludes(async);
    on_run(cmd, ctx, [&g = ctx.g, o] { return run_create(g, *o); });
}

// hvctl vm disk attach|detach
void add_disk(CLI::App& vm, Context& ctx) {
    auto* disk = vm.add_subcommand("disk", "Attach or detach disks (hot-plug while running: virtio and scsi only)");
    disk->require_subcommand(1);

    struct AttachOpts {
        std::string vm, disk;
        bool async = false;
    };
    auto a = std::make_shared<AttachOpts>();
    auto* attach = disk->add_subcommand("attach", "Attach a new or existing volume (waits for the task unless --async)");
    attach->add_option("vm", a->vm, "VM name")->required();
    attach->add_option("--disk", a->disk,
                       "size=10G[,bus=virtio|sata|scsi|ide][,pool=local][,format=qcow2|raw]"
                       "[,provision=thin|lazy-zeroed|eager-zeroed][,mode=dependent|independent-persistent|"
                       "independent-nonpersistent][,cache=none|writeback|writethrough|directsync|unsafe][,discard=on]"
                       "[,total_iops=N,read_iops=N,write_iops=N,total_bps=100M,read_bps=..,write_bps=..][,name=NAME]"
                       " or volume=NAME / path=/pool/path of an existing volume")
        ->required();
    attach->add_flag("--async", a->async, "Do not wait: print the task and exit");
    on_run(attach, ctx, [&g = ctx.g, a] {
        api::DiskSpec d = api::parse_disk_arg(a->disk);
        Client c = g.client();
        return finish_task(g, c, c.attach_disk(a->vm, d), a->async, [&](const api::TaskInfo& t) {
            api::VmInfo vm;
            try {
                vm = api::vm_info_from_json(t.result);
            } catch (const Error&) {
                vm = c.get_vm(a->vm);
            }
            if (g.json()) {
                print_json(nlohmann::json(vm));
            } else {
                const auto& added = vm.spec.disks.empty() ? d : vm.spec.disks.back();
                print_line(fmt::format("attached disk {} ({}:{}, {}) to vm {}", added.name, added.pool, added.volume,
                                       added.bus, a->vm));
            }
            return 0;
        });
    });

    struct DetachOpts {
        std::string vm, disk;
        bool purge = false;
    };
    auto o = std::make_shared<DetachOpts>();
    auto* detach = disk->add_subcommand("detach", "Detach a disk from a VM");
    detach->add_option("vm", o->vm, "VM name")->required();
    detach->add_option("disk", o->disk, "Disk name (see vm show)")->required();
    detach->add_flag("--purge", o->purge, "Also delete the volume if hvd created it for this VM");
    on_run(detach, ctx, [&g = ctx.g, o] {
        api::VmInfo info = g.client().detach_disk(o->vm, o->disk, o->purge);
        if (g.json()) print_json(nlohmann::json(info));
        else print_line(fmt::format("detached disk {} from vm {}{}", o->disk, o->vm, o->purge ? " (volume deleted if owned)" : ""));
        return 0;
    });
}

// hvctl vm cdrom insert|eject
void add_cdrom(CLI::App& vm, Context& ctx) {
    auto* cd = vm.add_subcommand("cdrom", "Insert or eject the ISO of a VM's CD/DVD drive (also while running)");
    cd->require_subcommand(1);
    struct Opts {
        std::string vm, iso;
    };
    auto o = std::make_shared<Opts>();
    auto* insert = cd->add_subcommand("insert", "Insert an ISO: POOL:iso/NAME (e.g. local:iso/debian-12.iso)");
    insert->add_option("vm", o->vm, "VM name")->required();
    insert->add_option("iso", o->iso, "POOL:iso/NAME")->required();
    on_run(insert, ctx, [&g = ctx.g, o] {
        api::VmInfo info = g.client().set_cdrom(o->vm, o->iso);
        if (g.json()) print_json(nlohmann::json(info));
        else print_line(fmt::format("inserted {} into vm {}", info.spec.cdrom, o->vm));
        return 0;
    });
    auto e = std::make_shared<std::string>();
    auto* eject = cd->add_subcommand("eject", "Eject the ISO (the drive stays, empty)");
    eject->add_option("vm", *e, "VM name")->required();
    on_run(eject, ctx, [&g = ctx.g, e] {
        api::VmInfo info = g.client().set_cdrom(*e, "");
        if (g.json()) print_json(nlohmann::json(info));
        else print_line(fmt::format("ejected the CD/DVD of vm {}", *e));
        return 0;
    });
}

// hvctl vm nic add|set|remove
void add_nic(CLI::App& vm, Context& ctx) {
    auto* nic = vm.add_subcommand("nic", "Add, change or remove NICs (also while running: hot-plug, live VLAN change)");
    nic->require_subcommand(1);
    struct Opts {
        std::string vm, nic, arg;
    };
    auto o = std::make_shared<Opts>();
    auto done = [](const Globals& g, const api::VmInfo& info, const std::string& text) {
        if (g.json()) print_json(nlohmann::json(info));
        else print_line(text);
    };
    auto* add = nic->add_subcommand("add", "Add a NIC: bridge=vmbr0[,vlan=100][,trunks=10;20-30][,model=..][,mac=..][,mtu=..]");
    add->add_option("vm", o->vm, "VM name")->required();
    add->add_option("--net", o->arg, "NIC, as for vm create --net")->required();
    on_run(add, ctx, [&g = ctx.g, o, done] {
        auto info = g.client().add_nic(o->vm, api::parse_nic_arg(o->arg));
        const auto& n = info.spec.nics.back();
        done(g, info, fmt::format("added NIC {} ({}) to vm {}", n.name, n.mac, o->vm));
        return 0;
    });
    auto* set = nic->add_subcommand("set", "Change a NIC: vlan=200 | trunks=10;20 | bridge=vmbr1 | model=e1000 | mtu=9000 "
                                           "(vlan=0 / trunks= clear them)");
    set->add_option("vm", o->vm, "VM name")->required();
    set->add_option("nic", o->nic, "NIC name (see vm show), e.g. net0")->required();
    set->add_option("changes", o->arg, "k=v[,k=v...]")->required();
    on_run(set, ctx, [&g = ctx.g, o, done] {
        auto info = g.client().set_nic(o->vm, o->nic, api::parse_nic_patch_arg(o->arg));
        done(g, info, fmt::format("changed NIC {} of vm {}", o->nic, o->vm));
        return 0;
    });
    auto* rm = nic->add_subcommand("remove", "Remove a NIC (hot-unplug while running)");
    rm->add_option("vm", o->vm, "VM name")->required();
    rm->add_option("nic", o->nic, "NIC name (see vm show), e.g. net0")->required();
    on_run(rm, ctx, [&g = ctx.g, o, done] {
        auto info = g.client().remove_nic(o->vm, o->nic);
        done(g, info, fmt::format("removed NIC {} from vm {}", o->nic, o->vm));
        return 0;
    });
}

}  // namespace

void add_vm_commands(CLI::App& app, Context& ctx) {
    auto* vm = app.add_subcommand("vm", "Manage virtual machines");
    vm->require_subcommand(1);
    add_create(*vm, ctx);
    add_guest_verbs(*vm, ctx, GuestType::vm);  // list, show, start ... resume, shutdown, set, delete
    add_disk(*vm, ctx);
    add_cdrom(*vm, ctx);
    add_nic(*vm, ctx);
}

}  // namespace hv::cli
