// The Ceph daemons hvd runs on its host (ceph-mon, ceph-mgr, ceph-osd), where no systemd
// starts Ceph's own units: started from argv (never a shell) in a session of their own, with
// stdout/stderr appended to a log file, and restarted when they exit (1 s, doubling to 30 s).
//
// They do NOT die with hvd: an hvd restart (an upgrade, a crash) must not take the host's
// storage down. Each one's "PID STARTTIME" is in <pid_dir>/<name>.pid; a new hvd adopts the
// daemons whose PID still runs with that start time (a reused PID is never taken for one).
// Liveness is checked once a second (and at once after want()).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace hv::ceph {

struct DaemonSpec {
    std::string name;               // "mon.h1", "mgr.h1", "osd.3"
    std::vector<std::string> argv;  // argv[0] looked up in PATH
    std::string log_file;           // stdout + stderr, appended
    bool operator==(const DaemonSpec&) const = default;
};

struct DaemonState {
    std::string name;
    int pid = 0;          // 0: not running
    int restarts = 0;     // starts after the first one (this hvd's)
    std::string last_exit;  // "exit status 1", "signal 9" ("" none seen)
};

class Supervisor {
public:
    explicit Supervisor(std::string pid_dir);
    ~Supervisor();  // stops supervising; the daemons keep running
    void start();   // the supervising thread (want() before it only records)
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    // The daemons that should run: missing ones are started, ones no longer listed are
    // stopped (SIGTERM, SIGKILL after 15 s). Never throws for a daemon that fails to start
    // (logged, retried with the backoff).
    void want(std::vector<DaemonSpec> daemons);
    // Stops one now (it is not restarted until want() lists it again).
    void stop(const std::string& name);
    std::vector<DaemonState> states() const;
    // Waits until `name` runs (true) or the timeout passes.
    bool wait_running(const std::string& name, std::chrono::milliseconds timeout) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The start time of a process (field 22 of /proc/PID/stat), 0 if it does not run.
unsigned long long process_start_time(int pid);

}  // namespace hv::ceph
