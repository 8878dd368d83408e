#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <civicflow/server/memory_store.hpp>

using civicflow::server::MemoryStore;
using namespace std::chrono_literals;

TEST_SUITE("server/memory_store") {
    TEST_CASE("sessions are stored per citizen and expire after their ttl") {
        std::int64_t now = 1000;
        MemoryStore store(100ms, 50ms, [&] { return now; });
        CHECK_FALSE(store.get_session("a"));
        store.put_session("a", "session-a");
        store.put_session("b", "session-b");
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
        MemoryStore store(100ms, 50ms, [&] { return now; });
        store.put_session("a", "v1");
        now = 90;
        store.put_session("a", "v2");
        now = 150;
        CHECK(store.get_session("a") == "v2");
    }

    TEST_CASE("responses are remembered per citizen and message id with their own ttl") {
        std::int64_t now = 0;
        MemoryStore store(1000ms, 50ms, [&] { return now; });
        store.put_response("a", "m1", "r1");
        CHECK(store.get_response("a", "m1") == "r1");
        CHECK_FALSE(store.get_response("b", "m1"));
        CHECK_FALSE(store.get_response("a", "m2"));
        now = 50;
        CHECK_FALSE(store.get_response("a", "m1"));
    }

    TEST_CASE("erasing a citizen drops the session and every remembered response") {
        MemoryStore store(1000ms, 1000ms, [] { return std::int64_t{0}; });
        store.put_session("a", "s");
        store.put_response("a", "m1", "r1");
        store.put_session("b", "s");
        store.erase("a");
        CHECK_FALSE(store.get_session("a"));
        CHECK_FALSE(store.get_response("a", "m1"));
        CHECK(store.get_session("b") == "s");
    }

    TEST_CASE("the coroutine interface completes with the stored values") {
        MemoryStore store(1000ms, 1000ms, [] { return std::int64_t{0}; });
        boost::asio::io_context ioc;
        auto done = boost::asio::co_spawn(
            ioc,
            [&]() -> boost::asio::awaitable<std::string> {
                co_await store.save_session("a", "s1");
                co_await store.remember_response("a", "m", "r");
                auto session = co_await store.load_session("a");
                auto response = co_await store.find_response("a", "m");
                auto ping = co_await store.ping();
                co_return **session + "/" + **response + (ping ? "/ok" : "/down");
            },
            boost::asio::use_future
        );
        ioc.run();
        CHECK(done.get() == "s1/r/ok");
    }
}
