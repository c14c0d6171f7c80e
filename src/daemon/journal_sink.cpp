#include "journal_sink.hpp"

#include <sys/stat.h>
#include <sys/uio.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
// Without this, sd_journal_sendv adds CODE_FILE/LINE/FUNC of this file to every record.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "hv/util/log_context.hpp"

namespace hv::daemon {
namespace {

class SdJournalWriter final : public JournalWriter {
public:
    int send(const std::vector<std::string>& fields) override {
        std::vector<iovec> iov(fields.size());
        for (std::size_t i = 0; i < fields.size(); ++i)
            iov[i] = iovec{const_cast<char*>(fields[i].data()), fields[i].size()};
        return sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
    }
};

}  // namespace

std::unique_ptr<JournalWriter> systemd_journal_writer() { return std::make_unique<SdJournalWriter>(); }

int journal_priority(spdlog::level::level_enum level) {
    switch (level) {
    case spdlog::level::critical: return 2;
    case spdlog::level::err: return 3;
    case spdlog::level::warn: return 4;
    case spdlog::level::info: return 6;
    default: return 7;
    }
}

JournalSink::JournalSink(std::unique_ptr<JournalWriter> writer, std::string identifier)
    : writer_(std::move(writer)), identifier_(std::move(identifier)) {}

void JournalSink::sink_it_(const spdlog::details::log_msg& msg) {
    std::vector<std::string> f;
    f.reserve(8 + util::log_fields().size());
    f.push_back("MESSAGE=" + std::string(msg.payload.data(), msg.payload.size()));
    f.push_back("PRIORITY=" + std::to_string(journal_priority(msg.level)));
    f.push_back("SYSLOG_IDENTIFIER=" + identifier_);
    if (!msg.source.empty()) {
        f.push_back(std::string("CODE_FILE=") + msg.source.filename);
        f.push_back("CODE_LINE=" + std::to_string(msg.source.line));
        if (msg.source.funcname) f.push_back(std::string("CODE_FUNC=") + msg.source.funcname);
    }
    // The thread that logs is the one whose scope holds the fields (hvd's loggers are synchronous).
    for (const auto& [k, v] : util::log_fields()) f.push_back(k + "=" + v);
    int r = writer_->send(f);
    if (r < 0 && !warned_) {
        warned_ = true;
        std::fprintf(stderr, "hvd: cannot write to the journal: %s (further failures are not reported)\n",
                     std::strerror(-r));
    }
}

void LogFieldsFlag::format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) {
    const auto& fields = util::log_fields();
    if (fields.empty()) return;
    std::string s = " [";
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i) s += ' ';
        s += fields[i].first + "=" + fields[i].second;
    }
    s += ']';
    dest.append(s.data(), s.data() + s.size());
}

bool stderr_is_journal() {
    const char* e = std::getenv("JOURNAL_STREAM");
    if (!e || !*e) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(e, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st {};
    if (::fstat(2, &st) != 0) return false;
    return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

std::string resolve_log_target(const std::string& configured) {
    if (configured == "journal" || configured == "stderr") return configured;
    return stderr_is_journal() ? "journal" : "stderr";
}

}  // namespace hv::daemon
