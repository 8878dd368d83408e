#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

#include <civicflow/server/redis_store.hpp>

#include "store_test_support.hpp"

#include <hiredis/hiredis.h>

namespace asio = boost::asio;
using namespace civicflow;
using civicflow::testing::run;
using namespace std::chrono_literals;

namespace {

// The store's own io_context on a thread, as in the server; tests await from their own.
struct RedisFixture {
    explicit RedisFixture(
        std::string dir = {}, bool aof = true, std::vector<std::string> extra_args = {}
    )
        : redis(std::move(dir), aof, std::move(extra_args)) {}

    std::unique_ptr<server::RedisStore> open(
        std::chrono::milliseconds lease_wait = 10s, std::chrono::milliseconds timeout = 2s
    ) {
        server::RedisStore::Options options;
        options.port = redis.port();
        options.message_ttl = 1h;
        options.lease_ttl = 5s;
        options.lease_wait = lease_wait;
        options.command_timeout = timeout;
        options.erasure_rewrite = erasure_rewrite;
        auto s = server::RedisStore::create(io.ioc.get_executor(), options);
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

    std::chrono::milliseconds erasure_rewrite = 10min;
    testing::RedisServer redis;
    testing::IoThread io;
    std::unique_ptr<server::RedisStore> store;  // after `io`: destroyed before it stops
};

// Whether any file under `dir` (Redis's append-only files) holds `needle`.
bool any_file_holds(const std::string& dir, const std::string& needle) {
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
        if (e.is_regular_file() && testing::file_bytes(e.path()).find(needle) != std::string::npos)
            return true;
    }
    return false;
}

server::TurnWrite citizen_turn(const std::string& user, const std::string& name) {
    server::TurnWrite w;
    w.user = user;
    w.session = R"({"v":1,"flow":"birth","slots":{"child_name":")" + name + R"("}})";
    w.session_ttl_ms = 3'600'000;
    w.message_id = "wamid.HBgM" + user;
    w.response = R"({"replies":[{"type":"text","text":"Thank you, )" + name + R"("}]})";
    return w;
}

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

    // Redis frozen (or the network gone quiet) must not hold requests without an answer: past
    // command_timeout the connection is dropped, waiting commands fail, and the store
    // reconnects by itself once Redis answers again.
    TEST_CASE("a command unanswered past the timeout fails, and the store recovers") {
        if (!testing::RedisServer::available())
            return;
        RedisFixture f;
        auto s = f.open(10s, 300ms);
        REQUIRE(run(s->ping()));
        f.redis.pause();
        const auto start = std::chrono::steady_clock::now();
        auto frozen = run(s->load("919800000009", ""));
        const auto waited = std::chrono::steady_clock::now() - start;
        f.redis.resume();
        REQUIRE_FALSE(frozen);
        CHECK(frozen.error().code == "store");
        CHECK(waited >= 300ms);
        CHECK(waited < 3s);
        CHECK(RedisFixture::wait_until([&] { return s->connected() && run(s->ping()); }));
        server::TurnWrite w;
        w.user = "919800000009";
        w.session = R"({"v":1,"flow":"main"})";
        w.session_ttl_ms = 60'000;
        REQUIRE(run(s->write(w)));
        CHECK(run(s->load("919800000009", ""))->session == *w.session);
    }

    // Readiness checks have short timeouts: while Redis owes a reply for over a second, ping()
    // fails at once instead of waiting out command_timeout.
    TEST_CASE("ping fails at once while redis has stopped answering") {
        if (!testing::RedisServer::available())
            return;
        RedisFixture f;
        auto s = f.open(10s, 3s);
        REQUIRE(run(s->ping()));
        f.redis.pause();
        // A load waiting for its reply (answered once Redis runs again, within the timeout).
        std::thread stuck([&] { run(s->load("919800000010", "")); });
        std::this_thread::sleep_for(1200ms);
        const auto start = std::chrono::steady_clock::now();
        auto ping = run(s->ping());
        const auto waited = std::chrono::steady_clock::now() - start;
        CHECK_FALSE(ping);
        CHECK(waited < 500ms);
        f.redis.resume();
        stuck.join();
        CHECK(RedisFixture::wait_until([&] { return s->connected() && run(s->ping()); }));
    }

    // User ids and message ids may contain "}" and ":": no two (user, id) pairs share a key,
    // so no citizen is answered with another's stored response, nor erases it.
    TEST_CASE("message ids of citizens whose ids contain braces and colons stay apart") {
        if (!testing::RedisServer::available())
            return;
        RedisFixture f;
        auto s = f.open();
        server::TurnWrite a;
        a.user = "u";
        a.session = R"({"v":1,"flow":"a"})";
        a.session_ttl_ms = 60'000;
        a.message_id = "v}:w";
        a.response = "answer of u";
        REQUIRE(run(s->write(a)));
        auto other = run(s->load("u}:v", "w"));
        REQUIRE(other);
        CHECK_FALSE(other->response);
        server::TurnWrite b = a;
        b.user = "u}:v";
        b.message_id = "w";
        b.response = "answer of u}:v";
        REQUIRE(run(s->write(b)));
        CHECK(run(s->load("u", "v}:w"))->response == a.response);
        REQUIRE(run(s->erase_citizen("u")));
        CHECK_FALSE(run(s->load("u", "v}:w"))->response);
        CHECK(run(s->load("u}:v", "w"))->response == b.response);
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
        CHECK(denied.error().code == "citizen_busy");
        CHECK(denied.error().message == "timed out waiting for a citizen lease");
        CHECK(run(b->acquire_lease("919800000002")));
        run(a->release_lease(*lease));
        // release_lease() does not wait for Redis; a's next command is answered after it.
        REQUIRE(run(a->ping()));
        CHECK(run(b->acquire_lease("919800000001")));
    }

    // A lease this process left behind (its release lost, or its SET NX applied after the
    // reply was given up on) must not lock the citizen out until it expires: the process holds
    // the citizen's place in its own queue, so it takes such a lease over. Another instance's
    // lease still excludes it.
    TEST_CASE("a lease this process left behind is taken over, another instance's is not") {
        if (!testing::RedisServer::available())
            return;
        RedisFixture f;
        auto a = f.open(50ms);
        auto b = f.open(50ms);
        auto left = run(a->acquire_lease("919800000003"));
        REQUIRE(left);  // never released
        const auto start = std::chrono::steady_clock::now();
        auto again = run(a->acquire_lease("919800000003"));
        REQUIRE(again);
        CHECK(std::chrono::steady_clock::now() - start < 40ms);  // not waited for
        CHECK(again->token != left->token);
        // The old token is void: its release (or write) no longer frees the citizen.
        run(a->release_lease(*left));
        REQUIRE(run(a->ping()));
        CHECK_FALSE(run(b->acquire_lease("919800000003")));
        run(a->release_lease(*again));
        REQUIRE(run(a->ping()));
        CHECK(run(b->acquire_lease("919800000003")));
    }

    // The case found by review: Redis stalls while a lease is asked for; the store gives up on
    // the reply (command_timeout), but Redis applies the SET NX once it runs again. The
    // citizen's next message is served at once, not after lease_ttl.
    TEST_CASE("after a stall during a lease request the citizen is served again at once") {
        if (!testing::RedisServer::available())
            return;
        RedisFixture f;
        auto s = f.open(2s, 300ms);
        REQUIRE(run(s->acquire_and_load("919800000004", "")));  // lease acquired, then lost
        f.redis.pause();
        auto stalled = run(s->acquire_and_load("919800000004", "m1"));
        CHECK_FALSE(stalled);
        f.redis.resume();
        REQUIRE(RedisFixture::wait_until([&] { return s->connected() && run(s->ping()); }));
        const auto start = std::chrono::steady_clock::now();
        auto next = run(s->acquire_and_load("919800000004", "m1"));
        REQUIRE(next);
        CHECK(std::chrono::steady_clock::now() - start < 1s);
    }

    // The final write of a turn releases the lease in the same script, and writes only while
    // the lease still holds its token: one that expired and passed to another instance must
    // not let a late write overwrite what that instance stores.
    TEST_CASE("a write that releases the lease applies only while the token still holds it") {
        if (!testing::RedisServer::available())
            return;
        RedisFixture f;
        auto a = f.open(50ms);
        auto b = f.open(50ms);
        const std::string user = "919800000004";
        auto held = run(a->acquire_and_load(user, ""));
        REQUIRE(held);
        server::TurnWrite w;
        w.user = user;
        w.session = R"({"v":1,"flow":"main"})";
        w.session_ttl_ms = 60'000;
        w.release_lease = "not-the-token";
        auto refused = run(a->write(w));
        REQUIRE_FALSE(refused);
        CHECK(refused.error().message == "the citizen's lease expired before the turn was stored");
        CHECK_FALSE(run(a->load(user, ""))->session);
        CHECK_FALSE(run(b->acquire_lease(user)));  // still a's
        w.release_lease = held->lease.token;
        REQUIRE(run(a->write(w)));  // session only, yet through the script to release
        auto taken = run(b->acquire_and_load(user, ""));
        REQUIRE(taken);
        CHECK(taken->state.session == *w.session);
        // a's old token neither writes nor releases b's lease; with every effect, the same.
        server::TurnWrite late = w;
        late.session = R"({"v":1,"flow":"late"})";
        CHECK_FALSE(run(a->write(late)));
        late.message_id = "m-late";
        late.response = "late";
        late.consent = server::Consent{false, 1, "api"};
        CHECK_FALSE(run(a->write(late)));
        auto now = run(a->load(user, "m-late"));
        REQUIRE(now);
        CHECK(now->session == *w.session);
        CHECK_FALSE(now->response);
        CHECK_FALSE(*run(a->load_consent(user)));
        CHECK_FALSE(run(a->acquire_lease(user)));
    }

    // Writes within a turn (the pending call stored before a backend call) hold the lease
    // too: refused when it no longer holds the token, and they extend it, so that a turn
    // waiting on backend calls does not lose the citizen half-way.
    TEST_CASE("a write within a turn applies only while the lease holds it, and extends it") {
        if (!testing::RedisServer::available())
            return;
        RedisFixture f;
        auto a = f.open(50ms);
        const std::string user = "919800000007";
        auto held = run(a->acquire_and_load(user, ""));
        REQUIRE(held);
        server::TurnWrite w;
        w.user = user;
        w.session = R"({"v":1,"flow":"main","waiting":"call"})";
        w.session_ttl_ms = 60'000;
        w.pending = server::PendingCall{
            "m1", engine::BackendCall{"c1", "status", "GET", "/status/A1", ""}, 1, {}};
        w.hold_lease = "not-the-token";
        CHECK_FALSE(run(a->write(w)));
        CHECK_FALSE(run(a->load(user, ""))->pending);
        std::this_thread::sleep_for(1500ms);  // of the fixture's 5 s lease
        w.hold_lease = held->lease.token;
        REQUIRE(run(a->write(w)));
        CHECK(run(a->load(user, ""))->pending == w.pending);
        redisContext* c = redisConnect("127.0.0.1", f.redis.port());
        REQUIRE((c != nullptr && c->err == 0));
        auto* ttl = static_cast<redisReply*>(redisCommand(c, "PTTL cf:l:{%s}", user.c_str()));
        REQUIRE(ttl != nullptr);
        CHECK(ttl->integer > 4000);  // about 3,500 left had it not been extended
        freeReplyObject(ttl);
        redisFree(c);
    }

    // acquire_and_load() sends the lease's SET NX and the MGET together. When another instance
    // holds the lease, what that MGET read is stale: the caller must get the state written by
    // the holder before it released, never the one read while it still ran its turn.
    TEST_CASE("acquire_and_load waits for a held lease and reads what its holder wrote") {
        if (!testing::RedisServer::available())
            return;
        RedisFixture f;
        auto a = f.open();
        auto b = f.open();
        const std::string user = "919800000003";
        server::TurnWrite first;
        first.user = user;
        first.session = R"({"v":1,"flow":"main"})";
        first.session_ttl_ms = 60'000;
        REQUIRE(run(a->write(first)));

        auto held = run(a->acquire_and_load(user, ""));
        REQUIRE(held);
        CHECK(held->lease.token != "");
        CHECK(held->state.session == *first.session);

        std::optional<engine::Result<server::LeasedState>> waited;
        std::thread other([&] { waited.emplace(run(b->acquire_and_load(user, "m9"))); });
        std::this_thread::sleep_for(100ms);  // b's pipelined read happens while a holds it
        server::TurnWrite second = first;
        second.session = R"({"v":1,"flow":"passport"})";
        second.message_id = "m9";
        second.response = "answer";
        REQUIRE(run(a->write(second)));
        run(a->release_lease(held->lease));
        other.join();
        REQUIRE(waited);
        REQUIRE(*waited);
        CHECK((*waited)->state.session == *second.session);
        CHECK((*waited)->state.response == "answer");
        CHECK((*waited)->lease.token != held->lease.token);
        // And the lease is b's now: a cannot take it until b lets go.
        auto c = f.open(50ms);
        CHECK_FALSE(run(c->acquire_and_load(user, "")));
        run(b->release_lease((*waited)->lease));
        REQUIRE(run(b->ping()));
        CHECK(run(c->acquire_and_load(user, "")));
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

    // Scripts are sent by SHA-1 (EVALSHA); a Redis that does not have them cached (new, restarted
    // or flushed) answers NOSCRIPT and the store sends the script's text instead.
    TEST_CASE("writes go through when redis does not have the scripts cached") {
        if (!testing::RedisServer::available())
            return;
        RedisFixture f;
        auto store = f.open();
        // A message id makes the write a script (a session alone is one SET).
        server::TurnWrite w;
        w.user = "919800000001";
        w.session = R"({"v":1,"flow":"main"})";
        w.session_ttl_ms = 60'000;
        w.message_id = "m1";
        w.response = "r1";
        REQUIRE(run(store->write(w)));  // a new redis-server: no script cached
        auto loaded = run(store->load(w.user, "m1"));
        CHECK(loaded->session == *w.session);
        CHECK(loaded->response == "r1");
        f.redis.stop();
        REQUIRE(f.redis.start());
        REQUIRE(RedisFixture::wait_until([&] { return store->connected(); }));
        w.session = R"({"v":1,"flow":"passport"})";
        w.message_id = "m2";
        w.response = "r2";
        REQUIRE(run(store->write(w)));
        loaded = run(store->load(w.user, "m2"));
        CHECK(loaded->session == *w.session);
        CHECK(loaded->response == "r2");
        // A session alone is one SET, with its ttl, leaving the rest as it was.
        server::TurnWrite session_only;
        session_only.user = w.user;
        session_only.session = R"({"v":1,"flow":"status"})";
        session_only.session_ttl_ms = 60'000;
        REQUIRE(run(store->write(session_only)));
        loaded = run(store->load(w.user, "m2"));
        CHECK(loaded->session == *session_only.session);
        CHECK(loaded->response == "r2");
        auto lease = run(store->acquire_lease(w.user));
        REQUIRE(lease);
        run(store->release_lease(*lease));
        CHECK(run(store->acquire_lease(w.user)));
    }

    // Redis's append-only file keeps every write, an erased citizen's included, until it is
    // rewritten: after an erasure the store has Redis rewrite it, and the citizen is gone from
    // disk while everyone else stays (and loads again after a restart).
    TEST_CASE("after an erasure the append-only file is rewritten without the citizen") {
        if (!testing::RedisServer::available())
            return;
        const std::string dir = testing::temp_dir("civicflow-aof");
        const testing::StderrToFile log(testing::temp_dir("civicflow-log") + "/stderr");
        RedisFixture f(dir);
        REQUIRE(f.redis.running());
        f.erasure_rewrite = 100ms;
        auto s = f.open();
        REQUIRE(run(s->write(citizen_turn("919811122233", "Kamala Devi"))));
        REQUIRE(run(s->write(citizen_turn("919844455566", "Arjun Rao"))));
        // appendfsync always: on disk once acknowledged.
        CHECK(any_file_holds(dir, "919811122233"));
        CHECK(any_file_holds(dir, "Kamala Devi"));
        REQUIRE(run(s->erase_citizen("919811122233")));
        CHECK(RedisFixture::wait_until([&] {
            return !any_file_holds(dir, "919811122233") && !any_file_holds(dir, "Kamala Devi");
        }));
        CHECK(any_file_holds(dir, "Arjun Rao"));
        // The store saw the rewrite succeed (INFO persistence), and said so without the id.
        CHECK(RedisFixture::wait_until([&] {
            return log.text().find("event=erasure_aof_rewritten store=redis erasures=1") !=
                   std::string::npos;
        }));
        CHECK(log.text().find("919811122233") == std::string::npos);
        // The rewritten file is whole: a restart loads the other citizen, not the erased one.
        s.reset();
        f.redis.stop();
        REQUIRE(f.redis.start());
        s = f.open();
        // Redis answers LOADING until it has read the file back.
        CHECK(RedisFixture::wait_until([&] {
            auto kept = run(s->load("919844455566", "wamid.HBgM919844455566"));
            return kept && kept->response.has_value();
        }));
        auto erased = run(s->load("919811122233", "wamid.HBgM919811122233"));
        REQUIRE(erased);
        CHECK_FALSE(erased->session);
        CHECK_FALSE(erased->response);
        s.reset();
        std::filesystem::remove_all(dir);
    }

    // A managed Redis may block BGREWRITEAOF: the store says so once and waits for the next
    // erasure, instead of repeating the warning every erasure_rewrite.
    TEST_CASE("a Redis that refuses the rewrite is told about once, not every interval") {
        if (!testing::RedisServer::available())
            return;
        const std::string dir = testing::temp_dir("civicflow-aof");
        const testing::StderrToFile log(testing::temp_dir("civicflow-log") + "/stderr");
        RedisFixture f(dir, true, {"--rename-command", "BGREWRITEAOF", ""});
        REQUIRE(f.redis.running());
        f.erasure_rewrite = 50ms;
        auto s = f.open();
        REQUIRE(run(s->write(citizen_turn("919811122233", "Kamala Devi"))));
        REQUIRE(run(s->erase_citizen("919811122233")));
        CHECK(RedisFixture::wait_until([&] {
            return log.text().find("retry=next_erasure") != std::string::npos;
        }));
        std::this_thread::sleep_for(400ms);  // eight intervals
        const std::string text = log.text();
        const auto first = text.find("event=erasure_aof_rewrite_failed");
        REQUIRE(first != std::string::npos);
        CHECK(text.find("event=erasure_aof_rewrite_failed", first + 1) == std::string::npos);
        CHECK(text.find("unknown command") != std::string::npos);
        s.reset();
        std::filesystem::remove_all(dir);
    }

    // With erasure_rewrite 0 the store leaves the file to the operator; with AOF off it must
    // not make Redis write one (BGREWRITEAOF would, with the whole data set in it).
    TEST_CASE("no rewrite when turned off, and no append-only file when AOF is off") {
        if (!testing::RedisServer::available())
            return;
        const std::string dir = testing::temp_dir("civicflow-aof");
        {
            RedisFixture f(dir);
            f.erasure_rewrite = 0ms;
            auto s = f.open();
            REQUIRE(run(s->write(citizen_turn("919811122233", "Kamala Devi"))));
            REQUIRE(run(s->erase_citizen("919811122233")));
            std::this_thread::sleep_for(500ms);
            CHECK(any_file_holds(dir, "Kamala Devi"));
        }
        std::filesystem::remove_all(dir);
        std::filesystem::create_directory(dir);
        RedisFixture f(dir, false);  // AOF off, the same working directory
        f.erasure_rewrite = 50ms;
        auto s = f.open();
        REQUIRE(run(s->write(citizen_turn("919811122233", "Kamala Devi"))));
        REQUIRE(run(s->erase_citizen("919811122233")));
        std::this_thread::sleep_for(500ms);
        CHECK(std::filesystem::is_empty(dir));
        s.reset();
        std::filesystem::remove_all(dir);
    }
}
