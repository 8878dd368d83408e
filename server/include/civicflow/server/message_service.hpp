/// POST /v1/messages end to end: dedupe, per-citizen queue, engine turn, backend calls, store.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include <civicflow/engine/flow.hpp>
#include <civicflow/engine/turn.hpp>
#include <civicflow/server/citizen_queues.hpp>
#include <civicflow/server/store.hpp>

namespace civicflow::server {

struct MessageRequest;

/// Performs one backend call for the service. BackendClient::call in production; tests inject
/// their own. Must never throw and must complete within the backend's timeout.
using CallPerformer =
    std::function<boost::asio::awaitable<engine::CallResult>(engine::BackendCall, std::string)>;

/// An HTTP answer of the API: a status and a JSON body.
struct ApiReply {
    unsigned status = 200;
    std::string body;
    const char* content_type = "application/json";  // "text/plain" for the webhook challenge
    bool erased = false;  // the citizen asked for erasure in this message: nothing is kept
    /// The replies in `body`, as values, when a turn ran for this request (not for a repeated
    /// message id, answered from the stored body, nor for errors): a channel delivers them
    /// without parsing the body back.
    std::optional<std::vector<engine::Reply>> replies = std::nullopt;
};

/// A message that reached the server through a channel other than the JSON body of
/// POST /v1/messages (the WhatsApp webhook), already validated.
struct ChannelMessage {
    std::string user;        // the session key ("wa:<phone number id>:<citizen>")
    engine::Input input;     // text, choice, media or location, with profile name and entry flow
    std::string message_id;  // the channel's message id: a repeat changes nothing
    std::string channel;     // recorded with consent changes ("whatsapp")
    // What the message said, hashed (message_fingerprint()); with a message_id, a repeat of the
    // id whose fingerprint differs is refused (409) instead of answered as a retry. Empty: not
    // checked (the WhatsApp channel's ids are Meta's, never reused).
    std::string fingerprint;
};

/// Removes what another part of the server keeps about a citizen (the WhatsApp inbox and
/// outbox), run with the store's erasure.
using CitizenEraser =
    std::function<boost::asio::awaitable<engine::Result<engine::Ok>>(const std::string& user)>;

/// How long sessions are kept. A session waiting for the citizen is kept for its flow's
/// `idle_timeout` (after which the engine offers to resume) plus `idle_grace`; a session with
/// nothing pending (the conversation ended) for `ended` after its last message.
struct SessionRetention {
    std::int64_t idle_grace_ms = 7LL * 24 * 3600 * 1000;
    std::int64_t ended_ms = 24LL * 3600 * 1000;
};

/// Handles message bodies. Thread-safe; one instance serves every connection.
///
/// For each valid message: waits for the citizen's turn (messages of one citizen run one at a
/// time, in arrival order), answers a repeated `message_id` from the store without running
/// anything, else loads the session, runs the engine turn, performs its backend calls (holding
/// only that citizen's queue) and resumes the turn with each result, saves the session,
/// remembers the response under the message id, and returns the replies of all the turns.
/// A request rejected with 4xx changes nothing. Store failures are 503 and change nothing.
///
/// Durability: the session, the response under the message id and any consent change are
/// written in one store write, and the reply is returned only once that write is durable.
/// Before a backend call the waiting session and the call are stored; a call found pending
/// when a citizen's next message arrives (the process died, or another instance did) is
/// resumed when it is a GET and failed (the flow's error branch) otherwise, and its replies
/// come first. Opt-out and opt-in are recorded as the citizen's consent (channel "api").
/// An erase effect erases everything stored about the citizen.
class MessageService {
public:
    /// Milliseconds since the epoch for the engine (sessions' timestamps, idle expiry).
    using Clock = std::function<std::int64_t()>;

    MessageService(
        std::shared_ptr<const engine::FlowSet> flows,
        Store& store,
        CallPerformer perform_call,
        Clock clock = {},
        SessionRetention retention = {}
    );

    /// Handles one request body; `request_id` tags logs and error bodies. Never throws for
    /// expected conditions (errors are replies); unexpected exceptions propagate to the caller,
    /// which turns them into a 500.
    boost::asio::awaitable<ApiReply> handle(std::string body, std::string request_id);

    /// Handles a message from another channel exactly as handle() handles a body: same queue,
    /// idempotency, durability and response JSON (whose replies the channel then delivers).
    boost::asio::awaitable<ApiReply> handle_message(ChannelMessage message, std::string request_id);

    /// Adds an eraser run whenever a citizen is erased (admin or chat). Call before serving.
    void add_eraser(CitizenEraser eraser) { erasers_.push_back(std::move(eraser)); }

    /// Erases everything stored about `user` (DELETE /v1/citizens/{id}), waiting for any
    /// message of that citizen in progress. 200 {"status":"erased"}, or 503 on a store failure.
    boost::asio::awaitable<ApiReply> erase_citizen(std::string user, std::string request_id);

    /// Messages accepted and not yet answered (for graceful shutdown).
    std::size_t in_flight() const { return in_flight_.load(); }

    const CitizenQueues& queues() const { return queues_; }

    /// At most this many backend calls are chained within one message; a flow that keeps
    /// calling past it gets an error result for each further call (its error branch, which
    /// may call again: failed the same way, up to kMaxFailedCalls more).
    static constexpr int kMaxCallsPerMessage = 4;
    static constexpr int kMaxFailedCalls = 16;

private:
    struct Outcome;
    std::int64_t now() const;
    std::int64_t session_ttl(const engine::Session& session) const;
    boost::asio::awaitable<ApiReply> run_locked(const ChannelMessage& msg, const std::string& rid);
    boost::asio::awaitable<ApiReply> run_message(
        const ChannelMessage& msg, const std::string& rid, CitizenState stored, Lease& lease
    );
    boost::asio::awaitable<engine::Result<engine::Ok>> erase_everything(const std::string& user);
    // Performs the backend calls of `turn` (storing each as pending first, with the id and
    // fingerprint of the message whose turn it is) and resumes the turn with their results;
    // collects replies and effects into `out`.
    boost::asio::awaitable<engine::Result<engine::Ok>> drive(
        engine::Turn& turn,
        const ChannelMessage& msg,
        const std::string& message_id,
        const std::string& fingerprint,
        const std::string& rid,
        Outcome& out
    );
    // Moves a turn's replies into `out`, logging its events.
    void take_replies(engine::Turn& turn, const std::string& rid, Outcome& out) const;
    // The turn that resumes `waiting` with the result of its call `call_id`.
    engine::Turn resume_turn(
        const engine::Session& waiting,
        const std::string& call_id,
        engine::CallResult result,
        const ChannelMessage& msg
    ) const;
    // Collects a turn's replies and effects into `out`; the backend call it asks for, if any.
    const engine::Effect* collect(
        engine::Turn& turn, const ChannelMessage& msg, const std::string& rid, Outcome& out
    ) const;
    // Stores the waiting session and the call as pending, performs the call (or fails it past
    // kMaxCallsPerMessage) and resumes `turn` with its result.
    boost::asio::awaitable<engine::Result<engine::Ok>> call_and_resume(
        engine::Turn& turn,
        const engine::Effect& call_effect,
        const ChannelMessage& msg,
        const std::string& message_id,
        const std::string& fingerprint,
        const std::string& rid,
        Outcome& out,
        int calls
    );
    // The stored session, or a fresh one when there is none or it cannot be decoded.
    engine::Session restore_session(
        const CitizenState& stored, const ChannelMessage& req, const std::string& rid
    ) const;
    // What resume_pending() found `req` to be.
    enum class Recovery {
        kOther,        // another message than the interrupted one: run it
        kThisMessage,  // the interrupted message itself: answered by the turn it started
        kIdReused,     // another message with the interrupted one's id: refused (409)
    };
    // Resumes or fails a call left pending by a crash.
    boost::asio::awaitable<engine::Result<Recovery>> resume_pending(
        const ChannelMessage& req,
        const std::string& rid,
        const PendingCall& pending,
        engine::Session& session,
        Outcome& out
    );
    // Erases everything about the citizen who asked in chat, then answers with `response`.
    boost::asio::awaitable<ApiReply> erase_in_chat(
        const ChannelMessage& req,
        const std::string& rid,
        std::string response,
        std::vector<engine::Reply> replies
    );
    // What every store write of a turn carries: the citizen, the session with its time to
    // live, and the consent the turn recorded; the caller adds the rest.
    TurnWrite session_write(
        const std::string& user, const engine::Session& session, const Outcome& out
    ) const;
    // The store write of a finished message: session, response, consent, lease release.
    TurnWrite turn_write(
        const ChannelMessage& req,
        const engine::Session& session,
        const std::string& response,
        const Outcome& out,
        const Lease& lease
    ) const;

    std::shared_ptr<const engine::FlowSet> flows_;
    Store& store_;
    CallPerformer perform_call_;
    Clock clock_;
    SessionRetention retention_;
    CitizenQueues queues_;
    std::vector<CitizenEraser> erasers_;
    std::atomic<std::size_t> in_flight_{0};
};

}  // namespace civicflow::server
