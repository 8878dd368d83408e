/// A circuit breaker per backend: stop calling a backend that keeps failing, probe it later.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace civicflow::server {

/// Closed: calls pass; `failures` consecutive failures open it. Open: calls are refused without
/// touching the network until `pause` has passed. Half-open: exactly one probe call passes; its
/// success closes the breaker, its failure opens it for another pause.
/// Thread-safe. Time is passed in (milliseconds, any monotonic origin) so tests drive it.
class CircuitBreaker {
public:
    enum class State { kClosed, kOpen, kHalfOpen };

    CircuitBreaker(int failures, std::chrono::milliseconds pause);

    /// Whether a call may go out now. In half-open state the first caller gets true (and must
    /// report the outcome), later callers false until it does.
    bool allow(std::int64_t now_ms);
    void record_success();
    void record_failure(std::int64_t now_ms);
    State state(std::int64_t now_ms) const;

private:
    mutable std::mutex mutex_;
    int threshold_;
    std::int64_t pause_ms_;
    int consecutive_failures_ = 0;
    bool open_ = false;
    std::int64_t opened_at_ = 0;
    bool probe_in_flight_ = false;
};

}  // namespace civicflow::server
