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

    TEST_CASE("malformed input is refused, never half-decoded") {
        CHECK_FALSE(decode_session("").has_value());
        CHECK_FALSE(decode_session("[]").has_value());
        CHECK_FALSE(decode_session(R"({"flow":"main"})").has_value());
        CHECK_FALSE(decode_session(R"({"v":1,"flow":3})").has_value());
        CHECK_FALSE(decode_session(R"({"v":1,"wait":"sleeping"})").has_value());
        CHECK_FALSE(decode_session(R"({"v":1,"slots":{"a":1}})").has_value());
        CHECK_FALSE(decode_session(R"({"v":1,"stack":[["a"]]})").has_value());
        CHECK(
            decode_session(R"({"v":1,"slots":{"a":1}})").error().message ==
            "cannot decode session: a slot value is not text"
        );
    }

    TEST_CASE("waiting states have stable names") {
        CHECK(to_string(Waiting::kNothing) == "nothing");
        CHECK(to_string(Waiting::kCallResult) == "call_result");
        CHECK(to_string(Waiting::kEraseConfirm) == "erase_confirm");
    }
}
