// ChronyManager: hv's view of the host's time service. Reads chronyd's state only through
// `chronyc -c` (CSV, argv only), writes only hv's own sources file (chrony 4 `sourcedir`)
// and asks chronyd to `reload sources`, so chronyd is never restarted and the rest of
// chrony.conf is the admin's.
//
// Contract of apply(): validation and the boot check come first; the sources file is
// replaced atomically (temp file + fsync + rename); when chronyd refuses the reload, the
// previous file (or its absence) is put back and reloaded, and the call fails. Calls are
// serialised by a mutex.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "hv/api/time.hpp"
#include "hv/util/command.hpp"

namespace hv::time {

struct ChronyOptions {
    // chronyc program (PATH lookup).
    std::string chronyc = "chronyc";
    // chronyd's command address: "" = chronyc's default (/run/chrony/chronyd.sock), an absolute
    // path = that Unix command socket, "HOST:PORT" = UDP (read-only: reloads need the socket).
    std::string command_address;
    // hv's own sources file inside a directory chrony.conf names with `sourcedir`.
    std::string sources_file = "/etc/chrony/sources.d/hv.sources";
    // Appended to every server/pool line (e.g. "minpoll 6 maxpoll 10"); "" = none.
    std::string source_options;
    // systemd unit of chronyd (Debian: "chrony").
    std::string service = "chrony";
    // Roots, for tests.
    std::string systemd_run_dir = "/run/systemd/system";
    std::string etc_dir = "/etc";
};

using Runner = std::function<util::CommandResult(const std::vector<std::string>&, std::chrono::milliseconds)>;

class ChronyManager {
public:
    explicit ChronyManager(ChronyOptions o, Runner run = util::run_command);

    api::TimeStatus status();
    // Validates, then writes and reloads; answers the new status.
    api::TimeStatus apply(const api::TimeSettings& s);

    // argv of `chronyc [-h H [-p P]] -c -N ARGS...` (exposed for tests).
    std::vector<std::string> chronyc_argv(const std::vector<std::string>& args) const;
    const ChronyOptions& options() const { return o_; }

private:
    std::string timezone() const;
    std::string enabled_at_boot();
    bool have_systemd() const;
    void write_and_reload(const std::string& content);

    ChronyOptions o_;
    Runner run_;
    std::mutex mu_;
};

// Checks the option values of the [time] config section; throws invalid_input naming the key.
void validate_options(const ChronyOptions& o);

}  // namespace hv::time
