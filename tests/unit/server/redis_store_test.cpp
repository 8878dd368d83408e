#include <chrono>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

#include <civicflow/server/redis_store.hpp>

#include "store_test_support.hpp"

namespace asio = boost::asio;
using namespace civicflow;
using civicflow::testing::run;
using namespace std::chrono_literals;

namespace {

// The store's own io_context on a thread, as in the server; tests await from their own.
struct RedisFixture {
    RedisFixture()
        : work(asio::make_work_guard(ioc))
        , thread([this] { ioc.run(); }) {}

    ~RedisFixture() {
        store.reset();
        work.reset();
        ioc.stop();
        thread.join();
    }

    std::unique_ptr<server::RedisStore> open(std::chrono::milliseconds lease_wait = 10s) {
        server::RedisStore::Options options;
        options.port = redis.port();
        options.message_ttl = 1h;
        options.lease_ttl = 5s;
        options.lease_wait = lease_wait;
        auto s = server::RedisStore::create(ioc.get_executor(), options);
        auto* raw = s.get();
        wait_until([raw] { return raw->connected(); });
        return s;
    }

    static bool wait_until(const std::function<bool()>& done) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline)
                return false;
            std::this_thread::sleep_for(5ms);
        }
        return true;
    }

    testing::RedisServer redis;
    asio::io_context ioc;
    asio::executor_work_guard<asio::io_context::executor_type> work;
    std::thread thread;
    std::unique_ptr<server::RedisStore> store;
};

}  // namespace

TEST_SUITE("server/redis_store") {
    TEST_CASE("the redis store passes the store conformance checks") {
        if (!testing::RedisServer::available()) {
            MESSAGE("redis-server not installed: skipped");
            return;
        }
        RedisFixture f;
        REQUIRE(f.redis.running());
        testing::StoreUnderTest s{f.open(), nullptr, false};
        testing::check_store_conformance(s, "");
        s.store.reset();
    }

    TEST_CASE("a citizen's lease is exclusive until released") {
        if (!testing::RedisServer::available())
            return;
        RedisFixture f;
        auto a = f.open(50ms);
        auto b = f.open(50ms);
        auto lease = run(a->acquire_lease("919800000001"));
        REQUIRE(lease);
        auto denied = run(b->acquire_lease("919800000001"));
        REQUIRE_FALSE(denied);
        CHECK(denied.error().message == "timed out waiting for a citizen lease");
        CHECK(run(b->acquire_lease("919800000002")));
        run(a->release_lease(*lease));
        CHECK(run(b->acquire_lease("919800000001")));
    }

    TEST_CASE("with redis down operations fail, and the store reconnects by itself") {
        if (!testing::RedisServer::available())
            return;
        RedisFixture f;
        auto store = f.open();
        REQUIRE(run(store->ping()));
        f.redis.stop();
        REQUIRE(RedisFixture::wait_until([&] { return !store->connected(); }));
        auto down = run(store->load("u", "m"));
        REQUIRE_FALSE(down);
        CHECK(down.error().code == "store");
        CHECK(down.error().message == "redis is unreachable");
        CHECK_FALSE(run(store->ping()));
        REQUIRE(f.redis.start());
        CHECK(RedisFixture::wait_until([&] { return store->connected(); }));
        CHECK(run(store->ping()));
    }
}
