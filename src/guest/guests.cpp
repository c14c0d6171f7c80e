#include "guest.hpp"

#include "hv/util/guard.hpp"

#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hv/error.hpp"

namespace hv::guest {
using nlohmann::json;

void Guests::add(GuestDriver& d) { drivers_.push_back(&d); }

GuestDriver& Guests::driver(GuestKind k) const {
    for (auto* d : drivers_)
        if (d->kind() == k) return *d;
    fail(Errc::unavailable, "{}s are not available in this hvd", api::kind_noun(k));
}

Guests::Claim::~Claim() {
    if (directory_) util::guarded("ending a cluster claim", [&] { g_.directory_->end_claim(name_); });
    std::lock_guard lk(g_.claims_mu_);
    g_.claims_.erase(name_);
}

std::shared_ptr<Guests::Claim> Guests::claim(GuestKind kind, const std::string& name) {
    {
        std::lock_guard lk(claims_mu_);
        auto [it, fresh] = claims_.emplace(name, kind);
        if (!fresh)
            fail(Errc::conflict, "{} '{}' is being created by another request", api::kind_noun(it->second), name);
    }
    auto c = std::make_shared<Claim>(*this, name);  // from here on the name is released on any exit
    for (auto* d : drivers_) {
        std::optional<GuestStatus> found;
        try {
            found = d->find(name);
        } catch (const Error& e) {
            if (e.code() != Errc::unavailable || d->kind() == kind || d->required_for_claims()) throw;
            spdlog::debug("claim of '{}': {}s not asked: {}", name, api::kind_noun(d->kind()), e.what());
        }
        if (!found) continue;
        if (d->kind() == kind) fail(Errc::conflict, "{} '{}' already exists", api::kind_noun(kind), name);
        fail(Errc::conflict, "a {} named '{}' exists: containers and VMs share one name space",
             api::kind_noun(d->kind()), name);
    }
    // In a cluster the name is unique across hosts too: claimed in the directory (one
    // transaction in the store), released with the local claim.
    if (directory_) {
        directory_->claim(kind, name);
        c->directory_ = true;
    }
    return c;
}

nlohmann::json Guests::list_json(GuestDriver& d) const {
    json local = d.list_json();
    if (!directory_) return local;
    std::string self = directory_->self();
    if (self.empty()) return local;
    if (local.is_array())
        for (auto& g : local)
            if (g.is_object()) g["host"] = self;
    std::set<std::string> here;
    for (const auto& g : local)
        if (g.is_object() && g.contains("name") && g["name"].is_string()) here.insert(g["name"].get<std::string>());
    for (auto& g : directory_->others(d.kind()))
        if (g.is_object() && g.contains("name") && g["name"].is_string() && !here.count(g["name"].get<std::string>()))
            local.push_back(std::move(g));
    return local;
}

Publisher Guests::publisher(GuestKind k) {
    const std::string lifecycle = std::string(api::kind_name(k)) + ".lifecycle";
    return [this, k, lifecycle](const std::string& type, const std::string& target, const json& data) {
        publish_(type, target, data);
        if (type != lifecycle) return;
        json g = data;
        g["kind"] = api::kind_name(k);
        auto slash = target.find('/');
        g["name"] = slash == std::string::npos ? target : target.substr(slash + 1);
        publish_("guest.lifecycle", target, g);
    };
}

std::map<std::string, std::vector<std::string>> Guests::image_users(bool live) const {
    std::map<std::string, std::vector<std::string>> out;
    for (auto* d : drivers_) {
        try {
            for (auto& [path, users] : d->image_users(live))
                for (auto& u : users) out[path].push_back(std::move(u));
        } catch (const std::exception& e) {
            spdlog::warn("pool users: {}s not listed: {}", api::kind_noun(d->kind()), e.what());
        }
    }
    return out;
}

std::vector<std::string> Guests::release_image(const std::vector<std::string>& users, const std::string& path) const {
    std::vector<std::string> done;
    for (const auto& u : users) {
        for (auto* d : drivers_) {
            auto name = d->user_name(u);
            if (!name) continue;
            d->release_image(*name, path);
            done.push_back(*name);
            break;
        }
    }
    return done;
}

void Guests::expect_not_moving(GuestKind k, const std::string& name) const {
    if (directory_ && directory_->held(name) && driver(k).find(name))
        fail(Errc::conflict, "{} '{}' is being moved to another host (or made) here: try again when that task has ended",
             api::kind_noun(k), name);
}

void Guests::expect_state(GuestKind k, const std::string& name, std::initializer_list<GuestState> states,
                          const char* verb) const {
    auto s = driver(k).find(name);
    if (!s) fail(Errc::not_found, "{} '{}' does not exist", api::kind_noun(k), name);
    for (auto ok : states)
        if (s->state == ok) return;
    fail(Errc::conflict, "cannot {} {} '{}': it is {}", verb, api::kind_noun(k), name, api::to_string(s->state));
}

json shutdown(GuestDriver& d, const std::string& name, int timeout_s, bool force, util::Progress& p, bool* forced) {
    const auto words = d.shutdown_words();
    const char* noun = api::kind_noun(d.kind());
    if (forced) *forced = false;
    d.request_shutdown(name, p);
    p.log(fmt::format("{}; waiting up to {} s{}", words.requested, timeout_s,
                      force ? fmt::format(", then {}", words.forcing) : ""));
    // The wait holds no lock, so `stop` can cut in.
    auto start = std::chrono::steady_clock::now();
    auto deadline = start + std::chrono::seconds(timeout_s);
    for (;;) {
        if (!d.active(name)) break;
        auto now = std::chrono::steady_clock::now();
        if (p.cancelled()) fail(Errc::cancelled, "shutdown of {} '{}' was cancelled; it keeps running", noun, name);
        if (now >= deadline) {
            if (!force)
                fail(Errc::timeout, "{} '{}' did not shut down within {} s (use --force to {})", noun, name, timeout_s,
                     words.force);
            p.step(99, fmt::format("timeout reached: {}", words.forcing));
            bool cut = d.power_off(name);
            if (forced) *forced = cut;
            break;
        }
        // Progress is the share of the timeout used up.
        auto elapsed_s = std::chrono::duration_cast<std::chrono::seconds>(now - start).count();
        int pct = timeout_s > 0 ? static_cast<int>(std::min<long>(99, elapsed_s * 100 / timeout_s)) : 0;
        p.update(pct, fmt::format("{} ({} s of {} s)", words.waiting, elapsed_s, timeout_s));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    auto info = d.settled_info(name);
    p.step(100, forced && *forced
                    ? std::string(words.forced)
                    : fmt::format("{} after {} s", words.done,
                                  std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start)
                                      .count()));
    return info;
}

}  // namespace hv::guest
