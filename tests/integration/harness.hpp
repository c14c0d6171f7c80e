// Integration test harness: starts a real hvd against the private libvirtd of the CTest
// fixture, runs hvctl/virsh/curl as argv vectors and cleans up every VM a test made.
//
// Environment (set by tests/CMakeLists.txt):
//   HV_TEST_LIBVIRT_URI   qemu:///system?socket=<dir>/run/libvirt-sock
//   HV_TEST_LIBVIRT_DIR   that private libvirtd's directory (for restarting it)
//   HV_PRIVATE_LIBVIRTD   scripts/private-libvirtd.sh
//   HV_TEST_GUEST_DIR     vmlinuz + initrd.gz of the tiny test guest
//   HVD_BIN, HVCTL_BIN    the binaries under test
// HV_TEST_KEEP=1 keeps each test's temp dir (hvd.log, state dir) for inspection.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hvtest {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Result {
    int exit_code = -1;  // 128+signal when killed
    std::string out;
    std::string err;
    bool timed_out = false;
    std::string describe() const;  // "exit 5; stdout: ...; stderr: ..." for failure messages
};

// Required environment variable; fails the test with a clear message when missing.
std::string env(const char* name);

// Exits the process with 77 (CTest SKIP_RETURN_CODE) and a printed reason when this machine
// cannot run integration tests at all (not root, no libvirtd or QEMU installed).
void skip_unless_runnable();

// A filesystem image made by the test and loop-mounted at `mnt` for the test's lifetime
// (ok = false when this machine cannot: no mkfs or loop devices).
struct LoopFs {
    std::string mnt;
    bool ok = false;
    LoopFs(const std::string& img, std::string mount_point, const char* size, std::vector<std::string> mkfs);
    ~LoopFs();
    LoopFs(const LoopFs&) = delete;
    LoopFs& operator=(const LoopFs&) = delete;
};

// Runs argv (no shell) to completion.
Result run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 120s);

// A child process running in the background, stdout/stderr captured through pipes (or sent
// to a log file). The destructor kills (SIGKILL) and reaps it if it still runs.
class Child {
public:
    // stdin_file: what the child reads on stdin (default /dev/null).
    explicit Child(const std::vector<std::string>& argv, const std::string& log_file = "",
                   const std::string& stdin_file = "/dev/null");
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child();

    pid_t pid() const { return pid_; }
    bool running();
    // Reads stdout until a complete line satisfies `pred` (returned) or the time is up.
    std::optional<std::string> wait_line(const std::function<bool(const std::string&)>& pred,
                                         std::chrono::milliseconds timeout);
    // Everything read from stdout so far (complete lines and the partial rest).
    const std::string& out() const { return out_; }
    // Waits for exit (SIGKILL after timeout), reading the rest of the output.
    Result finish(std::chrono::milliseconds timeout = 120s);
    // SIGTERM, then SIGKILL after `grace`; returns the exit status.
    int terminate(std::chrono::milliseconds grace = 10s);

private:
    bool pump(std::chrono::milliseconds wait);  // reads what is there; false when both pipes closed
    int reap(bool block);

    pid_t pid_ = -1;
    int out_fd_ = -1;
    int err_fd_ = -1;
    std::string out_, err_;
    std::size_t line_pos_ = 0;
    int status_ = -1;
    bool reaped_ = false;
};

// Polls `pred` every `interval` until it is true; false on timeout.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = 200ms);

// In a Prometheus text (GET /v1/metrics): the value of the sample line that starts with
// `series` ("name{labels}"), or -1 when absent.
double metric_sample(const std::string& text, const std::string& series);

std::string read_file(const std::string& path);
bool file_exists(const std::string& path);
std::vector<std::string> list_dir(const std::string& dir);  // names; empty when missing

// Runs argv inside the private libvirtd's network namespace (where hvd runs with
// in_libvirt_netns): test topology like veth pairs, addresses, routes.
Result in_libvirt_netns(const std::vector<std::string>& argv);
// Runs argv in the private libvirtd's mount namespace (its mounts are private: a filesystem the
// test mounts must be mounted there too before libvirt's LXC driver can see it).
Result in_libvirt_mountns(const std::vector<std::string>& argv);
std::string libvirt_netns_path();

// virsh against the private libvirtd.
std::string libvirt_uri();
Result virsh(const std::vector<std::string>& args);
// "running", "shut off", "paused", ... ; "" when the domain does not exist.
std::string domstate(const std::string& name);
bool domain_exists(const std::string& name);
// The same for containers: virsh against the private libvirtd's LXC driver.
std::string lxc_uri();
Result lxc_virsh(const std::vector<std::string>& args);
bool lxc_domain_exists(const std::string& name);
// Destroys and undefines the containers a test made (declared after the Hvd, so it runs first).
struct CtCleanup {
    std::vector<std::string> names;
    ~CtCleanup();
};

struct HttpResponse {
    int status = 0;
    std::string body;
    nlohmann::json json() const;  // parsed body (null when it is not JSON)
};

// One hvd with its own socket and state directory in a fresh temp dir.
class Hvd {
public:
    // Starts hvd and waits for its socket; with `wait_for_libvirt` also until GET /v1/host
    // says libvirt_connected (tests of a libvirtd that is down pass false). `config_toml` is
    // written to its config file (e.g. a [time] section); default: built-in defaults.
    // With `in_libvirt_netns`, hvd runs in the private libvirtd's network namespace (nsenter
    // --net into scripts/private-libvirtd.sh's holder), where libvirt's "default" NAT network
    // and so the guests' 192.168.122.x addresses are; its Unix socket works as usual.
    // `wrapper` is put before hvd's argv (e.g. unshare + scripts/with-journald.sh); an element
    // "@SOCKET@" becomes hvd's socket path.
    explicit Hvd(bool wait_for_libvirt = true, const std::string& config_toml = "", bool in_libvirt_netns = false,
                 std::vector<std::string> wrapper = {});
    Hvd(const Hvd&) = delete;
    Hvd& operator=(const Hvd&) = delete;
    // Destroys and undefines every VM made through vm(), stops hvd (SIGTERM), removes the
    // temp dir. When the test failed with an exception, prints the tail of hvd's log.
    ~Hvd();

    void start(bool wait_for_libvirt = true);
    // SIGTERM and wait; returns hvd's exit status.
    int stop();
    // SIGKILL (no chance to clean up, like a crash) and reap; returns the exit status.
    int kill_hard();
    bool running();

    // A unique VM name for this test, registered for cleanup. Example: "it-life-12345".
    std::string vm(const std::string& base);

    // hvctl --socket <socket> args...
    Result ctl(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 120s) const;
    std::vector<std::string> ctl_argv(const std::vector<std::string>& args) const;
    // hvctl ... -o json, parsed; fails the test when the exit code is not 0.
    nlohmann::json ctl_json(const std::vector<std::string>& args) const;
    // GET /v1/vms/{name} through hvctl vm show -o json.
    nlohmann::json show(const std::string& name) const;

    // Raw HTTP over the Unix socket with curl (argv, no shell).
    HttpResponse http(const std::string& method, const std::string& target, const std::string& body = "") const;

    std::string log_tail(std::size_t lines = 60) const;

    // Waits until `events` (a running `hvctl events -o json` on this hvd) is subscribed. hvd
    // sends nothing when a client subscribes, so this makes an event per round until one
    // arrives: it creates a small stopped probe VM, waits up to 2 s for its creation's task
    // event on the stream, and deletes the VM again. The lines up to the probe's are consumed.
    // False when no probe event arrived within `timeout`.
    bool await_event_stream(Child& events, std::chrono::milliseconds timeout = 30s);

    std::string dir;        // temp dir of this hvd
    std::string socket;     // dir/hvd.sock
    std::string state_dir;  // dir/state
    std::string pool_dir;   // dir/state/images: the built-in pool "local"
    std::string image_dir;  // dir/state/images/images: its volumes (VM disks)
    std::string log_dir;    // dir/state/logs (serial console logs)
    std::string log_file;   // dir/hvd.log

private:
    bool in_libvirt_netns_ = false;
    std::vector<std::string> wrapper_;
    std::optional<Child> proc_;
    std::set<std::string> vms_;
};

// Puts the private libvirtd back (scripts/private-libvirtd.sh start) when it leaves scope,
// so a failing libvirtd-restart test does not break the tests after it.
class LibvirtdRestartGuard {
public:
    LibvirtdRestartGuard() = default;
    ~LibvirtdRestartGuard();
    void stop_libvirtd();   // stop-libvirtd: libvirtd only, VMs keep running
    void start_libvirtd();  // start: brings it back; waits until it answers
private:
    bool stopped_ = false;
};

}  // namespace hvtest
