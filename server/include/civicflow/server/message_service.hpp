/// POST /v1/messages end to end: dedupe, per-citizen queue, engine turn, backend calls, store.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include <civicflow/engine/flow.hpp>
#include <civicflow/engine/turn.hpp>
#include <civicflow/server/citizen_queues.hpp>

namespace civicflow::server {

class Store;

/// Performs one backend call for the service. BackendClient::call in production; tests inject
/// their own. Must never throw and must complete within the backend's timeout.
using CallPerformer =
    std::function<boost::asio::awaitable<engine::CallResult>(engine::BackendCall, std::string)>;

/// An HTTP answer of the API: a status and a JSON body.
struct ApiReply {
    unsigned status = 200;
    std::string body;
};

/// Handles message bodies. Thread-safe; one instance serves every connection.
///
/// For each valid message: waits for the citizen's turn (messages of one citizen run one at a
/// time, in arrival order), answers a repeated `message_id` from the store without running
/// anything, else loads the session, runs the engine turn, performs its backend calls (holding
/// only that citizen's queue) and resumes the turn with each result, saves the session,
/// remembers the response under the message id, and returns the replies of all the turns.
/// A request rejected with 4xx changes nothing. Store failures are 503 and change nothing.
class MessageService {
public:
    /// Milliseconds since the epoch for the engine (sessions' timestamps, idle expiry).
    using Clock = std::function<std::int64_t()>;

    MessageService(
        std::shared_ptr<const engine::FlowSet> flows,
        Store& store,
        CallPerformer perform_call,
        Clock clock = {}
    );

    /// Handles one request body; `request_id` tags logs and error bodies. Never throws for
    /// expected conditions (errors are replies); unexpected exceptions propagate to the caller,
    /// which turns them into a 500.
    boost::asio::awaitable<ApiReply> handle(std::string body, std::string request_id);

    /// Messages accepted and not yet answered (for graceful shutdown).
    std::size_t in_flight() const { return in_flight_.load(); }

    const CitizenQueues& queues() const { return queues_; }

    /// At most this many backend calls are chained within one message; a flow that keeps
    /// calling past it gets an error result for the next call (its error branch).
    static constexpr int kMaxCallsPerMessage = 4;

private:
    std::int64_t now() const;

    std::shared_ptr<const engine::FlowSet> flows_;
    Store& store_;
    CallPerformer perform_call_;
    Clock clock_;
    CitizenQueues queues_;
    std::atomic<std::size_t> in_flight_{0};
};

}  // namespace civicflow::server
