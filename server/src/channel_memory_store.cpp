#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <civicflow/server/channel_memory_store.hpp>

namespace civicflow::server {

namespace {

using State = OutboxItem::State;

constexpr std::int64_t kSweepEveryMs = 60'000;

struct InboxEntry {
    InboxItem item;
    std::int64_t seq = 0;
    bool processed = false;
};

struct OutboxEntry {
    OutboundRecord record;
    std::int64_t finished_at = 0;  // when it left kQueued (retention)
};

struct PendingStatus {
    DeliveryStatus status;
    std::int64_t recorded_at = 0;
};

struct Claim {
    std::string outbox_id;
    std::string key;
    std::int64_t claimed_at = 0;
};

// The totals of DeliveryCounts follow the first time a record shows each state's time, and the
// backlog follows records leaving kQueued: the same rules as the SQLite store's triggers.
void count_change(DeliveryCounts& c, const OutboundRecord& before, const OutboundRecord& after) {
    if (before.item.state == State::kQueued && after.item.state != State::kQueued)
        --c.queued;
    c.sent += before.sent_at == 0 && after.sent_at != 0 ? 1 : 0;
    c.delivered += before.delivered_at == 0 && after.delivered_at != 0 ? 1 : 0;
    c.read += before.read_at == 0 && after.read_at != 0 ? 1 : 0;
    c.failed += before.failed_at == 0 && after.failed_at != 0 ? 1 : 0;
}

// A conversation: messages from one business number to one recipient keep their order.
std::string conversation(const OutboxItem& item) {
    std::string c = item.phone_number_id;
    c += '\n';
    c += item.recipient;
    return c;
}

}  // namespace

struct ChannelMemoryStore::Data {
    ChannelRetention retention;
    Clock clock;

    std::mutex mutex;
    std::int64_t next_seq = 1;
    std::int64_t next_sweep = 0;
    std::unordered_map<std::string, InboxEntry> inbox;                      // by wamid
    std::map<std::int64_t, std::string> unprocessed;                        // seq -> wamid
    std::unordered_map<std::string, OutboxEntry> outbox;                    // by id
    std::map<std::int64_t, std::string> queued;                             // seq -> id
    std::unordered_map<std::string, std::string> sent_wamids;               // wamid -> id
    std::unordered_map<std::string, std::vector<PendingStatus>> unmatched;  // by wamid
    std::unordered_map<std::string, std::int64_t> window;                   // key -> last inbound
    std::unordered_map<std::string, Claim> claims;                          // by idempotency key
    DeliveryCounts counts;

    std::int64_t now() const {
        if (clock)
            return clock();
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch()
        )
            .count();
    }

    // Called with the mutex held on every write: a full sweep at most once a minute.
    void maybe_sweep() {
        const std::int64_t t = now();
        if (t < next_sweep)
            return;
        sweep_locked(t);
        next_sweep = t + kSweepEveryMs;
    }

    std::int64_t sweep_locked(std::int64_t t) {
        const std::int64_t inbox_cutoff = t - retention.inbox.count();
        const std::int64_t outbox_cutoff = t - retention.outbox.count();
        std::int64_t deleted = 0;
        deleted += static_cast<std::int64_t>(std::erase_if(inbox, [&](const auto& kv) {
            return kv.second.processed && kv.second.item.received_at <= inbox_cutoff;
        }));
        for (auto it = unmatched.begin(); it != unmatched.end();) {
            deleted += static_cast<std::int64_t>(std::erase_if(it->second, [&](const auto& p) {
                return p.recorded_at <= inbox_cutoff;
            }));
            it = it->second.empty() ? unmatched.erase(it) : std::next(it);
        }
        deleted += static_cast<std::int64_t>(std::erase_if(window, [&](const auto& kv) {
            return kv.second <= inbox_cutoff;
        }));
        for (auto it = outbox.begin(); it != outbox.end();) {
            const OutboxEntry& e = it->second;
            if (e.record.item.state != State::kQueued && e.finished_at <= outbox_cutoff) {
                if (!e.record.wamid.empty())
                    sent_wamids.erase(e.record.wamid);
                it = outbox.erase(it);
                ++deleted;
            } else {
                ++it;
            }
        }
        deleted += static_cast<std::int64_t>(std::erase_if(claims, [&](const auto& kv) {
            return kv.second.claimed_at <= outbox_cutoff;
        }));
        return deleted;
    }

    // Inserts a new queued message; false when its id is already stored.
    bool insert_outbox(OutboxItem item) {
        if (outbox.contains(item.id))
            return false;
        item.seq = next_seq++;
        item.state = State::kQueued;
        queued.emplace(item.seq, item.id);
        const std::string id = item.id;
        OutboxEntry entry;
        entry.record.item = std::move(item);
        outbox.emplace(id, std::move(entry));
        ++counts.queued;
        return true;
    }

    // The queued message `id`, or null.
    OutboxEntry* find_queued(const std::string& id) {
        auto it = outbox.find(id);
        if (it == outbox.end() || it->second.record.item.state != State::kQueued)
            return nullptr;
        return &it->second;
    }

    void unqueue(OutboxEntry& e) { queued.erase(e.record.item.seq); }

    // Stores an inbox item unless its wamid is known; true when it was new. Lock held.
    bool add_inbound(InboxItem item) {
        if (inbox.contains(item.wamid))
            return false;
        const std::int64_t seq = next_seq++;
        unprocessed.emplace(seq, item.wamid);
        const std::string wamid = item.wamid;
        inbox.emplace(wamid, InboxEntry{std::move(item), seq, false});
        return true;
    }

    // Moves a citizen's 24-hour window to `at` unless a later time is known. Lock held.
    void touch_window(const std::string& key, std::int64_t at) {
        auto [it, inserted] = window.try_emplace(key, at);
        if (!inserted)
            it->second = std::max(it->second, at);
    }
};

namespace {

engine::Error missing_ids() {
    return engine::Error{"store", "an outbox item needs an id and a citizen key"};
}

engine::Error missing_wamid() {
    return engine::Error{"store", "an inbox item needs a wamid and a citizen key"};
}

}  // namespace

ChannelMemoryStore::ChannelMemoryStore(ChannelRetention retention, Clock clock)
    : data_(std::make_unique<Data>()) {
    data_->retention = retention;
    data_->clock = std::move(clock);
    data_->next_sweep = data_->now() + kSweepEveryMs;
}

ChannelMemoryStore::~ChannelMemoryStore() = default;

boost::asio::awaitable<engine::Result<bool>> ChannelMemoryStore::add_inbound(InboxItem item) {
    if (item.wamid.empty() || item.key.empty())
        co_return missing_wamid();
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    d.maybe_sweep();
    co_return d.add_inbound(std::move(item));
}

boost::asio::awaitable<engine::Result<std::vector<bool>>> ChannelMemoryStore::receive(
    std::vector<Arrival> arrivals
) {
    for (const Arrival& a : arrivals) {
        if (a.item.wamid.empty() || a.item.key.empty())
            co_return missing_wamid();
    }
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    d.maybe_sweep();
    std::vector<bool> fresh;
    fresh.reserve(arrivals.size());
    for (Arrival& a : arrivals) {
        d.touch_window(a.item.key, a.wrote_at);
        fresh.push_back(d.add_inbound(std::move(a.item)));
    }
    co_return fresh;
}

boost::asio::awaitable<engine::Result<std::vector<InboxItem>>> ChannelMemoryStore::due_inbound(
    std::size_t limit
) {
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    std::vector<InboxItem> out;
    for (auto it = d.unprocessed.begin(); it != d.unprocessed.end() && out.size() < limit; ++it)
        out.push_back(d.inbox.at(it->second).item);
    co_return out;
}

boost::asio::awaitable<engine::Result<bool>> ChannelMemoryStore::mark_processed(std::string wamid) {
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    d.maybe_sweep();
    auto it = d.inbox.find(wamid);
    if (it == d.inbox.end() || it->second.processed)
        co_return false;
    it->second.processed = true;
    // Only the id is needed from now on (deduplication); the message text goes.
    it->second.item.payload.clear();
    it->second.item.payload.shrink_to_fit();
    d.unprocessed.erase(it->second.seq);
    co_return true;
}

boost::asio::awaitable<engine::Result<std::size_t>> ChannelMemoryStore::enqueue(
    std::vector<OutboxItem> items
) {
    // All or none: validate everything before the first insert.
    for (const OutboxItem& item : items) {
        if (item.id.empty() || item.key.empty())
            co_return missing_ids();
    }
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    d.maybe_sweep();
    std::size_t added = 0;
    for (OutboxItem& item : items)
        added += d.insert_outbox(std::move(item)) ? 1 : 0;
    co_return added;
}

boost::asio::awaitable<engine::Result<std::vector<OutboxItem>>> ChannelMemoryStore::due_outbound(
    std::int64_t now, std::size_t limit
) {
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    std::vector<OutboxItem> out;
    // Conversations whose earliest queued message is waiting for a retry.
    std::unordered_set<std::string> held;
    for (auto it = d.queued.begin(); it != d.queued.end() && out.size() < limit; ++it) {
        const OutboxItem& item = d.outbox.at(it->second).record.item;
        std::string conv = conversation(item);
        if (held.contains(conv))
            continue;
        if (item.next_attempt_at > now) {
            held.insert(std::move(conv));
            continue;
        }
        out.push_back(item);
    }
    co_return out;
}

boost::asio::awaitable<engine::Result<bool>> ChannelMemoryStore::mark_sent(
    std::string id, std::string wamid, std::int64_t at
) {
    if (wamid.empty())
        co_return engine::Error{"store", "cannot mark a message sent without its wamid"};
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    d.maybe_sweep();
    OutboxEntry* e = d.find_queued(id);
    if (e == nullptr)
        co_return false;
    if (d.sent_wamids.contains(wamid)) {
        co_return engine::Error{
            "store", "cannot mark a message sent: its wamid belongs to another message"};
    }
    const OutboundRecord before = e->record;
    OutboundRecord& r = e->record;
    r.item.state = State::kSent;
    r.wamid = wamid;
    r.sent_at = at;
    e->finished_at = at;
    // Statuses that overtook the send, in the order Meta stamped them.
    if (auto u = d.unmatched.find(wamid); u != d.unmatched.end()) {
        std::vector<PendingStatus> early = std::move(u->second);
        d.unmatched.erase(u);
        std::sort(early.begin(), early.end(), [](const auto& a, const auto& b) {
            return std::pair(a.status.at, a.status.state) < std::pair(b.status.at, b.status.state);
        });
        for (const PendingStatus& p : early)
            apply_delivery_status(r, p.status);
    }
    count_change(d.counts, before, r);
    d.unqueue(*e);
    d.sent_wamids.emplace(std::move(wamid), std::move(id));
    co_return true;
}

boost::asio::awaitable<engine::Result<bool>> ChannelMemoryStore::reschedule(
    std::string id, int attempts, std::int64_t next_attempt_at, std::string last_error
) {
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    d.maybe_sweep();
    OutboxEntry* e = d.find_queued(id);
    if (e == nullptr)
        co_return false;
    e->record.item.attempts = attempts;
    e->record.item.next_attempt_at = next_attempt_at;
    e->record.last_error = std::move(last_error);
    co_return true;
}

boost::asio::awaitable<engine::Result<bool>> ChannelMemoryStore::mark_failed(
    std::string id, int error_code, std::string error_title, std::int64_t at
) {
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    d.maybe_sweep();
    OutboxEntry* e = d.find_queued(id);
    if (e == nullptr)
        co_return false;
    const OutboundRecord before = e->record;
    OutboundRecord& r = e->record;
    r.item.state = State::kFailed;
    r.failed_at = at;
    r.error_code = error_code;
    r.error_title = std::move(error_title);
    e->finished_at = at;
    count_change(d.counts, before, r);
    d.unqueue(*e);
    co_return true;
}

boost::asio::awaitable<engine::Result<bool>> ChannelMemoryStore::record_status(DeliveryStatus status
) {
    if (status.state == State::kQueued)
        co_return engine::Error{"store", "a delivery status cannot be 'queued'"};
    if (status.wamid.empty())
        co_return engine::Error{"store", "a delivery status needs a wamid"};
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    d.maybe_sweep();
    if (auto s = d.sent_wamids.find(status.wamid); s != d.sent_wamids.end()) {
        OutboundRecord& r = d.outbox.at(s->second).record;
        const OutboundRecord before = r;
        if (apply_delivery_status(r, status))
            count_change(d.counts, before, r);
        co_return true;
    }
    std::vector<PendingStatus>& early = d.unmatched[status.wamid];
    // One per state, the first one kept: a redelivery changes nothing.
    const bool known = std::any_of(early.begin(), early.end(), [&](const PendingStatus& p) {
        return p.status.state == status.state;
    });
    if (!known)
        early.push_back(PendingStatus{std::move(status), d.now()});
    co_return false;
}

boost::asio::awaitable<engine::Result<DeliveryCounts>> ChannelMemoryStore::delivery_counts() {
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    co_return d.counts;
}

boost::asio::awaitable<engine::Result<std::optional<OutboundRecord>>>
ChannelMemoryStore::find_outbound(std::string id_or_wamid) {
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    std::optional<OutboundRecord> out;
    if (auto it = d.outbox.find(id_or_wamid); it != d.outbox.end()) {
        out = it->second.record;
    } else if (auto s = d.sent_wamids.find(id_or_wamid); s != d.sent_wamids.end()) {
        out = d.outbox.at(s->second).record;
    }
    co_return out;
}

boost::asio::awaitable<engine::Result<engine::Ok>> ChannelMemoryStore::touch_inbound(
    std::string key, std::int64_t at
) {
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    d.maybe_sweep();
    d.touch_window(key, at);
    co_return engine::Ok{};
}

boost::asio::awaitable<engine::Result<std::optional<std::int64_t>>>
ChannelMemoryStore::last_inbound(std::string key) {
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    std::optional<std::int64_t> out;
    if (auto it = d.window.find(key); it != d.window.end())
        out = it->second;
    co_return out;
}

boost::asio::awaitable<engine::Result<std::optional<std::string>>>
ChannelMemoryStore::claim_idempotency_key(std::string idempotency_key, OutboxItem item) {
    if (item.id.empty() || item.key.empty())
        co_return missing_ids();
    if (idempotency_key.empty())
        co_return engine::Error{"store", "an idempotency key cannot be empty"};
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    d.maybe_sweep();
    std::optional<std::string> existing;
    if (auto it = d.claims.find(idempotency_key); it != d.claims.end()) {
        existing = it->second.outbox_id;
        co_return existing;
    }
    d.claims.emplace(std::move(idempotency_key), Claim{item.id, item.key, d.now()});
    d.insert_outbox(std::move(item));
    co_return existing;
}

boost::asio::awaitable<engine::Result<engine::Ok>> ChannelMemoryStore::erase_citizen(std::string key
) {
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    for (auto it = d.inbox.begin(); it != d.inbox.end();) {
        if (it->second.item.key == key) {
            d.unprocessed.erase(it->second.seq);
            it = d.inbox.erase(it);
        } else {
            ++it;
        }
    }
    for (auto it = d.outbox.begin(); it != d.outbox.end();) {
        const OutboundRecord& r = it->second.record;
        if (r.item.key == key) {
            if (r.item.state == State::kQueued) {
                d.queued.erase(r.item.seq);
                --d.counts.queued;
            }
            if (!r.wamid.empty())
                d.sent_wamids.erase(r.wamid);
            it = d.outbox.erase(it);
        } else {
            ++it;
        }
    }
    d.window.erase(key);
    std::erase_if(d.claims, [&](const auto& kv) { return kv.second.key == key; });
    co_return engine::Ok{};
}

boost::asio::awaitable<engine::Result<std::int64_t>> ChannelMemoryStore::sweep() {
    Data& d = *data_;
    std::lock_guard lock(d.mutex);
    co_return d.sweep_locked(d.now());
}

boost::asio::awaitable<engine::Result<engine::Ok>> ChannelMemoryStore::ping() {
    co_return engine::Ok{};
}

}  // namespace civicflow::server
