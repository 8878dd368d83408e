/// Where the server keeps what it knows about citizens: sessions, processed message ids with
/// their responses, consent state and pending backend calls.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include <civicflow/engine/result.hpp>
#include <civicflow/engine/turn.hpp>

namespace civicflow::server {

/// A backend call in progress, stored before it is sent so that a restart (or another instance)
/// can resume it (GET, safe to repeat) or cleanly fail it (anything else: it may have reached
/// the backend, and is never sent twice).
struct PendingCall {
    std::string message_id;  // the message whose turn made the call ("" when none)
    engine::BackendCall call;
    std::int64_t started_at = 0;  // ms since the epoch
    std::string fingerprint;      // that message's fingerprint ("": none, or an older record)

    bool operator==(const PendingCall& o) const {
        return message_id == o.message_id && fingerprint == o.fingerprint && call.id == o.call.id &&
               call.backend == o.call.backend && call.method == o.call.method &&
               call.path == o.call.path && call.body == o.call.body && started_at == o.started_at;
    }
};

/// Compact JSON of a PendingCall (stores keep it as an opaque string).
std::string encode_pending_call(const PendingCall& pending);
/// Decodes encode_pending_call() output; malformed input is an Error ("pending_decode").
engine::Result<PendingCall> decode_pending_call(std::string_view json);

/// A citizen's consent to be messaged: the last opt-in or opt-out, when and through what
/// channel ("api" for /v1/messages).
struct Consent {
    bool opted_in = true;
    std::int64_t at = 0;  // ms since the epoch
    std::string channel;
    bool operator==(const Consent&) const = default;
};

/// What a message needs before its turn runs, read in one round trip.
struct CitizenState {
    std::optional<std::string> session;   // engine::encode_session() output
    std::optional<std::string> response;  // stored response of the message id asked for
    std::optional<PendingCall> pending;   // a call whose turn did not finish (crash, restart)
};

/// The effects of one turn, stored atomically: all of them or none.
struct TurnWrite {
    std::string user;
    std::optional<std::string> session;  // the new session, or nullopt to leave it as it is
    std::int64_t session_ttl_ms = 0;     // how long the session is kept from now
    std::string message_id;              // when non-empty, `response` is remembered under it
    std::string response;
    std::optional<Consent> consent;      // set: the citizen opted in or out in this turn
    std::optional<PendingCall> pending;  // set: a call is about to be sent
    bool clear_pending = false;          // the turn's pending call has completed
    // Non-empty: the citizen's lease with this token is released in the same step, once the
    // write is stored (Redis: one script instead of two commands), and the write applies only
    // while the lease still holds it. Stores without leases ignore it. When the write fails,
    // the lease is still held (if it still was).
    std::string release_lease;
    // Non-empty (a write within a turn, e.g. before a backend call): the write applies only
    // while the citizen's lease holds this token, and extends the lease by its time to live,
    // so that a turn waiting on backend calls keeps it. Stores without leases ignore it.
    std::string hold_lease;
};

/// A per-citizen lease held while a turn runs (several instances on one Redis). Empty token:
/// the store needs none (a single process already serializes a citizen's messages).
struct Lease {
    std::string user;
    std::string token;
};

/// A citizen's lease together with what the message needs (Store::acquire_and_load()).
struct LeasedState {
    Lease lease;
    CitizenState state;
};

/// The storage interface of the server. Every operation is a coroutine so that stores doing I/O
/// (SQLite on its writer thread, Redis on the io_context) never block an I/O thread.
///
/// Contract: keys are citizen ids as received; sessions and responses are opaque strings.
/// Entries expire after their TTLs (sessions: TurnWrite::session_ttl_ms; message ids: the
/// store's message retention). Implementations are thread-safe. write() completes only once its
/// effects are durable (as durable as the store is: memory is not). Failures are Errors with
/// code "store" and a message without personal data; the server answers 503 and the write did
/// not happen. The server runs at most one operation sequence per citizen at a time (its
/// per-citizen queue, plus acquire_lease() across instances).
class Store {
public:
    virtual ~Store() = default;

    /// The session, the response stored for `message_id` (when non-empty) and any pending call.
    virtual boost::asio::awaitable<engine::Result<CitizenState>> load(
        const std::string& user, const std::string& message_id
    ) = 0;

    /// Stores the effects of a turn atomically and durably.
    virtual boost::asio::awaitable<engine::Result<engine::Ok>> write(TurnWrite write) = 0;

    /// The citizen's consent state, or nullopt when never recorded.
    virtual boost::asio::awaitable<engine::Result<std::optional<Consent>>> load_consent(
        const std::string& user
    ) = 0;

    /// Drops everything held about `user`: session, message ids and their responses, consent,
    /// pending calls; durably, leaving no copy behind in the store's files.
    virtual boost::asio::awaitable<engine::Result<engine::Ok>> erase_citizen(const std::string& user
    ) = 0;

    /// Whether the store can serve requests now (for /readyz).
    virtual boost::asio::awaitable<engine::Result<engine::Ok>> ping() = 0;

    /// Waits (bounded) for the citizen's lease across instances. The default: none needed.
    virtual boost::asio::awaitable<engine::Result<Lease>> acquire_lease(const std::string& user);
    /// Releases a lease; never fails (an unreleased lease expires by itself). A store may
    /// return before the release is confirmed, as long as its later operations on the citizen
    /// are ordered after it.
    virtual boost::asio::awaitable<void> release_lease(Lease lease);

    /// acquire_lease() then load(), in one round trip where the store can (Redis pipelines the
    /// two). The default calls the two in turn.
    virtual boost::asio::awaitable<engine::Result<LeasedState>> acquire_and_load(
        const std::string& user, const std::string& message_id
    );

    /// The store's own counters in the Prometheus text format (appended to GET /metrics);
    /// thread-safe. The default: none.
    virtual std::string metrics() const;
};

/// Parsed `--store` / `store.type` value.
struct StoreSpec {
    enum class Kind { kMemory, kSqlite, kRedis };
    Kind kind = Kind::kSqlite;
    std::string path;  // kSqlite
    std::string host;  // kRedis
    std::uint16_t port = 6379;
};

/// Parses "memory", "sqlite:PATH" or "redis://HOST[:PORT]". Error code "store".
engine::Result<StoreSpec> parse_store_spec(std::string_view text);

}  // namespace civicflow::server
