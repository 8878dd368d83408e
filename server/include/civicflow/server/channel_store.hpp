/// The durable state of the WhatsApp channel: inbox, outbox, delivery statuses, the 24-hour
/// window and notification idempotency keys.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include <civicflow/engine/result.hpp>

namespace civicflow::server {

/// A message received on a webhook, stored before the webhook is answered so that its turn runs
/// even across a restart, and kept (without its payload, once processed) to recognise Meta's
/// redeliveries.
struct InboxItem {
    std::string wamid;             // Meta's message id: the deduplication key
    std::string key;               // the citizen's session key, "wa:<phone_number_id>:<citizen>"
    std::string payload;           // opaque to the store (the serialized InboundMessage)
    std::int64_t received_at = 0;  // ms since the epoch
    bool operator==(const InboxItem&) const = default;
};

/// A received message with the time its citizen wrote it (ChannelStore::receive()).
struct Arrival {
    InboxItem item;
    std::int64_t wrote_at = 0;  // ms since the epoch: the 24-hour window moves to it
};

/// A message to send through the Cloud API: a reply of a committed turn or a notification.
struct OutboxItem {
    /// Where a message is. Forward moves only: kQueued -> kSent -> kDelivered -> kRead, and
    /// kQueued or kSent -> kFailed; kRead and kFailed are final (see can_advance()).
    enum class State { kQueued, kSent, kDelivered, kRead, kFailed };

    std::string id;               // the caller's idempotency id, e.g. "<inbound wamid>#<n>"
    std::string key;              // the citizen's session key (erase_citizen() finds it by this)
    std::string phone_number_id;  // the business number it is sent from
    std::string recipient;        // the `to` of the Graph API call
    std::string body;             // the Graph API request body (JSON)
    std::string kind;             // "reply" or "template"
    std::int64_t seq = 0;         // set by the store: its enqueue order (input ignored)
    std::int64_t created_at = 0;  // ms since the epoch
    int attempts = 0;             // failed send attempts so far
    std::int64_t next_attempt_at = 0;  // ms since the epoch; due when <= now
    State state = State::kQueued;      // set by the store (input ignored: enqueued = kQueued)
    bool operator==(const OutboxItem&) const = default;
};

/// "queued", "sent", "delivered", "read" or "failed" (metrics labels, admin answers).
std::string_view to_string(OutboxItem::State state);

/// Whether a message in state `from` may move to `to`: forward along queued, sent, delivered,
/// read; to failed only from queued or sent (a delivered message did reach the citizen); never
/// out of read or failed. Meta does not order its status webhooks, so a late "delivered" after
/// "read" must not move a message back.
bool can_advance(OutboxItem::State from, OutboxItem::State to);

/// A status webhook for a sent message (kSent, kDelivered, kRead or kFailed).
struct DeliveryStatus {
    std::string wamid;  // the id the Cloud API gave the outbound message
    OutboxItem::State state = OutboxItem::State::kSent;
    std::int64_t at = 0;      // ms since the epoch (the webhook's timestamp is in seconds)
    int error_code = 0;       // kFailed: the Graph API error code
    std::string error_title;  // kFailed: its title (Meta's generic text, no personal data)
    bool operator==(const DeliveryStatus&) const = default;
};

/// Everything known about one outbound message (the admin query).
struct OutboundRecord {
    OutboxItem item;
    std::string wamid;              // "" until sent
    std::int64_t sent_at = 0;       // ms since the epoch; 0: not (yet) seen
    std::int64_t delivered_at = 0;  // recorded even when "read" arrived first
    std::int64_t read_at = 0;
    std::int64_t failed_at = 0;
    int error_code = 0;  // the permanent failure (send or status), 0 when none
    std::string error_title;
    std::string last_error;  // the last retryable error (reschedule())
    bool operator==(const OutboundRecord&) const = default;
};

/// Applies a status to a record, the state machine both stores share: a failure moves the
/// message to kFailed (with its time, code and title) when can_advance() allows it, else it is
/// ignored; sent, delivered and read record their time when not seen before and move the state
/// forward when can_advance() allows it; nothing changes a failed message. Returns whether the
/// record changed.
bool apply_delivery_status(OutboundRecord& record, const DeliveryStatus& status);

/// Outbound message counts for operators. `queued` is the backlog now; the others count the
/// messages that ever reached that state, since the store was created (they never go down:
/// retention sweeps and erasure drop rows, not totals; a memory store starts from zero).
struct DeliveryCounts {
    std::int64_t queued = 0;
    std::int64_t sent = 0;
    std::int64_t delivered = 0;
    std::int64_t read = 0;
    std::int64_t failed = 0;
    bool operator==(const DeliveryCounts&) const = default;
};

/// How long finished records are kept.
struct ChannelRetention {
    /// Processed inbox ids (redelivery detection: Meta retries for up to 7 days), statuses
    /// that never matched a sent message, and 24-hour window entries.
    std::chrono::milliseconds inbox{8LL * 24 * 3600 * 1000};
    /// Sent or failed outbox rows (the admin query) and notification idempotency keys.
    std::chrono::milliseconds outbox{30LL * 24 * 3600 * 1000};
};

/// The storage interface of the WhatsApp channel. Every operation is a coroutine so that a store
/// doing I/O (SQLite on its writer thread) never blocks an I/O thread; arguments are taken by
/// value, so nothing needs to outlive the call.
///
/// Contract shared by the implementations (and checked by one test suite against each):
/// - Times are ms since the epoch from the caller's clock; retention sweeps compare them with
///   the store's clock.
/// - Each operation is atomic: all of its effects or none. Once a write completes it is durable,
///   as durable as the store is (SQLite with `durable`: on disk, fsynced; memory: not at all).
/// - Failures are Errors with code "store" and a message without personal data (no keys,
///   recipients, payloads or bodies); the write did not happen.
/// - Implementations are thread-safe; operations may be in flight concurrently. Two operations
///   in flight together take effect in some order; one that completed before another was
///   started takes effect first.
/// - "Unknown" ids are normal (erased, swept, or never there): boolean results say whether
///   anything changed; they are not errors.
class ChannelStore {
public:
    virtual ~ChannelStore() = default;

    // Inbox.

    /// Stores a received message unless its wamid is known (processed or not, until swept
    /// `retention.inbox` after `received_at`). True: stored, its turn is to run; false: a
    /// redelivery, nothing changed.
    virtual boost::asio::awaitable<engine::Result<bool>> add_inbound(InboxItem item) = 0;

    /// Stores what one webhook brought, in one atomic step: each message moves its citizen's
    /// window to `wrote_at` (as touch_inbound(); redeliveries too, as the window only keeps the
    /// later time) and is added to the inbox unless its wamid is known (as add_inbound(); a
    /// wamid twice in `arrivals` is new once). Returns, in order, whether each was new. On an
    /// Error nothing was stored, so the webhook can be answered 503 and redelivered.
    virtual boost::asio::awaitable<engine::Result<std::vector<bool>>> receive(
        std::vector<Arrival> arrivals
    ) = 0;

    /// Up to `limit` unprocessed messages, oldest first (the order add_inbound() stored them).
    /// Does not claim them: the same items come back until mark_processed(), so one worker
    /// per store tracks what it has in hand.
    virtual boost::asio::awaitable<engine::Result<std::vector<InboxItem>>> due_inbound(
        std::size_t limit
    ) = 0;

    /// Marks a message processed: it leaves due_inbound() and its payload is dropped (only the
    /// wamid stays, for deduplication). Call it whatever the turn's outcome, or the message
    /// would be retried forever. False: unknown or already processed.
    virtual boost::asio::awaitable<engine::Result<bool>> mark_processed(std::string wamid) = 0;

    // Outbox.

    /// Queues messages, all or none, in the order given (a turn's replies together). An item
    /// whose id is already stored is skipped and left as it is, so a turn re-run after a crash
    /// queues nothing twice. Returns how many were new.
    virtual boost::asio::awaitable<engine::Result<std::size_t>> enqueue(
        std::vector<OutboxItem> items
    ) = 0;

    /// Up to `limit` queued messages with next_attempt_at <= now, oldest first (by seq, so each
    /// recipient's messages come in their order). A message waiting for a retry holds back the
    /// later messages to the same recipient from the same number: only the leading run of a
    /// conversation's queued messages is ever due. Does not claim them (like due_inbound()):
    /// the caller sends a conversation's messages one at a time, in order, and stops at the
    /// first it reschedules.
    virtual boost::asio::awaitable<engine::Result<std::vector<OutboxItem>>> due_outbound(
        std::int64_t now, std::size_t limit
    ) = 0;

    /// A queued message was accepted by the Cloud API as `wamid`: it becomes kSent, and
    /// statuses that arrived for `wamid` before this call are applied now (in their
    /// timestamp order). False: no queued message `id`. A wamid already given to another
    /// message is an Error "store".
    virtual boost::asio::awaitable<engine::Result<bool>> mark_sent(
        std::string id, std::string wamid, std::int64_t at
    ) = 0;

    /// A send failed and will be retried: records the attempt count, the next attempt time and
    /// the error (an error class and code, no personal data). False: no queued message `id`.
    virtual boost::asio::awaitable<engine::Result<bool>> reschedule(
        std::string id, int attempts, std::int64_t next_attempt_at, std::string last_error
    ) = 0;

    /// A send failed for good (a permanent Graph API error): the message becomes kFailed.
    /// False: no queued message `id`.
    virtual boost::asio::awaitable<engine::Result<bool>> mark_failed(
        std::string id, int error_code, std::string error_title, std::int64_t at
    ) = 0;

    // Delivery statuses.

    /// Records a status webhook (see apply_delivery_status()). True: it matched a sent message;
    /// false: no message has this wamid yet, and the status is kept until mark_sent() links it
    /// (or for `retention.inbox`). Redeliveries change nothing. A kQueued status is an Error
    /// "store".
    virtual boost::asio::awaitable<engine::Result<bool>> record_status(DeliveryStatus status) = 0;

    /// The operator counts (see DeliveryCounts).
    virtual boost::asio::awaitable<engine::Result<DeliveryCounts>> delivery_counts() = 0;

    /// One outbound message by its outbox id or, failing that, by its wamid; nullopt when
    /// neither is known.
    virtual boost::asio::awaitable<engine::Result<std::optional<OutboundRecord>>> find_outbound(
        std::string id_or_wamid
    ) = 0;

    // The 24-hour customer service window.

    /// The citizen wrote at `at`: remembered unless a later time is already known.
    virtual boost::asio::awaitable<engine::Result<engine::Ok>> touch_inbound(
        std::string key, std::int64_t at
    ) = 0;

    /// When the citizen last wrote, nullopt when unknown (never, erased, or swept after
    /// `retention.inbox`).
    virtual boost::asio::awaitable<engine::Result<std::optional<std::int64_t>>> last_inbound(
        std::string key
    ) = 0;

    // Notifications.

    /// Claims an integrator's idempotency key and queues `item` with it, atomically (a crash
    /// cannot leave a claimed key without its message). nullopt: the key was new, the claim
    /// and `item` (skipped if its id exists, as in enqueue()) are stored. Otherwise the
    /// outbox id the key was first claimed for; nothing is queued. Keys are kept for
    /// `retention.outbox` and erased with item.key's citizen.
    virtual boost::asio::awaitable<engine::Result<std::optional<std::string>>>
    claim_idempotency_key(std::string idempotency_key, OutboxItem item) = 0;

    // Privacy and upkeep.

    /// Drops everything held about the citizen with session key `key`: inbox, outbox (queued
    /// messages are then never sent, sent ones lose their statuses), window, idempotency keys;
    /// durably, and leaving no copy in the store's files. Afterwards a redelivery of one of the
    /// citizen's old messages is no longer recognised, and a status for one of their old
    /// wamids is kept as unmatched (a wamid alone names no citizen here) until swept after
    /// `retention.inbox`. Totals in DeliveryCounts stay; the backlog drops.
    virtual boost::asio::awaitable<engine::Result<engine::Ok>> erase_citizen(std::string key) = 0;

    /// Deletes what is past its retention now (processed inbox ids older than
    /// `retention.inbox` by received_at; unmatched statuses and window entries older than
    /// `retention.inbox`; sent or failed outbox rows finished longer than `retention.outbox`
    /// ago; idempotency keys claimed longer than `retention.outbox` ago) and returns how many
    /// records went. Stores also sweep by themselves (see each implementation); this is for
    /// tests and operators.
    virtual boost::asio::awaitable<engine::Result<std::int64_t>> sweep() = 0;

    /// Whether the store can serve requests now (for /readyz).
    virtual boost::asio::awaitable<engine::Result<engine::Ok>> ping() = 0;
};

}  // namespace civicflow::server
