// The SQLite store's cache of sessions and pending calls.
#include "state_cache.hpp"

#include <string>

#include <doctest/doctest.h>

using civicflow::server::PendingCall;
using civicflow::server::TurnWrite;
using civicflow::server::detail::StateCache;

namespace {

PendingCall pending_at(std::int64_t started_at) {
    PendingCall p;
    p.message_id = "m1";
    p.call.id = "status";
    p.call.backend = "status";
    p.call.method = "GET";
    p.call.path = "/status/1";
    p.started_at = started_at;
    return p;
}

}  // namespace

TEST_SUITE("server/state_cache") {
    TEST_CASE("a citizen never read is not cached; one read is, absent session included") {
        StateCache cache(10);
        CHECK_FALSE(cache.find("u1", 0));
        cache.fill("u1", std::nullopt, 0, std::nullopt);
        const auto state = cache.find("u1", 0);
        REQUIRE(state);
        CHECK_FALSE(state->session);
        CHECK_FALSE(state->pending);
        CHECK(cache.hits() == 1);
        CHECK(cache.misses() == 1);
    }

    TEST_CASE("a session is there until its expiry, a pending call until the sweep drops it") {
        StateCache cache(10);
        cache.fill("u1", "s1", 500, pending_at(100));
        cache.fill("u2", "s2", 500, pending_at(300));
        auto before = cache.find("u1", 499);
        REQUIRE(before);
        CHECK(before->session == "s1");
        CHECK(before->pending == pending_at(100));
        auto after = cache.find("u1", 500);
        REQUIRE(after);
        CHECK_FALSE(after->session);
        CHECK(after->pending);
        cache.drop_pending(200);
        CHECK_FALSE(cache.find("u1", 0)->pending);
        CHECK(cache.find("u2", 0)->pending == pending_at(300));
    }

    TEST_CASE("a write changes a cached citizen the way the database changes") {
        StateCache cache(10);
        cache.fill("u1", "old", 100, std::nullopt);
        TurnWrite w;
        w.user = "u1";
        w.session = "new";
        w.session_ttl_ms = 50;
        w.pending = pending_at(200);
        cache.apply(w, 200);
        auto state = cache.find("u1", 249);
        REQUIRE(state);
        CHECK(state->session == "new");
        CHECK(state->pending == pending_at(200));
        CHECK_FALSE(cache.find("u1", 250)->session);

        // No session in the write: the session stays; the pending call completes.
        TurnWrite done;
        done.user = "u1";
        done.clear_pending = true;
        cache.apply(done, 210);
        state = cache.find("u1", 220);
        REQUIRE(state);
        CHECK(state->session == "new");
        CHECK_FALSE(state->pending);
    }

    TEST_CASE("a write for a citizen not cached does not cache it (its pending call is unknown)") {
        StateCache cache(10);
        TurnWrite w;
        w.user = "u2";
        w.session = "s";
        w.session_ttl_ms = 50;
        cache.apply(w, 0);
        CHECK_FALSE(cache.find("u2", 0));
        CHECK(cache.size() == 0);
    }

    TEST_CASE("erase and clear forget; a full cache drops one citizen per citizen added") {
        StateCache cache(3);
        for (int i = 0; i < 10; ++i)
            cache.fill("u" + std::to_string(i), "s", 100, std::nullopt);
        CHECK(cache.size() == 3);
        CHECK(cache.find("u9", 0));  // the one just added is kept
        cache.erase("u9");
        CHECK_FALSE(cache.find("u9", 0));
        CHECK(cache.size() == 2);
        cache.clear();
        CHECK(cache.size() == 0);
    }

    TEST_CASE("capacity 0 caches nothing") {
        StateCache cache(0);
        cache.fill("u1", "s", 100, std::nullopt);
        CHECK_FALSE(cache.find("u1", 0));
        CHECK(cache.size() == 0);
    }
}
