// Observability against a real hvd: GET /v1/metrics with a running test guest (counters
// present, cpu time grows, the answer is cached), task logs of VM create/delete (also across
// an hvd restart), hvctl version with hvd up and down, -o yaml and --no-headers.
#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {

// The first sample of a family for one VM, whatever its other labels: "name{vm="x",disk="vda"} 1".
bool has_vm_series(const std::string& text, const std::string& family, const std::string& vm) {
    return text.find("\n" + family + "{vm=\"" + vm + "\"") != std::string::npos;
}

std::string task_id_of(const Result& r) {
    auto s = r.out;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

TEST_CASE("metrics: a running test guest has cpu, memory, disk and net series, cpu time grows, answers are cached",
          "[integration][metrics][guest]") {
    Hvd hvd(true, "[daemon]\nmetrics_cache = 2\n");
    std::string guest = env("HV_TEST_GUEST_DIR");
    auto name = hvd.vm("metrics");
    auto r = hvd.ctl({"vm", "create", name, "--memory", "128M", "--disk", "size=64M", "--net", "network=default",
                      "--kernel", guest + "/vmlinuz", "--initrd", guest + "/initrd.gz", "--cmdline",
                      "console=ttyS0 quiet panic=-1", "--start"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    std::string serial = hvd.log_dir + "/" + name + ".serial.log";
    REQUIRE(wait_until([&] { return read_file(serial).find("HV-GUEST-BOOTED") != std::string::npos; }, 90s));

    // Content type of the exposition format (curl prints it after the body).
    auto c = run({"curl", "-sS", "--unix-socket", hvd.socket, "-o", "/dev/null", "-w", "%{content_type}",
                  "http://hvd/v1/metrics"});
    INFO(c.describe());
    REQUIRE(c.exit_code == 0);
    CHECK(c.out == "text/plain; version=0.0.4; charset=utf-8");

    // Wait for a fresh answer made after the guest booted (the cache may hold an older one).
    std::this_thread::sleep_for(2500ms);
    auto m1 = hvd.http("GET", "/v1/metrics");
    REQUIRE(m1.status == 200);
    const auto& t1 = m1.body;
    INFO(t1);
    CHECK(metric_sample(t1, "hv_libvirt_up") == 1);
    CHECK(metric_sample(t1, "hv_build_info{version=\"0.1.0\"}") == 1);
    CHECK(metric_sample(t1, "hv_tasks_finished_total{kind=\"vm.create\",state=\"succeeded\"}") == 1);
    CHECK(metric_sample(t1, "hv_vm_state{vm=\"" + name + "\",state=\"running\"}") == 1);
    double cpu1 = metric_sample(t1, "hv_vm_cpu_seconds_total{vm=\"" + name + "\"}");
    CHECK(cpu1 > 0);
    CHECK(metric_sample(t1, "hv_vm_memory_bytes{vm=\"" + name + "\"}") == 128.0 * 1024 * 1024);
    CHECK(metric_sample(t1, "hv_vm_memory_rss_bytes{vm=\"" + name + "\"}") > 0);
    CHECK(metric_sample(t1, "hv_vm_vcpus{vm=\"" + name + "\"}") == 1);
    CHECK(metric_sample(t1, "hv_vm_disk_capacity_bytes{vm=\"" + name + "\",disk=\"vda\"}") == 64.0 * 1024 * 1024);
    CHECK(metric_sample(t1, "hv_vm_disk_read_bytes_total{vm=\"" + name + "\",disk=\"vda\"}") >= 0);
    CHECK(has_vm_series(t1, "hv_vm_net_rx_bytes_total", name));
    CHECK(has_vm_series(t1, "hv_vm_net_tx_packets_total", name));
    CHECK(t1.find("# TYPE hv_vm_cpu_seconds_total counter\n") != std::string::npos);
    CHECK(metric_sample(t1, "hv_pool_capacity_bytes{pool=\"local\"}") > 0);

    // Within the period the same text comes back (uptime included): no new collection.
    auto again = hvd.http("GET", "/v1/metrics");
    CHECK(again.body == t1);

    // After the period, a new collection: the guest's cpu time has grown.
    std::this_thread::sleep_for(2500ms);
    auto m2 = run(hvd.ctl_argv({"host", "metrics"}));
    INFO(m2.describe());
    REQUIRE(m2.exit_code == 0);
    CHECK(metric_sample(m2.out, "hv_vm_cpu_seconds_total{vm=\"" + name + "\"}") > cpu1);
    CHECK(metric_sample(m2.out, "hv_daemon_uptime_seconds") > metric_sample(t1, "hv_daemon_uptime_seconds"));

    REQUIRE(hvd.ctl({"vm", "stop", name}).exit_code == 0);
}

TEST_CASE("task log: vm create and delete --purge log their steps, --follow ends with the task, kept across a restart",
          "[integration][tasklog]") {
    Hvd hvd;
    auto name = hvd.vm("tlog");
    auto r = hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M,provision=eager-zeroed", "--async"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto id = task_id_of(r);
    REQUIRE(id.rfind("t-", 0) == 0);

    auto f = hvd.ctl({"task", "log", id, "--follow"});
    INFO(f.describe());
    CHECK(f.exit_code == 0);
    for (const char* s : {"  started\n", "creating disk0 (16M", "in pool local", "zeroed " /* eager: rate line */,
                          "defining the libvirt domain", "created vm " , "  succeeded\n"})
        CHECK_THAT(f.out, Catch::Contains(s));
    // Lines look like "2026-11-27 17:04:30.123  message".
    CHECK(std::regex_search(f.out, std::regex(R"(^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  started$)", std::regex::multiline)));

    json j = hvd.ctl_json({"task", "log", id});
    CHECK(j["id"] == id);
    CHECK(j["state"] == "succeeded");
    REQUIRE(j["lines"].size() >= 5);
    for (std::size_t i = 0; i < j["lines"].size(); ++i) CHECK(j["lines"][i]["seq"] == i + 1);
    auto tail = hvd.http("GET", "/v1/tasks/" + id + "/log?after=" + std::to_string(j["lines"].size() - 1));
    CHECK(tail.status == 200);
    CHECK(tail.json()["lines"].size() == 1);
    CHECK(tail.json()["lines"][0]["message"] == "succeeded");
    CHECK(file_exists(hvd.state_dir + "/tasks/" + id + ".log"));

    r = hvd.ctl({"vm", "delete", name, "--purge", "--async"});
    REQUIRE(r.exit_code == 0);
    auto del = task_id_of(r);
    f = hvd.ctl({"task", "log", del, "--follow", "-o", "json"});
    INFO(f.describe());
    CHECK(f.exit_code == 0);
    CHECK_THAT(f.out, Catch::Contains("\"message\":\"undefining vm " + name));
    CHECK_THAT(f.out, Catch::Contains("\"message\":\"deleting volume local:" + name + "-disk0"));

    // A failed task: its log ends with the error; --follow exits like task wait.
    // (a missing volume is found by the create task, not before it)
    r = hvd.ctl({"vm", "create", name + "x", "--memory", "64M", "--disk", "volume=no-such-volume", "--async"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    f = hvd.ctl({"task", "log", task_id_of(r), "--follow"});
    CHECK(f.exit_code == 4);  // not_found, as task wait would exit
    CHECK_THAT(f.out, Catch::Contains("  failed: "));

    // A host-wide task logs its plan and outcome (no autostart guest here: quick).
    r = hvd.ctl({"autostart", "run", "--async"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    f = hvd.ctl({"task", "log", task_id_of(r), "--follow"});
    INFO(f.describe());
    CHECK(f.exit_code == 0);
    CHECK_THAT(f.out, Catch::Contains("0 autostart guest(s) (0 VM(s), 0 container(s)); boot delay"));
    CHECK_THAT(f.out, Catch::Contains("0 guest(s) handled, 0 failed"));

    // Errors: unknown task 404 / exit 4, bad `after` 400.
    CHECK(hvd.ctl({"task", "log", "t-999999"}).exit_code == 4);
    CHECK(hvd.http("GET", "/v1/tasks/" + id + "/log?after=abc").status == 400);

    // After a restart the logs are still there.
    hvd.stop();
    hvd.start();
    auto after = hvd.ctl({"task", "log", id});
    INFO(after.describe());
    CHECK(after.exit_code == 0);
    CHECK_THAT(after.out, Catch::Contains("defining the libvirt domain"));
}

TEST_CASE("version: hvctl, hvd and API versions, and hvd down says so with exit 10", "[integration][version]") {
    Hvd hvd(false);
    auto r = hvd.ctl({"version"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK(r.out == "hvctl 0.1.0 (API v1)\nhvd   0.1.0 (API v1)\n");
    json j = hvd.ctl_json({"version"});
    CHECK(j == json{{"client", "0.1.0"}, {"client_api_version", "v1"}, {"daemon", "0.1.0"}, {"daemon_api_version", "v1"}});
    auto y = hvd.ctl({"version", "-o", "yaml"});
    CHECK(y.out == "client: \"0.1.0\"\nclient_api_version: v1\ndaemon: \"0.1.0\"\ndaemon_api_version: v1\n");
    CHECK(hvd.http("GET", "/v1/version").json() == json{{"version", "0.1.0"}, {"api_version", "v1"}});

    auto down = run({env("HVCTL_BIN"), "--socket", hvd.dir + "/no-such.sock", "version"});
    INFO(down.describe());
    CHECK(down.exit_code == 10);
    CHECK(down.out == "hvctl 0.1.0 (API v1)\nhvd   unreachable\n");
    CHECK_THAT(down.err, Catch::Contains("cannot connect to hvd"));
    down = run({env("HVCTL_BIN"), "--socket", hvd.dir + "/no-such.sock", "version", "-o", "json"});
    CHECK(down.exit_code == 10);
    CHECK(json::parse(down.out)["daemon"].is_null());
}

TEST_CASE("output: -o yaml prints the API objects, --no-headers drops every table header", "[integration][output]") {
    Hvd hvd;
    auto name = hvd.vm("yaml");
    REQUIRE(hvd.ctl({"vm", "create", name, "--memory", "64M", "--disk", "size=16M", "--tag", "yes"}).exit_code == 0);
    auto y = hvd.ctl({"vm", "show", name, "-o", "yaml"});
    INFO(y.describe());
    REQUIRE(y.exit_code == 0);
    CHECK_THAT(y.out, Catch::Contains("\nname: " + name + "\n"));
    CHECK_THAT(y.out, Catch::Contains("\nstate: stopped\n"));
    CHECK_THAT(y.out, Catch::Contains("\ntags:\n  - \"yes\"\n"));   // a YAML 1.1 bool: quoted
    CHECK_THAT(y.out, Catch::Contains("\ndisks:\n  - "));
    auto bad = hvd.ctl({"vm", "list", "-o", "xml"});
    CHECK(bad.exit_code == 2);

    auto with = hvd.ctl({"vm", "list"});
    auto without = hvd.ctl({"vm", "list", "--no-headers"});
    CHECK(with.out.rfind("NAME", 0) == 0);
    CHECK(without.out.find("NAME") == std::string::npos);
    CHECK_THAT(without.out, Catch::Contains(name));
    auto show = hvd.ctl({"vm", "show", name, "--no-headers"});
    CHECK_THAT(show.out, Catch::Contains("disk0"));
    CHECK(show.out.find("PROVISION") == std::string::npos);
    CHECK(hvd.ctl({"vm", "show", name}).out.find("PROVISION") != std::string::npos);
}

TEST_CASE("journald: hvd's records carry SYSLOG_IDENTIFIER, PRIORITY, VM, TASK_ID and TASK_KIND",
          "[integration][journal]") {
    std::string journald = "/lib/systemd/systemd-journald";
    if (!file_exists(journald) || run({"journalctl", "--version"}).exit_code != 0) {
        std::cout << "SKIPPED: systemd-journald / journalctl not installed" << std::endl;
        std::_Exit(77);
    }
    // A journald of our own in a private mount namespace (scripts/with-journald.sh), hvd under it.
    std::string script = env("HV_PRIVATE_LIBVIRTD");
    script = script.substr(0, script.rfind('/')) + "/with-journald.sh";
    char tmpl[] = "/tmp/hvjr-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    std::string jdir = tmpl;
    struct StopJournald {
        std::string dir;
        ~StopJournald() {
            auto pid = std::atoi(read_file(dir + "/journald.pid").c_str());
            if (pid > 0) ::kill(pid, SIGTERM);
            run({"rm", "-rf", dir});
        }
    } stop{jdir};
    std::optional<std::string> name;
    std::string journal_pid;
    {
        Hvd hvd(true, "[daemon]\nlog_target = \"journal\"\n", false,
                {"unshare", "-m", "--propagation", "private", script, jdir, "--"});
        journal_pid = read_file(jdir + "/journald.pid");
        while (!journal_pid.empty() && journal_pid.back() == '\n') journal_pid.pop_back();
        REQUIRE_FALSE(journal_pid.empty());
        name = hvd.vm("journal");
        auto r = hvd.ctl({"vm", "create", *name, "--memory", "64M", "--disk", "size=16M", "--async"});
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
        auto id = task_id_of(r);
        REQUIRE(hvd.ctl({"task", "wait", id}).exit_code == 0);
        REQUIRE(hvd.ctl({"vm", "start", *name}).exit_code == 0);
        REQUIRE(hvd.ctl({"vm", "stop", *name}).exit_code == 0);
        // A failing task: its end is logged as a warning.
        r = hvd.ctl({"vm", "create", *name + "-bad", "--memory", "64M", "--disk", "volume=no-such-volume", "--async"});
        REQUIRE(r.exit_code == 0);
        std::string bad = task_id_of(r);
        CHECK(hvd.ctl({"task", "wait", bad}).exit_code != 0);

        auto records = [&] {
            auto j = run({"nsenter", "-m", "-t", journal_pid, "journalctl", "--no-pager", "-o", "json",
                          "SYSLOG_IDENTIFIER=hvd"});
            std::vector<json> out;
            std::istringstream in(j.out);
            for (std::string l; std::getline(in, l);) {
                auto rec = json::parse(l, nullptr, false);
                if (rec.is_object()) out.push_back(rec);
            }
            return out;
        };
        auto field = [](const json& rec, const char* k) {
            return rec.contains(k) && rec[k].is_string() ? rec[k].get<std::string>() : std::string();
        };
        bool task_line = false, action = false, failed = false;
        std::vector<json> recs;
        wait_until(
            [&] {
                recs = records();
                for (const auto& rec : recs) {
                    auto msg = field(rec, "MESSAGE");
                    if (field(rec, "VM") == *name && field(rec, "TASK_ID") == id && field(rec, "TASK_KIND") == "vm.create" &&
                        field(rec, "PRIORITY") == "6" && msg.find("creating disk0") != std::string::npos)
                        task_line = true;
                    if (field(rec, "VM") == *name && field(rec, "TASK_ID").empty() &&
                        msg == "vm " + *name + ": start (was stopped)")
                        action = true;
                    if (field(rec, "TASK_ID") == bad && field(rec, "PRIORITY") == "4" &&
                        msg.find(": failed: ") != std::string::npos)
                        failed = true;
                }
                return task_line && action && failed;
            },
            10s);
        INFO("records: " << recs.size() << "; journald log: " << read_file(jdir + "/journald.log"));
        CHECK(recs.size() > 5);
        CHECK(task_line);
        CHECK(action);
        CHECK(failed);
        for (const auto& rec : recs) CHECK_FALSE(rec.contains("CODE_FILE"));  // no location of the sink itself
        // Nothing went to stderr after logging was set up.
        CHECK(read_file(hvd.log_file).find("task ") == std::string::npos);
    }
}
