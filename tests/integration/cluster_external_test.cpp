// A cluster on an external etcd ([cluster] endpoints): an etcd the site already runs, with
// its own CA and client certificates ([cluster] etcd_ca, etcd_cert, etcd_key). Two hvds on
// this machine (ports of their own on 127.0.0.1, the one private libvirtd) create and join the
// cluster through it; neither runs an etcd member. Real etcd, started here with TLS and client
// certificate authentication (openssl makes its CA), driven only through hvctl.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "harness.hpp"
#include "../unit/free_port.hpp"

using namespace hvtest;
using nlohmann::json;

namespace {
using hvtest_net::free_port;


void openssl(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv);
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
}

// CA, a server certificate for 127.0.0.1 and a client certificate, all of the site's own CA.
void make_site_pki(const std::string& d) {
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
             "/CN=site etcd CA", "-days", "2", "-keyout", d + "/ca.key", "-out", d + "/ca.crt"});
    for (const std::string n : {"server", "client"}) {
        openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + n,
                 "-keyout", d + "/" + n + ".key", "-out", d + "/" + n + ".csr"});
        std::ofstream(d + "/" + n + ".ext") << "subjectAltName=IP:127.0.0.1\n"
                                            << "extendedKeyUsage=" << (n == "server" ? "serverAuth,clientAuth" : "clientAuth")
                                            << "\n";
        openssl({"x509", "-req", "-in", d + "/" + n + ".csr", "-CA", d + "/ca.crt", "-CAkey", d + "/ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", d + "/" + n + ".ext", "-out", d + "/" + n + ".crt"});
    }
}

}  // namespace

TEST_CASE("cluster: two hosts on an external etcd with its own CA (no etcd member on either)", "[cluster]") {
    skip_unless_runnable();
    if (run({"which", "etcd", "etcdctl"}).exit_code != 0) {
        WARN("etcd is not installed (package etcd-server): the external etcd test is skipped");
        return;
    }
    char tmpl[] = "/tmp/hv-extetcd-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    std::string d = tmpl;
    struct Cleanup {
        std::string d;
        ~Cleanup() {
            std::error_code ec;
            std::filesystem::remove_all(d, ec);
        }
    } cleanup{d};
    make_site_pki(d);
    int client = free_port(), peer = free_port();
    std::string url = "https://127.0.0.1:" + std::to_string(client);
    Child etcd({"etcd", "--name=site", "--data-dir=" + d + "/data", "--listen-client-urls=" + url,
                "--advertise-client-urls=" + url, "--listen-peer-urls=https://127.0.0.1:" + std::to_string(peer),
                "--initial-advertise-peer-urls=https://127.0.0.1:" + std::to_string(peer),
                "--initial-cluster=site=https://127.0.0.1:" + std::to_string(peer), "--cert-file=" + d + "/server.crt",
                "--key-file=" + d + "/server.key", "--client-cert-auth", "--trusted-ca-file=" + d + "/ca.crt",
                "--peer-cert-file=" + d + "/server.crt", "--peer-key-file=" + d + "/server.key",
                "--peer-client-cert-auth", "--peer-trusted-ca-file=" + d + "/ca.crt"},
               d + "/etcd.log");
    REQUIRE(wait_until([&] {
        return run({"curl", "-sS", "--max-time", "2", "--cacert", d + "/ca.crt", "--cert", d + "/client.crt", "--key",
                    d + "/client.key", url + "/health"})
                   .out.find("true") != std::string::npos;
    }, 30s));

    auto config = [&](const std::string& name, int port) {
        return "[cluster]\nnode_name = \"" + name + "\"\naddress = \"127.0.0.1\"\nport = " + std::to_string(port) +
               "\nendpoints = \"" + url + "\"\netcd_ca = \"" + d + "/ca.crt\"\netcd_cert = \"" + d +
               "/client.crt\"\netcd_key = \"" + d + "/client.key\"\n";
    };
    int pa = free_port(), pb = free_port();
    Hvd a(true, config("exta", pa));
    Hvd b(true, config("extb", pb));

    auto created = a.ctl_json({"cluster", "create", "site", "--address", "127.0.0.1"});
    CHECK(created.at("quorum") == true);
    std::string token = a.ctl_json({"cluster", "token"}).at("token");
    auto joined = b.ctl({"cluster", "join", "127.0.0.1:" + std::to_string(pa), "--token", token, "-o", "json"}, 60s);
    INFO(joined.describe() << a.log_tail() << b.log_tail());
    REQUIRE(joined.exit_code == 0);

    // Both online, both store clients of the site's etcd: no member process, no etcd data.
    REQUIRE(wait_until([&] {
        auto st = b.ctl_json({"cluster", "status"});
        int online = 0;
        for (const auto& m : st.at("members")) online += m.at("online").get<bool>() && m.at("role") == "client" ? 1 : 0;
        return online == 2;
    }, 30s));
    CHECK_FALSE(file_exists(a.state_dir + "/cluster/etcd"));
    CHECK_FALSE(file_exists(b.state_dir + "/cluster/etcd"));
    auto st = a.ctl_json({"cluster", "status"});
    CHECK(st.at("quorum") == true);
    // The cluster's keys are in the site's etcd, under /hv/.
    auto keys = run({"env", "ETCDCTL_API=3", "etcdctl", "--endpoints=" + url, "--cacert=" + d + "/ca.crt",
                     "--cert=" + d + "/client.crt", "--key=" + d + "/client.key", "get", "/hv/members/", "--prefix",
                     "--keys-only"});
    INFO(keys.describe());
    CHECK_THAT(keys.out, Catch::Contains("/hv/members/exta") && Catch::Contains("/hv/members/extb"));

    // A second cluster on the same etcd is refused: its keys are taken.
    {
        Hvd c(true, config("extc", free_port()));
        auto other = c.ctl({"cluster", "create", "other", "--address", "127.0.0.1"});
        CHECK(other.exit_code == 5);
        CHECK_THAT(other.err, Catch::Contains("already holds a cluster"));
        CHECK(c.ctl_json({"cluster", "status"}).at("name") == "");
    }

    // The site's etcd goes away: cluster-wide writes answer 503 with the reason, local reads work.
    ::kill(etcd.pid(), SIGKILL);
    auto refused = a.ctl({"cluster", "token"}, 60s);
    INFO(refused.describe());
    CHECK(refused.exit_code == 6);
    CHECK_THAT(refused.err, Catch::Contains("no quorum"));
    CHECK(a.ctl({"vm", "list"}).exit_code == 0);
}
