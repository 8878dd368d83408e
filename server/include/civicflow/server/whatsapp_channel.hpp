/// The WhatsApp Cloud API channel: verification, signed webhooks into a durable inbox, turns
/// through the message service, a durable outbox sent with rate caps and retries, delivery
/// statuses, the 24-hour window and template notifications for integrators.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <civicflow/engine/result.hpp>
#include <civicflow/engine/turn.hpp>
#include <civicflow/server/channel_store.hpp>
#include <civicflow/server/config.hpp>
#include <civicflow/server/message_service.hpp>

namespace civicflow::server {

class Store;

/// The secrets of the channel, read from the environment at startup (never from files, never
/// logged). An empty verify token refuses every verification; an empty notify token disables
/// POST /v1/notifications (403).
struct WhatsAppSecrets {
    std::string app_secret;
    std::string verify_token;
    std::string notify_token;
    std::string admin_token;  // the admin queries (CIVICFLOW_ADMIN_TOKEN)
};

/// Counters for operators (/metrics). Monotonic unless noted.
struct WhatsAppStats {
    std::atomic<std::uint64_t> webhooks{0};               // signed POSTs accepted
    std::atomic<std::uint64_t> bad_signatures{0};         // POSTs refused with 401
    std::atomic<std::uint64_t> inbound{0};                // new messages stored
    std::atomic<std::uint64_t> duplicates{0};             // redeliveries recognised
    std::atomic<std::uint64_t> ignored{0};                // reactions and unsupported types
    std::atomic<std::uint64_t> turns{0};                  // messages whose turn ran
    std::atomic<std::uint64_t> statuses{0};               // status webhooks recorded
    std::atomic<std::uint64_t> send_ok{0};                // Graph API accepted a message
    std::atomic<std::uint64_t> send_retry{0};             // transient failures, retried
    std::atomic<std::uint64_t> send_throttled{0};         // rate limits, retried later
    std::atomic<std::uint64_t> send_failed{0};            // permanent failures and give-ups
    std::atomic<std::uint64_t> outside_window{0};         // replies not sent: window closed
    std::atomic<std::uint64_t> dropped_erased{0};         // not sent: the citizen was erased first
    std::atomic<std::uint64_t> notifications{0};          // templates queued
    std::atomic<std::uint64_t> notifications_refused{0};  // opted out citizens
};

/// One instance per server. Thread-safe.
///
/// Inbound: a webhook POST is authenticated (X-Hub-Signature-256 over the raw bytes, constant
/// time), parsed, and each message is stored in the channel store's inbox (deduplicated by
/// wamid: a redelivery, even days later or concurrent, is recognised and never answered
/// twice), statuses are recorded; only then is the webhook answered 200. The turns run after
/// the answer: each message becomes a MessageService message keyed "wa:<phone number id>:
/// <citizen>" with the wamid as message id, a citizen's messages one at a time in the order
/// received. Its replies are rendered for the Cloud API and queued in the outbox under ids
/// "<wamid>#<n>" (so a turn re-run after a crash queues nothing twice: the message service
/// answers the repeated wamid with the stored replies), then the inbox item is marked
/// processed. Items left unprocessed by a crash or a store failure are picked up again.
///
/// Outbound: one sender loop takes due outbox items, each conversation's in order, one at a
/// time; at most `send_rate` per second per phone number and one per `recipient_interval` per
/// citizen. Transient failures and throttling are retried with exponential backoff and jitter
/// (a throttled number pauses entirely), permanent errors are recorded as failures, never
/// retried. A reply is sent only inside the citizen's 24-hour window (else recorded as failed,
/// code 131047); templates may go at any time. A crash between Meta accepting a message and
/// the outbox recording it sends that message again on restart: the Cloud API offers no
/// idempotency key, so this window (one request's duration) is the limit of exactly-once.
class WhatsAppChannel {
public:
    /// Sends one Graph API request (POST, path under the API base, JSON body); the server's
    /// BackendClient in production.
    using GraphCall =
        std::function<boost::asio::awaitable<engine::CallResult>(engine::BackendCall, std::string)>;
    using Clock = std::function<std::int64_t()>;

    WhatsAppChannel(
        boost::asio::any_io_executor executor,
        WhatsAppConfig config,
        WhatsAppSecrets secrets,
        MessageService& service,
        Store& store,
        ChannelStore& channel_store,
        GraphCall graph,
        Clock clock = {}
    );
    ~WhatsAppChannel();
    WhatsAppChannel(const WhatsAppChannel&) = delete;
    WhatsAppChannel& operator=(const WhatsAppChannel&) = delete;

    /// Starts the sender and recovery loops (unprocessed inbox items, unsent outbox items).
    void start();
    /// Stops taking new work: the loops end after the sends in progress; the inbox and outbox
    /// keep the rest for the next start.
    void stop();
    /// Messages and sends in progress (graceful shutdown waits for them).
    std::size_t in_flight() const;

    /// GET /webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...
    /// 200 with exactly the challenge (text/plain) when the token matches, else 403.
    ApiReply verify(std::string_view query, const std::string& rid) const;

    /// POST /webhooks/whatsapp: `signature` is the X-Hub-Signature-256 header ("" if absent).
    /// 401 for a missing or wrong signature, 400 for a signed body that is not a webhook, 503
    /// when the channel store fails (Meta redelivers; what was stored is deduplicated), else
    /// 200 once everything in the body is stored.
    boost::asio::awaitable<ApiReply> receive(
        std::string body, std::string signature, std::string request_id
    );

    /// POST /v1/notifications with `authorization` ("Bearer <token>"). 202 queued, 200 for a
    /// repeated idempotency key (nothing new sent), 409 for an opted-out citizen, 400/401/403.
    boost::asio::awaitable<ApiReply> notify(
        std::string body, std::string authorization, std::string request_id
    );

    /// GET /v1/admin/whatsapp/messages/{id} (outbox id or wamid) and
    /// GET /v1/admin/whatsapp/deliveries (counts), admin bearer token.
    boost::asio::awaitable<ApiReply> admin(
        std::string path, std::string authorization, std::string request_id
    );

    /// Prometheus lines of the channel's counters and the store's delivery counts.
    boost::asio::awaitable<std::string> metrics();

    /// Removes the citizen's inbox, outbox and window records (MessageService eraser).
    boost::asio::awaitable<engine::Result<engine::Ok>> erase(const std::string& key);

    /// Wakes the sender (tests; new outbox items wake it by themselves).
    void wake_sender();

    const WhatsAppStats& stats() const { return stats_; }

private:
    std::int64_t now() const;
    std::string entry_flow(const std::string& phone_number_id) const;
    // Takes a wamid in hand before its message is stored; false when it already is.
    bool claim_inbox(const std::string& wamid);
    void release_inbox(const std::string& wamid);
    // Hands received inbox items, their wamids in hand (claim_inbox()), to their conversations
    // (one coroutine per citizen at a time).
    void schedule(std::vector<InboxItem> items);
    // Queues items to their conversations, with the lock held; `claimed`: their wamids are
    // in hand already, else those in hand are skipped and the others taken. Returns the
    // conversations to start.
    std::vector<std::string> take_in_hand(std::vector<InboxItem>& items, bool claimed);
    void spawn_conversations(std::vector<std::string> keys);
    boost::asio::awaitable<void> process_conversation(std::string key);
    boost::asio::awaitable<bool> process(const InboxItem& item);
    boost::asio::awaitable<void> sender_loop();
    boost::asio::awaitable<void> recovery_loop();
    boost::asio::awaitable<void> send_conversation(
        std::string conversation, std::vector<OutboxItem> items
    );
    // Sends one item; false when the conversation must stop here (rescheduled).
    boost::asio::awaitable<bool> send_one(const OutboxItem& item);
    boost::asio::awaitable<void> pace(const OutboxItem& item);
    boost::asio::awaitable<void> mark_read(std::string phone_number_id, std::string wamid);
    std::int64_t backoff_ms(int attempts);

    boost::asio::any_io_executor executor_;
    WhatsAppConfig config_;
    WhatsAppSecrets secrets_;
    MessageService& service_;
    Store& store_;
    ChannelStore& channel_;
    GraphCall graph_;
    Clock clock_;
    WhatsAppStats stats_;

    mutable std::mutex mutex_;
    std::set<std::string> inbox_in_hand_;                   // wamids being processed
    std::map<std::string, std::deque<InboxItem>> pending_;  // per key, while it is processed
    std::set<std::string> sending_;  // "<pnid>:<recipient>" conversations sending
    // The store's due lists are snapshots: one read before an item was settled (sent, failed,
    // rescheduled, or its turn done) may arrive after that. Items settled after the read was
    // issued are skipped; entries go once a read issued after them has come back.
    std::uint64_t settlements_ = 0;
    std::map<std::string, std::uint64_t> settled_outbox_;      // outbox id -> settlement number
    std::map<std::string, std::uint64_t> settled_inbox_;       // wamid -> settlement number
    std::map<std::string, std::int64_t> number_next_ms_;       // token bucket per phone number
    std::map<std::string, std::int64_t> number_paused_until_;  // throttled numbers
    std::map<std::string, std::int64_t> recipient_next_ms_;    // pacing per recipient
    // Citizens erased lately (key -> when): what a sender read before is not sent. Kept for
    // kErasedMemoryMs, far longer than a due list is held.
    static constexpr std::int64_t kErasedMemoryMs = 10 * 60 * 1000;
    std::map<std::string, std::int64_t> erased_at_;
    std::atomic<std::size_t> in_flight_{0};
    std::atomic<bool> stopping_{false};
    std::atomic<bool> wake_pending_{false};
    boost::asio::any_io_executor strand_;  // the loops and their timer
    boost::asio::steady_timer wake_;
};

}  // namespace civicflow::server
