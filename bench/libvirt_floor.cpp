// libvirt_floor: the smallest daemon-like libvirt client, to measure the memory floor any process
// pays just for linking and using libvirt.so (bench/memory.sh compares hvd against it).
// It does what hvd does with libvirt and nothing else: default event loop in a thread, one
// connection with keepalive and a lifecycle callback, one ListAllDomains, then it idles until
// SIGTERM/SIGINT. Prints "ready" on stdout once connected.
//   libvirt_floor URI
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <unistd.h>

namespace {
std::atomic<bool> stop{false};
void on_signal(int) { stop = true; }
int on_lifecycle(virConnectPtr, virDomainPtr, int, int, void*) { return 0; }
}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s URI\n", argv[0]);
        return 2;
    }
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) return 1;
    std::thread loop([] {
        while (!stop) virEventRunDefaultImpl();
    });
    virEventAddTimeout(250, [](int, void*) {}, nullptr, nullptr);
    virConnectPtr c = virConnectOpen(argv[1]);
    if (!c) {
        std::fprintf(stderr, "cannot connect to %s\n", argv[1]);
        stop = true;
        loop.join();
        return 1;
    }
    virConnectSetKeepAlive(c, 5, 5);
    int id = virConnectDomainEventRegisterAny(c, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                              VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), nullptr, nullptr);
    virDomainPtr* doms = nullptr;
    int n = virConnectListAllDomains(c, &doms, 0);
    for (int i = 0; i < n; i++) virDomainFree(doms[i]);
    std::free(doms);
    std::printf("ready %d\n", n);
    std::fflush(stdout);
    while (!stop) pause();
    if (id >= 0) virConnectDomainEventDeregisterAny(c, id);
    virConnectClose(c);
    loop.join();
    return 0;
}
