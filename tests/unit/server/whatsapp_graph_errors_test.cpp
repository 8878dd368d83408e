#include <string>

#include <doctest/doctest.h>

#include <civicflow/server/whatsapp/graph_errors.hpp>

using civicflow::server::whatsapp::classify_send;
using civicflow::server::whatsapp::kind_name;
using civicflow::server::whatsapp::SendOutcome;
using Kind = SendOutcome::Kind;

namespace {

// A Graph API error body as the Cloud API sends it.
std::string graph_error(int code, const std::string& message) {
    return R"({"error":{"message":")" + message + R"(","type":"OAuthException","code":)" +
           std::to_string(code) +
           R"(,"error_data":{"messaging_product":"whatsapp","details":"details"},"fbtrace_id":"AbCdEf"}})";
}

}  // namespace

TEST_SUITE("server/whatsapp/graph_errors") {
    TEST_CASE("an accepted send yields the wamid of messages[0]") {
        const SendOutcome out = classify_send(
            200,
            R"({"messaging_product":"whatsapp","contacts":[{"input":"16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI1RkY2QzI0QTc1OEU0NjAwQUQA","message_status":"accepted"}]})"
        );
        CHECK(out.kind == Kind::kSent);
        CHECK(out.wamid == "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI1RkY2QzI0QTc1OEU0NjAwQUQA");
        CHECK(out.error_code == 0);
        CHECK(out.error_title.empty());
    }

    TEST_CASE("a 2xx without a wamid is sent with an empty wamid") {
        for (const char* body : {R"({"success":true})", "", "<html>", R"({"messages":[]})"}) {
            CAPTURE(body);
            const SendOutcome out = classify_send(200, body);
            CHECK(out.kind == Kind::kSent);
            CHECK(out.wamid.empty());
        }
    }

    TEST_CASE("each error class is recognised by its Graph error code") {
        struct Case {
            unsigned status;
            int code;
            Kind kind;
        };

        const Case cases[] = {
            // Throttling: retry later, slower.
            {400, 130429, Kind::kThrottled},
            {429, 130429, Kind::kThrottled},
            {400, 131056, Kind::kThrottled},
            {400, 80007, Kind::kThrottled},
            {400, 4, Kind::kThrottled},
            {400, 131048, Kind::kThrottled},
            // Transient: retry with backoff, even when sent with a 4xx.
            {500, 131000, Kind::kRetry},
            {400, 131000, Kind::kRetry},
            {503, 2, Kind::kRetry},
            {500, 1, Kind::kRetry},
            {503, 131016, Kind::kRetry},
            {400, 131057, Kind::kRetry},
            {503, 133004, Kind::kRetry},
            // Permanent: never retried, whatever the status.
            {400, 131047, Kind::kPermanent},
            {400, 131026, Kind::kPermanent},
            {400, 131051, Kind::kPermanent},
            {400, 100, Kind::kPermanent},
            {401, 190, Kind::kPermanent},
            {500, 131047, Kind::kPermanent},
            {400, 132001, Kind::kPermanent},
            {403, 200, Kind::kPermanent},
            {400, 133010, Kind::kPermanent},
            {400, 368, Kind::kPermanent},
        };
        for (const Case& c : cases) {
            CAPTURE(c.status);
            CAPTURE(c.code);
            const SendOutcome out = classify_send(c.status, graph_error(c.code, "(#1) title"));
            CHECK(kind_name(out.kind) == kind_name(c.kind));
            CHECK(out.error_code == c.code);
            CHECK(out.error_title == "(#1) title");
            CHECK(out.wamid.empty());
        }
    }

    TEST_CASE("the error title comes from the Graph error message") {
        const SendOutcome out =
            classify_send(400, graph_error(131047, "(#131047) Re-engagement message"));
        CHECK(out.kind == Kind::kPermanent);
        CHECK(out.error_code == 131047);
        CHECK(out.error_title == "(#131047) Re-engagement message");

        const SendOutcome user_title = classify_send(
            400, R"({"error":{"code":131026,"error_user_title":"Message Undeliverable"}})"
        );
        CHECK(user_title.error_title == "Message Undeliverable");
        CHECK(user_title.kind == Kind::kPermanent);
    }

    TEST_CASE("without a known code the HTTP status decides") {
        struct Case {
            unsigned status;
            std::string body;
            Kind kind;
            int code;
        };

        const Case cases[] = {
            {429, "", Kind::kThrottled, 0},
            {500, "", Kind::kRetry, 0},
            {502, "<html>Bad Gateway</html>", Kind::kRetry, 0},
            {503, graph_error(987654, "new transient"), Kind::kRetry, 987654},
            {400, graph_error(987654, "new"), Kind::kPermanent, 987654},
            {404, "", Kind::kPermanent, 0},
            {400, R"({"error":"not an object"})", Kind::kPermanent, 0},
            {400, R"({"error":{"code":"131047"}})", Kind::kPermanent, 0},
            {0, "", Kind::kRetry, 0},    // no answer: connection failure or timeout
            {302, "", Kind::kRetry, 0},  // unexpected: try again
            {500, R"({"error":{"code":0}})", Kind::kRetry, 0},
        };
        for (const Case& c : cases) {
            CAPTURE(c.status);
            CAPTURE(c.body);
            const SendOutcome out = classify_send(c.status, c.body);
            CHECK(kind_name(out.kind) == kind_name(c.kind));
            CHECK(out.error_code == c.code);
        }
    }

    TEST_CASE("kinds have stable names for logs and metrics") {
        CHECK(kind_name(Kind::kSent) == "sent");
        CHECK(kind_name(Kind::kRetry) == "retry");
        CHECK(kind_name(Kind::kThrottled) == "throttled");
        CHECK(kind_name(Kind::kPermanent) == "permanent");
    }
}
