/// The in-memory Store: everything about a citizen in one sharded hash map entry, with TTLs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include <civicflow/server/store.hpp>

namespace civicflow::server {

/// Keeps everything in process memory; lost on restart (tests and benchmarks). Thread-safe:
/// 64 shards, each with its own mutex, chosen by a hash of the citizen id, so different
/// citizens rarely contend. Expired entries are treated as absent when read and swept from a
/// shard every 1024 writes, so memory stays bounded by what is live within the TTLs. An idle
/// citizen costs one map node with the encoded session; message ids, consent and pending calls
/// live in a side record allocated only when used. Never fails.
class MemoryStore final : public Store {
public:
    /// Milliseconds since the epoch; injectable so tests control expiry.
    using Clock = std::function<std::int64_t()>;

    explicit MemoryStore(std::chrono::milliseconds message_ttl, Clock clock = {});
    ~MemoryStore() override;
    MemoryStore(const MemoryStore&) = delete;
    MemoryStore& operator=(const MemoryStore&) = delete;

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

    /// Synchronous cores of the operations above (the coroutines only wrap them).
    CitizenState get(const std::string& user, const std::string& message_id);
    void put(TurnWrite write);
    std::optional<Consent> get_consent(const std::string& user);
    void erase(const std::string& user);
    /// Test helpers.
    std::optional<std::string> get_session(const std::string& user);
    void put_session(const std::string& user, std::string session, std::int64_t ttl_ms);
    /// Live (unexpired) sessions, for tests and metrics.
    std::size_t session_count();
    /// Citizens with any entry (sessions, message ids, consent, pending calls).
    std::size_t citizen_count();

private:
    struct Shard;
    Shard& shard_for(const std::string& user);
    std::int64_t now() const;

    std::chrono::milliseconds message_ttl_;
    Clock clock_;
    std::unique_ptr<Shard[]> shards_;
};

}  // namespace civicflow::server
