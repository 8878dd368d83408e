#include <doctest/doctest.h>

#include <civicflow/server/response_cache.hpp>

using civicflow::server::ResponseCache;
using namespace std::chrono_literals;

TEST_SUITE("server/response_cache") {
    TEST_CASE("entries are served until their ttl passes") {
        ResponseCache cache(100ms, 10);
        cache.put("/a", {200, "{\"x\":1}"}, 0);
        auto hit = cache.get("/a", 99);
        REQUIRE(hit);
        CHECK(hit->status == 200);
        CHECK(hit->body == "{\"x\":1}");
        CHECK_FALSE(cache.get("/a", 100));
    }

    TEST_CASE("a zero ttl disables the cache") {
        ResponseCache cache(0ms, 10);
        CHECK_FALSE(cache.enabled());
        cache.put("/a", {200, "{}"}, 0);
        CHECK_FALSE(cache.get("/a", 0));
        CHECK(cache.size() == 0);
    }

    TEST_CASE("a full cache evicts expired entries first, then the one closest to expiry") {
        ResponseCache cache(100ms, 2);
        cache.put("/old", {200, "o"}, 0);
        cache.put("/mid", {200, "m"}, 50);
        cache.put("/new", {200, "n"}, 60);  // full: /old expires first and goes
        CHECK(cache.size() == 2);
        CHECK_FALSE(cache.get("/old", 61));
        CHECK(cache.get("/mid", 61));
        cache.put("/later", {200, "l"}, 200);  // /mid and /new have expired by now
        CHECK(cache.get("/later", 201));
        CHECK(cache.size() == 1);
    }
}
