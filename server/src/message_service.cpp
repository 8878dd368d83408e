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

ApiReply store_failure(const engine::Error& error, std::string_view rid) {
    Logger::log(LogLevel::kError, rid, "store_failed", "code=" + error.code);
    return ApiReply{
        503,
        encode_error(
            "store_unavailable",
            "the session store is unavailable; "
            "nothing was changed, retry later",
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

MessageService::MessageService(
    std::shared_ptr<const engine::FlowSet> flows,
    Store& store,
    CallPerformer perform_call,
    Clock clock
)
    : flows_(std::move(flows))
    , store_(store)
    , perform_call_(std::move(perform_call))
    , clock_(std::move(clock)) {}

std::int64_t MessageService::now() const {
    if (clock_)
        return clock_();
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch()
    )
        .count();
}

boost::asio::awaitable<ApiReply> MessageService::handle(std::string body, std::string rid) {
    auto parsed = parse_message_request(body);
    if (!parsed)
        co_return error_reply(400, parsed.error(), rid);
    MessageRequest& req = *parsed;
    InFlight in_flight(in_flight_);

    // Everything below runs while holding the citizen's place: a second message of the same
    // citizen (on any connection) waits here until this one has saved its session.
    CitizenQueues::Lock lock = co_await queues_.acquire(req.user);

    if (!req.message_id.empty()) {
        auto seen = co_await store_.find_response(req.user, req.message_id);
        if (!seen)
            co_return store_failure(seen.error(), rid);
        if (seen->has_value()) {
            Logger::log(
                LogLevel::kDebug, rid, "message_repeat", "citizen=" + citizen_tag(req.user)
            );
            co_return ApiReply{200, std::move(**seen)};
        }
    }

    auto stored = co_await store_.load_session(req.user);
    if (!stored)
        co_return store_failure(stored.error(), rid);
    engine::Session session;
    if (stored->has_value()) {
        auto decoded = engine::decode_session(**stored);
        if (decoded) {
            session = std::move(*decoded);
        } else {
            // An undecodable session (older build, corruption) must not lock the citizen out:
            // start afresh and say so once in the log.
            Logger::log(
                LogLevel::kWarn,
                rid,
                "session_reset",
                "citizen=" + citizen_tag(req.user) + " code=" + decoded.error().code
            );
        }
    }

    engine::Input input =
        req.is_choice ? engine::Input::choice(req.reply_id) : engine::Input::text_input(req.text);
    input.lang = req.lang;
    engine::Turn turn = engine::turn(*flows_, session, input, now());
    log_events(turn, rid);
    std::vector<engine::Reply> replies = std::move(turn.replies);

    bool erase = false;
    for (int calls = 0;; ++calls) {
        const engine::Effect* call_effect = nullptr;
        for (const engine::Effect& effect : turn.effects) {
            switch (effect.kind) {
                case engine::Effect::Kind::kBackendCall:
                    call_effect = &effect;
                    break;
                case engine::Effect::Kind::kErase:
                    erase = true;
                    break;
                case engine::Effect::Kind::kHandoff:
                    Logger::log(
                        LogLevel::kInfo,
                        rid,
                        "handoff",
                        "citizen=" + citizen_tag(req.user) + " from=" + effect.reason
                    );
                    break;
                case engine::Effect::Kind::kOptOut:
                    Logger::log(
                        LogLevel::kInfo, rid, "opt_out", "citizen=" + citizen_tag(req.user)
                    );
                    break;
                case engine::Effect::Kind::kOptIn:
                    Logger::log(LogLevel::kInfo, rid, "opt_in", "citizen=" + citizen_tag(req.user));
                    break;
            }
        }
        if (call_effect == nullptr)
            break;
        engine::CallResult result;
        if (calls < kMaxCallsPerMessage) {
            // Holds this citizen's queue (not a thread) until the backend answers or times out.
            result = co_await perform_call_(call_effect->call, rid);
        } else {
            Logger::log(
                LogLevel::kWarn,
                rid,
                "call_chain_too_long",
                "limit=" + std::to_string(kMaxCallsPerMessage)
            );
            result.outcome = engine::CallResult::Outcome::kError;
        }
        result.call_id = call_effect->call.id;
        engine::Session waiting = std::move(turn.session);
        turn = engine::turn(*flows_, waiting, engine::Input::call_result(std::move(result)), now());
        log_events(turn, rid);
        for (auto& r : turn.replies)
            replies.push_back(std::move(r));
        if (calls >= kMaxCallsPerMessage)
            break;
    }

    std::string response = encode_message_response(req.user, replies, turn.session);
    if (erase) {
        // Erasure drops everything, including this response: a repeat of this message id is then
        // treated as new, which is the price of holding nothing about the citizen.
        auto erased = co_await store_.erase_citizen(req.user);
        if (!erased)
            co_return store_failure(erased.error(), rid);
        Logger::log(LogLevel::kInfo, rid, "citizen_erased", "citizen=" + citizen_tag(req.user));
        co_return ApiReply{200, std::move(response)};
    }
    auto saved = co_await store_.save_session(req.user, engine::encode_session(turn.session));
    if (!saved)
        co_return store_failure(saved.error(), rid);
    if (!req.message_id.empty()) {
        auto remembered = co_await store_.remember_response(req.user, req.message_id, response);
        if (!remembered)
            co_return store_failure(remembered.error(), rid);
    }
    co_return ApiReply{200, std::move(response)};
}

}  // namespace civicflow::server
