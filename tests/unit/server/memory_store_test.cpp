#include <doctest/doctest.h>

#include <civicflow/server/memory_store.hpp>

using civicflow::server::MemoryStore;
using civicflow::server::TurnWrite;
using namespace std::chrono_literals;

TEST_SUITE("server/memory_store") {
    TEST_CASE("sessions are stored per citizen and expire after their ttl") {
        std::int64_t now = 1000;
        MemoryStore store(50ms, [&] { return now; });
        CHECK_FALSE(store.get_session("a"));
        store.put_session("a", "session-a", 100);
        store.put_session("b", "session-b", 100);
        CHECK(store.get_session("a") == "session-a");
        CHECK(store.get_session("b") == "session-b");
        CHECK(store.session_count() == 2);
        now += 99;
        CHECK(store.get_session("a") == "session-a");
        now += 1;
        CHECK_FALSE(store.get_session("a"));
        CHECK(store.session_count() == 0);
    }

    TEST_CASE("saving a session restarts its ttl") {
        std::int64_t now = 0;
        MemoryStore store(50ms, [&] { return now; });
        store.put_session("a", "v1", 100);
        now = 90;
        store.put_session("a", "v2", 100);
        now = 150;
        CHECK(store.get_session("a") == "v2");
    }

    TEST_CASE("responses are remembered per citizen and message id with their own ttl") {
        std::int64_t now = 0;
        MemoryStore store(50ms, [&] { return now; });
        TurnWrite w;
        w.user = "a";
        w.message_id = "m1";
        w.response = "r1";
        store.put(w);
        CHECK(store.get("a", "m1").response == "r1");
        CHECK_FALSE(store.get("b", "m1").response);
        CHECK_FALSE(store.get("a", "m2").response);
        now = 50;
        CHECK_FALSE(store.get("a", "m1").response);
    }

    TEST_CASE("expired entries are swept so memory follows what is live") {
        std::int64_t now = 0;
        MemoryStore store(10ms, [&] { return now; });
        for (int i = 0; i < 3000; ++i)
            store.put_session("u" + std::to_string(i), "s", 5);
        CHECK(store.citizen_count() == 3000);
        now = 10;
        // Each shard sweeps every 1024 of its writes: enough writes reach every shard.
        for (int i = 0; i < 3 * 64 * 1024; ++i)
            store.put_session("live" + std::to_string(i % 3000), "s", 1000);
        CHECK(store.citizen_count() == 3000);
    }
}
