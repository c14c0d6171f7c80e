#include "hv/api/snapshot.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "hv/api/json_reader.hpp"
#include "hv/api/vm.hpp"
#include "hv/error.hpp"
#include "hv/util/utf8.hpp"

namespace hv::api {
using nlohmann::json;

void validate_snapshot_name(const std::string& name) { validate_name(name, "snapshot name"); }

namespace {
void validate_description(const std::string& d) {
    if (d.size() > kMaxSnapshotDescription)
        fail(Errc::invalid_input, "field 'description' is too long ({} bytes, at most {})", d.size(),
             kMaxSnapshotDescription);
    util::check_text(d, "field 'description'", true);
}
}  // namespace

json to_json(const SnapshotCreate& c) {
    return {{"name", c.name}, {"memory", c.memory}, {"quiesce", c.quiesce}, {"description", c.description}};
}

SnapshotCreate snapshot_create_from_json(const json& j) {
    ObjectReader rd(j, "");
    SnapshotCreate c;
    c.name = rd.req<std::string>("name");
    c.memory = rd.opt<bool>("memory").value_or(false);
    c.quiesce = rd.opt<bool>("quiesce").value_or(false);
    c.description = rd.opt<std::string>("description").value_or("");
    rd.finish();
    validate_snapshot_name(c.name);
    validate_description(c.description);
    // A checkpoint with memory would resume with the filesystems frozen (the freeze is part of
    // the saved RAM), and the pause of the checkpoint already makes its disks consistent.
    if (c.memory && c.quiesce)
        fail(Errc::invalid_input, "'quiesce' is for snapshots without memory: a memory snapshot pauses the guest "
                                  "and would resume it with its filesystems frozen");
    return c;
}

json to_json(const SnapshotRevert& r) { return {{"start", r.start}}; }

SnapshotRevert snapshot_revert_from_json(const json& j) {
    ObjectReader rd(j, "");
    SnapshotRevert r;
    r.start = rd.opt<bool>("start").value_or(false);
    rd.finish();
    return r;
}

json to_json(const SnapshotInfo& s) {
    return {{"name", s.name},       {"parent", s.parent.empty() ? json(nullptr) : json(s.parent)},
            {"created", s.created}, {"memory", s.memory},
            {"state", s.state},     {"description", s.description},
            {"current", s.current}};
}

SnapshotInfo snapshot_info_from_json(const json& j) {
    ObjectReader rd(j, "");
    SnapshotInfo s;
    s.name = rd.req<std::string>("name");
    s.parent = rd.opt<std::string>("parent").value_or("");
    s.created = rd.opt<std::int64_t>("created").value_or(0);
    s.memory = rd.opt<bool>("memory").value_or(false);
    s.state = rd.opt<std::string>("state").value_or("");
    s.description = rd.opt<std::string>("description").value_or("");
    s.current = rd.opt<bool>("current").value_or(false);
    rd.finish();
    return s;
}

json to_json(const std::vector<SnapshotInfo>& list) {
    auto out = json::array();
    for (const auto& s : list) out.push_back(to_json(s));
    return out;
}

std::vector<SnapshotInfo> snapshot_list_from_json(const json& j) {
    if (!j.is_array()) fail(Errc::invalid_input, "a snapshot list must be a JSON array");
    std::vector<SnapshotInfo> out;
    for (const auto& e : j) out.push_back(snapshot_info_from_json(e));
    return out;
}

std::vector<SnapshotNode> snapshot_tree(std::vector<SnapshotInfo> list) {
    std::sort(list.begin(), list.end(), [](const SnapshotInfo& a, const SnapshotInfo& b) {
        return a.created != b.created ? a.created < b.created : a.name < b.name;
    });
    std::set<std::string> names;
    for (const auto& s : list) names.insert(s.name);
    std::map<std::string, std::vector<const SnapshotInfo*>> children;
    std::vector<const SnapshotInfo*> roots;
    for (const auto& s : list) {
        if (s.parent.empty() || !names.count(s.parent) || s.parent == s.name) roots.push_back(&s);
        else children[s.parent].push_back(&s);
    }
    std::vector<SnapshotNode> out;
    std::set<std::string> seen;
    // Iterative depth-first walk; `seen` stops a cycle (which libvirt never makes) from looping.
    std::vector<std::pair<const SnapshotInfo*, int>> stack;
    auto push_all = [&stack](const std::vector<const SnapshotInfo*>& v, int depth) {
        for (auto it = v.rbegin(); it != v.rend(); ++it) stack.emplace_back(*it, depth);
    };
    push_all(roots, 0);
    while (!stack.empty()) {
        auto [s, depth] = stack.back();
        stack.pop_back();
        if (!seen.insert(s->name).second) continue;
        out.push_back({*s, depth});
        if (auto it = children.find(s->name); it != children.end()) push_all(it->second, depth + 1);
    }
    // Members of a cycle (unreachable from any root) still show, as roots.
    for (const auto& s : list)
        if (!seen.count(s.name)) out.push_back({s, 0});
    return out;
}

}  // namespace hv::api
