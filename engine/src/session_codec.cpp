// The versioned JSON encoding of a Session. Version 1 keys are short because every store holds
// one per citizen; defaults are omitted.
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
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

// Reads a session straight from the parser's events (RapidJSON's SAX interface): no document is
// built and no member is looked up, which halved the cost of decoding the session every message
// loads. Unknown members are skipped whatever their shape, as a newer build may add some.
class SessionHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, SessionHandler> {
public:
    Session session;
    std::string wait;
    bool has_version = false;
    bool bad_version = false;  // "v" is there but not an int
    int version = 0;
    const char* error = nullptr;  // the first wrong member found

    // Called for any value not handled below (null, double): right only inside an unknown
    // member.
    bool Default() { return value_of_wrong_type(); }

    bool Bool(bool b) {
        if (skip_ == 0 && depth_ == 1 && field_ == Field::kOut) {
            session.opted_out = b;
            return true;
        }
        return value_of_wrong_type();
    }

    bool Int(int i) { return integer(i, true); }

    bool Uint(unsigned u) {
        return integer(u, u <= static_cast<unsigned>(std::numeric_limits<int>::max()));
    }

    bool Int64(std::int64_t i) { return integer(i, false); }

    bool Uint64(std::uint64_t u) {
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            return value_of_wrong_type();
        }
        return integer(static_cast<std::int64_t>(u), false);
    }

    bool String(const char* str, rapidjson::SizeType length, bool /*copy*/) {
        const std::string_view text(str, length);
        if (skip_ > 0) {
            return true;
        }
        if (depth_ == 1) {
            switch (field_) {
                case Field::kFlow:
                    session.flow.assign(text);
                    return true;
                case Field::kState:
                    session.state.assign(text);
                    return true;
                case Field::kLang:
                    session.lang.assign(text);
                    return true;
                case Field::kWait:
                    wait.assign(text);
                    return true;
                case Field::kCall:
                    session.pending_call.assign(text);
                    return true;
                case Field::kFsv:
                    session.flowset_version.assign(text);
                    return true;
                default:
                    return value_of_wrong_type();
            }
        }
        if (depth_ == 2 && field_ == Field::kSlots) {
            session.slots.emplace(std::move(slot_key_), std::string(text));
            return true;
        }
        if (depth_ == 3 && frames_ != nullptr && frame_items_ < 2) {
            (frame_items_++ == 0 ? frame_.flow : frame_.state).assign(text);
            return true;
        }
        return wrong();
    }

    bool Key(const char* str, rapidjson::SizeType length, bool /*copy*/) {
        if (skip_ > 0) {
            return true;
        }
        if (depth_ == 2) {  // a slot's name
            slot_key_.assign(str, length);
            return true;
        }
        field_ = field_of(std::string_view(str, length));
        if (field_ != Field::kUnknown) {
            // A member given twice: which one counts would be a guess (the encoder writes each
            // once).
            const auto bit = 1U << static_cast<unsigned>(field_);
            if ((seen_ & bit) != 0) {
                error = "a member is given twice";
                return false;
            }
            seen_ |= bit;
        }
        return true;
    }

    bool StartObject() {
        if (enter_skipped()) {
            return true;
        }
        if (depth_ == 0 || (depth_ == 1 && field_ == Field::kSlots)) {
            ++depth_;
            return true;
        }
        return wrong();
    }

    bool EndObject(rapidjson::SizeType /*members*/) {
        if (leave_skipped()) {
            return true;
        }
        --depth_;
        return true;
    }

    bool StartArray() {
        if (enter_skipped()) {
            return true;
        }
        if (depth_ == 1 && (field_ == Field::kStack || field_ == Field::kHistory)) {
            frames_ = field_ == Field::kStack ? &session.stack : &session.history;
            ++depth_;
            return true;
        }
        if (depth_ == 2 && frames_ != nullptr) {
            frame_items_ = 0;
            ++depth_;
            return true;
        }
        return wrong();
    }

    bool EndArray(rapidjson::SizeType /*elements*/) {
        if (leave_skipped()) {
            return true;
        }
        if (depth_ == 3) {
            if (frame_items_ != 2) {
                return wrong();
            }
            frames_->push_back(std::move(frame_));
            frame_ = Frame{};
        } else {
            frames_ = nullptr;
        }
        --depth_;
        return true;
    }

private:
    enum class Field {
        kUnknown,
        kVersion,
        kFlow,
        kState,
        kLang,
        kWait,
        kAttempts,
        kFaqReturns,
        kSlots,
        kStack,
        kHistory,
        kCall,
        kSeq,
        kOut,
        kCreated,
        kLastActive,
        kFsv
    };

    static Field field_of(std::string_view key) {
        static constexpr std::array<std::pair<std::string_view, Field>, 16> kFields{{
            {"v", Field::kVersion},
            {"flow", Field::kFlow},
            {"state", Field::kState},
            {"lang", Field::kLang},
            {"wait", Field::kWait},
            {"att", Field::kAttempts},
            {"faq", Field::kFaqReturns},
            {"slots", Field::kSlots},
            {"stack", Field::kStack},
            {"hist", Field::kHistory},
            {"call", Field::kCall},
            {"seq", Field::kSeq},
            {"out", Field::kOut},
            {"ca", Field::kCreated},
            {"la", Field::kLastActive},
            {"fsv", Field::kFsv},
        }};
        for (const auto& [name, field] : kFields) {
            if (name == key) {
                return field;
            }
        }
        return Field::kUnknown;
    }

    // Whether an object or array starts inside an unknown member (or is one): then counted
    // in skip_ and not read.
    bool enter_skipped() {
        if (!in_unknown()) {
            return false;
        }
        ++skip_;
        return true;
    }

    // Whether an object or array that ends was skipped.
    bool leave_skipped() {
        if (skip_ == 0) {
            return false;
        }
        --skip_;
        return true;
    }

    bool in_unknown() const { return skip_ > 0 || (depth_ == 1 && field_ == Field::kUnknown); }

    // `fits_int`: the value is an int (the version must be one).
    bool integer(std::int64_t i, bool fits_int) {
        if (skip_ > 0 || depth_ != 1) {
            return value_of_wrong_type();
        }
        switch (field_) {
            case Field::kVersion:
                if (!fits_int) {
                    return value_of_wrong_type();
                }
                has_version = true;
                version = static_cast<int>(i);
                return true;
            case Field::kAttempts:
                session.attempts = static_cast<int>(i);
                return true;
            case Field::kFaqReturns:
                session.faq_returns = static_cast<int>(i);
                return true;
            case Field::kSeq:
                session.call_seq = static_cast<std::uint64_t>(i);
                return true;
            case Field::kCreated:
                session.created_at = i;
                return true;
            case Field::kLastActive:
                session.last_active = i;
                return true;
            default:
                return value_of_wrong_type();
        }
    }

    bool value_of_wrong_type() { return in_unknown() ? true : wrong(); }

    // Stops the parse, saying what is wrong where the parser is.
    bool wrong() {
        if (depth_ == 1 && field_ == Field::kVersion) {
            bad_version = true;
        } else if (depth_ == 1 && field_ == Field::kSlots) {
            error = "slots is not an object";
        } else if (depth_ >= 2 && field_ == Field::kSlots) {
            error = "a slot value is not text";
        } else {
            error = "a member has the wrong type";
        }
        return false;
    }

    int depth_ = 0;      // 1: the session object; 2: slots or a frame list; 3: a frame
    int skip_ = 0;       // nesting inside an unknown member's value
    unsigned seen_ = 0;  // the known members read so far, one bit per Field
    Field field_ = Field::kUnknown;
    std::string slot_key_;
    std::vector<Frame>* frames_ = nullptr;
    Frame frame_;
    int frame_items_ = 0;
};

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
    // This thread's buffer and writer, reused (the server encodes a session per message).
    struct Out {
        rapidjson::StringBuffer buffer{nullptr, 512};  // a session mid-form: about 250 bytes
        Writer writer{buffer};
    };

    thread_local Out out;
    if (out.buffer.GetSize() > 64 * 1024) {  // after a session with very long slots
        out.buffer.Clear();
        out.buffer.ShrinkToFit();
        out.buffer.Reserve(512);
    }
    out.buffer.Clear();
    out.writer.Reset(out.buffer);
    rapidjson::StringBuffer& buffer = out.buffer;
    Writer& w = out.writer;
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
    // The parser's stack (where it copies strings) in a buffer on this stack: its default
    // takes a heap block per decode. The pool keeps the first bytes of the buffer for its chunk
    // header (24 in RapidJSON 1.1): the buffer is larger than the stack asked for, or the pool
    // would take a 64 KiB heap chunk for it every time.
    constexpr std::size_t kStackBytes = 1024;
    constexpr std::size_t kPoolHeader = 64;
    using Pool = rapidjson::MemoryPoolAllocator<>;
    alignas(std::max_align_t) char stack[kStackBytes + kPoolHeader];
    Pool stack_pool(stack, sizeof stack);
    rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>, Pool> reader(
        &stack_pool, kStackBytes
    );
    const std::size_t first = json.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos || json[first] != '{') {
        return decode_error("not a JSON object");
    }
    rapidjson::MemoryStream bytes(json.data(), json.size());
    SessionHandler h;
    const rapidjson::ParseResult parsed = reader.Parse(bytes, h);
    if (!parsed && h.error == nullptr && !h.bad_version) {
        return decode_error("not a JSON object");  // a syntax error
    }
    if (!h.has_version || h.bad_version) {
        return decode_error("no encoding version");
    }
    if (h.version != kSessionEncodingVersion) {
        return decode_error("unknown encoding version " + std::to_string(h.version));
    }
    if (h.error != nullptr) {
        return decode_error(h.error);
    }
    Session s = std::move(h.session);
    if (!h.wait.empty()) {
        bool known = false;
        for (const auto& [w, name] : kWaitingNames) {
            if (name == h.wait) {
                s.waiting = w;
                known = true;
            }
        }
        if (!known) {
            return decode_error("unknown waiting state");
        }
    }
    return s;
}

}  // namespace civicflow::engine
