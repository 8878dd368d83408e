#include "state_cache.hpp"

namespace civicflow::server::detail {

StateCache::StateCache(std::size_t capacity)
    : capacity_(capacity) {}

std::optional<CitizenState> StateCache::find(const std::string& user, std::int64_t now) {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(user);
    if (it == entries_.end()) {
        ++misses_;
        return std::nullopt;
    }
    ++hits_;
    const Entry& e = it->second;
    CitizenState state;
    if (e.session && e.session_expires_at > now)
        state.session = *e.session;
    if (e.pending)
        state.pending = *e.pending;
    return state;
}

void StateCache::fill(
    const std::string& user,
    std::optional<std::string> session,
    std::int64_t session_expires_at,
    std::optional<PendingCall> pending
) {
    if (capacity_ == 0)
        return;
    std::lock_guard lock(mutex_);
    auto it = entries_.find(user);
    if (it == entries_.end()) {
        if (entries_.size() >= capacity_)
            evict_one();
        it = entries_.try_emplace(user).first;
    }
    it->second = Entry{
        std::move(session),
        session_expires_at,
        pending ? std::make_unique<PendingCall>(std::move(*pending)) : nullptr};
}

void StateCache::apply(const TurnWrite& write, std::int64_t now) {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(write.user);
    if (it == entries_.end())
        return;
    Entry& e = it->second;
    if (write.session) {
        e.session = *write.session;
        e.session_expires_at = now + write.session_ttl_ms;
    }
    if (write.clear_pending)
        e.pending.reset();
    if (write.pending)
        e.pending = std::make_unique<PendingCall>(*write.pending);
}

void StateCache::drop_pending(std::int64_t started_at) {
    std::lock_guard lock(mutex_);
    for (auto& [user, e] : entries_) {
        if (e.pending && e.pending->started_at <= started_at)
            e.pending.reset();
    }
}

void StateCache::erase(const std::string& user) {
    std::lock_guard lock(mutex_);
    entries_.erase(user);
}

void StateCache::clear() {
    std::lock_guard lock(mutex_);
    entries_.clear();
}

std::size_t StateCache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

std::uint64_t StateCache::hits() const {
    std::lock_guard lock(mutex_);
    return hits_;
}

std::uint64_t StateCache::misses() const {
    std::lock_guard lock(mutex_);
    return misses_;
}

void StateCache::evict_one() {
    // A random victim: the first entry of a random non-empty bucket. Cheaper to keep than an
    // LRU order updated at every lookup, and as good for a cache this size.
    const std::size_t buckets = entries_.bucket_count();
    std::size_t b = std::uniform_int_distribution<std::size_t>(0, buckets - 1)(random_);
    for (std::size_t i = 0; i < buckets; ++i, b = (b + 1) % buckets) {
        if (entries_.bucket_size(b) > 0) {
            const std::string victim = entries_.begin(b)->first;
            entries_.erase(victim);
            return;
        }
    }
}

}  // namespace civicflow::server::detail
