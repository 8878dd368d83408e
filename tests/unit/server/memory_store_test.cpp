#include <map>
#include <random>

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

TEST_SUITE("server/memory_store") {
    // Sessions are kept packed (shared phrases, numbers as varints): whatever is stored must
    // come back byte for byte.
    TEST_CASE("sessions come back byte for byte whatever they contain") {
        MemoryStore store(1h, [] { return std::int64_t{0}; });
        const std::string samples[] = {
            R"({"v":1,"flow":"birth_certificate","state":"dob","lang":"en","wait":"answer",)"
            R"("slots":{"child_name":"Aarav Sharma","n":12345,"o":{"k":"v","a":[1,22,333]}},)"
            R"("stack":[["main","menu"]],"ca":1795326830307,"la":1795326830308,"fsv":"aaa1"})",
            R"({"slots":{"q":"say \"hi\" \\ 007 1234567890123456789012345"},"x":0123,"y":-4.5e300})",
            "{\"name\":\"\xe0\xa4\x86\xe0\xa4\xb0\xe0\xa4\xb5\",\"t\":18446744073709551615}",
            "line\nbreak and a tab\t: stored raw",
            std::string("nul\0inside", 10),
            "12345678\x1f",  // a control byte after the first eight
            R"({"v":1,"slots":{"note":"a long answer with a tab)"
            "\t"
            R"(in the middle"}})",
            R"({"unterminated":"abc)",
            "",
            "1000",
            "0",
        };
        int n = 0;
        for (const std::string& s : samples)
            store.put_session("u" + std::to_string(n++), s, 100);
        n = 0;
        for (const std::string& s : samples) {
            const auto got = store.get_session("u" + std::to_string(n++));
            REQUIRE(got);
            CHECK(*got == s);
        }
    }

    TEST_CASE("phrases shared by sessions are held once and dropped with their last session") {
        MemoryStore store(1h, [] { return std::int64_t{0}; });
        auto session = [](const std::string& name, int at) {
            return R"({"v":1,"flow":"birth_certificate","state":"place","wait":"answer",)"
                   R"("slots":{"child_name":")" +
                   name + R"("},"hist":[["main","menu"]],"ca":)" + std::to_string(at) +
                   R"(,"la":)" + std::to_string(at + 1) + R"(,"fsv":"aaa1d080aa8a4dca"})";
        };
        // 200 citizens at the same point of the form, each with their own name and times.
        for (int i = 0; i < 200; ++i)
            store.put_session(
                "c" + std::to_string(i),
                session("Name " + std::to_string(i), 1'795'326'830 + 1000 * i),
                100
            );
        // Four phrases (up to the name; up to "ca"; ,"la":; ,"fsv":..."}), once per shard (16):
        // not one set per citizen.
        CHECK(store.phrase_count() == 4 * 16);
        for (int i = 0; i < 200; ++i)
            CHECK(
                store.get_session("c" + std::to_string(i)) ==
                session("Name " + std::to_string(i), 1'795'326'830 + 1000 * i)
            );
        for (int i = 1; i < 200; ++i)
            store.erase("c" + std::to_string(i));
        CHECK(store.phrase_count() == 4);
        // The last citizen moves on: the phrases only it used go.
        store.put_session("c0", R"({"v":1,"flow":"main","state":"menu"})", 100);
        CHECK(store.phrase_count() == 1);
        store.erase("c0");
        CHECK(store.phrase_count() == 0);
        CHECK(store.citizen_count() == 0);
    }

    TEST_CASE("a session expiring leaves the citizen's consent and message ids") {
        std::int64_t now = 0;
        MemoryStore store(1000ms, [&] { return now; });
        TurnWrite w;
        w.user = "a";
        w.session = R"({"v":1,"flow":"main","state":"menu","ca":1795326830307})";
        w.session_ttl_ms = 10;
        w.message_id = "m1";
        w.response = "r1";
        w.consent = civicflow::server::Consent{false, 5, "api"};
        store.put(w);
        now = 10;
        // Enough writes for every shard's sweep to pass over a's record.
        for (int i = 0; i < 2000; ++i)
            store.put_session("other" + std::to_string(i % 100), "s", 1000);
        CHECK_FALSE(store.get_session("a"));
        CHECK(store.get("a", "m1").response == "r1");
        CHECK(store.get_consent("a")->opted_in == false);
        CHECK(store.citizen_count() == 101);
    }
}

TEST_SUITE("server/memory_store") {
    // The flat tables grow, shrink, move records back on removal and sweep as they go: a long
    // random sequence of writes, erasures and clock steps must read exactly like a plain map.
    TEST_CASE("random writes, erasures and expiries read like a plain map") {
        std::int64_t now = 0;
        MemoryStore store(1h, [&] { return now; });

        struct Model {
            std::string session;
            std::int64_t expires_at;
        };

        std::map<std::string, Model> model;
        std::mt19937 rng(42);
        auto pick = [&](int n) {
            return static_cast<int>(rng() % static_cast<unsigned>(n));
        };
        const std::string states[] = {"menu", "child_name", "dob", "place"};
        for (int step = 0; step < 60'000; ++step) {
            const std::string user = "919800" + std::to_string(pick(3000));
            const int op = pick(100);
            if (op < 70) {
                const std::string session =
                    R"({"v":1,"flow":"f","state":")" + states[pick(4)] + R"(","slots":{"n":"x)" +
                    std::to_string(pick(5)) + R"("},"ca":)" +
                    std::to_string(1'795'000'000'000 + pick(1'000'000)) + "}";
                const std::int64_t ttl = 1 + pick(500);
                store.put_session(user, session, ttl);
                model[user] = Model{session, now + ttl};
            } else if (op < 85) {
                store.erase(user);
                model.erase(user);
            } else {
                now += pick(20);
            }
            if (step % 1000 == 0) {
                std::size_t live = 0;
                for (const auto& [u, m] : model) {
                    const auto got = store.get_session(u);
                    if (m.expires_at > now) {
                        ++live;
                        REQUIRE(got);
                        CHECK(*got == m.session);
                    } else {
                        CHECK_FALSE(got);
                    }
                }
                CHECK(store.session_count() == live);
                CHECK(store.citizen_count() >= live);
            }
        }
        for (const auto& [u, m] : model)
            store.erase(u);
        CHECK(store.citizen_count() == 0);
        CHECK(store.phrase_count() == 0);
    }
}
