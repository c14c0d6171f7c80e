#include "chrony_manager.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "chrony_csv.hpp"
#include "hv/error.hpp"
#include "hv/util/atomic_file.hpp"

namespace hv::time {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {
std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    std::size_t i = 0;
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    return s.substr(i);
}

std::optional<std::string> read_whole(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string first_line(const util::CommandResult& r) {
    auto s = trim(r.err.empty() ? r.out : r.err);
    auto nl = s.find('\n');
    return nl == std::string::npos ? s : s.substr(0, nl);
}
}  // namespace

void validate_options(const ChronyOptions& o) {
    if (o.chronyc.empty()) fail(Errc::invalid_input, "'time.chronyc' must not be empty");
    if (o.sources_file.empty() || o.sources_file[0] != '/')
        fail(Errc::invalid_input, "'time.sources_file' must be an absolute path");
    const auto& a = o.command_address;
    if (!a.empty() && a[0] != '/') {
        auto colon = a.rfind(':');
        bool ok = colon != std::string::npos && colon > 0 && colon + 1 < a.size();
        for (std::size_t i = colon + 1; ok && i < a.size(); ++i) ok = std::isdigit(static_cast<unsigned char>(a[i]));
        if (!ok) fail(Errc::invalid_input, "'time.command_address' must be an absolute socket path or HOST:PORT");
    }
    for (char c : o.source_options)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == ' ' || c == '-' || c == '.'))
            fail(Errc::invalid_input, "'time.source_options' may contain only letters, digits, spaces, '-' and '.'");
    if (o.service.empty()) fail(Errc::invalid_input, "'time.service' must not be empty");
}

ChronyManager::ChronyManager(ChronyOptions o, Runner run) : o_(std::move(o)), run_(std::move(run)) {}

std::vector<std::string> ChronyManager::chronyc_argv(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{o_.chronyc};
    const auto& a = o_.command_address;
    if (!a.empty() && a[0] == '/') {
        argv.insert(argv.end(), {"-h", a});
    } else if (!a.empty()) {
        auto colon = a.rfind(':');
        argv.insert(argv.end(), {"-h", a.substr(0, colon), "-p", a.substr(colon + 1)});
    }
    // -c: CSV; -N: names as configured (no reverse DNS lookups).
    argv.insert(argv.end(), {"-c", "-N"});
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

bool ChronyManager::have_systemd() const { return fs::is_directory(o_.systemd_run_dir); }

std::string ChronyManager::timezone() const {
    std::error_code ec;
    auto link = fs::read_symlink(o_.etc_dir + "/localtime", ec);
    if (!ec) {
        auto s = link.string();
        auto p = s.find("zoneinfo/");
        if (p != std::string::npos) return s.substr(p + 9);
    }
    if (auto tz = read_whole(o_.etc_dir + "/timezone")) return trim(*tz);
    return "";
}

std::string ChronyManager::enabled_at_boot() {
    if (!have_systemd()) return "unknown: no systemd";
    try {
        auto r = run_({"systemctl", "is-enabled", o_.service}, 10s);
        auto word = trim(r.out);
        if (word == "enabled" || word == "enabled-runtime" || word == "alias") return "enabled";
        if (word == "disabled" || word == "masked" || word == "static" || word == "indirect") return "disabled";
        return "unknown: " + (word.empty() ? first_line(r) : word);
    } catch (const Error& e) {
        return std::string("unknown: ") + e.what();
    }
}

api::TimeStatus ChronyManager::status() {
    Tracking t;
    std::vector<SourceLine> live;
    bool running = false;
    try {
        auto r = run_(chronyc_argv({"tracking"}), 10s);
        if (r.exit_status == 0 && !r.timed_out) {
            t = parse_tracking(r.out);
            running = true;
            auto s = run_(chronyc_argv({"sources"}), 10s);
            if (s.exit_status == 0 && !s.timed_out) live = parse_sources(s.out);
        }
    } catch (const Error& e) {
        // chronyc missing: report chronyd as not running rather than failing the whole call.
        if (e.code() != Errc::internal) throw;
        running = false;
    }
    std::vector<SourceEntry> configured;
    if (auto text = read_whole(o_.sources_file)) configured = parse_sources_file(*text);
    auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    auto st = merge_status(running, t, live, configured, now.count());
    st.timezone = timezone();
    st.enabled_at_boot = enabled_at_boot();
    st.sources_file = o_.sources_file;
    return st;
}

void ChronyManager::write_and_reload(const std::string& content) {
    auto old = read_whole(o_.sources_file);
    if (!fs::is_directory(fs::path(o_.sources_file).parent_path()))
        fail(Errc::unsupported,
             "the directory of {} does not exist: chrony 4 with `sourcedir {}` in chrony.conf is needed "
             "(or set [time] sources_file)",
             o_.sources_file, fs::path(o_.sources_file).parent_path().string());
    util::write_file_atomic(o_.sources_file, content);
    auto reload = [&] { return run_(chronyc_argv({"reload", "sources"}), 10s); };
    util::CommandResult r;
    std::string why;
    try {
        r = reload();
        if (r.timed_out) why = "chronyc did not answer within 10 s";
        else if (r.exit_status != 0) why = first_line(r);
        // A failing chronyc that prints nothing (no daemon to talk to, a wrapper) failed all the same.
        if (!r.timed_out && r.exit_status != 0 && why.empty()) why = fmt::format("chronyc exited with status {}", r.exit_status);
    } catch (const Error& e) {
        why = e.what();
    }
    if (why.empty()) return;
    // Put the previous file back and reload it, so chronyd and the file agree again.
    if (old) util::write_file_atomic(o_.sources_file, *old);
    else ::unlink(o_.sources_file.c_str());
    try {
        reload();
    } catch (const Error&) {
    }
    fail(Errc::unavailable, "chronyd did not accept the new sources ({}); the previous {} was restored", why,
         o_.sources_file);
}

api::TimeStatus ChronyManager::apply(const api::TimeSettings& s) {
    api::validate(s);
    std::lock_guard lock(mu_);
    if (s.enable && !have_systemd())
        fail(Errc::unsupported,
             "cannot enable chronyd at boot: this host has no systemd ({} is missing); start chronyd from "
             "its init system instead. Nothing was changed.",
             o_.systemd_run_dir);
    if (s.servers || s.pools) write_and_reload(render_sources_file(entries_of(s), o_.source_options));
    if (s.enable) {
        auto r = run_({"systemctl", "enable", "--now", o_.service}, 60s);
        if (r.timed_out || r.exit_status != 0)
            fail(Errc::internal, "systemctl enable --now {} failed: {}", o_.service, first_line(r));
    }
    return status();
}

}  // namespace hv::time
