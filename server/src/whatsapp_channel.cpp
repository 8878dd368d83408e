#include <algorithm>
#include <chrono>
#include <random>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <civicflow/server/logger.hpp>
#include <civicflow/server/message_api.hpp>
#include <civicflow/server/store.hpp>
#include <civicflow/server/whatsapp/graph_errors.hpp>
#include <civicflow/server/whatsapp/outbound.hpp>
#include <civicflow/server/whatsapp/signature.hpp>
#include <civicflow/server/whatsapp/webhook.hpp>
#include <civicflow/server/whatsapp_channel.hpp>

#include "http_connection.hpp"
#include "json_buffer.hpp"
#include "metrics_text.hpp"

namespace civicflow::server {

namespace asio = boost::asio;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::int64_t kWindowMs = 24LL * 3600 * 1000;
// A reply is refused outside the window with the code the Cloud API itself would answer.
constexpr int kOutsideWindowCode = 131047;
constexpr std::size_t kMaxParamBytes = 1024;
constexpr std::size_t kMaxParams = 32;

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void put(Writer& w, const char* key, std::string_view value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

std::string get(const rapidjson::Value& obj, const char* key) {
    const auto it = obj.FindMember(key);
    if (it == obj.MemberEnd() || !it->value.IsString())
        return {};
    return std::string(it->value.GetString(), it->value.GetStringLength());
}

// What the inbox keeps of a message: enough to run its turn and address its replies.
std::string encode_inbound(const whatsapp::InboundMessage& m) {
    const engine::Input input = m.to_input();
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    put(w, "pnid", m.phone_number_id);
    put(w, "from", m.citizen);
    put(w, "name", m.profile_name);
    w.Key("kind");
    w.Int(static_cast<int>(input.kind));
    put(w, "text", input.text);
    put(w, "choice", input.choice_id);
    put(w, "media_id", input.media.id);
    put(w, "mime", input.media.mime_type);
    put(w, "caption", input.media.caption);
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

struct Inbound {
    std::string phone_number_id;
    std::string citizen;
    engine::Input input;
};

engine::Result<Inbound> decode_inbound(std::string_view payload) {
    rapidjson::Document doc;
    doc.Parse(payload.data(), payload.size());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("kind") || !doc["kind"].IsInt()) {
        return engine::Error{"inbox_decode", "unreadable inbox payload"};
    }
    Inbound in;
    in.phone_number_id = get(doc, "pnid");
    in.citizen = get(doc, "from");
    const int kind = doc["kind"].GetInt();
    if (kind < 0 || kind > static_cast<int>(engine::Input::Kind::kLocation) ||
        kind == static_cast<int>(engine::Input::Kind::kCallResult) || in.citizen.empty()) {
        return engine::Error{"inbox_decode", "unreadable inbox payload"};
    }
    in.input.kind = static_cast<engine::Input::Kind>(kind);
    in.input.text = get(doc, "text");
    in.input.choice_id = get(doc, "choice");
    in.input.media.id = get(doc, "media_id");
    in.input.media.mime_type = get(doc, "mime");
    in.input.media.caption = get(doc, "caption");
    in.input.profile_name = get(doc, "name");
    return in;
}

ApiReply json_error(
    unsigned status, std::string_view code, std::string_view message, const std::string& rid
) {
    return ApiReply{status, encode_error(code, message, rid)};
}

ApiReply store_unavailable(const std::string& rid) {
    return json_error(
        503, "store_unavailable", "the channel store is unavailable; retry later", rid
    );
}

// Drops from a due list what was settled after the list's read was issued (at `issued`). Call
// with the lock held.
template <typename T, typename Id>
void drop_stale(
    std::vector<T>& items,
    const std::map<std::string, std::uint64_t>& settled,
    std::uint64_t issued,
    Id id
) {
    std::erase_if(items, [&](const T& item) {
        const auto it = settled.find(id(item));
        return it != settled.end() && it->second > issued;
    });
}

// Forgets the settlements that a read issued after them (at `issued`) has now reflected: only
// the one loop that reads a due list may call it, after its drop_stale(). Call with the lock
// held.
void forget_settled(std::map<std::string, std::uint64_t>& settled, std::uint64_t issued) {
    std::erase_if(settled, [issued](const auto& e) { return e.second <= issued; });
}

std::string query_param(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == name && eq != std::string_view::npos) {
            auto decoded = percent_decode(pair.substr(eq + 1));
            return decoded ? *decoded : std::string{};
        }
        if (amp == std::string_view::npos)
            break;
        query.remove_prefix(amp + 1);
    }
    return {};
}

}  // namespace

WhatsAppChannel::WhatsAppChannel(
    asio::any_io_executor executor,
    WhatsAppConfig config,
    WhatsAppSecrets secrets,
    MessageService& service,
    Store& store,
    ChannelStore& channel_store,
    GraphCall graph,
    Clock clock
)
    : executor_(executor)
    , config_(std::move(config))
    , secrets_(std::move(secrets))
    , service_(service)
    , store_(store)
    , channel_(channel_store)
    , graph_(std::move(graph))
    , clock_(std::move(clock))
    , strand_(asio::make_strand(executor))
    , wake_(strand_) {}

WhatsAppChannel::~WhatsAppChannel() = default;

std::int64_t WhatsAppChannel::now() const {
    if (clock_)
        return clock_();
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch()
    )
        .count();
}

std::string WhatsAppChannel::entry_flow(const std::string& phone_number_id) const {
    for (const auto& [id, flow] : config_.numbers) {
        if (id == phone_number_id)
            return flow;
    }
    return {};
}

void WhatsAppChannel::start() {
    asio::co_spawn(strand_, sender_loop(), asio::detached);
    asio::co_spawn(strand_, recovery_loop(), asio::detached);
}

void WhatsAppChannel::stop() {
    stopping_.store(true);
    wake_sender();
}

std::size_t WhatsAppChannel::in_flight() const {
    return in_flight_.load();
}

void WhatsAppChannel::wake_sender() {
    wake_pending_.store(true);
    asio::post(strand_, [this] { wake_.cancel(); });
}

ApiReply WhatsAppChannel::verify(std::string_view query, const std::string& rid) const {
    const std::string mode = query_param(query, "hub.mode");
    const std::string token = query_param(query, "hub.verify_token");
    const std::string challenge = query_param(query, "hub.challenge");
    if (mode != "subscribe" || secrets_.verify_token.empty() ||
        !bearer_matches("Bearer " + token, secrets_.verify_token)) {
        Logger::log(LogLevel::kWarn, rid, "webhook_verify_refused", "route=whatsapp");
        return ApiReply{403, encode_error("forbidden", "verification refused", rid)};
    }
    ApiReply reply{200, challenge};
    reply.content_type = "text/plain";
    return reply;
}

asio::awaitable<ApiReply> WhatsAppChannel::receive(
    std::string body, std::string signature, std::string rid
) {
    if (!whatsapp::signature_matches(signature, body, secrets_.app_secret)) {
        ++stats_.bad_signatures;
        // Neither the body nor the expected value is logged or echoed.
        Logger::log(
            LogLevel::kWarn,
            rid,
            "webhook_unauthorized",
            signature.empty() ? "reason=missing_signature" : "reason=bad_signature"
        );
        co_return json_error(
            401, "invalid_signature", "X-Hub-Signature-256 is missing or does not match", rid
        );
    }
    auto batch = whatsapp::parse_webhook(body);
    if (!batch)
        co_return json_error(400, "invalid_json", batch.error().message, rid);
    ++stats_.webhooks;

    // Every message is taken in hand before it is stored, so that the recovery loop, which may
    // read it from the inbox before this batch is scheduled, leaves it to us; one already in
    // hand is a concurrent redelivery of a message being received or processed. Then the
    // whole batch is stored in one step with the citizens' windows (one commit for the
    // webhook, and no redelivery can find a message stored without its window).
    // Releases the wamids taken in hand unless they reached their turns: a store failure or an
    // exception must not leave a message claimed (skipped by recovery, refused as a duplicate)
    // until a restart.
    struct Claims {
        WhatsAppChannel& channel;
        std::vector<std::string> wamids;

        ~Claims() {
            for (const std::string& w : wamids)
                channel.release_inbox(w);
        }
    } claims{*this, {}};

    std::vector<Arrival> arrivals;
    for (const whatsapp::InboundMessage& m : batch->messages) {
        if (!m.is_input()) {
            // Reactions and types the channel does not read: nothing for the engine.
            ++stats_.ignored;
            Logger::log(LogLevel::kDebug, rid, "whatsapp_ignored", "type=" + m.raw_type);
            continue;
        }
        if (!claim_inbox(m.id)) {
            ++stats_.duplicates;
            continue;
        }
        claims.wamids.push_back(m.id);
        InboxItem item{m.id, "wa:" + m.phone_number_id + ":" + m.citizen, encode_inbound(m), now()};
        const std::int64_t at = m.timestamp > 0 ? m.timestamp * 1000 : now();
        arrivals.push_back(Arrival{std::move(item), at});
    }
    std::vector<InboxItem> fresh;
    fresh.reserve(arrivals.size());
    if (!arrivals.empty()) {
        auto added = co_await channel_.receive(arrivals);
        if (!added)
            co_return store_unavailable(rid);
        for (std::size_t i = 0; i < arrivals.size(); ++i) {
            if (!(*added)[i]) {
                release_inbox(arrivals[i].item.wamid);
                ++stats_.duplicates;
                continue;
            }
            ++stats_.inbound;
            fresh.push_back(std::move(arrivals[i].item));
        }
    }
    // Stored: their turns may start now (a status below failing still leaves them to run).
    schedule(std::move(fresh));
    claims.wamids.clear();  // in hand of their turns, or released above as duplicates
    for (const whatsapp::StatusUpdate& s : batch->statuses) {
        DeliveryStatus status;
        switch (s.kind) {
            case whatsapp::StatusUpdate::Kind::kSent:
                status.state = OutboxItem::State::kSent;
                break;
            case whatsapp::StatusUpdate::Kind::kDelivered:
                status.state = OutboxItem::State::kDelivered;
                break;
            case whatsapp::StatusUpdate::Kind::kRead:
                status.state = OutboxItem::State::kRead;
                break;
            case whatsapp::StatusUpdate::Kind::kFailed:
                status.state = OutboxItem::State::kFailed;
                break;
            case whatsapp::StatusUpdate::Kind::kOther:
                continue;
        }
        status.wamid = s.id;
        status.at = s.timestamp > 0 ? s.timestamp * 1000 : now();
        status.error_code = s.error_code;
        status.error_title = s.error_title;
        auto recorded = co_await channel_.record_status(std::move(status));
        if (!recorded)
            co_return store_unavailable(rid);
        ++stats_.statuses;
        if (s.kind == whatsapp::StatusUpdate::Kind::kFailed) {
            Logger::log(
                LogLevel::kWarn,
                rid,
                "whatsapp_delivery_failed",
                "code=" + std::to_string(s.error_code)
            );
        }
    }
    // Everything is stored: answer now.
    co_return ApiReply{200, R"({"status":"ok"})"};
}

bool WhatsAppChannel::claim_inbox(const std::string& wamid) {
    std::lock_guard lock(mutex_);
    return inbox_in_hand_.insert(wamid).second;
}

void WhatsAppChannel::release_inbox(const std::string& wamid) {
    std::lock_guard lock(mutex_);
    inbox_in_hand_.erase(wamid);
}

void WhatsAppChannel::schedule(std::vector<InboxItem> items) {
    std::vector<std::string> start;
    {
        std::lock_guard lock(mutex_);
        start = take_in_hand(items, true);
    }
    spawn_conversations(std::move(start));
}

std::vector<std::string> WhatsAppChannel::take_in_hand(
    std::vector<InboxItem>& items, bool claimed
) {
    std::vector<std::string> start;
    for (InboxItem& item : items) {
        if (!claimed && !inbox_in_hand_.insert(item.wamid).second)
            continue;
        auto [it, inserted] = pending_.try_emplace(item.key);
        if (inserted)
            start.push_back(item.key);
        it->second.push_back(std::move(item));
    }
    in_flight_ += start.size();
    return start;
}

void WhatsAppChannel::spawn_conversations(std::vector<std::string> keys) {
    // Each on a strand of its own: MessageService's per-citizen queue needs its waiters on one
    // (a lock handed over between two threads of the pool would otherwise be missed).
    for (std::string& key : keys) {
        asio::co_spawn(
            asio::make_strand(executor_), process_conversation(std::move(key)), asio::detached
        );
    }
}

asio::awaitable<void> WhatsAppChannel::process_conversation(std::string key) {
    for (;;) {
        InboxItem item;
        {
            std::lock_guard lock(mutex_);
            auto it = pending_.find(key);
            if (it == pending_.end() || it->second.empty() || stopping_.load()) {
                // Left in the inbox when stopping: the next start runs them.
                if (it != pending_.end()) {
                    for (const InboxItem& left : it->second)
                        inbox_in_hand_.erase(left.wamid);
                    pending_.erase(it);
                }
                --in_flight_;
                co_return;
            }
            item = std::move(it->second.front());
            it->second.pop_front();
        }
        bool done = false;
        try {
            done = co_await process(item);
        } catch (const std::exception& e) {
            Logger::log(
                LogLevel::kError,
                {},
                "whatsapp_turn_exception",
                std::string("what=\"") + e.what() + "\""
            );
        }
        std::lock_guard lock(mutex_);
        inbox_in_hand_.erase(item.wamid);
        if (done)
            settled_inbox_[item.wamid] = ++settlements_;
        if (!done) {
            // A store failure: the item stays in the inbox and the recovery loop retries it;
            // later messages of this citizen wait for it there too.
            for (const InboxItem& left : pending_[key])
                inbox_in_hand_.erase(left.wamid);
            pending_.erase(key);
            --in_flight_;
            co_return;
        }
    }
}

asio::awaitable<bool> WhatsAppChannel::process(const InboxItem& item) {
    const std::string rid = new_request_id();
    auto inbound = decode_inbound(item.payload);
    if (!inbound) {
        Logger::log(
            LogLevel::kError, rid, "whatsapp_inbox_unreadable", "code=" + inbound.error().code
        );
        auto marked = co_await channel_.mark_processed(item.wamid);
        co_return marked.has_value();
    }
    if (config_.mark_read) {
        asio::co_spawn(executor_, mark_read(inbound->phone_number_id, item.wamid), asio::detached);
    }
    ChannelMessage msg;
    msg.user = item.key;
    msg.input = std::move(inbound->input);
    msg.input.entry_flow = entry_flow(inbound->phone_number_id);
    msg.message_id = item.wamid;
    msg.channel = "whatsapp";
    ApiReply reply = co_await service_.handle_message(std::move(msg), rid);
    if (reply.status == 503)
        co_return false;
    ++stats_.turns;
    if (reply.status == 200) {
        // The turn's replies as values; a repeated message id (the turn ran before a crash,
        // the inbox item was not yet marked) is answered from the stored body instead.
        auto replies = reply.replies
                           ? engine::Result<std::vector<engine::Reply>>(std::move(*reply.replies))
                           : decode_message_replies(reply.body);
        if (!replies) {
            Logger::log(
                LogLevel::kError, rid, "whatsapp_reply_unreadable", "code=" + replies.error().code
            );
        } else {
            whatsapp::RenderOptions options;
            options.list_button = config_.list_button;
            const std::vector<std::string> bodies =
                whatsapp::render_replies(*replies, inbound->citizen, options);
            if (reply.erased) {
                // The citizen's data is gone, inbox and window included: the confirmation is
                // sent directly, once, and nothing about the citizen is stored again.
                for (const std::string& b : bodies) {
                    engine::BackendCall call{
                        item.wamid + "#erased",
                        "whatsapp",
                        "POST",
                        "/" + inbound->phone_number_id + "/messages",
                        b};
                    co_await graph_(std::move(call), rid);
                }
                auto marked = co_await channel_.mark_processed(item.wamid);
                co_return marked.has_value();
            }
            std::vector<OutboxItem> out;
            out.reserve(bodies.size());
            const std::int64_t t = now();
            for (std::size_t i = 0; i < bodies.size(); ++i) {
                OutboxItem o;
                o.id = item.wamid + "#" + std::to_string(i);
                o.key = item.key;
                o.phone_number_id = inbound->phone_number_id;
                o.recipient = inbound->citizen;
                o.body = bodies[i];
                o.kind = "reply";
                o.created_at = t;
                o.next_attempt_at = t;
                out.push_back(std::move(o));
            }
            if (!out.empty()) {
                auto queued = co_await channel_.enqueue(std::move(out));
                if (!queued)
                    co_return false;
                wake_sender();
            }
        }
    } else {
        Logger::log(
            LogLevel::kError, rid, "whatsapp_turn_refused", "status=" + std::to_string(reply.status)
        );
    }
    auto marked = co_await channel_.mark_processed(item.wamid);
    co_return marked.has_value();
}

asio::awaitable<void> WhatsAppChannel::mark_read(std::string phone_number_id, std::string wamid) {
    // Best effort: a lost read receipt or typing indicator costs nothing.
    engine::BackendCall call{
        "read:" + wamid,
        "whatsapp",
        "POST",
        "/" + phone_number_id + "/messages",
        whatsapp::render_mark_read(wamid)};
    co_await graph_(std::move(call), new_request_id());
}

asio::awaitable<void> WhatsAppChannel::recovery_loop() {
    asio::steady_timer timer(strand_);
    while (!stopping_.load()) {
        std::uint64_t issued = 0;
        {
            std::lock_guard lock(mutex_);
            issued = settlements_;
        }
        auto due = co_await channel_.due_inbound(256);
        if (due) {
            std::vector<std::string> start;
            {
                // One critical section for the stale check and taking items in hand: a turn
                // settles its item and leaves the hand together, so an item not in hand now
                // has settled all it will, and drop_stale() has seen it.
                std::lock_guard lock(mutex_);
                drop_stale(*due, settled_inbox_, issued, [](const InboxItem& i) {
                    return i.wamid;
                });
                forget_settled(settled_inbox_, issued);
                start = take_in_hand(*due, false);
            }
            spawn_conversations(std::move(start));
        } else {
            Logger::log(
                LogLevel::kWarn, {}, "whatsapp_inbox_unavailable", "code=" + due.error().code
            );
        }
        timer.expires_after(std::chrono::seconds(1));
        co_await timer.async_wait(kTuple);
    }
}

asio::awaitable<void> WhatsAppChannel::sender_loop() {
    while (!stopping_.load()) {
        wake_pending_.store(false);
        std::uint64_t issued = 0;
        {
            std::lock_guard lock(mutex_);
            issued = settlements_;
        }
        auto due = co_await channel_.due_outbound(now(), 512);
        if (!due) {
            Logger::log(
                LogLevel::kWarn, {}, "whatsapp_outbox_unavailable", "code=" + due.error().code
            );
        } else {
            // Group by conversation, keeping each one's order.
            std::vector<std::pair<std::string, std::vector<OutboxItem>>> groups;
            for (OutboxItem& item : *due) {
                std::string conversation = item.phone_number_id + ":" + item.recipient;
                auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) {
                    return g.first == conversation;
                });
                if (it == groups.end()) {
                    groups.emplace_back(std::move(conversation), std::vector<OutboxItem>{});
                    it = std::prev(groups.end());
                }
                it->second.push_back(std::move(item));
            }
            {
                // One critical section for the stale check and the claim of a conversation: a
                // conversation settles its items while it is in sending_, so one not in it now
                // has settled all it will until we claim it, and drop_stale() has seen those.
                // (Checked apart, a conversation could finish an item in between and the stale
                // copy read before would be sent again.) A conversation already sending is
                // left to its coroutine, which wakes us when done.
                std::lock_guard lock(mutex_);
                for (auto& [conversation, items] : groups) {
                    if (sending_.contains(conversation)) {
                        items.clear();
                        continue;
                    }
                    drop_stale(items, settled_outbox_, issued, [](const OutboxItem& i) {
                        return i.id;
                    });
                    if (items.empty())
                        continue;
                    sending_.insert(conversation);
                    ++in_flight_;
                }
                forget_settled(settled_outbox_, issued);
            }
            for (auto& [conversation, items] : groups) {
                if (items.empty())
                    continue;
                asio::co_spawn(
                    executor_, send_conversation(conversation, std::move(items)), asio::detached
                );
            }
        }
        if (wake_pending_.load())
            continue;
        // Woken by new items or a finished conversation; else a retry may come due.
        wake_.expires_after(std::chrono::milliseconds(250));
        co_await wake_.async_wait(kTuple);
    }
}

asio::awaitable<void> WhatsAppChannel::send_conversation(
    std::string conversation, std::vector<OutboxItem> items
) {
    for (const OutboxItem& item : items) {
        if (stopping_.load())
            break;
        bool go_on = false;
        try {
            go_on = co_await send_one(item);
        } catch (const std::exception& e) {
            Logger::log(
                LogLevel::kError,
                {},
                "whatsapp_send_exception",
                std::string("what=\"") + e.what() + "\""
            );
        }
        {
            // Whatever happened (sent, failed, rescheduled, or a store error that left it
            // queued), a due list read before now must not send it again.
            std::lock_guard lock(mutex_);
            settled_outbox_[item.id] = ++settlements_;
        }
        if (!go_on)
            break;
    }
    {
        std::lock_guard lock(mutex_);
        sending_.erase(conversation);
        --in_flight_;
    }
    wake_sender();
}

std::int64_t WhatsAppChannel::backoff_ms(int attempts) {
    // Exponential from retry_backoff, capped, with full jitter in [delay/2, delay].
    const std::int64_t base = config_.retry_backoff.count();
    const int shift = std::min(attempts - 1, 20);
    const std::int64_t delay =
        std::min<std::int64_t>(config_.max_retry_backoff.count(), base << std::max(shift, 0));
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::uniform_int_distribution<std::int64_t> jitter(delay / 2, std::max<std::int64_t>(delay, 1));
    return jitter(rng);
}

asio::awaitable<void> WhatsAppChannel::pace(const OutboxItem& item) {
    using namespace std::chrono;
    const std::int64_t slot_us = static_cast<std::int64_t>(1e6 / config_.send_rate);
    std::int64_t wait_us = 0;
    {
        const std::int64_t t =
            duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
        std::lock_guard lock(mutex_);
        std::int64_t at = t;
        if (auto p = number_paused_until_.find(item.phone_number_id);
            p != number_paused_until_.end()) {
            at = std::max(at, p->second);
        }
        std::int64_t& number_next = number_next_ms_[item.phone_number_id];
        at = std::max(at, number_next);
        const std::string conversation = item.phone_number_id + ":" + item.recipient;
        std::int64_t& recipient_next = recipient_next_ms_[conversation];
        at = std::max(at, recipient_next);
        number_next = at + slot_us;
        recipient_next = at + config_.recipient_interval.count() * 1000;
        wait_us = at - t;
        // Pacing entries are only worth keeping while they are in the future.
        if (recipient_next_ms_.size() > 100'000) {
            std::erase_if(recipient_next_ms_, [t](const auto& e) { return e.second < t; });
        }
    }
    if (wait_us > 0) {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        timer.expires_after(microseconds(wait_us));
        co_await timer.async_wait(kTuple);
    }
}

asio::awaitable<bool> WhatsAppChannel::send_one(const OutboxItem& item) {
    const std::string rid = new_request_id();
    if (item.kind == "reply") {
        // Free-form messages only inside the 24-hour customer service window.
        auto last = co_await channel_.last_inbound(item.key);
        if (!last)
            co_return false;
        if (!*last || now() - **last > kWindowMs) {
            ++stats_.outside_window;
            ++stats_.send_failed;
            auto failed = co_await channel_.mark_failed(
                item.id, kOutsideWindowCode, "outside the 24-hour window: not sent", now()
            );
            co_return failed.has_value();
        }
    }
    co_await pace(item);
    bool dropped = false;
    {
        // Queued before the citizen's erasure and read by the sender before it (or erased
        // while this waited for its pace): the row is gone, and the message (a notification,
        // or a reply) must not go out after it.
        std::lock_guard lock(mutex_);
        if (auto e = erased_at_.find(item.key);
            e != erased_at_.end() && item.created_at <= e->second) {
            dropped = true;
        }
    }
    if (dropped) {
        // Its row is normally gone with the erasure; one stored just after it (queued before)
        // is closed here, or every pass would read it again.
        ++stats_.dropped_erased;
        auto failed = co_await channel_.mark_failed(item.id, 0, "citizen erased: not sent", now());
        co_return failed.has_value();
    }
    engine::BackendCall call{
        item.id, "whatsapp", "POST", "/" + item.phone_number_id + "/messages", item.body};
    const engine::CallResult result = co_await graph_(std::move(call), rid);
    whatsapp::SendOutcome outcome;
    if (result.outcome == engine::CallResult::Outcome::kResponse) {
        outcome = whatsapp::classify_send(static_cast<unsigned>(result.status), result.body);
    } else {
        outcome.kind = whatsapp::SendOutcome::Kind::kRetry;
        outcome.error_title =
            result.outcome == engine::CallResult::Outcome::kTimeout ? "timeout" : "no answer";
    }
    using Kind = whatsapp::SendOutcome::Kind;
    switch (outcome.kind) {
        case Kind::kSent: {
            ++stats_.send_ok;
            // A send answered without a wamid cannot be matched to statuses; keep it unique.
            const std::string wamid = outcome.wamid.empty() ? "local:" + item.id : outcome.wamid;
            const std::int64_t sent_at = now();
            // The message went out: left queued, it would be sent again. So the record is
            // retried until the store takes it (while the store fails, nothing else can be
            // sent or stored either); only a stop leaves it queued, to be sent after a restart.
            std::chrono::milliseconds pause{50};
            for (;;) {
                auto sent = co_await channel_.mark_sent(item.id, wamid, sent_at);
                if (sent)
                    break;
                Logger::log(
                    LogLevel::kError, rid, "whatsapp_mark_sent_failed", "code=" + sent.error().code
                );
                if (stopping_.load())
                    co_return false;
                asio::steady_timer timer(co_await asio::this_coro::executor);
                timer.expires_after(pause);
                co_await timer.async_wait(kTuple);
                pause = std::min(pause * 2, std::chrono::milliseconds(5000));
            }
            co_return true;
        }
        case Kind::kPermanent: {
            ++stats_.send_failed;
            Logger::log(
                LogLevel::kWarn,
                rid,
                "whatsapp_send_failed",
                "code=" + std::to_string(outcome.error_code) +
                    " status=" + std::to_string(result.status)
            );
            auto failed = co_await channel_.mark_failed(
                item.id,
                outcome.error_code != 0 ? outcome.error_code : result.status,
                outcome.error_title,
                now()
            );
            co_return failed.has_value();
        }
        case Kind::kRetry:
        case Kind::kThrottled:
            break;
    }
    const int attempts = item.attempts + 1;
    const bool throttled = outcome.kind == Kind::kThrottled;
    if (throttled) {
        ++stats_.send_throttled;
    } else {
        ++stats_.send_retry;
    }
    if (attempts >= config_.max_attempts) {
        ++stats_.send_failed;
        Logger::log(
            LogLevel::kWarn,
            rid,
            "whatsapp_send_gave_up",
            "attempts=" + std::to_string(attempts) + " code=" + std::to_string(outcome.error_code)
        );
        auto failed = co_await channel_.mark_failed(
            item.id,
            outcome.error_code,
            "gave up after " + std::to_string(attempts) + " attempts",
            now()
        );
        co_return failed.has_value();
    }
    const std::int64_t delay = backoff_ms(attempts);
    if (throttled && outcome.error_code != 131056) {
        // The number's throughput is exhausted: pause every conversation of that number.
        using namespace std::chrono;
        const std::int64_t until =
            duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count() +
            delay * 1000;
        std::lock_guard lock(mutex_);
        std::int64_t& paused = number_paused_until_[item.phone_number_id];
        paused = std::max(paused, until);
    }
    Logger::log(
        LogLevel::kInfo,
        rid,
        "whatsapp_send_retry",
        std::string("kind=") + std::string(whatsapp::kind_name(outcome.kind)) +
            " code=" + std::to_string(outcome.error_code) + " attempt=" + std::to_string(attempts) +
            " delay_ms=" + std::to_string(delay)
    );
    auto rescheduled = co_await channel_.reschedule(
        item.id,
        attempts,
        now() + delay,
        std::string(whatsapp::kind_name(outcome.kind)) +
            " code=" + std::to_string(outcome.error_code)
    );
    (void)rescheduled;  // a store failure leaves the item due: it is retried either way
    co_return false;
}

asio::awaitable<ApiReply> WhatsAppChannel::notify(
    std::string body, std::string authorization, std::string rid
) {
    if (secrets_.notify_token.empty()) {
        co_return json_error(
            403,
            "forbidden",
            "notifications are disabled (no " + config_.notify_token_env + ")",
            rid
        );
    }
    if (!bearer_matches(authorization, secrets_.notify_token)) {
        Logger::log(LogLevel::kWarn, rid, "notify_unauthorized", "route=notifications");
        co_return json_error(401, "unauthorized", "a valid bearer token is required", rid);
    }
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
    if (doc.HasParseError() || !doc.IsObject())
        co_return json_error(400, "invalid_json", "the body must be a JSON object", rid);
    if (has_duplicate_keys(doc))
        co_return json_error(400, "invalid_json", "the body has a key twice", rid);
    auto field = [&](const char* name, std::size_t max, bool required, std::string& out) -> bool {
        const auto it = doc.FindMember(name);
        if (it == doc.MemberEnd())
            return !required;
        if (!it->value.IsString() || it->value.GetStringLength() == 0 ||
            it->value.GetStringLength() > max) {
            return false;
        }
        out.assign(it->value.GetString(), it->value.GetStringLength());
        return true;
    };

    struct Field {
        const char* name;
        std::string* out;
        bool required;
        std::size_t max;
    };

    std::string citizen, name, lang, key, number;
    const Field fields[] = {
        {"citizen", &citizen, true, kMaxIdBytes},
        {"template", &name, true, 512},
        {"lang", &lang, true, 16},
        {"idempotency_key", &key, true, kMaxIdBytes},
        {"phone_number_id", &number, false, 64},
    };
    for (const Field& f : fields) {
        if (!field(f.name, f.max, f.required, *f.out)) {
            co_return json_error(
                400,
                "invalid_field",
                std::string("'") + f.name + "' must be a non-empty string of at most " +
                    std::to_string(f.max) + " bytes",
                rid
            );
        }
    }
    std::vector<std::string> params;
    if (const auto it = doc.FindMember("params"); it != doc.MemberEnd()) {
        bool ok = it->value.IsArray() && it->value.Size() <= kMaxParams;
        if (ok) {
            for (const auto& p : it->value.GetArray()) {
                if (!p.IsString() || p.GetStringLength() > kMaxParamBytes) {
                    ok = false;
                    break;
                }
                params.emplace_back(p.GetString(), p.GetStringLength());
            }
        }
        if (!ok) {
            co_return json_error(
                400,
                "invalid_field",
                "'params' must be an array of at most 32 strings of at most 1024 bytes",
                rid
            );
        }
    }
    if (number.empty()) {
        if (config_.numbers.size() != 1) {
            co_return json_error(
                400,
                "invalid_field",
                "'phone_number_id' is required when the config does not name exactly one number",
                rid
            );
        }
        number = config_.numbers.front().first;
    }
    // The same spelling as the webhooks' wa_id, so that the consent checked, the session key
    // and the recipient are the citizen's own ("+91..." and "91..." are one person).
    if (auto normalized = whatsapp::normalize_citizen(citizen)) {
        citizen = std::move(*normalized);
    } else {
        co_return json_error(
            400,
            "invalid_field",
            "'citizen' must be a phone number in international format (digits, optionally "
            "after a '+') or a WhatsApp user id",
            rid
        );
    }
    const std::string session_key = "wa:" + number + ":" + citizen;
    auto consent = co_await store_.load_consent(session_key);
    if (!consent)
        co_return store_unavailable(rid);
    if (*consent && !(*consent)->opted_in) {
        ++stats_.notifications_refused;
        co_return json_error(
            409, "opted_out", "the citizen has opted out of messages; nothing was sent", rid
        );
    }
    OutboxItem item;
    item.id = "notify:" + key;
    item.key = session_key;
    item.phone_number_id = number;
    item.recipient = citizen;
    item.body = whatsapp::render_template(citizen, name, lang, params);
    item.kind = "template";
    item.created_at = now();
    item.next_attempt_at = item.created_at;
    const std::string id = item.id;
    auto claimed = co_await channel_.claim_idempotency_key(key, std::move(item));
    if (!claimed)
        co_return store_unavailable(rid);
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    if (*claimed) {
        put(w, "status", "duplicate");
        put(w, "id", **claimed);
        w.EndObject();
        co_return ApiReply{200, std::string(buf.GetString(), buf.GetSize())};
    }
    ++stats_.notifications;
    wake_sender();
    put(w, "status", "queued");
    put(w, "id", id);
    w.EndObject();
    co_return ApiReply{202, std::string(buf.GetString(), buf.GetSize())};
}

asio::awaitable<ApiReply> WhatsAppChannel::admin(
    std::string path, std::string authorization, std::string rid
) {
    if (secrets_.admin_token.empty()) {
        co_return json_error(
            403, "forbidden", "admin queries are disabled (no CIVICFLOW_ADMIN_TOKEN)", rid
        );
    }
    if (!bearer_matches(authorization, secrets_.admin_token)) {
        Logger::log(LogLevel::kWarn, rid, "admin_unauthorized", "route=whatsapp");
        co_return json_error(401, "unauthorized", "a valid admin bearer token is required", rid);
    }
    constexpr std::string_view kMessages = "/v1/admin/whatsapp/messages/";
    rapidjson::StringBuffer buf;
    Writer w(buf);
    if (path == "/v1/admin/whatsapp/deliveries") {
        auto counts = co_await channel_.delivery_counts();
        if (!counts)
            co_return store_unavailable(rid);
        w.StartObject();
        for (auto [name, value] :
             {std::pair{"queued", counts->queued},
              std::pair{"sent", counts->sent},
              std::pair{"delivered", counts->delivered},
              std::pair{"read", counts->read},
              std::pair{"failed", counts->failed}}) {
            w.Key(name);
            w.Int64(value);
        }
        w.EndObject();
        co_return ApiReply{200, std::string(buf.GetString(), buf.GetSize())};
    }
    if (path.rfind(kMessages, 0) != 0)
        co_return json_error(404, "not_found", "no such endpoint", rid);
    auto id = percent_decode(std::string_view(path).substr(kMessages.size()));
    if (!id || id->empty() || id->size() > kMaxIdBytes)
        co_return json_error(400, "invalid_field", "the message id must be 1 to 256 bytes", rid);
    auto found = co_await channel_.find_outbound(*id);
    if (!found)
        co_return store_unavailable(rid);
    if (!*found)
        co_return json_error(404, "not_found", "no outbound message with this id", rid);
    // The record without the recipient and the body: operators see delivery, not content.
    const OutboundRecord& r = **found;
    w.StartObject();
    put(w, "id", r.item.id);
    put(w, "wamid", r.wamid);
    put(w, "kind", r.item.kind);
    put(w, "state", to_string(r.item.state));
    w.Key("attempts");
    w.Int(r.item.attempts);
    for (auto [name, value] :
         {std::pair{"created_at", r.item.created_at},
          std::pair{"sent_at", r.sent_at},
          std::pair{"delivered_at", r.delivered_at},
          std::pair{"read_at", r.read_at},
          std::pair{"failed_at", r.failed_at}}) {
        w.Key(name);
        w.Int64(value);
    }
    w.Key("error_code");
    w.Int(r.error_code);
    put(w, "error_title", r.error_title);
    put(w, "last_error", r.last_error);
    w.EndObject();
    co_return ApiReply{200, std::string(buf.GetString(), buf.GetSize())};
}

asio::awaitable<std::string> WhatsAppChannel::metrics() {
    std::string out;
    auto counter = [&](const char* name, const char* help, std::uint64_t value) {
        detail::append_metric(out, name, "counter", help, value);
    };
    counter("civicflow_whatsapp_webhooks_total", "Signed webhook POSTs accepted.", stats_.webhooks);
    counter(
        "civicflow_whatsapp_bad_signatures_total",
        "Webhook POSTs refused for their signature.",
        stats_.bad_signatures
    );
    counter("civicflow_whatsapp_inbound_total", "New inbound messages stored.", stats_.inbound);
    counter(
        "civicflow_whatsapp_duplicates_total",
        "Redelivered inbound messages recognised.",
        stats_.duplicates
    );
    counter(
        "civicflow_whatsapp_ignored_total",
        "Reactions and unsupported messages ignored.",
        stats_.ignored
    );
    counter("civicflow_whatsapp_turns_total", "Inbound messages whose turn ran.", stats_.turns);
    counter("civicflow_whatsapp_statuses_total", "Status webhooks recorded.", stats_.statuses);
    out +=
        "# HELP civicflow_whatsapp_sends_total Graph API send attempts by outcome.\n"
        "# TYPE civicflow_whatsapp_sends_total counter\n";
    for (auto [label, value] :
         {std::pair{"sent", stats_.send_ok.load()},
          std::pair{"retry", stats_.send_retry.load()},
          std::pair{"throttled", stats_.send_throttled.load()},
          std::pair{"failed", stats_.send_failed.load()},
          std::pair{"outside_window", stats_.outside_window.load()},
          std::pair{"erased", stats_.dropped_erased.load()}}) {
        out += std::string("civicflow_whatsapp_sends_total{outcome=\"") + label + "\"} " +
               std::to_string(value) + "\n";
    }
    counter(
        "civicflow_whatsapp_notifications_total",
        "Template notifications queued.",
        stats_.notifications
    );
    counter(
        "civicflow_whatsapp_notifications_refused_total",
        "Notifications refused because the citizen opted out.",
        stats_.notifications_refused
    );
    auto counts = co_await channel_.delivery_counts();
    if (counts) {
        detail::append_metric(
            out,
            "civicflow_whatsapp_outbound_queued",
            "gauge",
            "Outbound messages waiting to be sent.",
            counts->queued
        );
        out +=
            "# HELP civicflow_whatsapp_outbound_total Outbound messages that reached a state.\n"
            "# TYPE civicflow_whatsapp_outbound_total counter\n";
        for (auto [label, value] :
             {std::pair{"sent", counts->sent},
              std::pair{"delivered", counts->delivered},
              std::pair{"read", counts->read},
              std::pair{"failed", counts->failed}}) {
            out += std::string("civicflow_whatsapp_outbound_total{state=\"") + label + "\"} " +
                   std::to_string(value) + "\n";
        }
    }
    co_return out;
}

asio::awaitable<engine::Result<engine::Ok>> WhatsAppChannel::erase(const std::string& key) {
    auto erased = co_await channel_.erase_citizen(key);
    if (erased) {
        // A sender may hold a due list read before the erasure: see send_one().
        const std::int64_t t = now();
        std::lock_guard lock(mutex_);
        std::erase_if(erased_at_, [t](const auto& e) { return t - e.second > kErasedMemoryMs; });
        erased_at_[key] = t;
    }
    co_return erased;
}

}  // namespace civicflow::server
