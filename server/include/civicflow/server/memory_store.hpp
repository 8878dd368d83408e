/// The in-memory Store: sessions and processed message ids in sharded hash maps with TTLs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include <civicflow/server/store.hpp>

namespace civicflow::server {

/// Keeps everything in process memory; lost on restart. Thread-safe: 64 shards, each with its
/// own mutex, chosen by a hash of the citizen id, so different citizens rarely contend.
/// Expired entries are treated as absent when read and swept from a shard every 1024 writes,
/// so memory stays bounded by what is live within the TTLs. Never fails.
class MemoryStore final : public Store {
public:
    /// Milliseconds since the epoch; injectable so tests control expiry.
    using Clock = std::function<std::int64_t()>;

    MemoryStore(
        std::chrono::milliseconds session_ttl,
        std::chrono::milliseconds message_ttl,
        Clock clock = {}
    );
    ~MemoryStore() override;
    MemoryStore(const MemoryStore&) = delete;
    MemoryStore& operator=(const MemoryStore&) = delete;

    boost::asio::awaitable<engine::Result<std::optional<std::string>>> load_session(
        const std::string& user
    ) override;
    boost::asio::awaitable<engine::Result<engine::Ok>> save_session(
        const std::string& user, std::string session
    ) override;
    boost::asio::awaitable<engine::Result<std::optional<std::string>>> find_response(
        const std::string& user, const std::string& message_id
    ) override;
    boost::asio::awaitable<engine::Result<engine::Ok>> remember_response(
        const std::string& user, const std::string& message_id, std::string response
    ) override;
    boost::asio::awaitable<engine::Result<engine::Ok>> erase_citizen(const std::string& user
    ) override;
    boost::asio::awaitable<engine::Result<engine::Ok>> ping() override;

    /// Synchronous cores of the operations above (the coroutines only wrap them).
    std::optional<std::string> get_session(const std::string& user);
    void put_session(const std::string& user, std::string session);
    std::optional<std::string> get_response(const std::string& user, const std::string& message_id);
    void put_response(const std::string& user, const std::string& message_id, std::string response);
    void erase(const std::string& user);
    /// Live (unexpired) sessions, for tests and metrics.
    std::size_t session_count();

private:
    struct Shard;
    Shard& shard_for(const std::string& user);
    std::int64_t now() const;

    std::chrono::milliseconds session_ttl_;
    std::chrono::milliseconds message_ttl_;
    Clock clock_;
    std::unique_ptr<Shard[]> shards_;
};

}  // namespace civicflow::server
