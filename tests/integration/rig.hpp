// scripts/cluster-rig.sh from a test: N hosts (hvd + private libvirtd each, in network
// namespaces), driven with hvctl; `down` when the test ends (HV_TEST_KEEP=1 keeps them).
#pragma once

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "harness.hpp"

namespace hvtest {
using nlohmann::json;

struct RigHost {
    std::string name, address, socket;
};

class Rig {
public:
    explicit Rig(int n) {
        script_ = env("HV_CLUSTER_RIG");
        char tmpl[] = "/tmp/hv-rig-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir_ = tmpl;
        ::chmod(dir_.c_str(), 0711);  // unprivileged containers' ids must reach their root filesystems
        auto r = run({"env", "HVD=" + env("HVD_BIN"), "HVCTL=" + env("HVCTL_BIN"), script_, "up",
                      std::to_string(n), dir_},
                     300s);
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
        std::istringstream in(r.out);
        std::string line;
        while (std::getline(in, line)) {
            std::istringstream ls(line);
            RigHost h;
            if (ls >> h.name >> h.address >> h.socket) hosts_[h.name] = h;
        }
        REQUIRE(hosts_.size() == static_cast<std::size_t>(n));
    }
    ~Rig() {
        if (std::getenv("HV_TEST_KEEP")) return;
        run({script_, "down", dir_}, 120s);
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    const RigHost& operator[](const std::string& n) const { return hosts_.at(n); }
    Result ctl(const std::string& host, std::vector<std::string> args, std::chrono::milliseconds t = 120s) const {
        std::vector<std::string> argv{env("HVCTL_BIN"), "--socket", hosts_.at(host).socket};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(argv, t);
    }
    json ctl_json(const std::string& host, std::vector<std::string> args) const {
        args.push_back("-o");
        args.push_back("json");
        auto r = ctl(host, args);
        INFO(host << ": hvctl " << args.front() << ": " << r.describe());
        REQUIRE(r.exit_code == 0);
        return json::parse(r.out);
    }
    Result rig(const std::vector<std::string>& args) const {
        std::vector<std::string> argv{"env", "HVD=" + env("HVD_BIN"), "HVCTL=" + env("HVCTL_BIN"), script_, args[0], dir_};
        argv.insert(argv.end(), args.begin() + 1, args.end());
        return run(argv, 180s);
    }
    Result exec(const std::string& host, const std::vector<std::string>& cmd) const {
        std::vector<std::string> argv{script_, "exec", dir_, host, "--"};
        argv.insert(argv.end(), cmd.begin(), cmd.end());
        return run(argv, 60s);
    }
    std::string log(const std::string& host) const {  // the end of the host's hvd log
        for (const auto& p : {dir_ + "/" + host + "/hvd.log", dir_ + "/" + host + "/state/cluster/etcd.log"})
            if (file_exists(p)) {
                auto t = read_file(p);
                return t.size() > 20000 ? t.substr(t.size() - 20000) : t;
            }
        return {};
    }
    // SIGKILL (or `sig`) of the host's hvd only (its libvirtd and QEMUs run on): the pid the
    // rig recorded in DIR/NAME/pids, checked against its start time. True once it is gone
    // (SIGSTOP: once it is stopped).
    bool kill_hvd(const std::string& host, int sig = SIGKILL) const {
        std::ifstream in(dir_ + "/" + host + "/pids");
        std::string role, st;
        long pid = 0;
        while (in >> role >> pid >> st) {
            if (role != "hvd") continue;
            std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
            std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
            auto rp = all.rfind(')');
            if (rp == std::string::npos) return false;
            std::istringstream fields(all.substr(rp + 2));
            std::string f;
            for (int i = 3; i <= 22 && fields >> f; ++i) {}
            if (f != st) return false;  // not the process the rig started
            if (::kill(static_cast<pid_t>(pid), sig) != 0) return false;
            for (int i = 0; i < 400; ++i) {
                std::ifstream again("/proc/" + std::to_string(pid) + "/stat");
                std::string a((std::istreambuf_iterator<char>(again)), std::istreambuf_iterator<char>());
                auto r = a.rfind(')');
                if (a.empty() || (r != std::string::npos && r + 2 < a.size() && a[r + 2] == 'Z')) return true;
                if (sig == SIGSTOP && r != std::string::npos && r + 2 < a.size() && a[r + 2] == 'T') return true;
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            return false;
        }
        return false;
    }
    const std::string& dir() const { return dir_; }

private:
    std::string script_, dir_;
    std::map<std::string, RigHost> hosts_;
};

}  // namespace hvtest
