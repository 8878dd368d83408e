/// One turn of the engine: its input and what it produced.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <civicflow/engine/diagnostic.hpp>
#include <civicflow/engine/session.hpp>

namespace civicflow::engine {

/// The result of a backend call, fed back as the next input.
struct CallResult {
    enum class Outcome { kResponse, kTimeout, kError };
    std::string call_id;  // must equal Session::pending_call
    Outcome outcome = Outcome::kResponse;
    int status = 0;    // HTTP status when kResponse
    std::string body;  // JSON body when kResponse
};

/// Media sent by the citizen (e.g. a grievance photo).
struct InboundMedia {
    std::string id;
    std::string mime_type;
    std::string caption;
};

/// What the citizen (or the server, for call results) sent.
struct Input {
    enum class Kind { kText, kChoice, kCallResult, kMedia, kLocation };
    Kind kind = Kind::kText;
    std::string text;       // kText; kLocation: "lat,lon"
    std::string choice_id;  // kChoice: a menu option id (WhatsApp button/list reply)
    CallResult call;        // kCallResult
    InboundMedia media;     // kMedia
    std::string lang;       // optional language hint for a new session ("hi")
    std::string profile_name;
    /// The flow a new (or restarted) conversation starts in, overriding the helpline's `entry`
    /// (one server hosting several helplines, e.g. one WhatsApp number per department); ""
    /// or an unknown flow id: the helpline's entry.
    std::string entry_flow;

    static Input text_input(std::string text);
    static Input choice(std::string id);
    static Input call_result(CallResult result);
};

/// A reply to the citizen, channel-neutral.
struct MenuItem {
    std::string id;
    std::string title;
    bool operator==(const MenuItem&) const = default;
};

struct Reply {
    enum class Kind { kText, kMenu, kMedia };
    Kind kind = Kind::kText;
    std::string text;               // kText, kMenu
    std::vector<MenuItem> options;  // kMenu
    std::string url;                // kMedia
    std::string caption;            // kMedia
    bool operator==(const Reply&) const = default;
};

/// A backend call for the server to perform. The result comes back as Input::call_result().
struct BackendCall {
    std::string id;  // unique within the session (flow/state/sequence)
    std::string backend;
    std::string method;
    std::string path;  // rendered, slot values URL-encoded by the `url` filter
    std::string body;  // rendered JSON object, or "" for none
};

/// Something the server must do besides replying.
struct Effect {
    enum class Kind { kBackendCall, kHandoff, kOptOut, kOptIn, kErase };
    Kind kind = Kind::kBackendCall;
    BackendCall call;    // kBackendCall
    std::string reason;  // kHandoff: flow/state the citizen was in
};

/// A runtime content event (R4xx/R5xx): logged for operators, never shown to citizens.
/// Messages carry no personal data: slot names and state ids only, never values.
struct Event {
    std::string code;
    std::string message;
    SourceLocation location;
};

/// Everything one turn produced.
struct Turn {
    std::vector<Reply> replies;
    Session session;
    std::vector<Effect> effects;
    std::vector<Event> events;
};

}  // namespace civicflow::engine
