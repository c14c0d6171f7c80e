// hvd under socket activation (hvd.socket): systemd-socket-activate plays systemd — it
// listens on the socket first and starts hvd with it (LISTEN_FDS) on the first connection.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace hvtest;

TEST_CASE("socket activation: hvd serves the socket systemd passes", "[integration][systemd]") {
    skip_unless_runnable();
    if (run({"sh", "-c", "command -v systemd-socket-activate"}).exit_code != 0) {
        WARN("skipped: systemd-socket-activate is missing (package systemd)");
        return;
    }
    {
        Hvd h(true, "", false, {"systemd-socket-activate", "-l", "@SOCKET@"});
        const std::string sock = h.socket;
        // Served: the same API as with hvd's own socket.
        auto r = h.ctl({"host", "show"});
        INFO(r.describe() << "\n" << h.log_tail());
        CHECK(r.exit_code == 0);
        CHECK(h.ctl({"vm", "list"}).exit_code == 0);
        CHECK_THAT(h.log_tail(200), Catch::Contains("socket activation"));
        // The socket is the one systemd-socket-activate made (hvd did not re-create it): its
        // mode is systemd-socket-activate's default, not hvd's 0660.
        struct stat st {};
        REQUIRE(::stat(sock.c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK((st.st_mode & 0777) != 0660);
    }
}
