#include <doctest/doctest.h>

#include <civicflow/server/circuit_breaker.hpp>

using civicflow::server::CircuitBreaker;
using namespace std::chrono_literals;

TEST_SUITE("server/circuit_breaker") {
    TEST_CASE("the breaker opens after the configured number of consecutive failures") {
        CircuitBreaker b(3, 1000ms);
        CHECK(b.allow(0));
        b.record_failure(0);
        b.record_failure(1);
        CHECK(b.state(1) == CircuitBreaker::State::kClosed);
        CHECK(b.allow(2));
        b.record_failure(2);
        CHECK(b.state(2) == CircuitBreaker::State::kOpen);
        CHECK_FALSE(b.allow(500));
    }

    TEST_CASE("a success resets the count of consecutive failures") {
        CircuitBreaker b(2, 1000ms);
        b.record_failure(0);
        b.record_success();
        b.record_failure(1);
        CHECK(b.state(1) == CircuitBreaker::State::kClosed);
        CHECK(b.allow(1));
    }

    TEST_CASE("after the pause exactly one probe passes and its success closes the breaker") {
        CircuitBreaker b(1, 1000ms);
        b.record_failure(0);
        CHECK_FALSE(b.allow(999));
        CHECK(b.state(1000) == CircuitBreaker::State::kHalfOpen);
        CHECK(b.allow(1000));
        CHECK_FALSE(b.allow(1001));
        b.record_success();
        CHECK(b.state(1002) == CircuitBreaker::State::kClosed);
        CHECK(b.allow(1002));
    }

    TEST_CASE("a failed probe opens the breaker for another full pause") {
        CircuitBreaker b(1, 1000ms);
        b.record_failure(0);
        CHECK(b.allow(1500));
        b.record_failure(1500);
        CHECK_FALSE(b.allow(2400));
        CHECK(b.allow(2500));
    }
}
