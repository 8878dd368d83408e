#include <chrono>
#include <utility>

#include <civicflow/engine/engine.hpp>
#include <civicflow/engine/session.hpp>
#include <civicflow/server/logger.hpp>
#include <civicflow/server/message_api.hpp>
#include <civicflow/server/message_service.hpp>
#include <civicflow/server/store.hpp>

namespace civicflow::server {
namespace {

// Keeps the in-flight count right on every exit path of a coroutine.
class InFlight {
public:
    explicit InFlight(std::atomic<std::size_t>& count)
        : count_(count) {
        ++count_;
    }

    ~InFlight() { --count_; }

    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;

private:
    std::atomic<std::size_t>& count_;
};

ApiReply error_reply(unsigned status, const engine::Error& error, std::string_view rid) {
    return ApiReply{status, encode_error(error.code, error.message, rid)};
}

// A response stored under a message id carries the fingerprint of the message it answers as
// one more member at its end: {...,"message_fingerprint":"<16 hex digits>"}. A build from before
// fingerprints, sharing the store or rolled back to, returns it as it is: a valid response with
// one member more. A response itself ends with its session object ("}}"), never with '"}', so
// the member is told apart from a response without one (stored by such a build).
constexpr std::string_view kFingerprintKey = R"(,"message_fingerprint":")";
constexpr std::size_t kFingerprintDigits = 16;
constexpr std::size_t kFingerprintMember = kFingerprintKey.size() + kFingerprintDigits + 1;

std::string with_fingerprint(const std::string& fingerprint, const std::string& response) {
    if (fingerprint.size() != kFingerprintDigits || response.empty() || response.back() != '}')
        return response;
    std::string out;
    out.reserve(response.size() + kFingerprintMember);
    out.append(response, 0, response.size() - 1);
    out += kFingerprintKey;
    out += fingerprint;
    out += "\"}";
    return out;
}

struct StoredResponse {
    std::string fingerprint;  // empty: stored without one
    std::string json;         // the response as it was sent
};

StoredResponse split_stored(std::string stored) {
    const std::size_t n = stored.size();
    if (n > kFingerprintMember + 1 && stored.compare(n - 2, 2, "\"}") == 0 &&
        std::string_view(stored).substr(n - kFingerprintMember - 1, kFingerprintKey.size()) ==
            kFingerprintKey) {
        StoredResponse out;
        out.fingerprint = stored.substr(n - kFingerprintDigits - 2, kFingerprintDigits);
        stored.resize(n - kFingerprintMember - 1);
        stored += '}';
        out.json = std::move(stored);
        return out;
    }
    return {{}, std::move(stored)};
}

ApiReply message_id_reused(const std::string& user, std::string_view rid) {
    // The id of an earlier message with another text: a client defect that would otherwise
    // lose this message without a word (answered as a retry, never run).
    Logger::log(LogLevel::kWarn, rid, "message_id_reused", "citizen=" + citizen_tag(user));
    return ApiReply{
        409,
        encode_error(
            "message_id_reused",
            "this message_id was already used for a different message of this user; nothing was "
            "run: send each message with an id of its own",
            rid
        )};
}

// Whether two fingerprints tell two different messages apart (one missing: cannot tell).
bool differ(std::string_view a, std::string_view b) {
    return !a.empty() && !b.empty() && a != b;
}

ApiReply store_failure(const engine::Error& error, std::string_view rid) {
    Logger::log(LogLevel::kError, rid, "store_failed", "code=" + error.code);
    if (error.code == "citizen_busy") {
        return ApiReply{
            503,
            encode_error(
                "citizen_busy",
                "another instance is still handling this citizen's previous message; the turn "
                "did not run, retry later",
                rid
            )};
    }
    return ApiReply{
        503,
        encode_error(
            "store_unavailable",
            "the session store is unavailable; "
            "the turn was not stored, retry later",
            rid
        )};
}

void log_events(const engine::Turn& turn, std::string_view rid) {
    // Events carry codes, state ids and slot names only (engine contract), never values.
    for (const engine::Event& e : turn.events) {
        Logger::log(
            LogLevel::kWarn,
            rid,
            "flow_event",
            "code=" + e.code + " at=" + e.location.file + ":" + std::to_string(e.location.line) +
                ":" + std::to_string(e.location.column) + " message=\"" + e.message + "\""
        );
    }
}

}  // namespace

// What the turns of one message add up to.
struct MessageService::Outcome {
    std::vector<engine::Reply> replies;
    std::optional<Consent> consent;
    bool erase = false;
    bool pending_written = false;
    std::string lease;  // the token of the citizen's lease, which writes within the turn hold
};

MessageService::MessageService(
    std::shared_ptr<const engine::FlowSet> flows,
    Store& store,
    CallPerformer perform_call,
    Clock clock,
    SessionRetention retention
)
    : flows_(std::move(flows))
    , store_(store)
    , perform_call_(std::move(perform_call))
    , clock_(std::move(clock))
    , retention_(retention) {}

std::int64_t MessageService::now() const {
    if (clock_)
        return clock_();
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch()
    )
        .count();
}

std::int64_t MessageService::session_ttl(const engine::Session& session) const {
    if (session.waiting == engine::Waiting::kNothing)
        return retention_.ended_ms;
    std::int64_t idle = 30LL * 60 * 1000;
    if (const engine::Flow* flow = flows_->find_flow(session.flow))
        idle = flow->idle_timeout_ms;
    return idle + retention_.idle_grace_ms;
}

boost::asio::awaitable<ApiReply> MessageService::handle(std::string body, std::string rid) {
    auto parsed = parse_message_request(body);
    if (!parsed)
        co_return error_reply(400, parsed.error(), rid);
    ChannelMessage msg;
    if (!parsed->message_id.empty())  // before the text moves into the input
        msg.fingerprint = message_fingerprint(*parsed);
    msg.input = parsed->is_choice ? engine::Input::choice(std::move(parsed->reply_id))
                                  : engine::Input::text_input(std::move(parsed->text));
    msg.input.lang = std::move(parsed->lang);
    msg.user = std::move(parsed->user);
    msg.message_id = std::move(parsed->message_id);
    msg.channel = "api";
    co_return co_await run_locked(msg, rid);
}

boost::asio::awaitable<ApiReply> MessageService::handle_message(
    ChannelMessage message, std::string rid
) {
    co_return co_await run_locked(message, rid);
}

boost::asio::awaitable<ApiReply> MessageService::run_locked(
    const ChannelMessage& msg, const std::string& rid
) {
    InFlight in_flight(in_flight_);
    // Everything below runs while holding the citizen's place: a second message of the same
    // citizen (on any connection) waits here until this one has stored its effects. Across
    // instances sharing a store, the store's lease does the same.
    CitizenQueues::Lock lock = co_await queues_.acquire(msg.user);
    auto leased = co_await store_.acquire_and_load(msg.user, msg.message_id);
    if (!leased)
        co_return store_failure(leased.error(), rid);
    // An exception below skips the release; the lease then expires by itself.
    ApiReply reply = co_await run_message(msg, rid, std::move(leased->state), leased->lease);
    if (!leased->lease.token.empty())  // else released with the turn's write, or none needed
        co_await store_.release_lease(std::move(leased->lease));
    co_return reply;
}

boost::asio::awaitable<engine::Result<engine::Ok>> MessageService::erase_everything(
    const std::string& user
) {
    auto erased = co_await store_.erase_citizen(user);
    if (!erased)
        co_return erased.error();
    for (const CitizenEraser& eraser : erasers_) {
        auto done = co_await eraser(user);
        if (!done)
            co_return done.error();
    }
    co_return engine::Ok{};
}

boost::asio::awaitable<ApiReply> MessageService::erase_citizen(std::string user, std::string rid) {
    InFlight in_flight(in_flight_);
    CitizenQueues::Lock lock = co_await queues_.acquire(user);
    auto lease = co_await store_.acquire_lease(user);
    if (!lease)
        co_return store_failure(lease.error(), rid);
    auto erased = co_await erase_everything(user);
    co_await store_.release_lease(std::move(*lease));
    if (!erased)
        co_return store_failure(erased.error(), rid);
    Logger::log(
        LogLevel::kInfo, rid, "citizen_erased", "citizen=" + citizen_tag(user) + " via=admin"
    );
    co_return ApiReply{200, R"({"status":"erased"})"};
}

// Asio reuses coroutine frames of up to 1,020 bytes from a per-thread cache; a larger frame
// is allocated each time and also evicts a cached one. So the rare branches (backend calls,
// recovery, erasure) are coroutines of their own and the synchronous steps plain functions,
// which keeps drive() and the store calls within the cache. With g++ 12 -O3, run_message
// (about 2 KB) and run_locked (about 1.1 KB) are still above it: 8 frame allocations per
// message instead of 10.

const engine::Effect* MessageService::collect(
    engine::Turn& turn, const ChannelMessage& msg, const std::string& rid, Outcome& out
) const {
    take_replies(turn, rid, out);
    const engine::Effect* call_effect = nullptr;
    for (const engine::Effect& effect : turn.effects) {
        switch (effect.kind) {
            case engine::Effect::Kind::kBackendCall:
                call_effect = &effect;
                break;
            case engine::Effect::Kind::kErase:
                out.erase = true;
                break;
            case engine::Effect::Kind::kHandoff:
                Logger::log(
                    LogLevel::kInfo,
                    rid,
                    "handoff",
                    "citizen=" + citizen_tag(msg.user) + " from=" + effect.reason
                );
                break;
            case engine::Effect::Kind::kOptOut:
                out.consent = Consent{false, now(), msg.channel};
                Logger::log(LogLevel::kInfo, rid, "opt_out", "citizen=" + citizen_tag(msg.user));
                break;
            case engine::Effect::Kind::kOptIn:
                out.consent = Consent{true, now(), msg.channel};
                Logger::log(LogLevel::kInfo, rid, "opt_in", "citizen=" + citizen_tag(msg.user));
                break;
        }
    }
    return call_effect;
}

boost::asio::awaitable<engine::Result<engine::Ok>> MessageService::drive(
    engine::Turn& turn,
    const ChannelMessage& msg,
    const std::string& message_id,
    const std::string& fingerprint,
    const std::string& rid,
    Outcome& out
) {
    for (int calls = 0;; ++calls) {
        const engine::Effect* call_effect = collect(turn, msg, rid, out);
        if (call_effect == nullptr)
            co_return engine::Ok{};
        if (calls >= kMaxCallsPerMessage + kMaxFailedCalls) {
            // Past the limit every call is failed without being sent, and error branches run
            // until the flow stops calling: the checker refuses call cycles, so only a very
            // long chain of error branches gets here. The session then waits for a result
            // that will not come (the engine tells the citizen, and its idle timeout ends it).
            Logger::log(
                LogLevel::kError,
                rid,
                "call_chain_abandoned",
                "limit=" + std::to_string(kMaxCallsPerMessage + kMaxFailedCalls)
            );
            co_return engine::Ok{};
        }
        auto resumed = co_await call_and_resume(
            turn, *call_effect, msg, message_id, fingerprint, rid, out, calls
        );
        if (!resumed)
            co_return resumed.error();
    }
}

boost::asio::awaitable<engine::Result<engine::Ok>> MessageService::call_and_resume(
    engine::Turn& turn,
    const engine::Effect& call_effect,
    const ChannelMessage& msg,
    const std::string& message_id,
    const std::string& fingerprint,
    const std::string& rid,
    Outcome& out,
    int calls
) {
    engine::CallResult result;
    if (calls < kMaxCallsPerMessage) {
        // The waiting session and the call are stored before the call goes out, so that a
        // crash between here and the result leaves a record to resume or fail, never a
        // citizen silently stuck or a POST sent twice.
        TurnWrite pending = session_write(msg.user, turn.session, out);
        pending.pending = PendingCall{message_id, call_effect.call, now(), fingerprint};
        pending.hold_lease = out.lease;
        auto stored = co_await store_.write(std::move(pending));
        if (!stored)
            co_return stored.error();
        out.pending_written = true;
        // Holds this citizen's queue (not a thread) until the backend answers or times out.
        result = co_await perform_call_(call_effect.call, rid);
    } else {
        Logger::log(
            LogLevel::kWarn,
            rid,
            "call_chain_too_long",
            "limit=" + std::to_string(kMaxCallsPerMessage)
        );
        result.outcome = engine::CallResult::Outcome::kError;
    }
    const engine::Session waiting = std::move(turn.session);
    turn = resume_turn(waiting, call_effect.call.id, std::move(result), msg);
    co_return engine::Ok{};
}

void MessageService::take_replies(engine::Turn& turn, const std::string& rid, Outcome& out) const {
    log_events(turn, rid);
    for (auto& r : turn.replies)
        out.replies.push_back(std::move(r));
    turn.replies.clear();
}

engine::Turn MessageService::resume_turn(
    const engine::Session& waiting,
    const std::string& call_id,
    engine::CallResult result,
    const ChannelMessage& msg
) const {
    result.call_id = call_id;
    engine::Input input = engine::Input::call_result(std::move(result));
    input.entry_flow = msg.input.entry_flow;
    return engine::turn(*flows_, waiting, input, now());
}

engine::Session MessageService::restore_session(
    const CitizenState& stored, const ChannelMessage& req, const std::string& rid
) const {
    if (!stored.session)
        return {};
    auto decoded = engine::decode_session(*stored.session);
    if (decoded)
        return std::move(*decoded);
    // An undecodable session (older build, corruption) must not lock the citizen out: start
    // afresh and say so once in the log.
    Logger::log(
        LogLevel::kWarn,
        rid,
        "session_reset",
        "citizen=" + citizen_tag(req.user) + " code=" + decoded.error().code
    );
    return {};
}

boost::asio::awaitable<engine::Result<MessageService::Recovery>> MessageService::resume_pending(
    const ChannelMessage& req,
    const std::string& rid,
    const PendingCall& p,
    engine::Session& session,
    Outcome& out
) {
    // A call stored as pending whose turn never finished: the process died mid-call (this
    // citizen's queue and lease are ours, so nothing else is running it). Resume a GET; fail
    // anything else, which may have reached the backend and must not be sent twice.
    if (session.waiting != engine::Waiting::kCallResult || session.pending_call != p.call.id)
        co_return Recovery::kOther;
    engine::CallResult result;
    if (p.call.method == "GET") {
        result = co_await perform_call_(p.call, rid);
    } else {
        result.outcome = engine::CallResult::Outcome::kError;
    }
    Logger::log(
        LogLevel::kWarn,
        rid,
        "pending_call_recovered",
        "citizen=" + citizen_tag(req.user) + " backend=" + p.call.backend +
            (p.call.method == "GET" ? " action=resumed" : " action=failed")
    );
    engine::Turn resumed = resume_turn(session, p.call.id, std::move(result), req);
    auto driven = co_await drive(resumed, req, p.message_id, p.fingerprint, rid, out);
    if (!driven)
        co_return driven.error();
    session = std::move(resumed.session);
    // A retry of the very message whose call was interrupted is answered by the turn it
    // started, not run a second time.
    const bool same_id = !p.message_id.empty() && p.message_id == req.message_id;
    if (same_id && !differ(p.fingerprint, req.fingerprint))
        co_return Recovery::kThisMessage;
    if (!p.message_id.empty() && !out.erase) {
        // Another message finished the interrupted one's turn: that turn is stored as the
        // interrupted message's answer before this one runs, so a late retry of it is
        // answered from the store instead of running its input a second time. (This
        // message's answer carries the same replies too: its client may never retry.)
        TurnWrite recovered = session_write(req.user, session, out);
        recovered.message_id = p.message_id;
        recovered.response = with_fingerprint(
            p.fingerprint, encode_message_response(req.user, out.replies, session)
        );
        recovered.clear_pending = true;
        recovered.hold_lease = out.lease;
        auto stored = co_await store_.write(std::move(recovered));
        if (!stored)
            co_return stored.error();
    }
    // The interrupted message's id reused for another message: the turn is stored above as the
    // interrupted message's answer, and this one is refused. (Should the recovered turn have
    // asked for erasure, the erasure goes first, and this message is answered by it.)
    co_return same_id && !out.erase ? Recovery::kIdReused : Recovery::kOther;
}

boost::asio::awaitable<ApiReply> MessageService::erase_in_chat(
    const ChannelMessage& req,
    const std::string& rid,
    std::string response,
    std::vector<engine::Reply> replies
) {
    // Erasure drops everything, including this response: a repeat of this message id is then
    // treated as new, which is the price of holding nothing about the citizen.
    auto erased = co_await erase_everything(req.user);
    if (!erased)
        co_return store_failure(erased.error(), rid);
    Logger::log(
        LogLevel::kInfo, rid, "citizen_erased", "citizen=" + citizen_tag(req.user) + " via=chat"
    );
    ApiReply reply{200, std::move(response)};
    reply.erased = true;
    reply.replies = std::move(replies);
    co_return reply;
}

boost::asio::awaitable<ApiReply> MessageService::run_message(
    const ChannelMessage& req, const std::string& rid, CitizenState stored, Lease& lease
) {
    if (stored.response) {
        StoredResponse repeat = split_stored(std::move(*stored.response));
        if (differ(repeat.fingerprint, req.fingerprint))
            co_return message_id_reused(req.user, rid);
        Logger::log(LogLevel::kDebug, rid, "message_repeat", "citizen=" + citizen_tag(req.user));
        co_return ApiReply{200, std::move(repeat.json)};
    }
    Outcome out;
    out.lease = lease.token;
    engine::Turn turn;
    turn.session = restore_session(stored, req, rid);
    bool recovered_this_message = false;
    if (stored.pending) {
        out.pending_written = true;
        auto resumed = co_await resume_pending(req, rid, *stored.pending, turn.session, out);
        if (!resumed)
            co_return store_failure(resumed.error(), rid);
        if (*resumed == Recovery::kIdReused)
            co_return message_id_reused(req.user, rid);
        recovered_this_message = *resumed == Recovery::kThisMessage;
    }
    // When this message is the one whose call was interrupted, turn.session is already the
    // one its turn ended with.
    if (!recovered_this_message && out.erase) {
        turn.session = engine::Session{};  // erased by the recovered turn: nothing is kept
    } else if (!recovered_this_message) {
        turn = engine::turn(*flows_, turn.session, req.input, now());
        auto driven = co_await drive(turn, req, req.message_id, req.fingerprint, rid, out);
        if (!driven)
            co_return store_failure(driven.error(), rid);
    }

    std::string response = encode_message_response(req.user, out.replies, turn.session);
    if (out.erase)
        co_return co_await erase_in_chat(req, rid, std::move(response), std::move(out.replies));
    auto saved = co_await store_.write(turn_write(req, turn.session, response, out, lease));
    if (!saved)
        co_return store_failure(saved.error(), rid);
    lease.token.clear();  // released by the write
    ApiReply reply{200, std::move(response)};
    reply.replies = std::move(out.replies);
    co_return reply;
}

TurnWrite MessageService::session_write(
    const std::string& user, const engine::Session& session, const Outcome& out
) const {
    TurnWrite write;
    write.user = user;
    write.session = engine::encode_session(session);
    write.session_ttl_ms = session_ttl(session);
    write.consent = out.consent;
    return write;
}

TurnWrite MessageService::turn_write(
    const ChannelMessage& req,
    const engine::Session& session,
    const std::string& response,
    const Outcome& out,
    const Lease& lease
) const {
    TurnWrite write = session_write(req.user, session, out);
    write.message_id = req.message_id;
    if (!req.message_id.empty())
        write.response = with_fingerprint(req.fingerprint, response);
    write.clear_pending = out.pending_written;
    write.release_lease = lease.token;
    return write;
}

}  // namespace civicflow::server
