#include <doctest/doctest.h>

#include <civicflow/server/memory_store.hpp>
#include <civicflow/server/store.hpp>

#include "store_test_support.hpp"

using namespace civicflow;
using namespace std::chrono_literals;

TEST_SUITE("server/store") {
    TEST_CASE("the memory store passes the store conformance checks") {
        std::int64_t now = 1'700'000'000'000;
        testing::StoreUnderTest s{
            std::make_unique<server::MemoryStore>(1h, [&] { return now; }), &now};
        testing::check_store_conformance(s, "");
    }

    TEST_CASE("store addresses are parsed with clear errors") {
        auto memory = server::parse_store_spec("memory");
        REQUIRE(memory);
        CHECK(memory->kind == server::StoreSpec::Kind::kMemory);
        auto sqlite = server::parse_store_spec("sqlite:/var/lib/civicflow/db.sqlite");
        REQUIRE(sqlite);
        CHECK(sqlite->kind == server::StoreSpec::Kind::kSqlite);
        CHECK(sqlite->path == "/var/lib/civicflow/db.sqlite");
        auto redis = server::parse_store_spec("redis://10.0.0.5:6380");
        REQUIRE(redis);
        CHECK(redis->kind == server::StoreSpec::Kind::kRedis);
        CHECK(redis->host == "10.0.0.5");
        CHECK(redis->port == 6380);
        CHECK(server::parse_store_spec("redis://cache")->port == 6379);
        CHECK(
            server::parse_store_spec("sqlite:").error().message ==
            "'sqlite:' needs a file path, e.g. sqlite:civicflow.db"
        );
        CHECK(
            server::parse_store_spec("redis://h:99999").error().message ==
            "invalid port in the redis:// store address"
        );
        CHECK(
            server::parse_store_spec("postgres://x").error().message ==
            "unknown store (expected memory, sqlite:PATH or redis://HOST[:PORT])"
        );
    }

    TEST_CASE("pending calls round-trip through their encoding") {
        server::PendingCall p{
            "m-1", {"f/s/2", "grievances", "POST", "/g", R"({"a":"\"x"})"}, 42, {}};
        auto decoded = server::decode_pending_call(server::encode_pending_call(p));
        REQUIRE(decoded);
        CHECK(*decoded == p);
        CHECK(server::encode_pending_call(p).find("fp") == std::string::npos);
        p.fingerprint = "0123456789abcdef";
        decoded = server::decode_pending_call(server::encode_pending_call(p));
        REQUIRE(decoded);
        CHECK(*decoded == p);
        CHECK(server::decode_pending_call("{}").error().code == "pending_decode");
        CHECK(
            server::decode_pending_call(
                R"({"m":"","fp":1,"id":"c","b":"s","method":"GET","path":"/","body":"","at":1})"
            )
                .error()
                .code == "pending_decode"
        );
    }
}
