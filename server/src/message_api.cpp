#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <civicflow/engine/text_normalize.hpp>
#include <civicflow/server/message_api.hpp>

#include "hex.hpp"
#include "json_buffer.hpp"

#include <openssl/sha.h>

namespace civicflow::server {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void write_string(Writer& w, std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// This thread's response buffer and writer, reused: a buffer and the writer's nesting stack
// allocated afresh for every response were two of the allocations each message costs.
struct ResponseOut {
    rapidjson::StringBuffer buffer{nullptr, 2048};  // a menu with its session: about 600 bytes
    Writer writer{buffer};
};

ResponseOut& response_out() {
    thread_local ResponseOut out;
    if (out.buffer.GetSize() > 64 * 1024) {  // after a very long reply: give its buffer back
        out.buffer.Clear();
        out.buffer.ShrinkToFit();
        out.buffer.Reserve(2048);
    }
    out.buffer.Clear();
    out.writer.Reset(out.buffer);
    return out;
}

engine::Error field_error(std::string code, std::string message) {
    return engine::Error{std::move(code), std::move(message)};
}

// Reads an optional string member. Returns false (and sets `error`) when present but not a
// string, empty, or longer than `max_bytes`.
bool read_optional_id(
    const rapidjson::Value& obj,
    const char* name,
    std::size_t max_bytes,
    std::string& out,
    std::optional<engine::Error>& error
) {
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd() || it->value.IsNull())
        return true;
    if (!it->value.IsString()) {
        error = field_error("invalid_field", std::string("'") + name + "' must be a string");
        return false;
    }
    const std::size_t len = it->value.GetStringLength();
    if (len == 0 || len > max_bytes) {
        error = field_error(
            "invalid_field",
            std::string("'") + name + "' must be 1 to " + std::to_string(max_bytes) + " bytes long"
        );
        return false;
    }
    out.assign(it->value.GetString(), len);
    return true;
}

}  // namespace

std::size_t utf8_length(std::string_view text) {
    std::size_t n = 0;
    for (const char c : text) {
        // Count every byte that is not a continuation byte (10xxxxxx).
        if ((static_cast<unsigned char>(c) & 0xC0U) != 0x80U)
            ++n;
    }
    return n;
}

engine::Result<MessageRequest> parse_message_request(std::string_view body) {
    LocalDocument<> local;
    PooledDocument& doc = local.get();
    // Validating the encoding rejects invalid UTF-8 inside strings (and lone high surrogates
    // in \u escapes; lone low ones are checked below); kParseStopWhenDoneFlag is not set, so
    // trailing garbage is an error too. Iterative: nesting costs heap, not the thread's stack
    // (a recursive parse of 100,000 '[' overflowed it).
    doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(
        body.data(), body.size()
    );
    if (doc.HasParseError()) {
        // A lone surrogate escape (\ud800) has no UTF-8 form either: same error.
        if (doc.GetParseError() == rapidjson::kParseErrorStringInvalidEncoding ||
            doc.GetParseError() == rapidjson::kParseErrorStringUnicodeSurrogateInvalid) {
            return field_error("invalid_utf8", "the body contains invalid UTF-8");
        }
        return field_error(
            "invalid_json",
            std::string("the body is not valid JSON: ") +
                rapidjson::GetParseError_En(doc.GetParseError()) + " at offset " +
                std::to_string(doc.GetErrorOffset())
        );
    }
    if (!doc.IsObject())
        return field_error("invalid_json", "the body must be a JSON object");
    if (has_duplicate_keys(doc))
        return field_error("invalid_json", "the body has a key twice");
    MessageRequest req;
    auto user = doc.FindMember("user");
    if (user == doc.MemberEnd() || user->value.IsNull()) {
        return field_error("missing_user", "'user' is required");
    }
    if (!user->value.IsString())
        return field_error("invalid_field", "'user' must be a string");
    if (user->value.GetStringLength() == 0) {
        return field_error("missing_user", "'user' must not be empty");
    }
    if (user->value.GetStringLength() > kMaxIdBytes) {
        return field_error(
            "invalid_field", "'user' must be at most " + std::to_string(kMaxIdBytes) + " bytes long"
        );
    }
    req.user.assign(user->value.GetString(), user->value.GetStringLength());
    if (req.user.starts_with("wa:")) {
        // The WhatsApp channel's own keys ("wa:NUMBER:CITIZEN"): through this API a caller
        // could read or change a WhatsApp citizen's conversation.
        return field_error(
            "invalid_field", "'user' must not start with 'wa:' (the WhatsApp channel's citizens)"
        );
    }

    std::optional<engine::Error> error;
    auto text = doc.FindMember("text");
    const bool has_text = text != doc.MemberEnd() && !text->value.IsNull();
    if (has_text) {
        if (!text->value.IsString())
            return field_error("invalid_field", "'text' must be a string");
        req.text.assign(text->value.GetString(), text->value.GetStringLength());
        if (utf8_length(req.text) > kMaxTextChars) {
            return field_error(
                "text_too_long",
                "'text' must be at most " + std::to_string(kMaxTextChars) + " characters"
            );
        }
    }
    if (!read_optional_id(doc, "reply_id", kMaxIdBytes, req.reply_id, error))
        return *error;
    req.is_choice = !req.reply_id.empty();
    if (has_text == req.is_choice) {
        return field_error("invalid_field", "exactly one of 'text' and 'reply_id' is required");
    }
    if (!read_optional_id(doc, "message_id", kMaxIdBytes, req.message_id, error))
        return *error;
    if (!read_optional_id(doc, "lang", 16, req.lang, error))
        return *error;
    // RapidJSON decodes a lone low surrogate escape (\udc00) to bytes that are not UTF-8:
    // the strings kept are checked whenever the body has an escape of that kind at all.
    if (body.find("\\u") != std::string_view::npos) {
        for (const std::string* s :
             {&req.user, &req.text, &req.reply_id, &req.message_id, &req.lang}) {
            if (!engine::is_valid_utf8(*s))
                return field_error("invalid_utf8", "the body contains invalid UTF-8");
        }
    }
    return req;
}

std::string message_fingerprint(const MessageRequest& request) {
    // The kind ("t" or "c"), the value's length, the value and the lang, separated by NULs: a
    // value may hold a NUL (\u0000 in JSON), but its length fixes where it ends.
    std::string input;
    input.reserve(request.text.size() + request.reply_id.size() + request.lang.size() + 4);
    input += request.is_choice ? 'c' : 't';
    input += '\0';
    input += std::to_string(request.is_choice ? request.reply_id.size() : request.text.size());
    input += '\0';
    input += request.is_choice ? request.reply_id : request.text;
    input += '\0';
    input += request.lang;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
    std::string out;
    append_hex(out, std::span(digest, 8));
    return out;
}

std::string encode_message_response(
    const std::string& user,
    const std::vector<engine::Reply>& replies,
    const engine::Session& session
) {
    ResponseOut& out = response_out();
    Writer& w = out.writer;
    w.StartObject();
    w.Key("user");
    write_string(w, user);
    w.Key("replies");
    w.StartArray();
    for (const engine::Reply& r : replies) {
        w.StartObject();
        w.Key("type");
        switch (r.kind) {
            case engine::Reply::Kind::kText:
                w.String("text");
                w.Key("text");
                write_string(w, r.text);
                break;
            case engine::Reply::Kind::kMenu:
                w.String("menu");
                w.Key("text");
                write_string(w, r.text);
                w.Key("options");
                w.StartArray();
                for (const engine::MenuItem& o : r.options) {
                    w.StartObject();
                    w.Key("id");
                    write_string(w, o.id);
                    w.Key("title");
                    write_string(w, o.title);
                    w.EndObject();
                }
                w.EndArray();
                break;
            case engine::Reply::Kind::kMedia:
                w.String("media");
                w.Key("url");
                write_string(w, r.url);
                w.Key("caption");
                write_string(w, r.caption);
                break;
        }
        w.EndObject();
    }
    w.EndArray();
    w.Key("session");
    w.StartObject();
    w.Key("flow");
    write_string(w, session.flow);
    w.Key("state");
    write_string(w, session.state);
    w.Key("lang");
    write_string(w, session.lang);
    w.Key("waiting_for");
    write_string(w, engine::to_string(session.waiting));
    w.EndObject();
    w.EndObject();
    return std::string(out.buffer.GetString(), out.buffer.GetSize());
}

engine::Result<std::vector<engine::Reply>> decode_message_replies(std::string_view json) {
    rapidjson::Document doc;
    doc.Parse(json.data(), json.size());
    const engine::Error bad{"invalid_json", "not a message response"};
    if (doc.HasParseError() || !doc.IsObject())
        return bad;
    const auto replies = doc.FindMember("replies");
    if (replies == doc.MemberEnd() || !replies->value.IsArray())
        return bad;
    auto str = [](const rapidjson::Value& obj, const char* name) -> std::string {
        const auto it = obj.FindMember(name);
        if (it == obj.MemberEnd() || !it->value.IsString())
            return {};
        return std::string(it->value.GetString(), it->value.GetStringLength());
    };
    std::vector<engine::Reply> out;
    for (const rapidjson::Value& r : replies->value.GetArray()) {
        if (!r.IsObject())
            return bad;
        engine::Reply reply;
        const std::string type = str(r, "type");
        if (type == "text") {
            reply.kind = engine::Reply::Kind::kText;
            reply.text = str(r, "text");
        } else if (type == "menu") {
            reply.kind = engine::Reply::Kind::kMenu;
            reply.text = str(r, "text");
            const auto options = r.FindMember("options");
            if (options != r.MemberEnd() && options->value.IsArray()) {
                for (const rapidjson::Value& o : options->value.GetArray()) {
                    if (o.IsObject())
                        reply.options.push_back({str(o, "id"), str(o, "title")});
                }
            }
        } else if (type == "media") {
            reply.kind = engine::Reply::Kind::kMedia;
            reply.url = str(r, "url");
            reply.caption = str(r, "caption");
        } else {
            return bad;
        }
        out.push_back(std::move(reply));
    }
    return out;
}

std::string encode_error(
    std::string_view code, std::string_view message, std::string_view request_id
) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("error");
    w.StartObject();
    w.Key("code");
    write_string(w, code);
    w.Key("message");
    write_string(w, message);
    w.EndObject();
    w.Key("request_id");
    write_string(w, request_id);
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace civicflow::server
