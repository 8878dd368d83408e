// The versioned JSON encoding of a Session. Version 1 keys are short because every store holds
// one per citizen; defaults are omitted.
#include <array>
#include <cstddef>
#include <string_view>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <civicflow/engine/session.hpp>

namespace civicflow::engine {

namespace {

constexpr std::array<std::pair<Waiting, std::string_view>, 8> kWaitingNames{{
    {Waiting::kNothing, "nothing"},
    {Waiting::kMenu, "menu"},
    {Waiting::kAnswer, "answer"},
    {Waiting::kText, "text"},
    {Waiting::kCallResult, "call_result"},
    {Waiting::kResume, "resume"},
    {Waiting::kLanguage, "language"},
    {Waiting::kEraseConfirm, "erase_confirm"},
}};

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void write_string(Writer& w, std::string_view key, std::string_view value) {
    w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void write_frames(Writer& w, std::string_view key, const std::vector<Frame>& frames) {
    w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
    w.StartArray();
    for (const auto& f : frames) {
        w.StartArray();
        w.String(f.flow.data(), static_cast<rapidjson::SizeType>(f.flow.size()));
        w.String(f.state.data(), static_cast<rapidjson::SizeType>(f.state.size()));
        w.EndArray();
    }
    w.EndArray();
}

Error decode_error(std::string_view what) {
    return Error{"session_decode", "cannot decode session: " + std::string(what)};
}

bool read_string(const rapidjson::Value& obj, const char* key, std::string& out) {
    auto it = obj.FindMember(key);
    if (it == obj.MemberEnd()) {
        return true;
    }
    if (!it->value.IsString()) {
        return false;
    }
    out.assign(it->value.GetString(), it->value.GetStringLength());
    return true;
}

bool read_frames(const rapidjson::Value& obj, const char* key, std::vector<Frame>& out) {
    auto it = obj.FindMember(key);
    if (it == obj.MemberEnd()) {
        return true;
    }
    if (!it->value.IsArray()) {
        return false;
    }
    for (const auto& f : it->value.GetArray()) {
        if (!f.IsArray() || f.Size() != 2 || !f[0].IsString() || !f[1].IsString()) {
            return false;
        }
        out.push_back(Frame{
            {f[0].GetString(), f[0].GetStringLength()}, {f[1].GetString(), f[1].GetStringLength()}}
        );
    }
    return true;
}

template <typename Int>
bool read_int(const rapidjson::Value& obj, const char* key, Int& out) {
    auto it = obj.FindMember(key);
    if (it == obj.MemberEnd()) {
        return true;
    }
    if (!it->value.IsInt64()) {
        return false;
    }
    out = static_cast<Int>(it->value.GetInt64());
    return true;
}

}  // namespace

std::string_view to_string(Waiting waiting) {
    for (const auto& [w, name] : kWaitingNames) {
        if (w == waiting) {
            return name;
        }
    }
    return "nothing";
}

std::string encode_session(const Session& s) {
    rapidjson::StringBuffer buffer(nullptr, 512);  // a session mid-form: about 250 bytes
    Writer w(buffer);
    w.StartObject();
    w.Key("v");
    w.Int(kSessionEncodingVersion);
    if (!s.flow.empty()) {
        write_string(w, "flow", s.flow);
        write_string(w, "state", s.state);
    }
    if (!s.lang.empty()) {
        write_string(w, "lang", s.lang);
    }
    if (s.waiting != Waiting::kNothing) {
        write_string(w, "wait", to_string(s.waiting));
    }
    if (s.attempts != 0) {
        w.Key("att");
        w.Int(s.attempts);
    }
    if (s.faq_returns != 0) {
        w.Key("faq");
        w.Int(s.faq_returns);
    }
    if (!s.slots.empty()) {
        w.Key("slots");
        w.StartObject();
        for (const auto& [k, v] : s.slots) {
            write_string(w, k, v);
        }
        w.EndObject();
    }
    if (!s.stack.empty()) {
        write_frames(w, "stack", s.stack);
    }
    if (!s.history.empty()) {
        write_frames(w, "hist", s.history);
    }
    if (!s.pending_call.empty()) {
        write_string(w, "call", s.pending_call);
    }
    if (s.call_seq != 0) {
        w.Key("seq");
        w.Uint64(s.call_seq);
    }
    if (s.opted_out) {
        w.Key("out");
        w.Bool(true);
    }
    w.Key("ca");
    w.Int64(s.created_at);
    w.Key("la");
    w.Int64(s.last_active);
    if (!s.flowset_version.empty()) {
        write_string(w, "fsv", s.flowset_version);
    }
    w.EndObject();
    return {buffer.GetString(), buffer.GetSize()};
}

Result<Session> decode_session(std::string_view json) {
    // Values and parse stack in buffers on this stack: a default Document takes a fresh 64 KiB
    // chunk from the heap, whose first touch misses the cache, for every session decoded.
    using Pool = rapidjson::MemoryPoolAllocator<>;
    alignas(std::max_align_t) char values[4096];
    alignas(std::max_align_t) char stack[1024];
    Pool value_pool(values, sizeof values);
    Pool stack_pool(stack, sizeof stack);
    rapidjson::GenericDocument<rapidjson::UTF8<>, Pool, Pool> doc(
        &value_pool, sizeof stack, &stack_pool
    );
    doc.Parse(json.data(), json.size());
    if (doc.HasParseError() || !doc.IsObject()) {
        return decode_error("not a JSON object");
    }
    auto v = doc.FindMember("v");
    if (v == doc.MemberEnd() || !v->value.IsInt()) {
        return decode_error("no encoding version");
    }
    if (v->value.GetInt() != kSessionEncodingVersion) {
        return decode_error("unknown encoding version " + std::to_string(v->value.GetInt()));
    }
    Session s;
    std::string wait;
    std::uint64_t seq = 0;
    bool ok = read_string(doc, "flow", s.flow) && read_string(doc, "state", s.state) &&
              read_string(doc, "lang", s.lang) && read_string(doc, "wait", wait) &&
              read_int(doc, "att", s.attempts) && read_int(doc, "faq", s.faq_returns) &&
              read_frames(doc, "stack", s.stack) && read_frames(doc, "hist", s.history) &&
              read_string(doc, "call", s.pending_call) && read_int(doc, "seq", seq) &&
              read_int(doc, "ca", s.created_at) && read_int(doc, "la", s.last_active) &&
              read_string(doc, "fsv", s.flowset_version);
    if (!ok) {
        return decode_error("a member has the wrong type");
    }
    s.call_seq = seq;
    if (!wait.empty()) {
        bool known = false;
        for (const auto& [w, name] : kWaitingNames) {
            if (name == wait) {
                s.waiting = w;
                known = true;
            }
        }
        if (!known) {
            return decode_error("unknown waiting state");
        }
    }
    if (auto out = doc.FindMember("out"); out != doc.MemberEnd()) {
        if (!out->value.IsBool()) {
            return decode_error("a member has the wrong type");
        }
        s.opted_out = out->value.GetBool();
    }
    if (auto slots = doc.FindMember("slots"); slots != doc.MemberEnd()) {
        if (!slots->value.IsObject()) {
            return decode_error("slots is not an object");
        }
        for (auto it = slots->value.MemberBegin(); it != slots->value.MemberEnd(); ++it) {
            if (!it->value.IsString()) {
                return decode_error("a slot value is not text");
            }
            s.slots.emplace(
                std::string(it->name.GetString(), it->name.GetStringLength()),
                std::string(it->value.GetString(), it->value.GetStringLength())
            );
        }
    }
    return s;
}

}  // namespace civicflow::engine
