/// The JSON of the HTTP API: /v1/messages requests and responses, and the one error shape.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <civicflow/engine/result.hpp>
#include <civicflow/engine/session.hpp>
#include <civicflow/engine/turn.hpp>

namespace civicflow::server {

/// Longest accepted message text, in Unicode code points.
inline constexpr std::size_t kMaxTextChars = 4096;
/// Longest accepted user, message_id and reply_id, in bytes.
inline constexpr std::size_t kMaxIdBytes = 256;

/// A validated POST /v1/messages body.
///   {"user": "919812345678", "text": "status", "message_id": "m-1", "lang": "hi"}
///   {"user": "919812345678", "reply_id": "fees"}
struct MessageRequest {
    std::string user;
    bool is_choice = false;  // reply_id given instead of text
    std::string text;        // when !is_choice
    std::string reply_id;    // when is_choice
    std::string message_id;  // optional; "" when absent
    std::string lang;        // optional; "" when absent
};

/// What a message says, hashed (the first 8 bytes of a SHA-256 of its text or reply id and its
/// lang, as 16 hex digits): stored with the response under its message_id, so that the id
/// reused for a different message is told apart from a retry.
std::string message_fingerprint(const MessageRequest& request);

/// Parses and validates a request body. Errors carry the API error code: "invalid_json" (not
/// JSON, or not an object), "invalid_utf8", "invalid_field" (a field of the wrong type, an empty
/// or over-long id, both or neither of text and reply_id), "missing_user", "text_too_long".
/// Messages name the field, never echo its value.
engine::Result<MessageRequest> parse_message_request(std::string_view body);

/// The 200 response: {"user", "replies": [...], "session": {flow, state, lang, waiting_for}}.
std::string encode_message_response(
    const std::string& user,
    const std::vector<engine::Reply>& replies,
    const engine::Session& session
);

/// The replies of a response made by encode_message_response() (a channel delivers them).
/// Error "invalid_json" when `json` is not such a response.
engine::Result<std::vector<engine::Reply>> decode_message_replies(std::string_view json);

/// The one error shape of the API:
///   {"error": {"code": "...", "message": "..."}, "request_id": "..."}
std::string encode_error(
    std::string_view code, std::string_view message, std::string_view request_id
);

/// Counts code points of valid UTF-8 (the text limit is in characters, not bytes).
std::size_t utf8_length(std::string_view text);

}  // namespace civicflow::server
