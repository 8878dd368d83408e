#include <string>

#include <doctest/doctest.h>

#include <civicflow/server/message_api.hpp>

using namespace civicflow;
using server::parse_message_request;

TEST_SUITE("server/message_api") {
    TEST_CASE("a text message is parsed with its optional fields") {
        auto r = parse_message_request(
            R"({"user":"9198","text":"status","message_id":"m-1","lang":"hi","extra":1})"
        );
        REQUIRE(r);
        CHECK(r->user == "9198");
        CHECK_FALSE(r->is_choice);
        CHECK(r->text == "status");
        CHECK(r->message_id == "m-1");
        CHECK(r->lang == "hi");
    }

    TEST_CASE("a message's fingerprint is fixed by its kind, text or reply id and lang alone") {
        // Pinned values (SHA-256 of "t\\0<length>\\0<text>\\0<lang>", first 8 bytes, computed
        // independently): instances of different builds sharing a store must agree.
        auto fp = [](const char* body) {
            auto r = parse_message_request(body);
            REQUIRE(r);
            return server::message_fingerprint(*r);
        };
        CHECK(fp(R"({"user":"u","text":"hi","message_id":"m"})") == "0d95c4821acb595d");
        CHECK(fp(R"({"user":"other","text":"hi"})") == "0d95c4821acb595d");
        CHECK(fp(R"({"user":"u","text":"hi","lang":"hi"})") == "3b0c2218f5740ee2");
        CHECK(fp(R"({"user":"u","reply_id":"hi"})") == "c51bd62c81e47d3f");
        CHECK(fp(R"({"user":"u","text":"पासपोर्ट"})") == "1ddf7af8611a35a2");
        CHECK(
            fp(R"({"user":"u","text":"\u092a\u093e\u0938\u092a\u094b\u0930\u094d\u091f"})") ==
            "1ddf7af8611a35a2"
        );
    }

    TEST_CASE("a menu choice is parsed from reply_id") {
        auto r = parse_message_request(R"({"user":"u","reply_id":"fees"})");
        REQUIRE(r);
        CHECK(r->is_choice);
        CHECK(r->reply_id == "fees");
        CHECK(r->message_id.empty());
    }

    TEST_CASE("an empty text is a valid message") {
        auto r = parse_message_request(R"({"user":"u","text":""})");
        REQUIRE(r);
        CHECK(r->text.empty());
    }

    TEST_CASE("invalid requests are rejected with a code and a message naming the field") {
        struct Case {
            std::string body, code, message;
        };

        const Case cases[] = {
            {"", "invalid_json", "the body is not valid JSON: The document is empty. at offset 0"},
            {R"({"user":"u","text":"a"} x)",
             "invalid_json",
             "the body is not valid JSON: The document root must not be followed by other "
             "values. at offset 24"},
            {"\"text\"", "invalid_json", "the body must be a JSON object"},
            {R"({"user":null,"text":"a"})", "missing_user", "'user' is required"},
            {R"({"user":["u"],"text":"a"})", "invalid_field", "'user' must be a string"},
            {R"({"user":")" + std::string(257, 'u') + R"(","text":"a"})",
             "invalid_field",
             "'user' must be at most 256 bytes long"},
            {R"({"user":"u","reply_id":""})",
             "invalid_field",
             "'reply_id' must be 1 to 256 bytes long"},
            {R"({"user":"u","text":"a","lang":"")",
             "invalid_json",
             "the body is not valid JSON: Missing a comma or '}' after an object member. at "
             "offset 32"},
            {R"({"user":"u","text":"a","lang":"english-please-ok"})",
             "invalid_field",
             "'lang' must be 1 to 16 bytes long"},
            {R"({"user":"u","text":"\ud800"})", "invalid_utf8", "the body contains invalid UTF-8"},
            {R"({"user":"u\udc00","text":"a"})", "invalid_utf8", "the body contains invalid UTF-8"},
            {R"({"user":"u","text":"a\uDFFFb"})",
             "invalid_utf8",
             "the body contains invalid UTF-8"},
            {R"({"user":"u","text":"a","message_id":"\udc00"})",
             "invalid_utf8",
             "the body contains invalid UTF-8"},
            // A key twice: RapidJSON would act on the first, a gateway in JavaScript or
            // Python would have checked the last.
            {R"({"user":"alice","user":"mallory","text":"hi"})",
             "invalid_json",
             "the body has a key twice"},
            {R"({"user":"e1","text":"hi","text":5})", "invalid_json", "the body has a key twice"},
            {R"({"user":"wa:106540352242922:919812345678","text":"hi"})",
             "invalid_field",
             "'user' must not start with 'wa:' (the WhatsApp channel's citizens)"},
            {R"({"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"user":"u","text":"t","a":0})",
             "invalid_json",
             "the body has a key twice"},
        };
        for (const Case& c : cases) {
            CAPTURE(c.body);
            auto r = parse_message_request(c.body);
            REQUIRE_FALSE(r);
            CHECK(r.error().code == c.code);
            CHECK(r.error().message == c.message);
        }
    }

    TEST_CASE("escapes that decode to valid UTF-8 pass, a surrogate pair included") {
        auto r =
            parse_message_request(R"({"user":"u\u00e9","text":"\ud83d\ude00 \u0915 \\udc00"})");
        REQUIRE(r);
        CHECK(r->user == "u\xC3\xA9");
        CHECK(r->text == "\xF0\x9F\x98\x80 \xE0\xA4\x95 \\udc00");
    }

    // The parse is iterative: nesting costs heap, not the thread's stack.
    TEST_CASE("deeply nested JSON is parsed without recursion") {
        const std::string deep = R"({"user":"u","text":"a","x":)" + std::string(200'000, '[') +
                                 std::string(200'000, ']') + "}";
        CHECK(parse_message_request(deep));
        auto open =
            parse_message_request(R"({"user":"u","text":"a","x":)" + std::string(200'000, '['));
        REQUIRE_FALSE(open);
        CHECK(open.error().code == "invalid_json");
    }

    TEST_CASE("the text limit counts characters, not bytes") {
        std::string hindi;
        for (int i = 0; i < 4096; ++i)
            hindi += "\xE0\xA4\x95";  // क
        CHECK(server::utf8_length(hindi) == 4096);
        CHECK(parse_message_request(R"({"user":"u","text":")" + hindi + R"("})"));
        auto over = parse_message_request(R"({"user":"u","text":")" + hindi + "a\"}");
        REQUIRE_FALSE(over);
        CHECK(over.error().code == "text_too_long");
    }

    TEST_CASE("responses list typed replies and the session") {
        std::vector<engine::Reply> replies(3);
        replies[0].kind = engine::Reply::Kind::kText;
        replies[0].text = "Hello \"citizen\"";
        replies[1].kind = engine::Reply::Kind::kMenu;
        replies[1].text = "Choose:";
        replies[1].options = {{"fees", "Fees"}, {"docs", "Documents"}};
        replies[2].kind = engine::Reply::Kind::kMedia;
        replies[2].url = "https://example.gov.in/form.pdf";
        replies[2].caption = "Form";
        engine::Session s;
        s.flow = "passport";
        s.state = "menu";
        s.lang = "hi";
        s.waiting = engine::Waiting::kMenu;
        CHECK(
            server::encode_message_response("u1", replies, s) ==
            R"({"user":"u1","replies":[{"type":"text","text":"Hello \"citizen\""},)"
            R"({"type":"menu","text":"Choose:","options":[{"id":"fees","title":"Fees"},)"
            R"({"id":"docs","title":"Documents"}]},)"
            R"({"type":"media","url":"https://example.gov.in/form.pdf","caption":"Form"}],)"
            R"("session":{"flow":"passport","state":"menu","lang":"hi","waiting_for":"menu"}})"
        );
    }

    TEST_CASE("errors have one shape") {
        CHECK(
            server::encode_error("not_found", "no such endpoint", "abc") ==
            R"({"error":{"code":"not_found","message":"no such endpoint"},"request_id":"abc"})"
        );
    }
}
