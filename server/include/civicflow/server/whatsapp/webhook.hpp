/// Parsing of WhatsApp Cloud API webhook bodies (the `messages` field): inbound messages and
/// delivery statuses, every entry, change, message and status of one POST.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <civicflow/engine/result.hpp>
#include <civicflow/engine/turn.hpp>

namespace civicflow::server::whatsapp {

/// One message a citizen sent, flattened from entry[].changes[].value.messages[].
struct InboundMessage {
    enum class Type {
        kText,               // text.body
        kInteractiveButton,  // interactive.button_reply {id, title}
        kInteractiveList,    // interactive.list_reply {id, title}
        kButton,             // a template quick-reply button: button {payload, text}
        kImage,
        kDocument,
        kAudio,
        kVideo,
        kSticker,
        kLocation,     // location {latitude, longitude}
        kReaction,     // reaction {message_id, emoji}
        kUnsupported,  // "unsupported", and every type the channel does not handle (contacts,
                       // order, system, other interactive replies): see raw_type
    };

    std::string phone_number_id;  // value.metadata.phone_number_id: the helpline number
    /// Who sent it: the phone number (`from`, = contacts[].wa_id) when the webhook has one,
    /// otherwise the business-scoped user id (`from_user_id`, = contacts[].user_id) of a
    /// username-only user. Never empty.
    std::string citizen;
    /// The business-scoped user id ("US.13491208655302741918") when the webhook carries one,
    /// also when `citizen` is a phone number; "" before Meta's BSUID rollout.
    std::string user_id;
    std::string profile_name;    // contacts[] entry of the sender: profile.name, "" if none
    std::string id;              // the wamid; never empty
    std::int64_t timestamp = 0;  // seconds since the epoch (a string in the JSON); 0 if absent
    Type type = Type::kUnsupported;
    std::string raw_type;  // `type` as received ("text", "system", ...)
    /// kText: text.body; kButton: button.text; kLocation: "lat,lon" (shortest round-trip
    /// decimals); kReaction: the emoji ("" when the citizen removed a reaction).
    std::string text;
    /// kInteractiveButton/kInteractiveList: the option id; kButton: button.payload;
    /// kReaction: the wamid of the message reacted to.
    std::string reply_id;
    std::string reply_title;     // kInteractiveButton/kInteractiveList: the title shown
    engine::InboundMedia media;  // kImage/kDocument/kAudio/kVideo/kSticker: id, mime_type,
                                 // caption (image, document and video only)

    /// False for reactions and unsupported types: they are not turns for the engine (the caller
    /// ignores them or answers politely).
    bool is_input() const;

    /// The engine input: kText -> text; interactive replies -> choice(reply_id); kButton ->
    /// choice(payload), or text(button.text) when the payload is empty; media -> kMedia;
    /// kLocation -> kLocation with "lat,lon". profile_name is copied. Precondition: is_input();
    /// otherwise an empty text input.
    engine::Input to_input() const;
};

/// A delivery status of a message we sent: entry[].changes[].value.statuses[].
struct StatusUpdate {
    enum class Kind { kSent, kDelivered, kRead, kFailed, kOther };

    std::string phone_number_id;
    std::string id;  // the wamid we got when sending; never empty
    /// recipient_id (the phone number), or recipient_user_id (BSUID) when there is none.
    std::string recipient;
    Kind kind = Kind::kOther;
    std::int64_t timestamp = 0;
    int error_code = 0;       // kFailed: errors[0].code, 0 if none
    std::string error_title;  // kFailed: errors[0].title (no personal data)
    /// biz_opaque_callback_data as sent with the message, "" if none: lets a status that
    /// arrives before the send's wamid was stored still find its outbox item.
    std::string callback_data;
};

struct WebhookBatch {
    std::vector<InboundMessage> messages;  // in the order of the body
    std::vector<StatusUpdate> statuses;    // in the order of the body
    /// Messages and statuses dropped because they were not JSON objects or lacked an id, the
    /// value's metadata.phone_number_id, or (messages) any sender id.
    std::size_t skipped = 0;
};

/// Parses one webhook POST body (already authenticated by its signature). Every entry, change,
/// message and status is visited; only changes with field "messages" are read, other fields
/// (account updates, template status, ...) and unknown keys are ignored, as are members of the
/// wrong JSON type. Errors: "invalid_json" when the body is not well-formed JSON in valid UTF-8
/// or not an object; the message names the offset only, never the content. Never throws
/// (std::bad_alloc aside); thread-safe.
engine::Result<WebhookBatch> parse_webhook(std::string_view body);

}  // namespace civicflow::server::whatsapp
