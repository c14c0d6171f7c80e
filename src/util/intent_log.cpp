#include "hv/util/intent_log.hpp"

#include "hv/util/atomic_file.hpp"
#include "hv/util/utf8.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hv/error.hpp"
#include "hv/util/log_context.hpp"

namespace hv::util {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void fsync_dir(const std::string& dir) {
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;
    ::fsync(dfd);
    ::close(dfd);
}

// tmp + fsync + rename + directory fsync: after a crash the file is the old or the new one.
json to_json(const IntentLog::Record& r) {
    json items = json::array();
    for (const auto& i : r.items) items.push_back({{"type", i.type}, {"data", i.data}});
    return {{"id", r.id}, {"op", r.op}, {"target", r.target}, {"task", r.task}, {"created", r.created},
            {"items", items}};
}

IntentLog::Record from_json(const json& j) {
    IntentLog::Record r;
    r.id = j.at("id").get<std::string>();
    r.op = j.at("op").get<std::string>();
    r.target = j.value("target", "");
    r.task = j.value("task", "");
    r.created = j.value("created", std::int64_t{0});
    for (const auto& i : j.at("items")) r.items.push_back({i.at("type").get<std::string>(), i.at("data")});
    return r;
}

}  // namespace

std::string random_uuid() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    std::uint64_t hi = rng(), lo = rng();
    hi = (hi & ~0xF000ULL) | 0x4000ULL;                         // version 4
    lo = (lo & ~(0xC0ULL << 56)) | (0x80ULL << 56);              // variant 10
    return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xFFFF, hi & 0xFFFF, lo >> 48,
                       lo & 0xFFFFFFFFFFFFULL);
}

IntentLog::IntentLog(std::string dir) : dir_(std::move(dir)) {}

IntentLog::Intent IntentLog::begin(const std::string& op, const std::string& target) {
    Intent in;
    in.log_ = dir_.empty() ? nullptr : this;
    in.rec_.op = op;
    in.rec_.target = target;
    in.rec_.created = now_s();
    for (const auto& [k, v] : log_fields())
        if (k == "TASK_ID") in.rec_.task = v;
    // Unique across restarts (the pid) and within this process (the counter).
    in.rec_.id = fmt::format("{}-{}-{}", in.rec_.task.empty() ? "op" : in.rec_.task, ::getpid(), ++seq_);
    return in;
}

void IntentLog::on(const std::string& type, Undo undo) { undo_[type] = std::move(undo); }

void IntentLog::write(const Record& r) {
    if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
        fail(Errc::internal, "cannot create {}: {}", dir_, std::strerror(errno));
    util::write_file_atomic(dir_ + "/" + r.id + ".json", util::dump_json(to_json(r), 2) + "\n", 0600);
}

void IntentLog::remove(const std::string& id) noexcept {
    std::error_code ec;
    fs::remove_all(dir_ + "/" + id + ".d", ec);
    if (ec) spdlog::warn("intent {}: cannot remove its scratch directory: {}", id, ec.message());
    if (::unlink((dir_ + "/" + id + ".json").c_str()) != 0 && errno != ENOENT)
        spdlog::warn("intent {}: cannot remove its record: {}", id, std::strerror(errno));
    else
        fsync_dir(dir_);
}

IntentLog::Intent::Intent(Intent&& o) noexcept : log_(o.log_), rec_(std::move(o.rec_)), scratch_(o.scratch_) {
    o.log_ = nullptr;
    o.rec_.items.clear();
    o.scratch_ = false;
}

IntentLog::Intent& IntentLog::Intent::operator=(Intent&& o) noexcept {
    if (this != &o) {
        finish();
        log_ = o.log_;
        rec_ = std::move(o.rec_);
        scratch_ = o.scratch_;
        o.log_ = nullptr;
        o.rec_.items.clear();
        o.scratch_ = false;
    }
    return *this;
}

void IntentLog::Intent::write() {
    if (log_) log_->write(rec_);
}

std::size_t IntentLog::Intent::add(const std::string& type, nlohmann::json data) {
    rec_.items.push_back({type, std::move(data)});
    write();
    return rec_.items.size() - 1;
}

void IntentLog::Intent::update(std::size_t index, nlohmann::json data) {
    if (index >= rec_.items.size()) fail(Errc::internal, "intent {}: no item {}", rec_.id, index);
    rec_.items[index].data = std::move(data);
    write();
}

std::string IntentLog::Intent::scratch_dir() {
    if (!log_) fail(Errc::internal, "intent {}: no intent directory for a scratch directory", rec_.op);
    auto d = log_->dir_ + "/" + rec_.id + ".d";
    if (!scratch_) {
        // The record names the directory before it exists, so a crash never leaves it unnamed.
        if (rec_.items.empty()) write();
        if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST)
            fail(Errc::internal, "cannot create {}: {}", d, std::strerror(errno));
        scratch_ = true;
    }
    return d;
}

void IntentLog::Intent::finish() noexcept {
    if (log_ && (!rec_.items.empty() || scratch_)) log_->remove(rec_.id);
    log_ = nullptr;
    rec_.items.clear();
    scratch_ = false;
}

std::vector<IntentLog::Record> IntentLog::load() const {
    std::vector<Record> out;
    if (dir_.empty()) return out;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir_, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        auto p = it->path();
        auto name = p.filename().string();
        std::error_code rec;
        if (name.ends_with(".json.tmp")) {
            // A write the crash tore: the record it was replacing (if any) is still there.
            fs::remove(p, rec);
            continue;
        }
        if (!name.ends_with(".json")) continue;
        try {
            std::ifstream in(p);
            auto r = from_json(json::parse(in));
            if (r.id + ".json" != name) throw std::runtime_error("its id is '" + r.id + "'");
            out.push_back(std::move(r));
        } catch (const std::exception& e) {
            spdlog::error("intent log: {} is unreadable ({}); renamed to {}.bad, nothing rolled back for it",
                          p.string(), e.what(), name);
            fs::rename(p, p.string() + ".bad", rec);
        }
    }
    std::sort(out.begin(), out.end(), [](const Record& a, const Record& b) {
        return a.created != b.created ? a.created < b.created : a.id < b.id;
    });
    return out;
}

std::vector<IntentLog::Outcome> IntentLog::recover() {
    std::lock_guard lk(recover_mu_);
    std::vector<Outcome> out;
    for (auto& r : load()) {
        Outcome o;
        o.record = r;
        try {
            for (auto it = r.items.rbegin(); it != r.items.rend(); ++it) {
                auto h = undo_.find(it->type);
                if (h == undo_.end()) fail(Errc::internal, "no undo for item type '{}'", it->type);
                for (auto& line : h->second(it->data)) o.done.push_back(std::move(line));
            }
            std::error_code sec;
            if (fs::exists(dir_ + "/" + r.id + ".d", sec)) o.done.push_back("removed its scratch directory");
            remove(r.id);
            spdlog::warn("interrupted {} {} (task {}) rolled back: {}", r.op, r.target, r.task.empty() ? "-" : r.task,
                         o.done.empty() ? "nothing was left" : fmt::format("{}", fmt::join(o.done, "; ")));
        } catch (const Error& e) {
            o.error = e.what();
            o.deferred = e.code() == Errc::unavailable;
            spdlog::log(o.deferred ? spdlog::level::warn : spdlog::level::err, "interrupted {} {}: roll-back {}: {}",
                        r.op, r.target, o.deferred ? "waits until it can be done" : "failed (retried at the next start)",
                        e.what());
        } catch (const std::exception& e) {
            o.error = e.what();
            spdlog::error("interrupted {} {}: roll-back failed (retried at the next start): {}", r.op, r.target,
                          e.what());
        }
        out.push_back(std::move(o));
    }
    // Scratch directories whose record is gone (removed between the two unlinks).
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir_.empty() ? "/nonexistent" : dir_, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        auto name = it->path().filename().string();
        if (!name.ends_with(".d")) continue;
        auto id = name.substr(0, name.size() - 2);
        std::error_code rec;
        if (!fs::exists(dir_ + "/" + id + ".json", rec)) fs::remove_all(it->path(), rec);
    }
    return out;
}

}  // namespace hv::util
