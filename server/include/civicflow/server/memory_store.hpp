/// The in-memory Store: one compact record per citizen in flat hash tables, with TTLs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <civicflow/server/store.hpp>

namespace civicflow::server {

/// Keeps everything in process memory; lost on restart (tests, benchmarks, one-instance demos).
/// Thread-safe: 16 shards, each with its own mutex, chosen by a hash of the citizen id.
///
/// Memory is what this store is about (a helpline holds every citizen who stopped mid-form for a
/// week): an idle citizen costs one heap block holding the session's expiry, the citizen id and
/// the session, plus one pointer in an open-addressing table. The session is kept packed: the
/// parts many citizens share (the JSON keys, flow and state names, the history, the flow set
/// version) become one-byte references into the shard's phrase dictionary (reference-counted,
/// so it holds only what live sessions use), long numbers (timestamps) become varints, and what
/// a citizen typed (slot values) is kept as it is. Packing is exact for any string: get()
/// returns byte for byte what was stored. Message ids, consent and pending calls live in a side
/// map, allocated only for citizens who have them.
///
/// Expired entries are treated as absent when read. Every write also examines two slots of its
/// shard's table and drops what has expired there (so a table is swept once per half its size in
/// writes, with no per-entry expiry structure), and the side map is swept whenever it has seen
/// as many writes as it has entries (at least 1,024). Never fails.
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
    /// Distinct phrases held by the shards' dictionaries (tests and metrics).
    std::size_t phrase_count();

private:
    struct Shard;
    Shard& shard_for(std::size_t hash);
    std::int64_t now() const;

    std::chrono::milliseconds message_ttl_;
    Clock clock_;
    std::unique_ptr<Shard[]> shards_;
};

}  // namespace civicflow::server
