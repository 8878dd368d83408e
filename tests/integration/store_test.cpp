// Stores end to end: the real `civicflow serve` killed with SIGKILL mid-conversation and
// restarted on its SQLite file, erasure over HTTP and in chat leaving nothing in the file, and
// (when redis-server is installed) two instances sharing one Redis, and Redis going away.
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ct = civicflow::testing;
using ct::milliseconds;

namespace {

constexpr auto kStart = milliseconds(20000);

// Three questions in a loop; the summary proves the answers survived restarts.
constexpr const char* kFormFlow = R"(version: 1
flow: main
title: "Form"
languages: [en]
start: ask1
states:
  ask1:
    ask: "First?"
    slot: a
    then: ask2
  ask2:
    ask: "Second?"
    slot: b
    then: ask3
  ask3:
    ask: "Third?"
    slot: c
    then: done
  done:
    say: "Got {{ a }}-{{ b }}-{{ c }}"
    goto: ask1
)";

std::uint16_t port_of(const std::string& line) {
    return static_cast<std::uint16_t>(std::stoul(line.substr(line.rfind(':') + 1)));
}

std::string form_dir() {
    const std::string dir = ct::make_temp_dir();
    ct::write_file(dir + "/main.yaml", kFormFlow);
    return dir;
}

// One `civicflow serve` on port 0 with the given store.
struct Serve {
    Serve(
        const std::string& dir,
        const std::string& flows,
        const std::string& store,
        const std::vector<std::string>& env = {},
        const std::string& name = "serve"
    )
        : log_path(dir + "/" + name + ".log")
        , proc(
              {CIVICFLOW_BIN,
               "serve",
               "--flows",
               flows,
               "--listen",
               "127.0.0.1:0",
               "--threads",
               "2",
               "--store",
               store},
              env,
              log_path
          ) {
        const std::string line = proc.wait_for_line("listening on ", kStart);
        REQUIRE_MESSAGE(!line.empty(), "civicflow serve did not start: " << log());
        port = port_of(line);
    }

    std::string log() const { return ct::read_file(log_path); }

    std::string log_path;
    ct::ChildProcess proc;
    std::uint16_t port = 0;
};

// What one citizen of the kill test has been told so far.
struct Citizen {
    std::string user;
    int next = 0;         // the message number to send next
    std::string last_id;  // the last acknowledged message: its id, text and response
    std::string last_text;
    std::string last_body;
    std::string failure;  // the first inconsistency seen, if any
};

std::string expected_state(int n) {
    return "ask" + std::to_string(n % 3 + 1);
}

// Sends messages for `c` until `stop`; each message is retried (same id) until acknowledged.
// Checks that every acknowledged response continues exactly from the previous one.
void drive(
    Citizen& c,
    const std::atomic<std::uint16_t>& port,
    const std::atomic<bool>& stop,
    int until = 1 << 30
) {
    while (!stop.load() && c.failure.empty() && c.next < until) {
        const int n = c.next;
        const std::string id = c.user + "-m" + std::to_string(n);
        const std::string text = n == 0 ? "hi" : "v" + std::to_string(n);
        auto r = ct::post_message(port.load(), ct::text_message(c.user, text, id));
        if (!r || r->status != 200)
            return;  // the server is down (killed): retry this message after the restart
        const std::string state = ct::json_string(r->body, "state");
        if (state != expected_state(n)) {
            c.failure = id + ": state " + state + ", expected " + expected_state(n);
            return;
        }
        if (n > 0 && n % 3 == 0) {
            const std::string got = "Got v" + std::to_string(n - 2) + "-v" + std::to_string(n - 1) +
                                    "-v" + std::to_string(n);
            const auto texts = ct::reply_texts(r->body);
            if (texts.empty() || texts.front() != got) {
                c.failure = id + ": summary lost answers: " + r->body;
                return;
            }
        }
        c.last_id = id;
        c.last_text = text;
        c.last_body = r->body;
        c.next = n + 1;
    }
}

// A redis-server on a free loopback port, without persistence (skipped when not installed).
struct Redis {
    Redis()
        : port(free_port()) {
        start();
    }

    static bool available() { return ::access("/usr/bin/redis-server", X_OK) == 0; }

    void start() {
        proc = std::make_unique<ct::ChildProcess>(
            std::vector<std::string>{
                "/usr/bin/redis-server",
                "--port",
                std::to_string(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no"},
            std::vector<std::string>{},
            "/dev/null"
        );
        REQUIRE(ct::poll_until([this] { return ct::Connection(port).connected(); }, kStart));
    }

    void stop() {
        proc->send_signal(SIGKILL);
        proc->wait_exit(milliseconds(5000));
        proc.reset();
    }

    // Every key and every value in the database, as redis-cli prints them.
    std::string dump() const {
        const std::string cli = "redis-cli -p " + std::to_string(port);
        const std::string cmd = cli + " --scan | while read -r k; do echo \"$k\"; " + cli +
                                " --raw GET \"$k\" 2>&1; " + cli +
                                " --raw SMEMBERS \"$k\" 2>&1; done";
        std::string out;
        FILE* p = ::popen(cmd.c_str(), "r");
        REQUIRE(p != nullptr);
        char buf[4096];
        std::size_t n = 0;
        while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
            out.append(buf, n);
        ::pclose(p);
        return out;
    }

    static std::uint16_t free_port() {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        socklen_t len = sizeof addr;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
        ::close(fd);
        return ntohs(addr.sin_port);
    }

    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port); }

    std::uint16_t port;
    std::unique_ptr<ct::ChildProcess> proc;
};

}  // namespace

TEST_SUITE("integration/store") {
    TEST_CASE("conversations survive repeated sigkill: every acknowledged turn exactly once") {
        const std::string dir = form_dir();
        const std::string store = "sqlite:" + dir + "/civicflow.db";
        constexpr int kCitizens = 50;
        constexpr int kRounds = 5;
        std::vector<Citizen> citizens(kCitizens);
        for (int i = 0; i < kCitizens; ++i)
            citizens[i].user = "9198" + std::to_string(10000000 + i);
        std::atomic<std::uint16_t> port{0};
        for (int round = 0; round < kRounds; ++round) {
            Serve server(dir, dir, store);
            port = server.port;
            std::atomic<bool> stop{false};
            std::vector<std::thread> threads;
            for (auto& c : citizens)
                threads.emplace_back([&c, &port, &stop] { drive(c, port, stop); });
            // Let conversations move, then kill while messages are in flight.
            int before = 0;
            for (auto& c : citizens)
                before += c.next;
            ct::poll_until(
                [&] {
                    int sent = 0;
                    for (auto& c : citizens)
                        sent += c.next;
                    return sent >= before + 3 * kCitizens;
                },
                milliseconds(20000)
            );
            server.proc.send_signal(SIGKILL);
            CHECK(server.proc.wait_exit(milliseconds(5000)) == 128 + SIGKILL);
            stop = true;
            for (auto& t : threads)
                t.join();
        }
        Serve server(dir, dir, store);
        int turns = 0;
        for (auto& c : citizens) {
            CHECK_MESSAGE(c.failure.empty(), c.failure);
            turns += c.next;
            if (c.last_id.empty())
                continue;
            // The last acknowledged message, sent again, is answered from the store: the same
            // response, and the conversation does not move.
            auto again =
                ct::post_message(server.port, ct::text_message(c.user, c.last_text, c.last_id));
            REQUIRE(again);
            CHECK(again->body == c.last_body);
        }
        // Every conversation continues where it was.
        std::atomic<bool> stop{false};
        port = server.port;
        for (auto& c : citizens) {
            const int goal = c.next + 1;
            drive(c, port, stop, goal);
            CHECK_MESSAGE(c.failure.empty(), c.failure);
            CHECK(c.next == goal);
        }
        MESSAGE("acknowledged turns across " << kRounds << " kills: " << turns);
        CHECK(turns >= kRounds * 3 * kCitizens);
    }

    TEST_CASE("erasure over http removes everything about the citizen from the sqlite file") {
        const std::string dir = form_dir();
        const std::string token = "admin-token-7c1d9e";
        const std::string user = "919812345678";
        const std::string secret = "SECRET-SLOT-VALUE-42";
        {
            Serve server(
                dir, dir, "sqlite:" + dir + "/civicflow.db", {"CIVICFLOW_ADMIN_TOKEN=" + token}
            );
            for (const std::string& text :
                 std::vector<std::string>{"hi", secret, "second", "third", "fourth"}) {
                auto r = ct::post_message(server.port, ct::text_message(user, text, "id-" + text));
                REQUIRE(r);
                REQUIRE(r->status == 200);
                auto other = ct::post_message(
                    server.port,
                    ct::text_message("919800000001", "filler", "o-" + std::to_string(text.size()))
                );
                REQUIRE(other);
            }
            const std::string path = "/v1/citizens/" + user;
            auto no_auth = ct::request(server.port, "DELETE", path);
            REQUIRE(no_auth);
            CHECK(no_auth->status == 401);
            CHECK(
                ct::json_string(no_auth->body, "message") ==
                "a valid admin bearer token is required"
            );
            auto wrong = ct::request(
                server.port, "DELETE", path, {}, {"Authorization: Bearer " + token + "x"}
            );
            REQUIRE(wrong);
            CHECK(wrong->status == 401);
            auto ok =
                ct::request(server.port, "DELETE", path, {}, {"Authorization: Bearer " + token});
            REQUIRE(ok);
            CHECK(ok->status == 200);
            CHECK(ok->body == R"({"status":"erased"})");
            // A fresh conversation: nothing remembered, not even the message ids.
            auto again = ct::post_message(server.port, ct::text_message(user, "hi", "id-hi"));
            REQUIRE(again);
            CHECK(ct::json_string(again->body, "state") == "ask1");
            CHECK(ct::reply_texts(again->body) == std::vector<std::string>{"First?"});
            auto erased_again =
                ct::request(server.port, "DELETE", path, {}, {"Authorization: Bearer " + token});
            REQUIRE(erased_again);
            CHECK(erased_again->status == 200);
            // Any id /v1/messages accepts can be erased: a '/' comes percent-encoded.
            const std::string slash = "tg/4711-SLASHED";
            REQUIRE(ct::post_message(server.port, ct::text_message(slash, "hi"))->status == 200);
            auto raw = ct::request(
                server.port,
                "DELETE",
                "/v1/citizens/tg/4711-SLASHED",
                {},
                {"Authorization: Bearer " + token}
            );
            REQUIRE(raw);
            CHECK(raw->status == 400);
            // No citizen can have an id that is not UTF-8 (/v1/messages refuses it).
            auto not_utf8 = ct::request(
                server.port,
                "DELETE",
                "/v1/citizens/%E0%A4%A8%E0%A4",
                {},
                {"Authorization: Bearer " + token}
            );
            REQUIRE(not_utf8);
            CHECK(not_utf8->status == 400);
            CHECK(ct::json_string(not_utf8->body, "code") == "invalid_field");
            auto encoded = ct::request(
                server.port,
                "DELETE",
                "/v1/citizens/tg%2F4711-SLASHED",
                {},
                {"Authorization: Bearer " + token}
            );
            REQUIRE(encoded);
            CHECK(encoded->status == 200);
            server.proc.send_signal(SIGTERM);
            CHECK(server.proc.wait_exit(milliseconds(10000)) == 0);
        }
        for (const std::string& file : {dir + "/civicflow.db", dir + "/civicflow.db-wal"}) {
            const std::string bytes = ct::read_file(file);
            CHECK_MESSAGE(bytes.find(user) == std::string::npos, file);
            CHECK_MESSAGE(bytes.find(secret) == std::string::npos, file);
            CHECK_MESSAGE(bytes.find("4711-SLASHED") == std::string::npos, file);
        }
        CHECK(ct::read_file(dir + "/civicflow.db").find("919800000001") != std::string::npos);
    }

    TEST_CASE("erasure confirmed in chat leaves nothing in the sqlite file") {
        const std::string dir = form_dir();
        const std::string user = "919811112222";
        const std::string secret = "CHAT-SECRET-9931";
        Serve server(dir, dir, "sqlite:" + dir + "/civicflow.db");
        for (const std::string& text : std::vector<std::string>{"hi", secret, "delete my data"}) {
            auto r = ct::post_message(server.port, ct::text_message(user, text, "c-" + text));
            REQUIRE(r);
            REQUIRE(r->status == 200);
        }
        auto done = ct::post_message(server.port, ct::choice_message(user, "yes"));
        REQUIRE(done);
        CHECK(ct::reply_texts(done->body).front() == "Your data has been deleted.");
        for (const std::string& file : {dir + "/civicflow.db", dir + "/civicflow.db-wal"}) {
            const std::string bytes = ct::read_file(file);
            CHECK_MESSAGE(bytes.find(user) == std::string::npos, file);
            CHECK_MESSAGE(bytes.find(secret) == std::string::npos, file);
        }
    }

    TEST_CASE("without an admin token the erasure endpoint is disabled") {
        const std::string dir = form_dir();
        Serve server(dir, dir, "memory");
        auto r = ct::request(
            server.port, "DELETE", "/v1/citizens/919812345678", {}, {"Authorization: Bearer x"}
        );
        REQUIRE(r);
        CHECK(r->status == 403);
        CHECK(
            r->body.find("erasure over HTTP is disabled (no CIVICFLOW_ADMIN_TOKEN)") !=
            std::string::npos
        );
        auto get = ct::request(server.port, "GET", "/v1/citizens/919812345678");
        REQUIRE(get);
        CHECK(get->status == 405);
        CHECK(get->header("Allow") == "DELETE");
    }

    TEST_CASE("two instances on one redis serve one citizen's alternated messages correctly") {
        if (!Redis::available()) {
            MESSAGE("redis-server not installed: skipped");
            return;
        }
        const std::string dir = form_dir();
        Redis redis;
        const std::string token = "admin-token-redis-1";
        Serve a(dir, dir, redis.url(), {"CIVICFLOW_ADMIN_TOKEN=" + token}, "a");
        Serve b(dir, dir, redis.url(), {"CIVICFLOW_ADMIN_TOKEN=" + token}, "b");
        const std::string user = "919833334444";
        const std::string secret = "REDIS-SECRET-5150";
        // Strictly alternated: every instance continues the other's conversation.
        std::string last;
        for (int n = 0; n < 9; ++n) {
            const std::uint16_t port = n % 2 == 0 ? a.port : b.port;
            const std::string text = n == 0 ? "hi" : n == 1 ? secret : "v" + std::to_string(n);
            auto r = ct::post_message(port, ct::text_message(user, text, "w-" + std::to_string(n)));
            REQUIRE(r);
            REQUIRE_MESSAGE(r->status == 200, r->body);
            CHECK(ct::json_string(r->body, "state") == expected_state(n));
            if (n == 3)
                CHECK(ct::reply_texts(r->body).front() == "Got " + secret + "-v2-v3");
            last = r->body;
        }
        // Shared deduplication: the other instance answers a repeat from the store.
        auto repeat = ct::post_message(b.port, ct::text_message(user, "v8", "w-8"));
        REQUIRE(repeat);
        CHECK(repeat->body == last);
        // ... and refuses the id reused for another text, through either instance.
        auto reused = ct::post_message(a.port, ct::text_message(user, "other", "w-8"));
        REQUIRE(reused);
        CHECK(reused->status == 409);
        // Concurrent messages of one citizen through both instances: the lease serializes them,
        // so no turn is lost (each moves the form one step).
        std::atomic<int> ok{0};
        auto send = [&](std::uint16_t port, const std::string& prefix) {
            for (int i = 0; i < 10; ++i) {
                auto r =
                    ct::post_message(port, ct::text_message(user, "c", prefix + std::to_string(i)));
                if (r && r->status == 200)
                    ++ok;
            }
        };
        std::thread ta(send, a.port, "ca-");
        std::thread tb(send, b.port, "cb-");
        ta.join();
        tb.join();
        CHECK(ok.load() == 20);
        // 9 messages, then 20 answers: message number 29 is next.
        auto next = ct::post_message(a.port, ct::text_message(user, "x", "w-next"));
        REQUIRE(next);
        CHECK(ct::json_string(next->body, "state") == expected_state(29));

        // Erasure through one instance leaves nothing about the citizen in Redis.
        auto other = ct::post_message(b.port, ct::text_message("919800000009", "hi", "o-1"));
        REQUIRE(other);
        CHECK(redis.dump().find(user) != std::string::npos);
        auto erased = ct::request(
            b.port, "DELETE", "/v1/citizens/" + user, {}, {"Authorization: Bearer " + token}
        );
        REQUIRE(erased);
        CHECK(erased->status == 200);
        const std::string dump = redis.dump();
        CHECK(dump.find(user) == std::string::npos);
        CHECK(dump.find(secret) == std::string::npos);
        CHECK(dump.find("919800000009") != std::string::npos);
    }

    TEST_CASE("with redis down requests get 503, never a false 200, and service recovers") {
        if (!Redis::available())
            return;
        const std::string dir = form_dir();
        Redis redis;
        Serve server(dir, dir, redis.url());
        const std::string user = "919855556666";
        auto first = ct::post_message(server.port, ct::text_message(user, "hi", "d-0"));
        REQUIRE(first);
        REQUIRE(first->status == 200);
        redis.stop();
        auto down = ct::post_message(server.port, ct::text_message(user, "v1", "d-1"));
        REQUIRE(down);
        CHECK(down->status == 503);
        CHECK(ct::json_string(down->body, "code") == "store_unavailable");
        auto ready = ct::request(server.port, "GET", "/readyz");
        REQUIRE(ready);
        CHECK(ready->status == 503);
        CHECK(ct::json_string(ready->body, "code") == "not_ready");
        redis.start();
        // The store reconnects by itself (backoff at most 2s); no restart of the server.
        CHECK(ct::poll_until(
            [&] {
                auto r = ct::request(server.port, "GET", "/readyz");
                return r && r->status == 200;
            },
            milliseconds(10000)
        ));
        auto again = ct::post_message(server.port, ct::text_message(user, "hi", "d-2"));
        REQUIRE(again);
        CHECK(again->status == 200);
        // Redis lost its data (no persistence in this test): a new conversation, not a crash.
        CHECK(ct::json_string(again->body, "state") == "ask1");
        CHECK(server.log().find("event=store_failed code=store") != std::string::npos);
    }
}
