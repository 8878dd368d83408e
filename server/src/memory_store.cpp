#include <chrono>
#include <mutex>
#include <utility>

#include <civicflow/server/memory_store.hpp>

namespace civicflow::server {
namespace {

constexpr std::size_t kShards = 64;
constexpr std::uint32_t kSweepEvery = 1024;

struct Entry {
    std::string value;
    std::int64_t expires_at = 0;
};

// What only some citizens have: kept out of line so that an idle session costs one pointer.
struct Extra {
    std::unordered_map<std::string, Entry> responses;
    std::optional<Consent> consent;
    std::optional<PendingCall> pending;

    bool empty() const { return responses.empty() && !consent && !pending; }
};

// One citizen's data. Keeping it together makes erase_citizen a single removal.
struct Citizen {
    std::string session;  // empty: none
    std::int64_t session_expires = 0;
    std::unique_ptr<Extra> extra;  // null: nothing but the session

    Extra& more() {
        if (!extra)
            extra = std::make_unique<Extra>();
        return *extra;
    }
};

}  // namespace

struct MemoryStore::Shard {
    std::mutex mutex;
    std::unordered_map<std::string, Citizen> citizens;
    std::uint32_t writes = 0;

    // Drops expired entries of this shard; called with the mutex held.
    void sweep(std::int64_t now) {
        for (auto it = citizens.begin(); it != citizens.end();) {
            Citizen& c = it->second;
            if (!c.session.empty() && c.session_expires <= now) {
                c.session.clear();
                c.session.shrink_to_fit();
            }
            if (c.extra) {
                std::erase_if(c.extra->responses, [now](const auto& kv) {
                    return kv.second.expires_at <= now;
                });
                if (c.extra->empty())
                    c.extra.reset();
            }
            if (c.session.empty() && !c.extra) {
                it = citizens.erase(it);
            } else {
                ++it;
            }
        }
    }

    void wrote(std::int64_t now) {
        if (++writes % kSweepEvery == 0)
            sweep(now);
    }
};

MemoryStore::MemoryStore(std::chrono::milliseconds message_ttl, Clock clock)
    : message_ttl_(message_ttl)
    , clock_(std::move(clock))
    , shards_(std::make_unique<Shard[]>(kShards)) {}

MemoryStore::~MemoryStore() = default;

std::int64_t MemoryStore::now() const {
    if (clock_)
        return clock_();
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch()
    )
        .count();
}

MemoryStore::Shard& MemoryStore::shard_for(const std::string& user) {
    return shards_[std::hash<std::string>{}(user) % kShards];
}

CitizenState MemoryStore::get(const std::string& user, const std::string& message_id) {
    Shard& s = shard_for(user);
    const std::int64_t t = now();
    CitizenState out;
    std::lock_guard lock(s.mutex);
    auto it = s.citizens.find(user);
    if (it == s.citizens.end())
        return out;
    Citizen& c = it->second;
    if (!c.session.empty() && c.session_expires > t)
        out.session = c.session;
    if (c.extra) {
        if (!message_id.empty()) {
            auto r = c.extra->responses.find(message_id);
            if (r != c.extra->responses.end() && r->second.expires_at > t)
                out.response = r->second.value;
        }
        out.pending = c.extra->pending;
    }
    return out;
}

void MemoryStore::put(TurnWrite w) {
    Shard& s = shard_for(w.user);
    const std::int64_t t = now();
    std::lock_guard lock(s.mutex);
    Citizen& c = s.citizens[w.user];
    if (w.session) {
        c.session = std::move(*w.session);
        c.session_expires = t + w.session_ttl_ms;
    }
    if (!w.message_id.empty()) {
        c.more().responses[w.message_id] = Entry{std::move(w.response), t + message_ttl_.count()};
    }
    if (w.consent)
        c.more().consent = std::move(w.consent);
    if (w.clear_pending && c.extra)
        c.extra->pending.reset();
    if (w.pending)
        c.more().pending = std::move(w.pending);
    if (c.extra && c.extra->empty())
        c.extra.reset();
    s.wrote(t);
}

std::optional<Consent> MemoryStore::get_consent(const std::string& user) {
    Shard& s = shard_for(user);
    std::lock_guard lock(s.mutex);
    auto it = s.citizens.find(user);
    if (it == s.citizens.end() || !it->second.extra)
        return std::nullopt;
    return it->second.extra->consent;
}

void MemoryStore::erase(const std::string& user) {
    Shard& s = shard_for(user);
    std::lock_guard lock(s.mutex);
    s.citizens.erase(user);
}

std::optional<std::string> MemoryStore::get_session(const std::string& user) {
    return get(user, {}).session;
}

void MemoryStore::put_session(const std::string& user, std::string session, std::int64_t ttl_ms) {
    TurnWrite w;
    w.user = user;
    w.session = std::move(session);
    w.session_ttl_ms = ttl_ms;
    put(std::move(w));
}

std::size_t MemoryStore::session_count() {
    const std::int64_t t = now();
    std::size_t count = 0;
    for (std::size_t i = 0; i < kShards; ++i) {
        std::lock_guard lock(shards_[i].mutex);
        for (const auto& [user, c] : shards_[i].citizens) {
            if (!c.session.empty() && c.session_expires > t)
                ++count;
        }
    }
    return count;
}

std::size_t MemoryStore::citizen_count() {
    std::size_t count = 0;
    for (std::size_t i = 0; i < kShards; ++i) {
        std::lock_guard lock(shards_[i].mutex);
        count += shards_[i].citizens.size();
    }
    return count;
}

boost::asio::awaitable<engine::Result<CitizenState>> MemoryStore::load(
    const std::string& user, const std::string& message_id
) {
    co_return get(user, message_id);
}

boost::asio::awaitable<engine::Result<engine::Ok>> MemoryStore::write(TurnWrite write) {
    put(std::move(write));
    co_return engine::Ok{};
}

boost::asio::awaitable<engine::Result<std::optional<Consent>>> MemoryStore::load_consent(
    const std::string& user
) {
    co_return get_consent(user);
}

boost::asio::awaitable<engine::Result<engine::Ok>> MemoryStore::erase_citizen(
    const std::string& user
) {
    erase(user);
    co_return engine::Ok{};
}

boost::asio::awaitable<engine::Result<engine::Ok>> MemoryStore::ping() {
    co_return engine::Ok{};
}

}  // namespace civicflow::server
