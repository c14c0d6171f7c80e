// The host's watchdog (docs/ha.md "Fencing"): /dev/watchdog (softdog where there is no
// hardware one), or, in tests, a FIFO read by an emulator (scripts/cluster-rig.sh) that kills
// the host's processes when it is not petted in time. Opening arms it; pet() keeps it from
// firing for `timeout` more seconds; disarm() is the magic close ('V', then close).
#pragma once

#include <string>

namespace hv::ha {

class Watchdog {
public:
    Watchdog(std::string path, int timeout_s) : path_(std::move(path)), timeout_(timeout_s) {}
    ~Watchdog();
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    // Opens and arms it (a device: its timeout set); throws unavailable naming why.
    void arm();
    bool armed() const { return fd_ >= 0; }
    // False when the write failed (the device went away: it may fire).
    bool pet();
    void disarm();
    // "/dev/watchdog (softdog, 3 s)" | "emulated (FIFO /run/x, 3 s)"; "" before arm().
    const std::string& what() const { return what_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    int timeout_;
    int fd_ = -1;
    std::string what_;
};

}  // namespace hv::ha
