// hvd's logging targets. Under systemd, records go to the journal through sd_journal_sendv
// with structured fields: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER=hvd, CODE_FILE/CODE_LINE when
// known, and the calling thread's LogScope fields (VM=, TASK_ID=, TASK_KIND=, POOL=, ...), so
// `journalctl -t hvd VM=web01` shows one VM's story. Elsewhere, stderr lines end with those
// fields in brackets.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>

namespace hv::daemon {

// Where journal records go: the real journal, or a fake in tests. Each field is "NAME=value".
class JournalWriter {
public:
    virtual ~JournalWriter() = default;
    // Returns 0 or a negative errno.
    virtual int send(const std::vector<std::string>& fields) = 0;
};

// sd_journal_sendv (libsystemd).
std::unique_ptr<JournalWriter> systemd_journal_writer();

class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    JournalSink(std::unique_ptr<JournalWriter> writer, std::string identifier);

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override;
    void flush_() override {}

private:
    std::unique_ptr<JournalWriter> writer_;
    std::string identifier_;
    bool warned_ = false;
};

// syslog priority of a level: 7 debug/trace, 6 info, 4 warn, 3 error, 2 critical.
int journal_priority(spdlog::level::level_enum level);

// The %* flag of hvd's stderr pattern: " [VM=web01 TASK_ID=t-000012]" or nothing.
class LogFieldsFlag final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override;
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<LogFieldsFlag>(); }
};

// True when stderr is the journal's stream (JOURNAL_STREAM names stderr's device:inode), as
// systemd sets it up for services.
bool stderr_is_journal();

// "journal" | "stderr" for log_target "auto" | "journal" | "stderr".
std::string resolve_log_target(const std::string& configured);

}  // namespace hv::daemon
