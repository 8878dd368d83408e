#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <civicflow/engine/loader.hpp>
#include <civicflow/server/memory_store.hpp>
#include <civicflow/server/message_api.hpp>
#include <civicflow/server/message_service.hpp>

namespace asio = boost::asio;
using namespace civicflow;
using namespace std::chrono_literals;

namespace {

constexpr const char* kFlow = R"(version: 1
flow: main
title: "Test"
languages: [en]
start: ask
states:
  ask:
    ask: "Reference?"
    slot: ref
    then: lookup
  lookup:
    call:
      backend: status
      method: GET
      path: "/applications/{{ ref | url }}"
      save: { stage: /stage }
    on: { ok: show, error: down }
  show:
    say: "Stage: {{ stage }}"
    goto: ask
  down:
    say: "Service down."
    goto: ask
)";

// Thrown by the fake backend to stand for the process dying while a call is out.
struct Crash {};

struct Fixture {
    explicit Fixture(const char* flow = kFlow)
        : store(1h, [this] { return now; }) {
        auto loaded = engine::load_flows({{"main.yaml", flow}});
        REQUIRE_MESSAGE(loaded.flows, engine::format_text(loaded.diagnostics, loaded.sources));
        service = std::make_unique<server::MessageService>(
            loaded.flows,
            store,
            [this](engine::BackendCall call, std::string) -> asio::awaitable<engine::CallResult> {
                calls.push_back(call.method + " " + call.backend + " " + call.path);
                pending_seen.push_back(store.get("u", {}).pending.has_value());
                if (crash)
                    throw Crash{};
                engine::CallResult r = result;
                r.call_id = call.id;
                co_return r;
            },
            [this] { return now; }
        );
        result.outcome = engine::CallResult::Outcome::kResponse;
        result.status = 200;
        result.body = R"({"stage":"Printed"})";
    }

    server::ApiReply send(std::string body) {
        asio::io_context ioc;
        auto f = asio::co_spawn(ioc, service->handle(std::move(body), "rid-1"), asio::use_future);
        ioc.run();
        return f.get();
    }

    // Sends `body` while its backend call throws: the process dying with the call out.
    void interrupt(std::string body) {
        crash = true;
        CHECK_THROWS_AS(send(std::move(body)), Crash);
        crash = false;
    }

    std::int64_t now = 1'700'000'000'000;
    server::MemoryStore store;
    std::unique_ptr<server::MessageService> service;
    engine::CallResult result;
    std::vector<std::string> calls;
    std::vector<bool> pending_seen;  // whether the call was stored as pending when it went out
    bool crash = false;
};

std::string with_post(const char* flow) {
    std::string text = flow;
    text.replace(text.find("method: GET"), 11, "method: POST");
    return text;
}

}  // namespace

TEST_SUITE("server/message_service") {
    TEST_CASE("a backend call is performed and the resumed turn's replies are returned") {
        Fixture f;
        auto first = f.send(R"({"user":"u","text":"hello"})");
        CHECK(first.status == 200);
        CHECK(
            first.body ==
            R"({"user":"u","replies":[{"type":"text","text":"Reference?"}],)"
            R"("session":{"flow":"main","state":"ask","lang":"en","waiting_for":"answer"}})"
        );
        auto second = f.send(R"({"user":"u","text":"AB 1"})");
        CHECK(f.calls == std::vector<std::string>{"GET status /applications/AB%201"});
        CHECK(
            second.body ==
            R"({"user":"u","replies":[{"type":"text","text":"Stage: Printed"},)"
            R"({"type":"text","text":"Reference?"}],)"
            R"("session":{"flow":"main","state":"ask","lang":"en","waiting_for":"answer"}})"
        );
        CHECK(f.store.session_count() == 1);
        // The same replies as values, for channels: the resumed turn's and the prompt.
        REQUIRE(second.replies.has_value());
        CHECK(*second.replies == server::decode_message_replies(second.body).value());
        REQUIRE(second.replies->size() == 2);
        CHECK(second.replies->at(0).text == "Stage: Printed");
    }

    TEST_CASE("a failed call follows the flow's error branch") {
        Fixture f;
        f.send(R"({"user":"u","text":"hello"})");
        f.result.outcome = engine::CallResult::Outcome::kTimeout;
        auto reply = f.send(R"({"user":"u","text":"X"})");
        CHECK(reply.body.find(R"([{"type":"text","text":"Service down."},)") != std::string::npos);
    }

    TEST_CASE("a repeated message id is answered from the store without running the turn") {
        Fixture f;
        f.send(R"({"user":"u","text":"hello"})");
        auto first = f.send(R"({"user":"u","text":"X","message_id":"m1"})");
        auto again = f.send(R"({"user":"u","text":"X","message_id":"m1"})");
        CHECK(again.status == 200);
        CHECK(again.body == first.body);
        CHECK(f.calls.size() == 1);
        // Only the turn that ran has replies as values; the repeat has its stored body alone.
        CHECK(first.replies.has_value());
        CHECK_FALSE(again.replies.has_value());
        // The same id from another citizen is a different message.
        f.send(R"({"user":"v","text":"hello"})");
        f.send(R"({"user":"v","text":"X","message_id":"m1"})");
        CHECK(f.calls.size() == 2);
    }

    TEST_CASE("a message id reused for a different message is refused with 409, running nothing") {
        Fixture f;
        f.send(R"({"user":"u","text":"hello"})");
        auto first = f.send(R"({"user":"u","text":"X","message_id":"m1"})");
        REQUIRE(first.status == 200);
        for (const char* other :
             {R"({"user":"u","text":"Y","message_id":"m1"})",
              R"({"user":"u","text":"X","lang":"hi","message_id":"m1"})",
              R"({"user":"u","reply_id":"X","message_id":"m1"})"}) {
            auto reused = f.send(other);
            CHECK_MESSAGE(reused.status == 409, other);
            CHECK(reused.body.find(R"({"error":{"code":"message_id_reused",)") == 0);
        }
        CHECK(f.calls.size() == 1);  // none of them ran the turn
        // The retry of the real message is still answered, as before.
        auto again = f.send(R"({"user":"u","text":"X","message_id":"m1"})");
        CHECK(again.status == 200);
        CHECK(again.body == first.body);
        // A response stored without a fingerprint (an earlier build's) is answered as a retry.
        server::TurnWrite legacy_write;
        legacy_write.user = "u";
        legacy_write.message_id = "m2";
        legacy_write.response = R"({"user":"u","replies":[]})";
        f.store.put(std::move(legacy_write));
        auto legacy = f.send(R"({"user":"u","text":"anything","message_id":"m2"})");
        CHECK(legacy.status == 200);
        CHECK(legacy.body == R"({"user":"u","replies":[]})");
    }

    TEST_CASE("a rejected request changes nothing") {
        Fixture f;
        auto bad = f.send(R"({"user":"u","text":5,"message_id":"m1"})");
        CHECK(bad.status == 400);
        CHECK(
            bad.body == R"({"error":{"code":"invalid_field","message":"'text' must be a string"},)"
                        R"("request_id":"rid-1"})"
        );
        CHECK(f.store.session_count() == 0);
        CHECK_FALSE(f.store.get("u", "m1").response);
    }

    TEST_CASE("an undecodable stored session starts the conversation afresh") {
        Fixture f;
        f.store.put_session("u", "{not a session", 3'600'000);
        auto reply = f.send(R"({"user":"u","text":"hello"})");
        CHECK(reply.status == 200);
        CHECK(reply.body.find(R"("text":"Reference?")") != std::string::npos);
    }

    TEST_CASE("a backend call is stored as pending while it is out and cleared after") {
        Fixture f;
        f.send(R"({"user":"u","text":"hello"})");
        f.send(R"({"user":"u","text":"X"})");
        CHECK(f.pending_seen == std::vector<bool>{true});
        CHECK_FALSE(f.store.get("u", {}).pending);
    }

    TEST_CASE("a pending get interrupted by a crash is resumed by the retry of its message") {
        Fixture f;
        f.send(R"({"user":"u","text":"hello"})");
        f.interrupt(R"({"user":"u","text":"X","message_id":"m1"})");
        REQUIRE(f.store.get("u", {}).pending);
        CHECK(f.store.get("u", {}).pending->message_id == "m1");
        auto retry = f.send(R"({"user":"u","text":"X","message_id":"m1"})");
        CHECK(f.calls.size() == 2);
        CHECK(
            retry.body ==
            R"({"user":"u","replies":[{"type":"text","text":"Stage: Printed"},)"
            R"({"type":"text","text":"Reference?"}],)"
            R"("session":{"flow":"main","state":"ask","lang":"en","waiting_for":"answer"}})"
        );
        CHECK_FALSE(f.store.get("u", {}).pending);
        // The recovered turn is now the stored answer of m1.
        CHECK(f.send(R"({"user":"u","text":"X","message_id":"m1"})").body == retry.body);
        CHECK(f.calls.size() == 2);
    }

    // The interrupted message's client may send another one before retrying it: that one
    // finishes the interrupted turn, which is then also the stored answer of the first.
    TEST_CASE("a turn recovered by another message is stored as the interrupted message's") {
        Fixture f;
        f.send(R"({"user":"u","text":"hello"})");
        f.interrupt(R"({"user":"u","text":"X","message_id":"m1"})");
        f.result.body = R"({"stage":"Dispatched"})";
        auto other = f.send(R"({"user":"u","text":"Y","message_id":"m2"})");
        CHECK(
            f.calls ==
            std::vector<std::string>{
                "GET status /applications/X",
                "GET status /applications/X",
                "GET status /applications/Y"}
        );
        CHECK(
            other.body ==
            R"({"user":"u","replies":[{"type":"text","text":"Stage: Dispatched"},)"
            R"({"type":"text","text":"Reference?"},{"type":"text","text":"Stage: Dispatched"},)"
            R"({"type":"text","text":"Reference?"}],)"
            R"("session":{"flow":"main","state":"ask","lang":"en","waiting_for":"answer"}})"
        );
        // The late retry of m1 runs nothing and gets the recovered turn.
        auto late = f.send(R"({"user":"u","text":"X","message_id":"m1"})");
        CHECK(f.calls.size() == 3);
        CHECK(
            late.body ==
            R"({"user":"u","replies":[{"type":"text","text":"Stage: Dispatched"},)"
            R"({"type":"text","text":"Reference?"}],)"
            R"("session":{"flow":"main","state":"ask","lang":"en","waiting_for":"answer"}})"
        );
        CHECK_FALSE(f.store.get("u", {}).pending);
        // m2's own answer is kept as it was sent.
        CHECK(f.send(R"({"user":"u","text":"Y","message_id":"m2"})").body == other.body);
    }

    TEST_CASE("the interrupted message's id reused for another message is refused after recovery") {
        Fixture f;
        f.send(R"({"user":"u","text":"hello"})");
        f.interrupt(R"({"user":"u","text":"X","message_id":"m1"})");
        REQUIRE(f.store.get("u", {}).pending);
        CHECK(f.store.get("u", {}).pending->fingerprint.size() == 16);
        // "Y" under m1: the interrupted turn (X's) is finished and stored as m1's answer; Y is
        // refused, not run, and not answered with X's turn.
        auto reused = f.send(R"({"user":"u","text":"Y","message_id":"m1"})");
        CHECK(reused.status == 409);
        CHECK(reused.body.find(R"("code":"message_id_reused")") != std::string::npos);
        CHECK(
            f.calls ==
            std::vector<std::string>{"GET status /applications/X", "GET status /applications/X"}
        );
        CHECK_FALSE(f.store.get("u", {}).pending);
        // X's retry gets the recovered turn; Y under m1 stays refused.
        auto retry = f.send(R"({"user":"u","text":"X","message_id":"m1"})");
        CHECK(retry.status == 200);
        CHECK(retry.body.find(R"({"type":"text","text":"Stage: Printed"})") != std::string::npos);
        CHECK(f.send(R"({"user":"u","text":"Y","message_id":"m1"})").status == 409);
        CHECK(f.calls.size() == 2);
    }

    TEST_CASE("a stored response carries its fingerprint as a last member, sent without it") {
        Fixture f;
        auto first = f.send(R"({"user":"u","text":"hello","message_id":"m1"})");
        const auto stored = f.store.get("u", "m1").response;
        REQUIRE(stored);
        // A build without fingerprints would send the stored bytes: a valid response with one
        // member more.
        CHECK(stored->rfind(first.body.substr(0, first.body.size() - 1), 0) == 0);
        const std::string tail = stored->substr(first.body.size() - 1);
        CHECK(tail.rfind(R"(,"message_fingerprint":")", 0) == 0);
        CHECK(
            tail.size() == std::string_view(R"(,"message_fingerprint":"0123456789abcdef"})").size()
        );
        CHECK(tail.ends_with("\"}"));
        CHECK(f.send(R"({"user":"u","text":"hello","message_id":"m1"})").body == first.body);
    }

    // Past the chain limit, calls are failed without being sent, and an error branch that
    // calls again is failed too: the citizen gets the flow's answer, never a session left
    // waiting for a result no call will bring.
    TEST_CASE("calls past the chain limit are failed until the flow stops calling") {
        std::string flow = R"(version: 1
flow: main
title: "Chain"
languages: [en]
start: ask
states:
  ask:
    ask: "Reference?"
    slot: ref
    then: c1
)";
        for (int i = 1; i <= 5; ++i) {
            const std::string next = i < 5 ? "c" + std::to_string(i + 1) : "done";
            const std::string on_error = i == 5 ? "f1" : "down";
            flow += "  c" + std::to_string(i) +
                    ":\n    call:\n      backend: status\n      method: GET\n      path: \"/c" +
                    std::to_string(i) + "\"\n    on: { ok: " + next + ", error: " + on_error +
                    " }\n";
        }
        flow += R"(  f1:
    call:
      backend: status
      method: GET
      path: "/fallback"
    on: { ok: done, error: down }
  done:
    say: "Done."
    goto: ask
  down:
    say: "Service down."
    goto: ask
)";
        Fixture f(flow.c_str());
        f.send(R"({"user":"u","text":"hello"})");
        auto r = f.send(R"({"user":"u","text":"X"})");
        CHECK(
            f.calls ==
            std::vector<std::string>{
                "GET status /c1", "GET status /c2", "GET status /c3", "GET status /c4"}
        );
        CHECK(
            r.body ==
            R"({"user":"u","replies":[{"type":"text","text":"Service down."},)"
            R"({"type":"text","text":"Reference?"}],)"
            R"("session":{"flow":"main","state":"ask","lang":"en","waiting_for":"answer"}})"
        );
    }

    TEST_CASE("a pending post interrupted by a crash is failed, never sent twice") {
        const std::string flow = with_post(kFlow);
        Fixture f(flow.c_str());
        f.send(R"({"user":"u","text":"hello"})");
        f.interrupt(R"({"user":"u","text":"X"})");
        auto next = f.send(R"({"user":"u","text":"Y"})");
        CHECK(
            f.calls ==
            std::vector<std::string>{"POST status /applications/X", "POST status /applications/Y"}
        );
        // The interrupted call took the error branch first, then the new message ran.
        CHECK(
            next.body ==
            R"({"user":"u","replies":[{"type":"text","text":"Service down."},)"
            R"({"type":"text","text":"Reference?"},{"type":"text","text":"Stage: Printed"},)"
            R"({"type":"text","text":"Reference?"}],)"
            R"("session":{"flow":"main","state":"ask","lang":"en","waiting_for":"answer"}})"
        );
    }

    TEST_CASE("opting out and in records the citizen's consent with its time and channel") {
        Fixture f;
        f.send(R"({"user":"u","text":"hello"})");
        CHECK_FALSE(f.store.get_consent("u"));
        f.send(R"({"user":"u","text":"stop"})");
        CHECK(f.store.get_consent("u") == server::Consent{false, f.now, "api"});
        f.now += 5000;
        f.send(R"({"user":"u","text":"start"})");
        CHECK(f.store.get_consent("u") == server::Consent{true, f.now, "api"});
    }

    TEST_CASE("the erase command confirmed in chat erases everything about the citizen") {
        Fixture f;
        f.send(R"({"user":"u","text":"stop"})");
        f.send(R"({"user":"u","text":"start","message_id":"m1"})");
        f.send(R"({"user":"v","text":"hello"})");
        auto confirm = f.send(R"({"user":"u","text":"delete my data"})");
        CHECK(confirm.body.find(R"("waiting_for":"erase_confirm")") != std::string::npos);
        CHECK(f.store.citizen_count() == 2);
        auto done = f.send(R"({"user":"u","reply_id":"yes","message_id":"m2"})");
        CHECK(done.body.find("Your data has been deleted.") != std::string::npos);
        CHECK(f.store.citizen_count() == 1);
        CHECK_FALSE(f.store.get("u", "m1").response);
        CHECK_FALSE(f.store.get_consent("u"));
        CHECK(f.store.get_session("v"));
    }

    TEST_CASE("the admin erasure removes the citizen and leaves others alone") {
        Fixture f;
        f.send(R"({"user":"u","text":"hello","message_id":"m1"})");
        f.send(R"({"user":"v","text":"hello"})");
        asio::io_context ioc;
        auto done = asio::co_spawn(ioc, f.service->erase_citizen("u", "rid-2"), asio::use_future);
        ioc.run();
        auto reply = done.get();
        CHECK(reply.status == 200);
        CHECK(reply.body == R"({"status":"erased"})");
        CHECK(f.store.citizen_count() == 1);
        CHECK(f.store.get_session("v"));
    }

    TEST_CASE("a waiting session is kept for the flow's idle timeout plus the grace period") {
        Fixture f;
        f.send(R"({"user":"u","text":"hello"})");
        // Defaults: idle_timeout 30m (the flow sets none) + 7 days of grace.
        f.now += 30LL * 60 * 1000 + 7LL * 24 * 3600 * 1000 - 1;
        CHECK(f.store.get_session("u"));
        f.now += 1;
        CHECK_FALSE(f.store.get_session("u"));
    }
}
