/// A citizen's conversation state: a small value with a versioned JSON encoding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <civicflow/engine/result.hpp>
#include <civicflow/engine/template.hpp>
#include <civicflow/engine/validator.hpp>

namespace civicflow::engine {

/// What the session waits for.
enum class Waiting {
    kNothing,      // new or ended conversation: the next message starts the entry flow
    kMenu,         // a menu choice (number, id, title words) in `state`
    kAnswer,       // an `ask` answer for `state`
    kText,         // free text in a kFreeText state
    kCallResult,   // the result of backend call `pending_call`
    kResume,       // after idle expiry: resume or start over
    kLanguage,     // the language menu of the `language` command
    kEraseConfirm  // confirmation of the erase command
};

/// A return point of a sub-flow: where to go when the sub-flow ends.
struct Frame {
    std::string flow;
    std::string state;
    bool operator==(const Frame&) const = default;
};

/// Everything the engine needs to continue a citizen's conversation. Plain value; copyable.
struct Session {
    std::string flow;   // current flow name (empty: none yet)
    std::string state;  // current state id
    std::string lang;   // the citizen's language
    Waiting waiting = Waiting::kNothing;
    int attempts = 0;  // wrong answers so far in the current ask/menu
    int faq_returns = 0;
    Slots slots;
    std::vector<Frame> stack;    // sub-flow return points, innermost last
    std::vector<Frame> history;  // recent waiting states for `back`, most recent last (<= 8)
    std::string pending_call;    // id of the backend call awaited
    std::uint64_t call_seq = 0;  // for deterministic call ids
    bool opted_out = false;
    Timestamp created_at = 0;
    Timestamp last_active = 0;
    std::string flowset_version;

    bool operator==(const Session&) const = default;
};

/// The encoding version written by encode_session().
inline constexpr int kSessionEncodingVersion = 1;

/// Compact JSON: {"v":1,"flow":..,"state":..,...}. Readers accept every version they know.
std::string encode_session(const Session& session);
/// Decodes; an unknown version or malformed input is an Error (code "session_decode").
Result<Session> decode_session(std::string_view json);

std::string_view to_string(Waiting waiting);

}  // namespace civicflow::engine
