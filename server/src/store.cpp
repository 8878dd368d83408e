#include <charconv>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <civicflow/server/store.hpp>

namespace civicflow::server {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void put(Writer& w, const char* key, const std::string& value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

bool get(const rapidjson::Value& obj, const char* key, std::string& out) {
    auto it = obj.FindMember(key);
    if (it == obj.MemberEnd() || !it->value.IsString())
        return false;
    out.assign(it->value.GetString(), it->value.GetStringLength());
    return true;
}

}  // namespace

std::string encode_pending_call(const PendingCall& pending) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    put(w, "m", pending.message_id);
    if (!pending.fingerprint.empty())
        put(w, "fp", pending.fingerprint);
    put(w, "id", pending.call.id);
    put(w, "b", pending.call.backend);
    put(w, "method", pending.call.method);
    put(w, "path", pending.call.path);
    put(w, "body", pending.call.body);
    w.Key("at");
    w.Int64(pending.started_at);
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

engine::Result<PendingCall> decode_pending_call(std::string_view json) {
    rapidjson::Document doc;
    doc.Parse(json.data(), json.size());
    const engine::Error bad{"pending_decode", "malformed pending call record"};
    if (doc.HasParseError() || !doc.IsObject())
        return bad;
    PendingCall p;
    if (!get(doc, "m", p.message_id) || !get(doc, "id", p.call.id) ||
        !get(doc, "b", p.call.backend) || !get(doc, "method", p.call.method) ||
        !get(doc, "path", p.call.path) || !get(doc, "body", p.call.body)) {
        return bad;
    }
    if (doc.HasMember("fp") && !get(doc, "fp", p.fingerprint))
        return bad;  // optional: records of earlier builds have none
    auto at = doc.FindMember("at");
    if (at == doc.MemberEnd() || !at->value.IsInt64())
        return bad;
    p.started_at = at->value.GetInt64();
    return p;
}

boost::asio::awaitable<engine::Result<Lease>> Store::acquire_lease(const std::string& user) {
    co_return Lease{user, {}};
}

boost::asio::awaitable<void> Store::release_lease(Lease) {
    co_return;
}

std::string Store::metrics() const {
    return {};
}

boost::asio::awaitable<engine::Result<LeasedState>> Store::acquire_and_load(
    const std::string& user, const std::string& message_id
) {
    auto lease = co_await acquire_lease(user);
    if (!lease)
        co_return lease.error();
    auto state = co_await load(user, message_id);
    if (!state) {
        co_await release_lease(std::move(*lease));
        co_return state.error();
    }
    co_return LeasedState{std::move(*lease), std::move(*state)};
}

engine::Result<StoreSpec> parse_store_spec(std::string_view text) {
    StoreSpec spec;
    if (text == "memory") {
        spec.kind = StoreSpec::Kind::kMemory;
        return spec;
    }
    if (text.substr(0, 7) == "sqlite:") {
        spec.kind = StoreSpec::Kind::kSqlite;
        spec.path = std::string(text.substr(7));
        if (spec.path.empty())
            return engine::Error{"store", "'sqlite:' needs a file path, e.g. sqlite:civicflow.db"};
        return spec;
    }
    if (text.substr(0, 8) == "redis://") {
        spec.kind = StoreSpec::Kind::kRedis;
        std::string_view rest = text.substr(8);
        while (!rest.empty() && rest.back() == '/')
            rest.remove_suffix(1);
        const auto colon = rest.rfind(':');
        std::string_view host = rest.substr(0, colon);
        if (colon != std::string_view::npos) {
            const std::string_view port = rest.substr(colon + 1);
            unsigned value = 0;
            auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
            if (ec != std::errc{} || ptr != port.data() + port.size() || value == 0 ||
                value > 65535) {
                return engine::Error{"store", "invalid port in the redis:// store address"};
            }
            spec.port = static_cast<std::uint16_t>(value);
        }
        if (host.empty() || host.find('/') != std::string_view::npos ||
            host.find('@') != std::string_view::npos) {
            return engine::Error{
                "store", "expected redis://HOST[:PORT], e.g. redis://127.0.0.1:6379"};
        }
        spec.host = std::string(host);
        return spec;
    }
    return engine::Error{
        "store", "unknown store (expected memory, sqlite:PATH or redis://HOST[:PORT])"};
}

}  // namespace civicflow::server
