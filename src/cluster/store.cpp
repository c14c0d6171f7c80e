#include "store.hpp"

namespace hv::cluster {

Compare Compare::absent(std::string key) {
    Compare c;
    c.key = std::move(key);
    c.target = Target::create_revision;
    c.result = Result::equal;
    c.number = 0;
    return c;
}

Compare Compare::mod_revision_is(std::string key, std::int64_t rev) {
    Compare c;
    c.key = std::move(key);
    c.target = Target::mod_revision;
    c.result = Result::equal;
    c.number = rev;
    return c;
}

Compare Compare::value_is(std::string key, std::string value) {
    Compare c;
    c.key = std::move(key);
    c.target = Target::value;
    c.result = Result::equal;
    c.value = std::move(value);
    return c;
}

Op Op::put(std::string key, std::string value, std::int64_t lease) {
    Op o;
    o.kind = Kind::put;
    o.key = std::move(key);
    o.value = std::move(value);
    o.lease = lease;
    return o;
}

Op Op::del(std::string key, bool prefix) {
    Op o;
    o.kind = Kind::del;
    o.key = std::move(key);
    o.prefix = prefix;
    return o;
}

Op Op::get(std::string key, bool prefix) {
    Op o;
    o.kind = Kind::get;
    o.key = std::move(key);
    o.prefix = prefix;
    return o;
}

std::string prefix_end(const std::string& prefix) {
    std::string end = prefix;
    while (!end.empty()) {
        auto& c = reinterpret_cast<unsigned char&>(end.back());
        if (c < 0xff) {
            ++c;
            return end;
        }
        end.pop_back();
    }
    return std::string(1, '\0');  // etcd: "\0" as range_end means "every key"
}

}  // namespace hv::cluster
