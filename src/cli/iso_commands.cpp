// hvctl storage iso ...: list, show, upload (streamed, with a progress bar), delete.
#include "iso_commands.hpp"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>

#include <sys/ioctl.h>

#include <CLI/CLI.hpp>

#include "format.hpp"
#include "hv/api/size.hpp"
#include "hv/api/storage.hpp"
#include "output.hpp"

namespace hv::cli {
using nlohmann::json;

namespace {

std::string used_by_text(const std::vector<std::string>& u, const char* sep) {
    return u.empty() ? "-" : fmt::format("{}", fmt::join(u, sep));
}

void print_isos(const Globals& g, const std::vector<api::IsoInfo>& isos) {
    if (g.json()) return print_json(json(isos));
    std::vector<Row> rows;
    for (const auto& i : isos)
        rows.push_back({i.pool, i.name, api::format_size(i.size), i.sha256.empty() ? "-" : i.sha256,
                        used_by_text(i.used_by, ",")});
    print_table(g, {"POOL", "NAME", "SIZE", "SHA256", "USED BY"}, rows);
}

void print_iso(const Globals& g, const api::IsoInfo& i) {
    if (g.json()) return print_json(json(i));
    std::cout << render_kv({
                     {"name", i.name},
                     {"pool", i.pool},
                     {"ref", i.pool + ":iso/" + i.name},
                     {"size", fmt::format("{} ({} bytes)", api::format_size(i.size), i.size)},
                     {"sha256", i.sha256.empty() ? "-" : i.sha256},
                     {"path", i.path},
                     {"used by", used_by_text(i.used_by, ", ")},
                 })
              << std::flush;
}

std::size_t columns() {
    winsize ws{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
}

// "[####----]  42% 512 MiB of 1.2 GiB, 310 MiB/s" on stderr when it is a terminal, at most
// 10 times a second; cleared at the end.
class UploadProgress {
public:
    UploadProgress() : tty_(isatty(STDERR_FILENO) == 1), start_(Clock::now()) {}
    ~UploadProgress() { clear(); }
    void update(std::uint64_t sent, std::uint64_t total) {
        if (!tty_) return;
        auto now = Clock::now();
        if (drawn_ && sent < total && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        double secs = std::chrono::duration<double>(now - start_).count();
        auto rate = secs > 0 ? static_cast<std::uint64_t>(static_cast<double>(sent) / secs) : 0;
        int pct = total ? static_cast<int>(sent * 100 / total) : 100;
        auto msg = fmt::format("{} of {}, {}/s", api::format_size(sent), api::format_size(total), api::format_size(rate));
        if (sent == total) msg += ", verifying";
        std::cerr << "\r\033[K" << progress_line(pct, msg, 0, columns()) << std::flush;
        drawn_ = true;
    }
    void clear() {
        if (tty_ && drawn_) std::cerr << "\r\033[K" << std::flush;
        drawn_ = false;
    }

private:
    using Clock = std::chrono::steady_clock;
    bool tty_;
    bool drawn_ = false;
    Clock::time_point start_, last_;
};

}  // namespace

void add_iso_commands(CLI::App& storage, Context& ctx) {
    auto* iso = storage.add_subcommand("iso", "ISO images (CD/DVD) in the pools: list, show, upload, delete");
    iso->require_subcommand(1);

    auto pool = std::make_shared<std::string>();
    auto* list = iso->add_subcommand("list", "ISO images with size, sha256 and the VMs that use them");
    list->add_option("pool", *pool, "Only this pool (default: every pool)");
    list->callback([&ctx, pool] {
        ctx.action = [&g = ctx.g, pool] {
            auto c = g.client();
            print_isos(g, c.list_isos(*pool));
            return 0;
        };
    });

    struct Args {
        std::string pool, name, file, sha256;
        bool replace = false;
    };
    auto a = std::make_shared<Args>();
    auto* show = iso->add_subcommand("show", "One ISO image (computes its sha256 when it is not known yet)");
    show->add_option("pool", a->pool, "Pool")->required();
    show->add_option("name", a->name, "ISO file name, e.g. debian-12.iso")->required();
    show->callback([&ctx, a] {
        ctx.action = [&g = ctx.g, a] {
            auto c = g.client();
            print_iso(g, c.get_iso(a->pool, a->name));
            return 0;
        };
    });

    auto* up = iso->add_subcommand("upload", "Upload a local ISO file into a pool (streamed; checksum optional)");
    up->add_option("pool", a->pool, "Pool, e.g. local")->required();
    up->add_option("file", a->file, "Local file, e.g. ./debian-12.iso")->required();
    up->add_option("--name", a->name, "Name in the pool (default: the file's name); must end in .iso");
    up->add_option("--sha256", a->sha256, "Expected SHA-256 (hex); a mismatch stores nothing");
    up->add_flag("--replace", a->replace, "Overwrite an ISO of the same name (refused while a VM uses it)");
    up->callback([&ctx, a] {
        ctx.action = [&g = ctx.g, a] {
            std::string name = a->name.empty() ? std::filesystem::path(a->file).filename().string() : a->name;
            auto c = g.client();
            api::IsoInfo info;
            {
                UploadProgress bar;
                info = c.upload_iso(a->pool, name, a->file, a->sha256, a->replace,
                                    [&bar](std::uint64_t sent, std::uint64_t total) { bar.update(sent, total); });
            }
            if (g.json()) print_json(json(info));
            else print_line(fmt::format("uploaded {}:iso/{} ({}, sha256 {})", info.pool, info.name, api::format_size(info.size),
                                        info.sha256));
            return 0;
        };
    });

    auto* del = iso->add_subcommand("delete", "Delete an ISO image (refused while a VM uses it)");
    del->add_option("pool", a->pool, "Pool")->required();
    del->add_option("name", a->name, "ISO file name")->required();
    del->callback([&ctx, a] {
        ctx.action = [&g = ctx.g, a] {
            auto c = g.client();
            c.delete_iso(a->pool, a->name);
            if (g.json()) print_json(json{{"pool", a->pool}, {"name", a->name}, {"deleted", true}});
            else print_line(fmt::format("deleted {}:iso/{}", a->pool, a->name));
            return 0;
        };
    });
}

}  // namespace hv::cli
