// The SQLite store's cache of sessions and pending calls (private to the server).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>

#include <civicflow/server/store.hpp>

namespace civicflow::server::detail {

// What the SQLite store last read or wrote of recently active citizens: the session with its
// expiry and the pending call, so that loading the next message of a citizen needs no trip to
// the writer thread. Only the writer thread fills and changes it, in the order of its
// transactions, so it always holds what the database holds for a cached citizen (one process
// owns the file); I/O threads only look up. Bounded: past `capacity` citizens, a random one is
// dropped for each one added. Thread-safe.
class StateCache {
public:
    // `capacity` 0: nothing is ever cached.
    explicit StateCache(std::size_t capacity);

    // The session (when not expired at `now`, ms since the epoch) and pending call of `user`,
    // or nullopt when the citizen is not cached.
    std::optional<CitizenState> find(const std::string& user, std::int64_t now);

    // After a read: what the database holds for `user` (the session and its expiry, if any).
    void fill(
        const std::string& user,
        std::optional<std::string> session,
        std::int64_t session_expires_at,
        std::optional<PendingCall> pending
    );

    // After a write of `write` at `now` ran in the transaction (on the writer thread): the same
    // change to a cached citizen. A citizen not cached stays so (its pending call is unknown).
    void apply(const TurnWrite& write, std::int64_t now);

    // The sweep deleted the pending calls started at or before `started_at`.
    void drop_pending(std::int64_t started_at);

    // The citizen's rows were deleted (erasure), or the transaction that changed them was
    // rolled back: forget what is cached.
    void erase(const std::string& user);
    void clear();

    std::size_t size() const;
    std::uint64_t hits() const;
    std::uint64_t misses() const;

private:
    struct Entry {
        std::optional<std::string> session;
        std::int64_t session_expires_at = 0;
        std::unique_ptr<PendingCall> pending;  // rare: kept out of line (a PendingCall is ~200 B)
    };

    // Makes room for one more entry (the lock held).
    void evict_one();

    const std::size_t capacity_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Entry> entries_;
    std::minstd_rand random_;
    std::uint64_t hits_ = 0;
    std::uint64_t misses_ = 0;
};

}  // namespace civicflow::server::detail
