#include <string>
#include <utility>

#include <doctest/doctest.h>

#include <civicflow/engine/session.hpp>

using namespace civicflow::engine;

TEST_SUITE("engine/session_codec") {
    TEST_CASE("a full session survives an encode and decode round trip") {
        Session s;
        s.flow = "birth_certificate";
        s.state = "ask_dob";
        s.lang = "hi";
        s.waiting = Waiting::kAnswer;
        s.attempts = 2;
        s.faq_returns = 1;
        s.slots = {{"child_name", "आरव \"राज\""}, {"district", "Pune"}};
        s.stack = {{"main", "menu"}};
        s.history = {{"main", "menu"}, {"birth_certificate", "ask_name"}};
        s.pending_call = "status/lookup/3";
        s.call_seq = 3;
        s.opted_out = true;
        s.created_at = 1768451400000;
        s.last_active = 1768451460000;
        s.flowset_version = "9f2c";
        const auto decoded = decode_session(encode_session(s));
        REQUIRE(decoded.has_value());
        CHECK(*decoded == s);
    }

    TEST_CASE("a new session encodes to a few bytes") {
        Session s;
        CHECK(encode_session(s) == R"({"v":1,"ca":0,"la":0})");
    }

    TEST_CASE("an unknown encoding version is refused with a clear error") {
        const auto decoded = decode_session(R"({"v":2,"flow":"main"})");
        REQUIRE_FALSE(decoded.has_value());
        CHECK(decoded.error().code == "session_decode");
        CHECK(decoded.error().message == "cannot decode session: unknown encoding version 2");
    }

    TEST_CASE("malformed input is refused, never half-decoded, with what is wrong") {
        const std::pair<const char*, const char*> cases[] = {
            {"", "not a JSON object"},
            {"[]", "not a JSON object"},
            {"\"v\"", "not a JSON object"},
            {R"({"v":1,"flow":"main")", "not a JSON object"},
            {R"({"v":1} {})", "not a JSON object"},
            {R"({"flow":"main"})", "no encoding version"},
            {R"({"v":"1"})", "no encoding version"},
            {R"({"v":1.0})", "no encoding version"},
            {R"({"v":4294967296})", "no encoding version"},
            {R"({"v":2,"flow":3})", "unknown encoding version 2"},
            {R"({"v":1,"flow":3})", "a member has the wrong type"},
            {R"({"v":1,"flow":null})", "a member has the wrong type"},
            {R"({"v":1,"att":"2"})", "a member has the wrong type"},
            {R"({"v":1,"ca":1.5})", "a member has the wrong type"},
            {R"({"v":1,"la":18446744073709551615})", "a member has the wrong type"},
            {R"({"v":1,"out":1})", "a member has the wrong type"},
            {R"({"v":1,"flow":{}})", "a member has the wrong type"},
            {R"({"v":1,"wait":"sleeping"})", "unknown waiting state"},
            {R"({"v":1,"slots":[]})", "slots is not an object"},
            {R"({"v":1,"slots":"a"})", "slots is not an object"},
            {R"({"v":1,"slots":{"a":1}})", "a slot value is not text"},
            {R"({"v":1,"slots":{"a":{"b":"c"}}})", "a slot value is not text"},
            {R"({"v":1,"slots":{"a":["b"]}})", "a slot value is not text"},
            {R"({"v":1,"stack":[["a"]]})", "a member has the wrong type"},
            {R"({"v":1,"stack":[["a","b","c"]]})", "a member has the wrong type"},
            {R"({"v":1,"hist":["a"]})", "a member has the wrong type"},
            {R"({"v":1,"hist":[[1,"b"]]})", "a member has the wrong type"},
            {R"({"v":1,"stack":{}})", "a member has the wrong type"},
            {R"({"v":1,"flow":"a","flow":"b"})", "a member is given twice"},
            {R"({"v":1,"v":1})", "a member is given twice"},
            {R"({"v":2,"v":1})", "unknown encoding version 2"},
            {R"({"v":1,"slots":{},"slots":{}})", "a member is given twice"},
        };
        for (const auto& [json, message] : cases) {
            const auto decoded = decode_session(json);
            REQUIRE_MESSAGE(!decoded.has_value(), json);
            CHECK_MESSAGE(
                decoded.error().message == std::string("cannot decode session: ") + message, json
            );
        }
    }

    TEST_CASE("members a newer build may add are skipped, whatever their shape") {
        const auto decoded = decode_session(
            R"({"v":1,"new":{"a":[1,{"b":null}],"c":2.5},"flow":"main","state":"menu",)"
            R"("more":[[["x"]]],"slots":{"name":"Asha"},"stack":[["a","b"]],"hist":[],)"
            R"("seq":7,"ca":-5,"la":9007199254740993,"out":true,"x":null})"
        );
        REQUIRE(decoded.has_value());
        CHECK(decoded->flow == "main");
        CHECK(decoded->state == "menu");
        CHECK(decoded->slots.at("name") == "Asha");
        REQUIRE(decoded->stack.size() == 1);
        CHECK(decoded->stack[0].flow == "a");
        CHECK(decoded->stack[0].state == "b");
        CHECK(decoded->history.empty());
        CHECK(decoded->call_seq == 7);
        CHECK(decoded->created_at == -5);
        CHECK(decoded->last_active == 9007199254740993);
        CHECK(decoded->opted_out);
    }

    TEST_CASE("waiting states have stable names") {
        CHECK(to_string(Waiting::kNothing) == "nothing");
        CHECK(to_string(Waiting::kCallResult) == "call_result");
        CHECK(to_string(Waiting::kEraseConfirm) == "erase_confirm");
    }
}
