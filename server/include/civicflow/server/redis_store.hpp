/// The Redis Store: sessions, message ids, consent, pending calls and per-citizen leases in a
/// Redis shared by several `civicflow serve` instances, driven asynchronously on the io_context.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include <civicflow/server/store.hpp>

namespace civicflow::server {

/// One hiredis asynchronous connection per store, its socket watched by the io_context (a small
/// adapter behind hiredis's addRead/delRead/addWrite/delWrite/cleanup hooks), every hiredis call
/// on one strand; concurrent commands are pipelined on that connection. Nothing blocks an I/O
/// thread. The connection is re-established by itself with exponential backoff (50 ms to 2 s);
/// while it is down every operation fails at once with an Error (code "store"), which the
/// server turns into a 503, and ping() fails (readyz not ready).
///
/// Keys (the citizen id in braces, a Redis Cluster hash tag keeping a citizen on one slot):
///   cf:s:{user}       session, TTL = the write's session TTL
///   cf:m:N:{user}:ID  response of message ID (N: the user id's length in bytes, so that no
///                     other user and id make the same key), TTL = message_ttl
///   cf:k:{user}       set of the citizen's message ids (for erasure), TTL = message_ttl
///   cf:c:{user}       consent "1|at|channel", no TTL
///   cf:p:{user}       pending call, TTL = message_ttl
///   cf:l:{user}       lease token, TTL = lease_ttl
/// A turn's write and an erasure are each one Lua script, so they apply atomically. After an
/// erasure the append-only file is rewritten (Options::erasure_rewrite), so it keeps no copy.
/// Thread-safe.
class RedisStore final : public Store {
public:
    struct Options {
        std::string host = "127.0.0.1";
        std::uint16_t port = 6379;
        std::chrono::milliseconds message_ttl{8LL * 24 * 3600 * 1000};
        std::chrono::milliseconds lease_ttl{30'000};   // a crashed holder's lease expires
        std::chrono::milliseconds lease_wait{10'000};  // then acquire_lease() fails
        // A command (or the connect) unanswered this long: the connection is dropped, every
        // command waiting on it fails (503), and a new one is made. Redis stalled or the
        // network lost must not hold requests without an answer.
        std::chrono::milliseconds command_timeout{3'000};
        // Redis's append-only file keeps every write until it is rewritten, an erased
        // citizen's included. This long after an erasure (the first since the last rewrite),
        // the store has Redis rewrite it (BGREWRITEAOF, when AOF is on and no rewrite that may
        // predate the erasure is running) and waits for the rewrite to succeed; erasures in
        // the meantime share that rewrite. 0: never (the operator rewrites it).
        std::chrono::milliseconds erasure_rewrite{10LL * 60 * 1000};
    };

    /// Starts connecting (asynchronously: the store exists, unavailable, until connected).
    static std::unique_ptr<RedisStore> create(
        boost::asio::any_io_executor executor, Options options
    );

    ~RedisStore() override;
    RedisStore(const RedisStore&) = delete;
    RedisStore& operator=(const RedisStore&) = delete;

    boost::asio::awaitable<engine::Result<CitizenState>> load(
        const std::string& user, const std::string& message_id
    ) override;
    boost::asio::awaitable<engine::Result<engine::Ok>> write(TurnWrite write) override;
    boost::asio::awaitable<engine::Result<std::optional<Consent>>> load_consent(
        const std::string& user
    ) override;
    boost::asio::awaitable<engine::Result<engine::Ok>> erase_citizen(const std::string& user
    ) override;
    boost::asio::awaitable<engine::Result<engine::Ok>> ping() override;
    boost::asio::awaitable<engine::Result<Lease>> acquire_lease(const std::string& user) override;
    /// Sends the release and returns without waiting for Redis's answer: the citizen's next
    /// command goes out on the same connection after it, so Redis runs them in that order.
    boost::asio::awaitable<void> release_lease(Lease lease) override;
    /// The lease's SET NX and the MGET of load() pipelined: one round trip. When another
    /// instance holds the lease, the MGET's answer is dropped and acquire_lease() waits.
    boost::asio::awaitable<engine::Result<LeasedState>> acquire_and_load(
        const std::string& user, const std::string& message_id
    ) override;

    /// Whether the connection is up now.
    bool connected() const;

    struct Impl;

private:
    explicit RedisStore(std::shared_ptr<Impl> impl);
    Lease new_lease(const std::string& user) const;
    std::string lease_command(const Lease& lease) const;
    std::string take_over_call(const Lease& lease) const;
    std::shared_ptr<Impl> impl_;
};

}  // namespace civicflow::server
