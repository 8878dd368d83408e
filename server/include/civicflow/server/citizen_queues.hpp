/// Per-citizen FIFO queues: at most one message of a citizen in progress, in arrival order.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>

namespace civicflow::server {

/// An asynchronous lock per citizen id. acquire() completes immediately when nobody holds the
/// citizen's lock, else when every earlier acquirer of that citizen has released it, strictly in
/// the order acquire() was called. Waiting suspends a coroutine, never a thread, so a slow
/// backend call holds one citizen's queue and nothing else. An entry exists only while the
/// citizen has a message in progress, so memory is bounded by the messages in flight.
/// Thread-safe. A waiter is resumed through its own executor, which must be a strand (or a
/// single-threaded io_context): the hand-over is posted there, so it cannot run before the
/// waiter has suspended.
class CitizenQueues {
public:
    /// Held while a citizen's message is processed; releasing it (destruction) hands the lock to
    /// the next waiter of that citizen. Move-only.
    class Lock {
    public:
        Lock() = default;

        Lock(CitizenQueues* owner, std::string user)
            : owner_(owner)
            , user_(std::move(user)) {}

        Lock(Lock&& other) noexcept
            : owner_(other.owner_)
            , user_(std::move(other.user_)) {
            other.owner_ = nullptr;
        }

        Lock& operator=(Lock&& other) noexcept;
        Lock(const Lock&) = delete;
        Lock& operator=(const Lock&) = delete;

        ~Lock() { release(); }

        void release();

        bool owns() const { return owner_ != nullptr; }

    private:
        CitizenQueues* owner_ = nullptr;
        std::string user_;
    };

    CitizenQueues() = default;
    CitizenQueues(const CitizenQueues&) = delete;
    CitizenQueues& operator=(const CitizenQueues&) = delete;

    /// Waits for the citizen's turn. Must be awaited from a coroutine; the CitizenQueues must
    /// outlive every Lock and every pending acquire.
    boost::asio::awaitable<Lock> acquire(std::string user);

    /// Citizens with a message in progress (for tests and metrics).
    std::size_t active() const;
    /// Messages waiting behind another of the same citizen.
    std::size_t waiting() const;

private:
    struct Waiter;  // a suspended acquire(): a timer on its strand and a "granted" flag

    struct Entry {
        // Messages of one citizen rarely overlap, so this is nearly always empty: a vector
        // allocates nothing until used (a deque allocates on construction, once per message).
        std::vector<std::shared_ptr<Waiter>> waiters;
    };

    // Takes the lock if free; else queues `waiter` (when given) under the same mutex.
    bool try_acquire(const std::string& user, const std::shared_ptr<Waiter>* waiter);
    void release(const std::string& user);

    mutable std::mutex mutex_;
    std::unordered_map<std::string, Entry> entries_;  // present <=> someone holds the lock
};

}  // namespace civicflow::server
