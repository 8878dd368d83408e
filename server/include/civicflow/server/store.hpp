/// Where the server keeps citizens' sessions and the responses of processed message ids.
#pragma once

#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include <civicflow/engine/result.hpp>

namespace civicflow::server {

/// The storage interface of the server. Every operation is a coroutine so that stores doing
/// network I/O (Redis, on the server's io_context) fit without blocking an I/O thread; the
/// in-memory store completes without suspending.
///
/// Contract: keys are citizen ids (`user`) as received; values are opaque strings (sessions are
/// engine::encode_session() output, responses are response bodies). Entries expire after the
/// store's TTLs. Implementations are thread-safe. Failures are Errors with code "store" and a
/// message without personal data; the server answers 503 and changes nothing.
/// The server guarantees at most one operation sequence per citizen at a time (its per-citizen
/// queue), so a store needs no per-key transactions.
class Store {
public:
    virtual ~Store() = default;

    /// The stored session of `user`, or nullopt when there is none (new or expired).
    virtual boost::asio::awaitable<engine::Result<std::optional<std::string>>> load_session(
        const std::string& user
    ) = 0;
    /// Stores `session` for `user`, restarting its TTL.
    virtual boost::asio::awaitable<engine::Result<engine::Ok>> save_session(
        const std::string& user, std::string session
    ) = 0;

    /// The response stored for message `message_id` of `user`, or nullopt.
    virtual boost::asio::awaitable<engine::Result<std::optional<std::string>>> find_response(
        const std::string& user, const std::string& message_id
    ) = 0;
    /// Remembers `response` as the answer to message `message_id` of `user`.
    virtual boost::asio::awaitable<engine::Result<engine::Ok>> remember_response(
        const std::string& user, const std::string& message_id, std::string response
    ) = 0;

    /// Drops everything held about `user`: session and remembered responses.
    virtual boost::asio::awaitable<engine::Result<engine::Ok>> erase_citizen(const std::string& user
    ) = 0;

    /// Whether the store can serve requests now (for /readyz).
    virtual boost::asio::awaitable<engine::Result<engine::Ok>> ping() = 0;
};

}  // namespace civicflow::server
