// Printing API objects: JSON exactly as the API defines them, or human tables on stdout.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "context.hpp"
#include "format.hpp"
#include "hv/api/ct.hpp"
#include "hv/api/host.hpp"
#include "hv/api/task.hpp"
#include "hv/api/vm.hpp"

namespace hv::cli {

// "error: <message>" on stderr.
void print_error(const std::string& message);
// Which structured format print_json and print_json_line write: "json" (the default) or
// "yaml". hvctl sets it once from -o before the command runs.
void set_structured_format(const std::string& format);
// Pretty JSON (2 spaces) on stdout, or YAML with -o yaml.
void print_json(const nlohmann::json& j);
// One compact JSON object per line, flushed; with -o yaml one YAML document each ("---").
void print_json_line(const nlohmann::json& j);
// A line of text on stdout.
void print_line(const std::string& text);
void print_table(const Globals& g, const Row& headers, const std::vector<Row>& rows);

void print_vm_list(const Globals& g, const std::vector<api::VmInfo>& vms);
void print_vm(const Globals& g, const api::VmInfo& vm);
void print_ct_list(const Globals& g, const std::vector<api::CtInfo>& cts);
void print_ct(const Globals& g, const api::CtInfo& ct);
// "nics:" and one line per NIC, with its live port (tap/veth, bridge, VLANs) under it.
// model: VMs show the NIC model; containers' NICs are veth pairs.
std::string nics_text(const std::vector<api::NicSpec>& nics, const std::vector<api::NicState>& live, bool model);
void print_task_list(const Globals& g, const std::vector<api::TaskInfo>& tasks);
void print_task(const Globals& g, const api::TaskInfo& t);
void print_host(const Globals& g, const api::HostInfo& h);
// "2024-05-01 12:00:03.250  creating disk0 ..." for `task log`.
std::string task_log_line_text(const api::TaskLogLine& l);
// The lines of a task log, with a note first when older lines were dropped.
void print_task_log_lines(const api::TaskLog& l);

// Local time of a Unix time in milliseconds: "2024-05-01 12:00:03"; 0 -> "-".
std::string format_time_ms(std::int64_t ms);
// "TIME TYPE TARGET details" for `hvctl events`.
std::string event_line(const api::Event& e);

}  // namespace hv::cli
