// The real `civicflow serve` with the example status backend, over real sockets: conversations
// through every shipped flow, idempotency, per-citizen ordering, backend failures, bad requests,
// limits, logs, and graceful shutdown.
#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <signal.h>

namespace ct = civicflow::testing;
using ct::milliseconds;

namespace {

constexpr auto kStart = milliseconds(20000);
const std::string kToken = "it-secret-token-5f2a";

std::uint16_t port_of(const std::string& line) {
    return static_cast<std::uint16_t>(std::stoul(line.substr(line.rfind(':') + 1)));
}

// The example status backend, with a token so the server's auth header is exercised.
struct Backend {
    explicit Backend(const std::string& dir)
        : proc(
              {CIVICFLOW_STATUS_BACKEND_BIN, "--port", "0", "--token", kToken},
              {},
              dir + "/backend.log"
          ) {
        const std::string line = proc.wait_for_line("listening on ", kStart);
        REQUIRE_MESSAGE(!line.empty(), "the status backend did not start");
        port = port_of(line);
    }

    void set_mode(const std::string& mode, int delay_ms = 3000) {
        auto r = ct::request(
            port, "POST", "/admin/mode?mode=" + mode + "&delay_ms=" + std::to_string(delay_ms)
        );
        REQUIRE(r);
        REQUIRE(r->status == 200);
    }

    std::string stats() {
        auto r = ct::request(port, "GET", "/admin/stats");
        REQUIRE(r);
        return r->body;
    }

    long requests() { return ct::json_int(stats(), "requests"); }

    long in_flight() { return ct::json_int(stats(), "in_flight"); }

    ct::ChildProcess proc;
    std::uint16_t port = 0;
};

std::string default_config(
    std::uint16_t backend_port,
    const std::string& extra_limits = {},
    const std::string& breaker = "{ failures: 50, pause: 1s }",
    int retries = 1,
    const std::string& extra = {},
    int threads = 2
) {
    const std::string url = "http://127.0.0.1:" + std::to_string(backend_port);
    std::string backend =
        "{ base_url: " + url +
        ", auth: { header: Authorization, prefix: \"Bearer \", env: "
        "CIVICFLOW_IT_TOKEN }, connect_timeout: 300ms, timeout: 800ms, retries: " +
        std::to_string(retries) + ", backoff: 20ms, circuit_breaker: " + breaker + " }";
    return "version: 1\n"
           "threads: " +
           std::to_string(threads) +
           "\n"
           "shutdown_timeout: 5s\n"
           "log: { level: debug, access: true }\n"
           "limits: { body_bytes: 16384, header_bytes: 4096, " +
           (extra_limits.empty() ? "read_timeout: 2s, idle_timeout: 5s, max_connections: 64"
                                 : extra_limits) +
           " }\n"
           "backends:\n"
           "  status: " +
           backend + "\n  certificates: " + backend + "\n  grievances: " + backend + "\n" + extra;
}

struct Server {
    Server(
        const std::string& dir,
        const std::string& config,
        const std::string& flows = std::string(CIVICFLOW_SOURCE_DIR) + "/flows",
        std::vector<std::string> env = {}
    )
        : log_path(dir + "/serve.log")
        , proc(
              [&] {
                  ct::write_file(dir + "/civicflow.yaml", config);
                  return std::vector<std::string>{
                      CIVICFLOW_BIN,
                      "serve",
                      "--config",
                      dir + "/civicflow.yaml",
                      "--flows",
                      flows,
                      "--listen",
                      "127.0.0.1:0",
                      "--store",
                      "sqlite:" + dir + "/civicflow.db"};
              }(),
              [&] {
                  env.push_back("CIVICFLOW_IT_TOKEN=" + kToken);
                  return env;
              }(),
              log_path
          ) {
        const std::string line = proc.wait_for_line("listening on ", kStart);
        REQUIRE_MESSAGE(
            !line.empty(), "civicflow serve did not start: " << ct::read_file(log_path)
        );
        port = port_of(line);
    }

    std::string log() const { return ct::read_file(log_path); }

    std::string log_path;
    ct::ChildProcess proc;
    std::uint16_t port = 0;
};

// A backend and a server using it, in a fresh directory.
struct Harness {
    explicit Harness(
        const std::string& extra_limits = {},
        const std::string& breaker = "{ failures: 50, pause: 1s }",
        int retries = 1,
        const std::string& extra_config = {},
        int threads = 2
    )
        : dir(ct::make_temp_dir())
        , backend(dir)
        , server(
              dir,
              default_config(backend.port, extra_limits, breaker, retries, extra_config, threads)
          ) {}

    // Sends a text message and returns the response body (REQUIREs a 200).
    std::string say(const std::string& user, const std::string& text) {
        auto r = ct::post_message(server.port, ct::text_message(user, text));
        REQUIRE(r);
        REQUIRE_MESSAGE(r->status == 200, r->body);
        return r->body;
    }

    std::string choose(const std::string& user, const std::string& id) {
        auto r = ct::post_message(server.port, ct::choice_message(user, id));
        REQUIRE(r);
        REQUIRE_MESSAGE(r->status == 200, r->body);
        return r->body;
    }

    std::string dir;
    Backend backend;
    Server server;
};

std::string first_text(const std::string& body) {
    auto texts = ct::reply_texts(body);
    return texts.empty() ? std::string() : texts.front();
}

const std::string kMainMenu = "How can we help you? Choose a service, or type what you need.";
const std::string kStatusDown =
    "Sorry, the status service is not available right now. Please try again after some time.";

// Moves `user` to the status flow's reference question.
void to_ask_ref(Harness& h, const std::string& user) {
    h.say(user, "hi");
    const std::string body = h.say(user, "3");
    REQUIRE(ct::json_string(body, "state") == "ask_ref");
}

}  // namespace

TEST_SUITE("integration/server") {
    TEST_CASE("the main menu greets a new citizen and reports the session") {
        Harness h;
        const std::string body = h.say("citizen-main", "hi");
        CHECK(ct::json_string(body, "user") == "citizen-main");
        CHECK(ct::json_string(body, "flow") == "main");
        CHECK(ct::json_string(body, "state") == "menu");
        CHECK(ct::json_string(body, "lang") == "en");
        CHECK(ct::json_string(body, "waiting_for") == "menu");
        CHECK(
            body.find(
                R"({"type":"menu","text":")" + kMainMenu +
                R"(","options":[{"id":"passport","title":"Passport services"},)"
                R"({"id":"birth_certificate","title":"Birth certificate"},)"
                R"({"id":"status","title":"Application status"},)"
                R"({"id":"grievance","title":"Register a complaint"},)"
                R"({"id":"language","title":"Language / भाषा"}]})"
            ) != std::string::npos
        );
        // A menu choice by id (reply_id) works like typing its number.
        const std::string passport = h.choose("citizen-main", "passport");
        CHECK(ct::json_string(passport, "flow") == "passport");
    }

    TEST_CASE("a passport conversation answers the fee question through the menus") {
        Harness h;
        h.say("citizen-passport", "hi");
        h.say("citizen-passport", "1");
        const std::string fees = h.say("citizen-passport", "1");
        CHECK(ct::json_string(fees, "state") == "fees");
        const std::string answer = h.say("citizen-passport", "1");
        CHECK(
            first_text(answer) ==
            "Passport fee (normal, for adults, valid 10 years):\n• 36 pages: ₹1,500\n"
            "• 60 pages: ₹2,000\nThe same fee applies to a fresh passport and to a re-issue "
            "(renewal). It is paid online when you book the appointment."
        );
        CHECK(ct::json_string(answer, "state") == "next");
    }

    TEST_CASE("a status lookup goes through the backend for known and unknown references") {
        Harness h;
        to_ask_ref(h, "citizen-status");
        const std::string found = h.say("citizen-status", "DL1234567890123");
        CHECK(
            first_text(found) ==
            "Application DL1234567890123\nStatus: Police verification in progress\n"
            "Last updated: 12 Jan 2026"
        );
        CHECK(ct::json_string(found, "state") == "next");
        h.say("citizen-status", "1");
        const std::string missing = h.say("citizen-status", "DL0000000000000");
        CHECK(
            first_text(missing) ==
            "We could not find an application with the number DL0000000000000. Please check "
            "the number and try again."
        );
        CHECK(h.backend.requests() == 2);
    }

    TEST_CASE("a birth certificate application is submitted and its reference can be looked up") {
        Harness h;
        const std::string u = "citizen-birth";
        h.say(u, "hi");
        CHECK(ct::json_string(h.say(u, "2"), "state") == "child_name");
        h.say(u, "Aarav Sharma");
        h.say(u, "05-01-2026");
        h.say(u, "1");
        h.say(u, "City Hospital, Lucknow");
        h.say(u, "Lucknow");
        h.say(u, "Sunita Sharma");
        CHECK(ct::json_string(h.say(u, "9876543210"), "state") == "confirm");
        const std::string submitted = h.say(u, "1");
        CHECK(
            first_text(submitted) ==
            "Your application has been submitted. Reference number: BC-2026-000500. The "
            "certificate is usually ready within 7 working days; we will send an SMS to "
            "9876543210. You can check progress any time with \"Application status\" in the "
            "main menu."
        );
        CHECK(ct::json_string(submitted, "flow") == "main");
        // The backend now knows the new reference.
        h.say(u, "3");
        const std::string status = h.say(u, "BC-2026-000500");
        CHECK(
            first_text(status) ==
            "Application BC-2026-000500\nStatus: Application received\nLast updated: 20 Jan 2026"
        );
    }

    TEST_CASE("a grievance is registered and the citizen gets the ticket number") {
        Harness h;
        const std::string u = "citizen-grievance";
        h.say(u, "hi");
        CHECK(ct::json_string(h.say(u, "4"), "state") == "category");
        h.say(u, "1");
        h.say(u, "No water supply in our lane for 3 days");
        CHECK(ct::json_string(h.say(u, "skip"), "state") == "ward");
        h.say(u, "42");
        CHECK(
            ct::json_string(h.say(u, "Gandhi Nagar, near the Shiv temple"), "state") == "confirm"
        );
        const std::string done = h.say(u, "1");
        CHECK(
            first_text(done) ==
            "Your complaint has been registered. Ticket number: GRV-2026-000001. The concerned "
            "department will act on it within 7 working days. Please keep the ticket number for "
            "any follow-up."
        );
    }

    TEST_CASE("a repeated message id returns the same replies and does not advance the session") {
        Harness h;
        const std::string u = "citizen-idem";
        h.say(u, "hi");
        auto first = ct::post_message(h.server.port, ct::text_message(u, "3", "wamid-1"));
        REQUIRE(first);
        REQUIRE(first->status == 200);
        CHECK(ct::json_string(first->body, "state") == "ask_ref");
        auto again = ct::post_message(h.server.port, ct::text_message(u, "3", "wamid-1"));
        REQUIRE(again);
        CHECK(again->status == 200);
        CHECK(again->body == first->body);
        // The same id for another text is a client defect: 409, and nothing runs.
        auto reused = ct::post_message(h.server.port, ct::text_message(u, "4", "wamid-1"));
        REQUIRE(reused);
        CHECK(reused->status == 409);
        CHECK(ct::json_string(reused->body, "code") == "message_id_reused");
        // Had the repeat run, "3" would have been a wrong reference (an error and a re-ask).
        const std::string next = h.say(u, "DL1234567890123");
        CHECK(first_text(next).rfind("Application DL1234567890123", 0) == 0);
        // A repeat with a backend call does not call the backend again.
        const long calls = h.backend.requests();
        h.say(u, "1");
        auto looked =
            ct::post_message(h.server.port, ct::text_message(u, "MH0987654321098", "wamid-2"));
        auto looked_again =
            ct::post_message(h.server.port, ct::text_message(u, "MH0987654321098", "wamid-2"));
        REQUIRE(looked);
        REQUIRE(looked_again);
        CHECK(looked_again->body == looked->body);
        CHECK(h.backend.requests() == calls + 1);
    }

    TEST_CASE("concurrent messages of one citizen run one at a time over different connections") {
        // A chain of free-text states: each "step" moves one state on. Twenty concurrent steps
        // must visit twenty different states; two at once would read the same session twice.
        const std::string dir = ct::make_temp_dir();
        const std::string flows = dir + "/flows";
        REQUIRE(std::system(("mkdir -p " + flows).c_str()) == 0);
        std::string chain =
            "version: 1\nflow: main\ntitle: \"Chain\"\nlanguages: [en]\nstart: s0\nstates:\n";
        constexpr int kSteps = 20;
        for (int i = 0; i <= kSteps; ++i) {
            chain += "  s" + std::to_string(i) + ":\n    say: \"at s" + std::to_string(i) +
                     "\"\n    match:\n      - { keywords: [step], goto: s" +
                     std::to_string(i == kSteps ? 0 : i + 1) + " }\n";
        }
        ct::write_file(flows + "/main.yaml", chain);
        Backend backend(dir);
        Server server(dir, default_config(backend.port), flows);
        auto hello = ct::post_message(server.port, ct::text_message("chain-user", "hello"));
        REQUIRE(hello);
        REQUIRE_MESSAGE(hello->status == 200, hello->body);
        REQUIRE(ct::json_string(hello->body, "state") == "s0");

        std::vector<std::string> states(kSteps);
        std::vector<std::thread> threads;
        std::atomic<int> ready{0};
        for (int i = 0; i < kSteps; ++i) {
            threads.emplace_back([&, i] {
                ct::Connection c(server.port);
                ++ready;
                while (ready.load() < kSteps)
                    std::this_thread::yield();
                if (!c.send(ct::http_request(
                        "POST", "/v1/messages", ct::text_message("chain-user", "step")
                    ))) {
                    return;
                }
                auto r = c.read();
                if (r && r->status == 200)
                    states[static_cast<std::size_t>(i)] = ct::json_string(r->body, "state");
            });
        }
        for (auto& t : threads)
            t.join();
        std::set<std::string> distinct(states.begin(), states.end());
        std::set<std::string> expected;
        for (int i = 1; i <= kSteps; ++i)
            expected.insert("s" + std::to_string(i));
        CHECK(distinct == expected);
    }

    TEST_CASE("a citizen's second message waits for the first one's backend call") {
        Harness h;
        const std::string u = "citizen-order";
        to_ask_ref(h, u);
        h.backend.set_mode("slow", 400);
        std::optional<ct::Response> first;
        std::thread t([&] {
            first = ct::post_message(h.server.port, ct::text_message(u, "DL1234567890123"));
        });
        // The first message has reached the backend (and holds the citizen's queue) ...
        REQUIRE(ct::poll_until([&] { return h.backend.in_flight() == 1; }, milliseconds(5000)));
        // ... so the second, sent on another connection, must see its outcome.
        // (Its reply can only be the main menu if it ran after the call's result was saved: in
        // parallel it would have found the session still waiting for the backend.)
        auto second = ct::post_message(h.server.port, ct::choice_message(u, "main"));
        t.join();
        REQUIRE_MESSAGE(first, h.server.log());
        REQUIRE(second);
        CHECK(first_text(first->body).rfind("Application DL1234567890123", 0) == 0);
        CHECK(ct::json_string(second->body, "flow") == "main");
        CHECK(ct::json_string(second->body, "state") == "menu");
        // Another citizen is not held up meanwhile.
        h.backend.set_mode("normal");
    }

    TEST_CASE("a slow backend ends in the error branch within the timeout plus one second") {
        Harness h;
        const std::string u = "citizen-slow";
        to_ask_ref(h, u);
        h.backend.set_mode("slow", 3000);
        const auto started = ct::Clock::now();
        const std::string body = h.say(u, "DL1234567890123");
        const auto elapsed = ct::Clock::now() - started;
        CHECK(first_text(body) == kStatusDown);
        CHECK(elapsed < milliseconds(800 + 1000));
        // Meanwhile other citizens were served: the slow call held one queue, not a thread.
        h.backend.set_mode("normal");
        CHECK(ct::json_string(h.say("citizen-other", "hi"), "state") == "menu");
    }

    TEST_CASE("a failing, garbage-returning or stopped backend ends in the error branch") {
        Harness h;
        const std::string u = "citizen-fail";
        to_ask_ref(h, u);
        h.backend.set_mode("fail");
        CHECK(first_text(h.say(u, "DL1234567890123")) == kStatusDown);
        // GET is retried once (retries: 1) before giving up.
        CHECK(h.backend.requests() == 2);
        h.say(u, "1");
        h.backend.set_mode("garbage");
        CHECK(first_text(h.say(u, "DL1234567890123")) == kStatusDown);
        h.say(u, "1");
        h.backend.proc.send_signal(SIGTERM);
        REQUIRE(h.backend.proc.wait_exit(milliseconds(5000)) == 0);
        const auto started = ct::Clock::now();
        CHECK(first_text(h.say(u, "DL1234567890123")) == kStatusDown);
        CHECK(ct::Clock::now() - started < milliseconds(1800));
    }

    TEST_CASE("the circuit breaker stops calling a failing backend and probes it after a pause") {
        const std::string dir = ct::make_temp_dir();
        Backend backend(dir);
        Server server(dir, default_config(backend.port, {}, "{ failures: 2, pause: 300ms }", 0));
        auto say = [&](const std::string& text) {
            auto r = ct::post_message(server.port, ct::text_message("citizen-breaker", text));
            REQUIRE(r);
            REQUIRE(r->status == 200);
            return r->body;
        };
        say("hi");
        say("3");
        backend.set_mode("fail");
        for (int i = 0; i < 3; ++i) {
            CHECK(first_text(say("DL1234567890123")) == kStatusDown);
            say("1");
        }
        // Two failures opened the breaker: the third message never reached the backend.
        CHECK(backend.requests() == 2);
        // Operators see it in /metrics, to alert on.
        auto open = ct::request(server.port, "GET", "/metrics");
        REQUIRE(open);
        CHECK(
            open->body.find("\ncivicflow_backend_circuit_open{backend=\"status\"} 1\n") !=
            std::string::npos
        );
        CHECK(
            open->body.find(
                "\ncivicflow_backend_calls_total{backend=\"status\",outcome=\"failed\"} 2\n"
            ) != std::string::npos
        );
        CHECK(
            open->body.find(
                "\ncivicflow_backend_calls_total{backend=\"status\",outcome=\"circuit_open\"} 1\n"
            ) != std::string::npos
        );
        backend.set_mode("normal");
        // After the pause one probe goes through and closes the breaker again.
        std::string body;
        REQUIRE(ct::poll_until(
            [&] {
                body = say("DL1234567890123");
                if (first_text(body) != kStatusDown)
                    return true;
                say("1");
                return false;
            },
            milliseconds(5000)
        ));
        CHECK(first_text(body).rfind("Application DL1234567890123", 0) == 0);
        CHECK(server.log().find("event=backend_circuit_open backend=status") != std::string::npos);
    }

    TEST_CASE("bad requests get the one error shape and change nothing") {
        Harness h;
        const std::string u = "citizen-bad";
        h.say(u, "hi");

        struct Case {
            std::string body;
            int status;
            std::string code;
            std::string message;
        };

        const std::vector<Case> cases = {
            {"{\"user\": \"x\", ",
             400,
             "invalid_json",
             "the body is not valid JSON: Missing a name for object member. at offset 14"},
            {"[1, 2]", 400, "invalid_json", "the body must be a JSON object"},
            {R"({"text": "hi"})", 400, "missing_user", "'user' is required"},
            {R"({"user": "", "text": "hi"})", 400, "missing_user", "'user' must not be empty"},
            {R"({"user": 42, "text": "hi"})", 400, "invalid_field", "'user' must be a string"},
            {R"({"user": ")" + u + R"(", "text": 7})",
             400,
             "invalid_field",
             "'text' must be a string"},
            {R"({"user": ")" + u + R"("})",
             400,
             "invalid_field",
             "exactly one of 'text' and 'reply_id' is required"},
            {R"({"user": ")" + u + R"(", "text": "a", "reply_id": "b"})",
             400,
             "invalid_field",
             "exactly one of 'text' and 'reply_id' is required"},
            {R"({"user": ")" + u + R"(", "text": "3", "message_id": 5})",
             400,
             "invalid_field",
             "'message_id' must be a string"},
            {R"({"user": ")" + u + R"(", "text": ")" + std::string(4097, 'a') + R"("})",
             400,
             "text_too_long",
             "'text' must be at most 4096 characters"},
            {"{\"user\": \"" + u + "\", \"text\": \"\xC3\x28\"}",
             400,
             "invalid_utf8",
             "the body contains invalid UTF-8"},
        };
        for (const Case& c : cases) {
            CAPTURE(c.body.substr(0, 80));
            auto r = ct::post_message(h.server.port, c.body);
            REQUIRE(r);
            CHECK(r->status == c.status);
            const std::string rid = r->header("X-Request-Id");
            CHECK(!rid.empty());
            CHECK(
                r->body == R"({"error":{"code":")" + c.code + R"(","message":")" + c.message +
                               R"("},"request_id":")" + rid + R"("})"
            );
        }
        // 4,096 characters of Devanagari (3 bytes each) are within the limit.
        std::string long_hindi;
        for (int i = 0; i < 4096; ++i)
            long_hindi += "क";
        auto ok = ct::post_message(h.server.port, ct::text_message("citizen-long", long_hindi));
        REQUIRE(ok);
        CHECK(ok->status == 200);

        // Over the body limit: 413 (the connection is closed after it).
        auto big =
            ct::post_message(h.server.port, ct::text_message(u, std::string(20000, 'a'), "big-1"));
        REQUIRE(big);
        CHECK(big->status == 413);
        CHECK(ct::json_string(big->body, "code") == "body_too_large");

        // Unknown path and wrong method: same shape.
        auto missing = ct::request(h.server.port, "GET", "/v2/nothing");
        REQUIRE(missing);
        CHECK(missing->status == 404);
        CHECK(
            missing->body == R"({"error":{"code":"not_found","message":"no such endpoint"},)"
                             R"("request_id":")" +
                                 missing->header("X-Request-Id") + R"("})"
        );
        auto wrong = ct::request(h.server.port, "GET", "/v1/messages");
        REQUIRE(wrong);
        CHECK(wrong->status == 405);
        CHECK(wrong->header("Allow") == "POST");
        CHECK(ct::json_string(wrong->body, "message") == "this endpoint accepts POST");

        // Headers over the limit: 431.
        auto huge = ct::request(
            h.server.port, "GET", "/healthz", {}, {"X-Padding: " + std::string(5000, 'x')}
        );
        REQUIRE(huge);
        CHECK(huge->status == 431);
        CHECK(ct::json_string(huge->body, "code") == "headers_too_large");

        // Not HTTP at all: 400 and close.
        ct::Connection raw(h.server.port);
        REQUIRE(raw.send("HELLO\x01 / HTTP/9\r\n\r\n"));
        auto garbage = raw.read();
        REQUIRE(garbage);
        CHECK(garbage->status == 400);
        CHECK(ct::json_string(garbage->body, "code") == "invalid_http");

        // None of it touched the session, nor used up the message id of the rejected request.
        auto after = ct::post_message(h.server.port, ct::text_message(u, "3", "big-1"));
        REQUIRE(after);
        CHECK(ct::json_string(after->body, "state") == "ask_ref");
    }

    TEST_CASE("HTTP/1.0 clients and Expect: 100-continue are served") {
        Harness h;
        {
            // HTTP/1.0 without keep-alive: one answer, then the server closes.
            ct::Connection c(h.server.port);
            REQUIRE(c.send("GET /healthz HTTP/1.0\r\n\r\n"));
            auto r = c.read();
            REQUIRE(r);
            CHECK(r->status == 200);
            CHECK(r->header("Connection").empty());
            CHECK(c.wait_closed(milliseconds(3000)));
        }
        {
            // HTTP/1.0 asking for keep-alive gets it, and a second answer on the connection.
            ct::Connection c(h.server.port);
            REQUIRE(c.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
            auto r = c.read();
            REQUIRE(r);
            CHECK(r->header("Connection") == "keep-alive");
            REQUIRE(c.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
            auto again = c.read();
            REQUIRE(again);
            CHECK(again->status == 200);
        }
        {
            // A client that waits for "100 Continue" before its body gets it, then the answer.
            ct::Connection c(h.server.port);
            const std::string body = ct::text_message("citizen-expect", "hi");
            REQUIRE(c.send(
                "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Expect: 100-continue\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\n\r\n"
            ));
            REQUIRE(c.expect("HTTP/1.1 100 Continue\r\n\r\n"));
            REQUIRE(c.send(body));
            auto r = c.read();
            REQUIRE(r);
            CHECK(r->status == 200);
            CHECK(ct::json_string(r->body, "state") == "menu");
        }
    }

    TEST_CASE("keep-alive connections answer pipelined requests in order") {
        Harness h;
        ct::Connection c(h.server.port);
        const std::string u = "citizen-pipe";
        REQUIRE(c.send(
            ct::http_request("GET", "/healthz", {}) +
            ct::http_request("POST", "/v1/messages", ct::text_message(u, "hi")) +
            ct::http_request("POST", "/v1/messages", ct::text_message(u, "3")) +
            ct::http_request("GET", "/readyz", {})
        ));
        auto health = c.read();
        auto menu = c.read();
        auto ask = c.read();
        auto ready = c.read();
        REQUIRE(health);
        REQUIRE(menu);
        REQUIRE(ask);
        REQUIRE(ready);
        CHECK(health->body == R"({"status":"ok"})");
        CHECK(ct::json_string(menu->body, "state") == "menu");
        CHECK(ct::json_string(ask->body, "state") == "ask_ref");
        CHECK(ready->status == 200);
        CHECK(ready->body == R"({"status":"ready"})");
        // Same connection, later request.
        REQUIRE(c.send(ct::http_request("GET", "/healthz", {})));
        auto again = c.read();
        REQUIRE(again);
        CHECK(again->status == 200);
    }

    TEST_CASE("idle and slow connections are closed and the connection cap answers 503") {
        const std::string dir = ct::make_temp_dir();
        Backend backend(dir);
        Server server(
            dir,
            default_config(
                backend.port,
                "idle_timeout: 300ms, read_timeout: 300ms, "
                "max_connections: 3"
            )
        );
        {
            ct::Connection idle(server.port);
            CHECK(idle.wait_closed(milliseconds(3000)));
        }
        {
            ct::Connection slow(server.port);
            REQUIRE(slow.send("POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"));
            CHECK(slow.wait_closed(milliseconds(3000)));
        }
        // Three connections held open, each having been served (a just-closed connection may
        // still count for a moment, so retry until all three are in).
        std::vector<std::unique_ptr<ct::Connection>> held;
        REQUIRE(ct::poll_until(
            [&] {
                held.clear();
                for (int i = 0; i < 3; ++i) {
                    auto conn = std::make_unique<ct::Connection>(server.port);
                    if (!conn->send(ct::http_request("GET", "/healthz", {})))
                        return false;
                    auto r = conn->read(milliseconds(3000));
                    if (!r || r->status != 200)
                        return false;
                    held.push_back(std::move(conn));
                }
                return true;
            },
            milliseconds(5000)
        ));
        ct::Connection d(server.port);
        auto refused = d.read(milliseconds(3000));
        REQUIRE_MESSAGE(refused, server.log());
        CHECK(refused->status == 503);
        CHECK(refused->header("Retry-After") == "1");
        CHECK(ct::json_string(refused->body, "code") == "too_many_connections");
    }

    TEST_CASE("logs carry request ids but no message text, citizen ids or secrets") {
        Harness h;
        const std::string phone = "919812345678";
        h.say(phone, "hi");
        h.say(phone, "3");
        h.say(phone, "DL1234567890123");
        h.say(phone, "agent");
        ct::post_message(
            h.server.port, R"({"user": ")" + phone + R"(", "text": "confidential words here"})"
        );
        const std::string log = h.server.log();
        CHECK(log.find("event=request route=messages status=200") != std::string::npos);
        CHECK(log.find("event=backend_call backend=status status=200") != std::string::npos);
        CHECK(log.find(phone) == std::string::npos);
        CHECK(log.find("DL1234567890123") == std::string::npos);
        CHECK(log.find("confidential") == std::string::npos);
        CHECK(log.find(kToken) == std::string::npos);
    }

    TEST_CASE("metrics report the SQLite store's commits and session cache") {
        Harness h;
        const std::string u = "citizen-metrics";
        h.say(u, "hi");
        h.say(u, "office timings");  // the session is cached since "hi"
        auto m = ct::request(h.server.port, "GET", "/metrics");
        REQUIRE(m);
        CHECK(m->status == 200);
        auto value = [&](const std::string& name) {
            const auto at = m->body.find("\n" + name + " ");
            REQUIRE_MESSAGE(at != std::string::npos, name);
            return std::stoll(m->body.substr(at + name.size() + 2));
        };
        CHECK(value("civicflow_store_commits_total") >= 2);
        CHECK(value("civicflow_store_writes_total") >= 2);
        CHECK(value("civicflow_store_syncs_total") >= 1);
        CHECK(value("civicflow_store_cache_misses_total") >= 1);
        CHECK(value("civicflow_store_cache_hits_total") >= 1);
        CHECK(value("civicflow_store_cache_sessions") >= 1);
    }

    TEST_CASE("metrics count responses by route and status, and backend calls by outcome") {
        Harness h;
        const std::string u = "citizen-metrics-2";
        h.say(u, "hi");
        h.say(u, "3");
        h.say(u, "DL1234567890123");  // a status lookup through the backend
        REQUIRE(ct::post_message(h.server.port, "{\"user\":7}")->status == 400);
        REQUIRE(ct::request(h.server.port, "GET", "/nowhere")->status == 404);
        auto m = ct::request(h.server.port, "GET", "/metrics");
        REQUIRE(m);
        for (const char* line :
             {"# TYPE civicflow_http_responses_total counter",
              "civicflow_http_responses_total{route=\"messages\",status=\"200\"} 3",
              "civicflow_http_responses_total{route=\"messages\",status=\"400\"} 1",
              "civicflow_http_responses_total{route=\"unknown\",status=\"404\"} 1",
              "# TYPE civicflow_backend_calls_total counter",
              "civicflow_backend_calls_total{backend=\"status\",outcome=\"ok\"} 1",
              "civicflow_backend_calls_total{backend=\"status\",outcome=\"failed\"} 0",
              "civicflow_backend_circuit_open{backend=\"status\"} 0"}) {
            CAPTURE(line);
            CHECK(m->body.find("\n" + std::string(line) + "\n") != std::string::npos);
        }
    }

    // The message API answers for any citizen id: with CIVICFLOW_API_TOKEN set it serves only
    // callers that carry the token.
    TEST_CASE("with CIVICFLOW_API_TOKEN set, /v1/messages requires the bearer token") {
        const std::string dir = ct::make_temp_dir();
        Backend backend(dir);
        Server server(
            dir,
            default_config(backend.port),
            std::string(CIVICFLOW_SOURCE_DIR) + "/flows",
            {"CIVICFLOW_API_TOKEN=api-9f2c-token"}
        );
        const std::string body = ct::text_message("919800000777", "hi");
        for (const std::vector<std::string>& headers :
             {std::vector<std::string>{},
              {"Authorization: Bearer wrong"},
              {"Authorization: Basic api-9f2c-token"}}) {
            auto refused = ct::request(server.port, "POST", "/v1/messages", body, headers);
            REQUIRE(refused);
            CHECK(refused->status == 401);
            CHECK(ct::json_string(refused->body, "code") == "unauthorized");
        }
        auto ok = ct::request(
            server.port, "POST", "/v1/messages", body, {"Authorization: Bearer api-9f2c-token"}
        );
        REQUIRE(ok);
        CHECK(ok->status == 200);
        // The refused requests changed nothing: this was the citizen's first message.
        CHECK(ct::json_string(ok->body, "state") == "menu");
        CHECK(server.log().find("api-9f2c-token") == std::string::npos);
        CHECK(server.log().find("event=api_unauthorized") != std::string::npos);
        CHECK(server.log().find("api_token=on") != std::string::npos);
        // Other endpoints do not take it.
        auto health = ct::request(server.port, "GET", "/healthz");
        REQUIRE(health);
        CHECK(health->status == 200);
    }

    // A deployment that lost its environment would answer Meta's webhooks 404 and say nothing.
    TEST_CASE("a whatsapp section without its app secret is reported at start") {
        Harness h({}, "{ failures: 50, pause: 1s }", 1, "whatsapp: { send_rate: 10 }\n");
        CHECK(
            h.server.log().find("event=whatsapp_off reason=unset_env env=CIVICFLOW_WA_APP_SECRET"
            ) != std::string::npos
        );
        auto hook = ct::request(h.server.port, "GET", "/webhooks/whatsapp");
        REQUIRE(hook);
        CHECK(hook->status == 404);
    }

    TEST_CASE("a request target in absolute form names the same resource") {
        Harness h;
        auto health = ct::request(h.server.port, "GET", "http://helpline.example/healthz");
        REQUIRE(health);
        CHECK(health->status == 200);
        auto message = ct::request(
            h.server.port,
            "POST",
            "HTTP://helpline.example:8080/v1/messages?x=1",
            ct::text_message("919800000778", "hi")
        );
        REQUIRE(message);
        CHECK(message->status == 200);
        auto root = ct::request(h.server.port, "GET", "http://helpline.example");
        REQUIRE(root);
        CHECK(root->status == 404);
    }

    TEST_CASE("healthz and readyz report a running server") {
        Harness h;
        auto health = ct::request(h.server.port, "GET", "/healthz");
        auto ready = ct::request(h.server.port, "GET", "/readyz");
        REQUIRE(health);
        REQUIRE(ready);
        CHECK(health->status == 200);
        CHECK(ready->status == 200);
        CHECK(health->header("Content-Type") == "application/json");
    }

    TEST_CASE("SIGTERM finishes the messages in flight, refuses new connections and exits 0") {
        Harness h;
        const std::string u = "citizen-shutdown";
        to_ask_ref(h, u);
        ct::Connection idle(h.server.port);
        REQUIRE(idle.send(ct::http_request("GET", "/healthz", {})));
        REQUIRE(idle.read());
        h.backend.set_mode("slow", 500);
        std::optional<ct::Response> in_flight;
        std::thread t([&] {
            in_flight = ct::post_message(h.server.port, ct::text_message(u, "DL1234567890123"));
        });
        REQUIRE(ct::poll_until([&] { return h.backend.in_flight() == 1; }, milliseconds(5000)));
        h.server.proc.send_signal(SIGTERM);
        // The idle keep-alive connection is closed, new connections are refused ...
        CHECK(idle.wait_closed(milliseconds(3000)));
        CHECK(ct::poll_until(
            [&] { return !ct::Connection(h.server.port).connected(); }, milliseconds(3000)
        ));
        t.join();
        // ... and the message that was in flight got its full answer.
        REQUIRE(in_flight);
        CHECK(in_flight->status == 200);
        CHECK(first_text(in_flight->body).rfind("Application DL1234567890123", 0) == 0);
        CHECK(in_flight->header("Connection") == "close");
        CHECK(h.server.proc.wait_exit(milliseconds(5000)) == 0);
        CHECK(h.server.log().find("event=stopped drained=true") != std::string::npos);
    }

    // busy_poll replaces the I/O threads' io_context::run() with a loop of its own: it must
    // still run backend calls to completion and stop when the server drains.
    TEST_CASE("with busy_poll the server answers, completes backend calls and drains on SIGTERM") {
        Harness h({}, "{ failures: 50, pause: 1s }", 1, "busy_poll: 2ms\n", 1);
        const std::string u = "citizen-busy-poll";
        to_ask_ref(h, u);
        CHECK(first_text(h.say(u, "DL1234567890123")).rfind("Application DL1234567890123", 0) == 0);
        h.server.proc.send_signal(SIGTERM);
        CHECK(h.server.proc.wait_exit(milliseconds(5000)) == 0);
        CHECK(h.server.log().find("event=stopped drained=true") != std::string::npos);
    }

    TEST_CASE("busy_poll with several I/O threads is refused at start with a clear error") {
        const std::string dir = ct::make_temp_dir();
        ct::write_file(
            dir + "/civicflow.yaml",
            default_config(1, {}, "{ failures: 5, pause: 1s }", 1, "busy_poll: 2ms\n", 2)
        );
        ct::ChildProcess proc(
            {CIVICFLOW_BIN,
             "serve",
             "--config",
             dir + "/civicflow.yaml",
             "--listen",
             "127.0.0.1:0",
             "--store",
             "memory"},
            {"CIVICFLOW_IT_TOKEN=" + kToken},
            dir + "/serve.log"
        );
        CHECK(proc.wait_exit(milliseconds(10000)) == 2);
        CHECK(
            ct::read_file(dir + "/serve.log")
                .find("busy_poll needs one I/O thread (threads: 1 or --threads 1); 2 are "
                      "configured") != std::string::npos
        );
    }
}
