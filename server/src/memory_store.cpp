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

// One citizen's data: session plus responses by message id. Keeping them together makes
// erase_citizen a single removal.
struct Citizen {
    std::optional<Entry> session;
    std::unordered_map<std::string, Entry> responses;
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
            if (c.session && c.session->expires_at <= now)
                c.session.reset();
            std::erase_if(c.responses, [now](const auto& kv) {
                return kv.second.expires_at <= now;
            });
            if (!c.session && c.responses.empty()) {
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

MemoryStore::MemoryStore(
    std::chrono::milliseconds session_ttl, std::chrono::milliseconds message_ttl, Clock clock
)
    : session_ttl_(session_ttl)
    , message_ttl_(message_ttl)
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

std::optional<std::string> MemoryStore::get_session(const std::string& user) {
    Shard& s = shard_for(user);
    const std::int64_t t = now();
    std::lock_guard lock(s.mutex);
    auto it = s.citizens.find(user);
    if (it == s.citizens.end() || !it->second.session)
        return std::nullopt;
    if (it->second.session->expires_at <= t) {
        it->second.session.reset();
        return std::nullopt;
    }
    return it->second.session->value;
}

void MemoryStore::put_session(const std::string& user, std::string session) {
    Shard& s = shard_for(user);
    const std::int64_t t = now();
    std::lock_guard lock(s.mutex);
    s.citizens[user].session = Entry{std::move(session), t + session_ttl_.count()};
    s.wrote(t);
}

std::optional<std::string> MemoryStore::get_response(
    const std::string& user, const std::string& message_id
) {
    Shard& s = shard_for(user);
    const std::int64_t t = now();
    std::lock_guard lock(s.mutex);
    auto it = s.citizens.find(user);
    if (it == s.citizens.end())
        return std::nullopt;
    auto r = it->second.responses.find(message_id);
    if (r == it->second.responses.end())
        return std::nullopt;
    if (r->second.expires_at <= t) {
        it->second.responses.erase(r);
        return std::nullopt;
    }
    return r->second.value;
}

void MemoryStore::put_response(
    const std::string& user, const std::string& message_id, std::string response
) {
    Shard& s = shard_for(user);
    const std::int64_t t = now();
    std::lock_guard lock(s.mutex);
    s.citizens[user].responses[message_id] = Entry{std::move(response), t + message_ttl_.count()};
    s.wrote(t);
}

void MemoryStore::erase(const std::string& user) {
    Shard& s = shard_for(user);
    std::lock_guard lock(s.mutex);
    s.citizens.erase(user);
}

std::size_t MemoryStore::session_count() {
    const std::int64_t t = now();
    std::size_t count = 0;
    for (std::size_t i = 0; i < kShards; ++i) {
        std::lock_guard lock(shards_[i].mutex);
        for (const auto& [user, c] : shards_[i].citizens) {
            if (c.session && c.session->expires_at > t)
                ++count;
        }
    }
    return count;
}

boost::asio::awaitable<engine::Result<std::optional<std::string>>> MemoryStore::load_session(
    const std::string& user
) {
    co_return get_session(user);
}

boost::asio::awaitable<engine::Result<engine::Ok>> MemoryStore::save_session(
    const std::string& user, std::string session
) {
    put_session(user, std::move(session));
    co_return engine::Ok{};
}

boost::asio::awaitable<engine::Result<std::optional<std::string>>> MemoryStore::find_response(
    const std::string& user, const std::string& message_id
) {
    co_return get_response(user, message_id);
}

boost::asio::awaitable<engine::Result<engine::Ok>> MemoryStore::remember_response(
    const std::string& user, const std::string& message_id, std::string response
) {
    put_response(user, message_id, std::move(response));
    co_return engine::Ok{};
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
