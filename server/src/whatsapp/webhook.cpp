#include <charconv>
#include <string>
#include <system_error>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <civicflow/server/whatsapp/webhook.hpp>

namespace civicflow::server::whatsapp {
namespace {

using rapidjson::Value;
using Type = InboundMessage::Type;

// The members below are read leniently: a member that is absent or of the wrong JSON type
// reads as empty. The body is authenticated and comes from Meta; a field it adds or changes
// type must not drop the whole batch.
std::string_view str(const Value& object, const char* name) {
    if (!object.IsObject()) {
        return {};
    }
    const auto it = object.FindMember(name);
    if (it == object.MemberEnd() || !it->value.IsString()) {
        return {};
    }
    return {it->value.GetString(), it->value.GetStringLength()};
}

const Value* member(const Value& object, const char* name) {
    if (!object.IsObject()) {
        return nullptr;
    }
    const auto it = object.FindMember(name);
    return it == object.MemberEnd() ? nullptr : &it->value;
}

const Value* object_member(const Value& object, const char* name) {
    const Value* v = member(object, name);
    return v != nullptr && v->IsObject() ? v : nullptr;
}

Value::ConstArray array_member(const Value& object, const char* name) {
    static const Value kEmpty(rapidjson::kArrayType);
    const Value* v = member(object, name);
    return v != nullptr && v->IsArray() ? v->GetArray() : kEmpty.GetArray();
}

// Meta sends timestamps as decimal strings ("1739321024"); a number is accepted too.
std::int64_t timestamp_of(const Value& object) {
    const Value* v = member(object, "timestamp");
    if (v == nullptr) {
        return 0;
    }
    if (v->IsInt64()) {
        return v->GetInt64();
    }
    if (!v->IsString()) {
        return 0;
    }
    const char* begin = v->GetString();
    const char* end = begin + v->GetStringLength();
    std::int64_t out = 0;
    const auto [ptr, ec] = std::from_chars(begin, end, out);
    return ec == std::errc() && ptr == end ? out : 0;
}

// Shortest decimal text that reads back as the same double ("37.44221496582").
std::string format_double(double value) {
    char buffer[32];
    const auto [ptr, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
    return ec == std::errc() ? std::string(buffer, ptr) : std::string();
}

void read_media(const Value& message, const char* name, InboundMessage& out) {
    const Value* media = object_member(message, name);
    if (media == nullptr) {
        return;
    }
    out.media.id = str(*media, "id");
    out.media.mime_type = str(*media, "mime_type");
    out.media.caption = str(*media, "caption");
}

void read_content(const Value& message, InboundMessage& out) {
    const std::string_view type = out.raw_type;
    if (type == "text") {
        out.type = Type::kText;
        if (const Value* text = object_member(message, "text")) {
            out.text = str(*text, "body");
        }
    } else if (type == "interactive") {
        const Value* interactive = object_member(message, "interactive");
        const std::string_view kind = interactive ? str(*interactive, "type") : "";
        const Value* reply = nullptr;
        if (kind == "button_reply") {
            reply = object_member(*interactive, "button_reply");
            out.type = Type::kInteractiveButton;
        } else if (kind == "list_reply") {
            reply = object_member(*interactive, "list_reply");
            out.type = Type::kInteractiveList;
        }
        if (reply != nullptr) {
            out.reply_id = str(*reply, "id");
            out.reply_title = str(*reply, "title");
        }
        // A reply without an option id cannot be matched to a menu: flows replies (nfm_reply)
        // and malformed replies alike are left to the caller as unsupported.
        if (reply == nullptr || out.reply_id.empty()) {
            out.type = Type::kUnsupported;
            out.reply_id.clear();
            out.reply_title.clear();
        }
    } else if (type == "button") {
        out.type = Type::kButton;
        if (const Value* button = object_member(message, "button")) {
            out.reply_id = str(*button, "payload");
            out.text = str(*button, "text");
        }
    } else if (type == "image") {
        out.type = Type::kImage;
        read_media(message, "image", out);
    } else if (type == "document") {
        out.type = Type::kDocument;
        read_media(message, "document", out);
    } else if (type == "audio") {
        out.type = Type::kAudio;
        read_media(message, "audio", out);
    } else if (type == "video") {
        out.type = Type::kVideo;
        read_media(message, "video", out);
    } else if (type == "sticker") {
        out.type = Type::kSticker;
        read_media(message, "sticker", out);
    } else if (type == "location") {
        out.type = Type::kLocation;
        const Value* location = object_member(message, "location");
        const Value* lat = location ? member(*location, "latitude") : nullptr;
        const Value* lon = location ? member(*location, "longitude") : nullptr;
        if (lat != nullptr && lon != nullptr && lat->IsNumber() && lon->IsNumber()) {
            out.text = format_double(lat->GetDouble()) + "," + format_double(lon->GetDouble());
        }
    } else if (type == "reaction") {
        out.type = Type::kReaction;
        if (const Value* reaction = object_member(message, "reaction")) {
            out.text = str(*reaction, "emoji");
            out.reply_id = str(*reaction, "message_id");
        }
    } else {
        out.type = Type::kUnsupported;
    }
}

// Finds the contacts[] entry of the sender: same wa_id as `from`, or same user_id as
// `from_user_id`. A message that names no sender at all takes the only contact, if there is
// exactly one (username-only webhooks may carry the BSUID in contacts[] alone).
const Value* sender_contact(
    Value::ConstArray contacts, std::string_view from, std::string_view from_user_id
) {
    for (const Value& contact : contacts) {
        if (!from.empty() && str(contact, "wa_id") == from) {
            return &contact;
        }
        if (!from_user_id.empty() && str(contact, "user_id") == from_user_id) {
            return &contact;
        }
    }
    if (from.empty() && from_user_id.empty() && contacts.Size() == 1 && contacts[0].IsObject()) {
        return &contacts[0];
    }
    return nullptr;
}

void read_message(
    const Value& message,
    std::string_view phone_number_id,
    Value::ConstArray contacts,
    WebhookBatch& batch
) {
    InboundMessage out;
    out.id = str(message, "id");
    const std::string_view from = str(message, "from");
    const std::string_view from_user_id = str(message, "from_user_id");
    out.citizen = from;
    out.user_id = from_user_id;
    if (const Value* contact = sender_contact(contacts, from, from_user_id)) {
        if (const Value* profile = object_member(*contact, "profile")) {
            out.profile_name = str(*profile, "name");
        }
        if (out.citizen.empty()) {
            out.citizen = str(*contact, "wa_id");
        }
        if (out.user_id.empty()) {
            out.user_id = str(*contact, "user_id");
        }
    }
    // The phone number is the key whenever Meta shares it; a username-only user has only the
    // business-scoped user id.
    if (out.citizen.empty()) {
        out.citizen = out.user_id;
    }
    if (out.id.empty() || out.citizen.empty() || phone_number_id.empty()) {
        ++batch.skipped;
        return;
    }
    out.phone_number_id = phone_number_id;
    out.timestamp = timestamp_of(message);
    out.raw_type = str(message, "type");
    read_content(message, out);
    batch.messages.push_back(std::move(out));
}

StatusUpdate::Kind status_kind(std::string_view status) {
    if (status == "sent")
        return StatusUpdate::Kind::kSent;
    if (status == "delivered")
        return StatusUpdate::Kind::kDelivered;
    if (status == "read")
        return StatusUpdate::Kind::kRead;
    if (status == "failed")
        return StatusUpdate::Kind::kFailed;
    return StatusUpdate::Kind::kOther;
}

void read_status(const Value& status, std::string_view phone_number_id, WebhookBatch& batch) {
    StatusUpdate out;
    out.id = str(status, "id");
    if (out.id.empty() || phone_number_id.empty()) {
        ++batch.skipped;
        return;
    }
    out.phone_number_id = phone_number_id;
    out.recipient = str(status, "recipient_id");
    if (out.recipient.empty()) {
        out.recipient = str(status, "recipient_user_id");
    }
    out.kind = status_kind(str(status, "status"));
    out.timestamp = timestamp_of(status);
    out.callback_data = str(status, "biz_opaque_callback_data");
    const Value::ConstArray errors = array_member(status, "errors");
    if (!errors.Empty()) {
        const Value* code = member(errors[0], "code");
        if (code != nullptr && code->IsInt()) {
            out.error_code = code->GetInt();
        }
        out.error_title = str(errors[0], "title");
    }
    batch.statuses.push_back(std::move(out));
}

void read_value(const Value& value, WebhookBatch& batch) {
    std::string_view phone_number_id;
    if (const Value* metadata = object_member(value, "metadata")) {
        phone_number_id = str(*metadata, "phone_number_id");
    }
    const Value::ConstArray contacts = array_member(value, "contacts");
    for (const Value& message : array_member(value, "messages")) {
        if (!message.IsObject()) {
            ++batch.skipped;
            continue;
        }
        read_message(message, phone_number_id, contacts, batch);
    }
    for (const Value& status : array_member(value, "statuses")) {
        if (!status.IsObject()) {
            ++batch.skipped;
            continue;
        }
        read_status(status, phone_number_id, batch);
    }
}

}  // namespace

bool InboundMessage::is_input() const {
    return type != Type::kReaction && type != Type::kUnsupported;
}

engine::Input InboundMessage::to_input() const {
    engine::Input input;
    switch (type) {
        case Type::kText:
            input = engine::Input::text_input(text);
            break;
        case Type::kInteractiveButton:
        case Type::kInteractiveList:
            input = engine::Input::choice(reply_id);
            break;
        case Type::kButton:
            // Our templates set each quick-reply payload to the option id; a template built
            // elsewhere may leave it empty, and then the button's words are what the citizen
            // "said".
            input = reply_id.empty() ? engine::Input::text_input(text)
                                     : engine::Input::choice(reply_id);
            break;
        case Type::kImage:
        case Type::kDocument:
        case Type::kAudio:
        case Type::kVideo:
        case Type::kSticker:
            input.kind = engine::Input::Kind::kMedia;
            input.media = media;
            break;
        case Type::kLocation:
            input.kind = engine::Input::Kind::kLocation;
            input.text = text;
            break;
        case Type::kReaction:
        case Type::kUnsupported:
            break;
    }
    input.profile_name = profile_name;
    return input;
}

engine::Result<WebhookBatch> parse_webhook(std::string_view body) {
    rapidjson::Document doc;
    // Validating the encoding rejects invalid UTF-8 and lone surrogate escapes (\ud800), which
    // have no UTF-8 form; trailing garbage after the object is an error too.
    doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(
        body.data(), body.size()
    );
    if (doc.HasParseError()) {
        return engine::Error{
            "invalid_json",
            std::string("the webhook body is not valid JSON: ") +
                rapidjson::GetParseError_En(doc.GetParseError()) + " at offset " +
                std::to_string(doc.GetErrorOffset())};
    }
    if (!doc.IsObject()) {
        return engine::Error{"invalid_json", "the webhook body must be a JSON object"};
    }
    WebhookBatch batch;
    for (const Value& entry : array_member(doc, "entry")) {
        for (const Value& change : array_member(entry, "changes")) {
            if (str(change, "field") != "messages") {
                continue;
            }
            if (const Value* value = object_member(change, "value")) {
                read_value(*value, batch);
            }
        }
    }
    return batch;
}

}  // namespace civicflow::server::whatsapp
