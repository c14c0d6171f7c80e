// The JSON of what every guest kind's spec and info share (src/api/vm.cpp, src/api/ct.cpp),
// read and written in one place. Internal to hv_api.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "hv/api/guest.hpp"
#include "hv/api/json_reader.hpp"
#include "hv/api/vm.hpp"
#include "hv/error.hpp"

namespace hv::api::detail {

// "nics": [ ... ] of a spec.
inline std::vector<NicSpec> read_nics(ObjectReader& r) {
    std::vector<NicSpec> out;
    if (const auto* n = r.raw("nics")) {
        if (!n->is_array()) fail(Errc::invalid_input, "field 'nics' must be an array");
        for (std::size_t i = 0; i < n->size(); ++i) out.push_back(nic_from_json((*n)[i], fmt::format("nics[{}]", i)));
    }
    return out;
}

// description and tags of a spec.
template <class Spec>
void read_labels(ObjectReader& r, Spec& s) {
    s.description = r.opt<std::string>("description").value_or("");
    s.tags = r.opt<std::vector<std::string>>("tags").value_or(std::vector<std::string>{});
}

// state, reason, uuid, managed, interfaces of an info object (lenient: output objects).
inline void read_status(ObjectReader& r, GuestStatusInfo& v) {
    v.state = guest_state_from_string(r.opt<std::string>("state").value_or("unknown"));
    v.reason = r.opt<std::string>("reason").value_or("");
    v.uuid = r.opt<std::string>("uuid").value_or("");
    v.managed = r.opt<bool>("managed").value_or(true);
    v.host = r.opt<std::string>("host").value_or("");
    v.stale = r.opt<bool>("stale").value_or(false);
    if (const auto* ifs = r.raw("interfaces"); ifs && ifs->is_array())
        for (const auto& x : *ifs) v.interfaces.push_back(nic_state_from_json(x));
}

inline void write_status(nlohmann::json& j, const GuestStatusInfo& v) {
    j["state"] = v.state;
    j["reason"] = v.reason;
    j["uuid"] = v.uuid;
    j["managed"] = v.managed;
    if (!v.host.empty()) j["host"] = v.host;
    if (v.stale) j["stale"] = true;
    j["interfaces"] = v.interfaces;
}

// "k=v,k=v" -> pairs (hvctl's --disk, --net, --rootfs); values may not contain ','.
// `what` names the option in errors; an empty argument is refused unless allow_empty.
std::vector<std::pair<std::string, std::string>> split_kv(const std::string& arg, const char* what,
                                                          bool allow_empty = false);

}  // namespace hv::api::detail
