#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <civicflow/engine/loader.hpp>
#include <civicflow/server/memory_store.hpp>
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

struct Fixture {
    Fixture()
        : store(1h, 1h, [this] { return now; }) {
        auto loaded = engine::load_flows({{"main.yaml", kFlow}});
        REQUIRE_MESSAGE(loaded.flows, engine::format_text(loaded.diagnostics, loaded.sources));
        service = std::make_unique<server::MessageService>(
            loaded.flows,
            store,
            [this](engine::BackendCall call, std::string) -> asio::awaitable<engine::CallResult> {
                calls.push_back(call.method + " " + call.backend + " " + call.path);
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

    std::int64_t now = 1'700'000'000'000;
    server::MemoryStore store;
    std::unique_ptr<server::MessageService> service;
    engine::CallResult result;
    std::vector<std::string> calls;
};

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
        // The same id from another citizen is a different message.
        f.send(R"({"user":"v","text":"hello"})");
        f.send(R"({"user":"v","text":"X","message_id":"m1"})");
        CHECK(f.calls.size() == 2);
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
        CHECK_FALSE(f.store.get_response("u", "m1"));
    }

    TEST_CASE("an undecodable stored session starts the conversation afresh") {
        Fixture f;
        f.store.put_session("u", "{not a session");
        auto reply = f.send(R"({"user":"u","text":"hello"})");
        CHECK(reply.status == 200);
        CHECK(reply.body.find(R"("text":"Reference?")") != std::string::npos);
    }
}
