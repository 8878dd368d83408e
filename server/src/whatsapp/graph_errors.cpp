#include <optional>

#include <rapidjson/document.h>

#include <civicflow/server/whatsapp/graph_errors.hpp>

namespace civicflow::server::whatsapp {
namespace {

using Kind = SendOutcome::Kind;

std::string string_member(const rapidjson::Value& object, const char* name) {
    const auto it = object.FindMember(name);
    if (it == object.MemberEnd() || !it->value.IsString()) {
        return {};
    }
    return {it->value.GetString(), it->value.GetStringLength()};
}

// The codes whose class is known; nullopt lets the HTTP status decide.
std::optional<Kind> kind_of_code(int code) {
    switch (code) {
        case 4:       // application request limit reached
        case 80007:   // WhatsApp Business Account rate limit
        case 130429:  // Cloud API throughput reached
        case 131048:  // spam rate limit
        case 131056:  // too many messages to the same recipient in a short time
            return Kind::kThrottled;
        case 1:       // unknown API error
        case 2:       // API service temporarily unavailable
        case 131000:  // something went wrong
        case 131016:  // service unavailable
        case 131057:  // account in maintenance mode (e.g. a throughput upgrade)
        case 133004:  // server temporarily unavailable
            return Kind::kRetry;
        case 3:       // capability or permissions
        case 10:      // permission denied
        case 100:     // invalid parameter
        case 190:     // access token expired or invalid
        case 368:     // temporarily blocked for policy violations
        case 131008:  // required parameter missing
        case 131009:  // parameter value invalid
        case 131021:  // recipient cannot be sender
        case 131026:  // message undeliverable
        case 131030:  // recipient not in the allowed list
        case 131031:  // account locked
        case 131042:  // payment problem
        case 131045:  // phone number registration problem
        case 131047:  // re-engagement: more than 24 hours since the citizen's last message
        case 131049:  // not delivered for ecosystem engagement
        case 131050:  // the citizen stopped marketing messages
        case 131051:  // unsupported message type
        case 131052:  // media download error
        case 131053:  // media upload error
        case 133010:  // phone number not registered
            return Kind::kPermanent;
        default:
            break;
    }
    if (code >= 132000 && code <= 132999) {  // template errors (missing, paused, parameters)
        return Kind::kPermanent;
    }
    if (code >= 200 && code <= 299) {  // permission errors
        return Kind::kPermanent;
    }
    return std::nullopt;
}

Kind kind_of_status(unsigned http_status) {
    if (http_status >= 200 && http_status < 300)
        return Kind::kSent;
    if (http_status == 429)
        return Kind::kThrottled;
    if (http_status >= 400 && http_status < 500)
        return Kind::kPermanent;
    // 5xx, 0 (no answer) and the unexpected (1xx, 3xx): the request may succeed later.
    return Kind::kRetry;
}

}  // namespace

SendOutcome classify_send(unsigned http_status, std::string_view response_body) {
    SendOutcome out;
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag>(response_body.data(), response_body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();
    if (http_status >= 200 && http_status < 300) {
        out.kind = Kind::kSent;
        if (json) {
            const auto messages = doc.FindMember("messages");
            if (messages != doc.MemberEnd() && messages->value.IsArray() &&
                !messages->value.Empty() && messages->value[0].IsObject()) {
                out.wamid = string_member(messages->value[0], "id");
            }
        }
        return out;
    }
    out.kind = kind_of_status(http_status);
    if (!json) {
        return out;
    }
    const auto error = doc.FindMember("error");
    if (error == doc.MemberEnd() || !error->value.IsObject()) {
        return out;
    }
    const rapidjson::Value& e = error->value;
    out.error_title = string_member(e, "message");
    if (out.error_title.empty()) {
        out.error_title = string_member(e, "error_user_title");
    }
    const auto code = e.FindMember("code");
    if (code != e.MemberEnd() && code->value.IsInt() && code->value.GetInt() != 0) {
        out.error_code = code->value.GetInt();
        if (const std::optional<Kind> kind = kind_of_code(out.error_code)) {
            out.kind = *kind;
        }
    }
    return out;
}

std::string_view kind_name(SendOutcome::Kind kind) {
    switch (kind) {
        case Kind::kSent:
            return "sent";
        case Kind::kRetry:
            return "retry";
        case Kind::kThrottled:
            return "throttled";
        case Kind::kPermanent:
            return "permanent";
    }
    return "retry";
}

}  // namespace civicflow::server::whatsapp
