#include <civicflow/server/circuit_breaker.hpp>

namespace civicflow::server {

CircuitBreaker::CircuitBreaker(int failures, std::chrono::milliseconds pause)
    : threshold_(failures < 1 ? 1 : failures)
    , pause_ms_(pause.count()) {}

bool CircuitBreaker::allow(std::int64_t now_ms) {
    std::lock_guard lock(mutex_);
    if (!open_)
        return true;
    if (now_ms - opened_at_ < pause_ms_)
        return false;
    // Half-open: let one probe through; everybody else keeps failing fast until it reports.
    if (probe_in_flight_)
        return false;
    probe_in_flight_ = true;
    return true;
}

void CircuitBreaker::record_success() {
    std::lock_guard lock(mutex_);
    consecutive_failures_ = 0;
    open_ = false;
    probe_in_flight_ = false;
}

void CircuitBreaker::record_failure(std::int64_t now_ms) {
    std::lock_guard lock(mutex_);
    ++consecutive_failures_;
    if (open_ || consecutive_failures_ >= threshold_) {
        // A failed probe (or the threshold reached) (re)opens for a full pause.
        open_ = true;
        opened_at_ = now_ms;
    }
    probe_in_flight_ = false;
}

CircuitBreaker::State CircuitBreaker::state(std::int64_t now_ms) const {
    std::lock_guard lock(mutex_);
    if (!open_)
        return State::kClosed;
    return now_ms - opened_at_ < pause_ms_ ? State::kOpen : State::kHalfOpen;
}

}  // namespace civicflow::server
