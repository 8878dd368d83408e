// The WhatsApp channel end to end: the real `civicflow serve` with the channel's environment,
// signed webhooks sent over HTTP, and a fake Graph API recording what the server sends.
#include <chrono>
#include <csignal>
#include <ctime>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <civicflow/server/whatsapp/signature.hpp>

#include "fake_graph.hpp"
#include "test_support.hpp"

namespace ct = civicflow::testing;
using civicflow::testing::FakeGraph;
using std::chrono::milliseconds;

namespace {

constexpr const char* kSecret = "it-app-secret";
constexpr const char* kVerify = "it-verify-token";
constexpr const char* kAccess = "it-access-token";
constexpr const char* kNotify = "it-notify-token";
constexpr const char* kAdmin = "it-admin-token";
constexpr const char* kNumber = "106540352242922";

std::uint16_t port_of(const std::string& line) {
    return static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
}

std::string now_seconds(long offset = 0) {
    return std::to_string(static_cast<long>(std::time(nullptr)) + offset);
}

// One webhook value with `messages_json` (already JSON) from `from`.
std::string webhook(
    const std::string& messages_json, const std::string& from, const char* number = kNumber
) {
    return std::string(R"({"object":"whatsapp_business_account","entry":[{"id":"102290129340398",)"
           ) +
           R"("changes":[{"value":{"messaging_product":"whatsapp","metadata":{)" +
           R"("display_phone_number":"15550783881","phone_number_id":")" + number +
           R"("},"contacts":[{"profile":{"name":"Asha"},"wa_id":")" + from + R"("}],"messages":)" +
           messages_json + R"(},"field":"messages"}]}]})";
}

std::string text_message(
    const std::string& from, const std::string& id, const std::string& text, long age = 0
) {
    return webhook(
        R"([{"from":")" + from + R"(","id":")" + id + R"(","timestamp":")" + now_seconds(-age) +
            R"(","type":"text","text":{"body":")" + ct::json_escape(text) + R"("}}])",
        from
    );
}

std::string button_reply(
    const std::string& from, const std::string& id, const std::string& option
) {
    return webhook(
        R"([{"from":")" + from + R"(","id":")" + id + R"(","timestamp":")" + now_seconds() +
            R"(","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":")" +
            option + R"(","title":"x"}}}])",
        from
    );
}

std::string status_webhook(
    const std::string& wamid, const std::string& status, const std::string& to
) {
    return std::string(R"({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[)") +
           R"({"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1",)" +
           R"("phone_number_id":")" + kNumber + R"("},"statuses":[{"id":")" + wamid +
           R"(","status":")" + status + R"(","timestamp":")" + now_seconds() +
           R"(","recipient_id":")" + to + R"("}]},"field":"messages"}]}]})";
}

struct Server {
    Server(const std::string& dir, const FakeGraph& graph, const std::string& extra = {})
        : log_path(dir + "/serve.log")
        , proc(
              [&] {
                  ct::write_file(
                      dir + "/civicflow.yaml",
                      "version: 1\n"
                      "threads: 2\n"
                      "log: { level: debug }\n"
                      "whatsapp:\n"
                      "  numbers: { \"106540352242922\": { flow: main } }\n"
                      "  retry_backoff: 50ms\n"
                      "  max_retry_backoff: 200ms\n"
                      "  recipient_interval: 1ms\n" +
                          extra
                  );
                  return std::vector<std::string>{
                      CIVICFLOW_BIN,
                      "serve",
                      "--config",
                      dir + "/civicflow.yaml",
                      "--flows",
                      std::string(CIVICFLOW_SOURCE_DIR) + "/flows",
                      "--listen",
                      "127.0.0.1:0",
                      "--store",
                      "sqlite:" + dir + "/civicflow.db"};
              }(),
              {std::string("CIVICFLOW_WA_APP_SECRET=") + kSecret,
               std::string("CIVICFLOW_WA_VERIFY_TOKEN=") + kVerify,
               std::string("CIVICFLOW_WA_ACCESS_TOKEN=") + kAccess,
               std::string("CIVICFLOW_NOTIFY_TOKEN=") + kNotify,
               std::string("CIVICFLOW_ADMIN_TOKEN=") + kAdmin,
               "CIVICFLOW_WA_API_BASE=" + graph.base_url()},
              log_path
          ) {
        const std::string line = proc.wait_for_line("listening on ", milliseconds(20000));
        REQUIRE_MESSAGE(
            !line.empty(), "civicflow serve did not start: " << ct::read_file(log_path)
        );
        port = port_of(line);
    }

    std::optional<ct::Response> post(const std::string& body, const std::string& signature) const {
        std::vector<std::string> headers{"Content-Type: application/json"};
        if (!signature.empty())
            headers.push_back("X-Hub-Signature-256: " + signature);
        return ct::request(port, "POST", "/webhooks/whatsapp", body, headers);
    }

    std::optional<ct::Response> signed_post(const std::string& body) const {
        return post(body, civicflow::server::whatsapp::sign_body(body, kSecret));
    }

    std::string log() const { return ct::read_file(log_path); }

    std::string log_path;
    ct::ChildProcess proc;
    std::uint16_t port = 0;
};

// The message sends (not mark-as-read) recorded for `to`.
std::vector<FakeGraph::Request> sends_to(const FakeGraph& graph, const std::string& to) {
    std::vector<FakeGraph::Request> out;
    for (auto& r : graph.requests()) {
        if (r.recipient == to)
            out.push_back(r);
    }
    return out;
}

bool wait_sends(const FakeGraph& graph, const std::string& to, std::size_t n) {
    return ct::poll_until([&] { return sends_to(graph, to).size() >= n; }, milliseconds(10000));
}

// Waits for at least one send to `to`, then until no more arrive for 300 ms (a turn's replies
// go out one after the other); returns them.
std::vector<FakeGraph::Request> settled_sends(
    const FakeGraph& graph, const std::string& to, std::size_t at_least = 1
) {
    REQUIRE(wait_sends(graph, to, at_least));
    std::size_t last = 0;
    for (int i = 0; i < 100; ++i) {
        const std::size_t n = sends_to(graph, to).size();
        if (n == last)
            break;
        last = n;
        std::this_thread::sleep_for(milliseconds(300));
    }
    return sends_to(graph, to);
}

std::string admin_get(const Server& s, const std::string& path) {
    auto r = ct::request(s.port, "GET", path, {}, {std::string("Authorization: Bearer ") + kAdmin});
    return r ? r->body : std::string();
}

}  // namespace

TEST_SUITE("integration/whatsapp") {
    TEST_CASE("verification answers the challenge only for the right token") {
        FakeGraph graph;
        Server s(ct::make_temp_dir(), graph);
        auto ok = ct::request(
            s.port,
            "GET",
            std::string("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=") + kVerify +
                "&hub.challenge=1158201444"
        );
        REQUIRE(ok);
        CHECK(ok->status == 200);
        CHECK(ok->body == "1158201444");
        CHECK(ok->header("content-type") == "text/plain");
        auto wrong = ct::request(
            s.port,
            "GET",
            "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=739184625"
        );
        REQUIRE(wrong);
        CHECK(wrong->status == 403);
        CHECK(wrong->body.find("739184625") == std::string::npos);  // the challenge not echoed
        // The error shape of every other route, with the request id of the header.
        CHECK_FALSE(wrong->header("X-Request-Id").empty());
        CHECK(ct::json_string(wrong->body, "request_id") == wrong->header("X-Request-Id"));
    }

    TEST_CASE("a signed text message is answered once through the Graph API, redeliveries not") {
        FakeGraph graph;
        graph.require_token(kAccess);
        Server s(ct::make_temp_dir(), graph);
        const std::string body = text_message("919800000001", "wamid.IT1", "hi");
        auto r = s.signed_post(body);
        REQUIRE(r);
        CHECK(r->status == 200);
        // The reply is the main menu, addressed from the configured number, with our token.
        const auto sends = settled_sends(graph, "919800000001");
        CHECK(sends[0].phone_number_id == kNumber);
        CHECK(sends[0].authorization == std::string("Bearer ") + kAccess);
        CHECK(sends[0].status == 200);
        CHECK(sends[0].body.find("\"messaging_product\":\"whatsapp\"") != std::string::npos);
        // The message was marked read (with a typing indicator).
        CHECK(ct::poll_until(
            [&] {
                for (auto& q : graph.requests()) {
                    if (q.body.find("\"status\":\"read\"") != std::string::npos &&
                        q.body.find("wamid.IT1") != std::string::npos)
                        return true;
                }
                return false;
            },
            milliseconds(5000)
        ));
        const std::size_t replies = sends.size();
        // Meta redelivers the same body (concurrently, twice): no second answer.
        auto again = s.signed_post(body);
        auto third = s.signed_post(body);
        REQUIRE(again);
        REQUIRE(third);
        CHECK(again->status == 200);
        std::this_thread::sleep_for(milliseconds(500));
        CHECK(sends_to(graph, "919800000001").size() == replies);
        CHECK(
            ct::request(s.port, "GET", "/metrics")
                ->body.find("civicflow_whatsapp_duplicates_total 2") != std::string::npos
        );
    }

    TEST_CASE("webhook bodies up to 3 MiB are accepted, past the API's own body limit") {
        FakeGraph graph;
        Server s(ct::make_temp_dir(), graph);
        // A text message whose entry carries a field we do not read, 1 MiB long: the body is far
        // over the API's limit (64 KiB by default) and under the webhook's.
        const std::string text = text_message("919800000009", "wamid.BIG1", "hi");
        const std::string pad = R"("padding":")" + std::string(1024 * 1024, 'x') + R"(",)";
        std::string big = text;
        big.insert(big.find(R"("changes")"), pad);
        auto r = s.signed_post(big);
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(wait_sends(graph, "919800000009", 1));
        // The same size on the message API is refused before its body is read.
        auto api = ct::request(s.port, "POST", "/v1/messages", big);
        REQUIRE(api);
        CHECK(api->status == 413);
        // Past 3 MiB the webhook refuses too.
        std::string huge = text;
        huge.insert(
            huge.find(R"("changes")"),
            R"("padding":")" + std::string(3 * 1024 * 1024, 'x') + R"(",)"
        );
        auto over = s.signed_post(huge);
        REQUIRE(over);
        CHECK(over->status == 413);
    }

    TEST_CASE("forged, missing and tampered signatures are refused and change nothing") {
        FakeGraph graph;
        Server s(ct::make_temp_dir(), graph);
        const std::string body = text_message("919800000002", "wamid.IT2", "hi");
        auto missing = s.post(body, "");
        auto forged = s.post(body, "sha256=" + std::string(64, '0'));
        auto other_key =
            s.post(body, civicflow::server::whatsapp::sign_body(body, "not-the-secret"));
        auto tampered = s.post(
            text_message("919800000002", "wamid.IT2", "hello"),
            civicflow::server::whatsapp::sign_body(body, kSecret)
        );
        for (const auto& r : {missing, forged, other_key, tampered}) {
            REQUIRE(r);
            CHECK(r->status == 401);
            CHECK(ct::json_string(r->body, "code") == "invalid_signature");
            CHECK(r->body.find(kSecret) == std::string::npos);
        }
        std::this_thread::sleep_for(milliseconds(300));
        CHECK(graph.request_count() == 0);
        // The log says why, never the body.
        CHECK(s.log().find("reason=bad_signature") != std::string::npos);
        CHECK(s.log().find("919800000002") == std::string::npos);
        // The genuine message still gets its answer: nothing was used up.
        auto ok = s.signed_post(body);
        REQUIRE(ok);
        CHECK(ok->status == 200);
        CHECK(wait_sends(graph, "919800000002", 1));
    }

    TEST_CASE("a batch with several entries and messages answers every citizen in order") {
        FakeGraph graph;
        Server s(ct::make_temp_dir(), graph);
        const std::string a = text_message("919800000003", "wamid.B1", "hi");
        const std::string b = text_message("919800000004", "wamid.B2", "hi");
        // Two entries in one POST, the second with two messages of one citizen.
        const std::string entry_a = a.substr(a.find("{\"id\""), a.rfind("]}") - a.find("{\"id\""));
        const std::string two = webhook(
            R"([{"from":"919800000004","id":"wamid.B2","timestamp":")" + now_seconds() +
                R"(","type":"text","text":{"body":"hi"}},{"from":"919800000004","id":"wamid.B3",)"
                R"("timestamp":")" +
                now_seconds() + R"(","type":"text","text":{"body":"menu"}}])",
            "919800000004"
        );
        const std::string entry_b =
            two.substr(two.find("{\"id\""), two.rfind("]}") - two.find("{\"id\""));
        const std::string batch =
            R"({"object":"whatsapp_business_account","entry":[)" + entry_a + "," + entry_b + "]}";
        (void)b;
        auto r = s.signed_post(batch);
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(wait_sends(graph, "919800000003", 1));
        // Both messages of the second citizen were answered: two menus.
        CHECK(ct::poll_until(
            [&] { return sends_to(graph, "919800000004").size() >= 2; }, milliseconds(10000)
        ));
    }

    // Many citizens in one POST on two I/O threads: the turns, the sender and the recovery loop
    // (which reads the inbox while the batch is still being stored) run at once, and each
    // message must still get its replies exactly once and run its turn once.
    TEST_CASE("a batch of many citizens is answered exactly once, each turn run once") {
        FakeGraph graph;
        Server s(ct::make_temp_dir(), graph);
        constexpr int kCitizens = 200;
        std::string messages = "[";
        std::string contacts = "[";
        for (int i = 0; i < kCitizens; ++i) {
            const std::string from = std::to_string(919700000000LL + i);
            if (i > 0) {
                messages += ",";
                contacts += ",";
            }
            messages += R"({"from":")" + from + R"(","id":"wamid.MANY)" + std::to_string(i) +
                        R"(","timestamp":")" + now_seconds() +
                        R"(","type":"text","text":{"body":"hi"}})";
            contacts += R"({"profile":{"name":"C"},"wa_id":")" + from + R"("})";
        }
        messages += "]";
        contacts += "]";
        std::string body = webhook(messages, "919700000000");
        const std::string one_contact = R"([{"profile":{"name":"Asha"},"wa_id":"919700000000"}])";
        body.replace(body.find(one_contact), one_contact.size(), contacts);
        auto r = s.signed_post(body);
        REQUIRE(r);
        REQUIRE(r->status == 200);
        // Wait until every citizen has had a reply and no send came for 1.5 s.
        auto sends = [&] {
            std::map<std::string, std::vector<std::string>> by_citizen;
            for (auto& q : graph.requests()) {
                if (!q.recipient.empty())
                    by_citizen[q.recipient].push_back(q.body);
            }
            return by_citizen;
        };
        REQUIRE(ct::poll_until([&] { return sends().size() == kCitizens; }, milliseconds(20000)));
        std::size_t last = 0;
        for (int i = 0; i < 40; ++i) {
            std::size_t n = 0;
            for (auto& [to, bodies] : sends())
                n += bodies.size();
            if (n == last)
                break;
            last = n;
            std::this_thread::sleep_for(milliseconds(1500));
        }
        // "hi" gets the same replies for everyone, each once.
        const auto by_citizen = sends();
        const std::size_t per_citizen = by_citizen.begin()->second.size();
        CHECK(per_citizen >= 1);
        for (auto& [to, bodies] : by_citizen) {
            CAPTURE(to);
            CHECK(bodies.size() == per_citizen);
            CHECK(std::set<std::string>(bodies.begin(), bodies.end()).size() == bodies.size());
        }
        const std::string metrics = ct::request(s.port, "GET", "/metrics")->body;
        CHECK(
            metrics.find("civicflow_whatsapp_turns_total " + std::to_string(kCitizens) + "\n") !=
            std::string::npos
        );
        CHECK(s.log().find("message_repeat") == std::string::npos);
    }

    TEST_CASE("a username-only citizen is answered by user id, a photo reaches the grievance") {
        FakeGraph graph;
        Server s(ct::make_temp_dir(), graph);
        const std::string user = "US.13491208655302741918";
        const std::string body =
            std::string(R"({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[)") +
            R"({"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1",)" +
            R"("phone_number_id":")" + kNumber +
            R"("},"contacts":[{"profile":{"name":"Sam","username":"@sam.k"},"user_id":")" + user +
            R"("}],"messages":[{"from_user_id":")" + user + R"(","id":"wamid.U1","timestamp":")" +
            now_seconds() + R"(","type":"text","text":{"body":"hi"}}]},"field":"messages"}]}]})";
        REQUIRE(s.signed_post(body)->status == 200);
        const auto sends = settled_sends(graph, user);
        CHECK(sends.back().body.find("\"recipient\":\"" + user + "\"") != std::string::npos);
        // A phone-number citizen files a grievance with a photo (media id, MIME type, caption).
        const std::string to = "919800000014";
        REQUIRE(s.signed_post(button_reply(to, "wamid.G1", "grievance"))->status == 200);
        const std::string ask = settled_sends(graph, to).back().body;
        CHECK(ask.find("\"text\"") != std::string::npos);
        // Walk the grievance flow with text until it asks for the photo, then send one.
        bool asked_photo = false;
        const std::vector<std::string> answers{
            "streetlight",
            "The streetlight on MG Road has been broken for two weeks",
            "No light on MG Road for two weeks now"};
        for (std::size_t i = 0; i < answers.size() && !asked_photo; ++i) {
            const std::size_t n = sends_to(graph, to).size();
            REQUIRE(
                s.signed_post(text_message(to, "wamid.G" + std::to_string(i + 2), answers[i]))
                    ->status == 200
            );
            const std::string last = settled_sends(graph, to, n + 1).back().body;
            asked_photo = last.find("photo") != std::string::npos;
        }
        std::string all;
        for (auto& r : sends_to(graph, to))
            all += r.body.substr(0, 160) + "\n";
        REQUIRE_MESSAGE(asked_photo, all);
        const std::size_t n = sends_to(graph, to).size();
        const std::string photo = webhook(
            R"([{"from":")" + to + R"(","id":"wamid.G9","timestamp":")" + now_seconds() +
                R"(","type":"image","image":{"caption":"the broken light","mime_type":"image/jpeg",)"
                R"("sha256":"abc","id":"1003383421387256"}}])",
            to
        );
        REQUIRE(s.signed_post(photo)->status == 200);
        const std::string after = settled_sends(graph, to, n + 1).back().body;
        // The flow moved past the photo question (no re-ask for a photo).
        CHECK(after.find("Please send the photo itself") == std::string::npos);
        CHECK(after.find("photo of the problem") == std::string::npos);
    }

    TEST_CASE("a list reply is a menu choice") {
        FakeGraph graph;
        Server s(ct::make_temp_dir(), graph);
        const std::string to = "919800000005";
        REQUIRE(s.signed_post(text_message(to, "wamid.L1", "hi"))->status == 200);
        // The main menu's options go out with their ids intact; choose the status lookup.
        const std::string menu = settled_sends(graph, to).back().body;
        CHECK(menu.find("\"interactive\"") != std::string::npos);
        CHECK(menu.find("\"id\":\"status\"") != std::string::npos);
        const std::size_t before = sends_to(graph, to).size();
        REQUIRE(s.signed_post(button_reply(to, "wamid.L2", "status"))->status == 200);
        const std::string ask = settled_sends(graph, to, before + 1).back().body;
        CHECK(ask.find("reference") != std::string::npos);
    }

    TEST_CASE("statuses are recorded and visible to operators") {
        FakeGraph graph;
        Server s(ct::make_temp_dir(), graph);
        const std::string to = "919800000006";
        REQUIRE(s.signed_post(text_message(to, "wamid.S1", "hi"))->status == 200);
        REQUIRE(wait_sends(graph, to, 1));
        REQUIRE(ct::poll_until(
            [&] {
                return admin_get(s, "/v1/admin/whatsapp/messages/wamid.S1%230").find("\"sent\"") !=
                       std::string::npos;
            },
            milliseconds(5000)
        ));
        const std::string record = admin_get(s, "/v1/admin/whatsapp/messages/wamid.S1%230");
        const std::string wamid = ct::json_string(record, "wamid");
        CHECK(wamid.rfind("wamid.FAKE", 0) == 0);
        CHECK(record.find(to) == std::string::npos);  // no recipient, no body
        REQUIRE(s.signed_post(status_webhook(wamid, "delivered", to))->status == 200);
        REQUIRE(s.signed_post(status_webhook(wamid, "read", to))->status == 200);
        // A late "delivered" after "read" does not move it back.
        REQUIRE(s.signed_post(status_webhook(wamid, "delivered", to))->status == 200);
        const std::string after = admin_get(s, "/v1/admin/whatsapp/messages/" + wamid);
        CHECK(ct::json_string(after, "state") == "read");
        const std::string counts = admin_get(s, "/v1/admin/whatsapp/deliveries");
        CHECK(ct::json_int(counts, "read") >= 1);
        CHECK(ct::json_int(counts, "delivered") >= 1);
        auto metrics = ct::request(s.port, "GET", "/metrics");
        REQUIRE(metrics);
        CHECK(
            metrics->body.find("civicflow_whatsapp_outbound_total{state=\"read\"} 1") !=
            std::string::npos
        );
        // Without the admin token: 401.
        auto anon = ct::request(s.port, "GET", "/v1/admin/whatsapp/deliveries");
        REQUIRE(anon);
        CHECK(anon->status == 401);
    }

    TEST_CASE("transient errors are retried, permanent ones recorded and never retried") {
        FakeGraph graph;
        Server s(ct::make_temp_dir(), graph);
        const std::string flaky = "919800000007";
        const std::string gone = "919800000008";
        graph.fail_recipient(flaky, FakeGraph::Failure::kServerError, 2);
        graph.fail_recipient(gone, FakeGraph::Failure::kUndeliverable);
        const std::string throttled = "919800000015";
        graph.fail_recipient(throttled, FakeGraph::Failure::kRateLimit, 1);
        REQUIRE(s.signed_post(text_message(throttled, "wamid.R3", "hi"))->status == 200);
        REQUIRE(s.signed_post(text_message(flaky, "wamid.R1", "hi"))->status == 200);
        REQUIRE(s.signed_post(text_message(gone, "wamid.R2", "hi"))->status == 200);
        // Two 500s, then accepted: three attempts for the first message.
        REQUIRE(ct::poll_until(
            [&] {
                auto v = sends_to(graph, flaky);
                return !v.empty() && v.back().status == 200;
            },
            milliseconds(10000)
        ));
        CHECK(sends_to(graph, flaky).size() >= 3);
        // Throttled (130429) once, then sent after the pause.
        CHECK(ct::poll_until(
            [&] {
                auto v = sends_to(graph, throttled);
                return v.size() >= 2 && v.front().status == 429 && v.back().status == 200;
            },
            milliseconds(10000)
        ));
        REQUIRE(ct::poll_until(
            [&] {
                return admin_get(s, "/v1/admin/whatsapp/messages/wamid.R2%230")
                           .find("\"failed\"") != std::string::npos;
            },
            milliseconds(5000)
        ));
        const std::string failed = admin_get(s, "/v1/admin/whatsapp/messages/wamid.R2%230");
        CHECK(ct::json_int(failed, "error_code") == 131026);
        std::this_thread::sleep_for(milliseconds(500));
        // One attempt per rendered message, none repeated.
        const auto gone_sends = sends_to(graph, gone);
        CHECK(ct::poll_until([&] { return !sends_to(graph, gone).empty(); }, milliseconds(1000)));
        for (std::size_t i = 1; i < gone_sends.size(); ++i)
            CHECK(gone_sends[i].body != gone_sends[0].body);
    }

    TEST_CASE("replies left in the outbox by a crash are sent after the restart, once") {
        FakeGraph graph;
        const std::string dir = ct::make_temp_dir();
        const std::string to = "919800000009";
        graph.fail_recipient(to, FakeGraph::Failure::kServerError);
        {
            Server s(dir, graph, "  max_attempts: 100\n");
            REQUIRE(s.signed_post(text_message(to, "wamid.C1", "hi"))->status == 200);
            REQUIRE(wait_sends(graph, to, 1));  // tried and failed
            s.proc.send_signal(SIGKILL);
            s.proc.wait_exit(milliseconds(5000));
        }
        graph.clear();
        Server again(dir, graph, "  max_attempts: 100\n");
        REQUIRE(wait_sends(graph, to, 1));
        std::this_thread::sleep_for(milliseconds(700));
        const auto sends = sends_to(graph, to);
        // Every rendered reply exactly once, all accepted.
        std::set<std::string> bodies;
        for (const auto& r : sends) {
            CHECK(r.status == 200);
            CHECK(bodies.insert(r.body).second);
        }
        // The message itself is not answered a second time.
        REQUIRE(again.signed_post(text_message(to, "wamid.C1", "hi"))->status == 200);
        std::this_thread::sleep_for(milliseconds(300));
        CHECK(sends_to(graph, to).size() == sends.size());
    }

    TEST_CASE("erasure in chat removes the citizen's channel records and still confirms") {
        FakeGraph graph;
        Server s(ct::make_temp_dir(), graph);
        const std::string to = "919800000013";
        REQUIRE(s.signed_post(text_message(to, "wamid.E1", "hi"))->status == 200);
        settled_sends(graph, to);
        REQUIRE(ct::poll_until(
            [&] {
                return admin_get(s, "/v1/admin/whatsapp/messages/wamid.E1%230").find("\"sent\"") !=
                       std::string::npos;
            },
            milliseconds(5000)
        ));
        const std::size_t before = sends_to(graph, to).size();
        REQUIRE(s.signed_post(text_message(to, "wamid.E2", "delete my data"))->status == 200);
        settled_sends(graph, to, before + 1);
        const std::size_t asked = sends_to(graph, to).size();
        REQUIRE(s.signed_post(button_reply(to, "wamid.E3", "yes"))->status == 200);
        const auto after = settled_sends(graph, to, asked + 1);
        CHECK(after.back().body.find("Your data has been deleted.") != std::string::npos);
        // Nothing of the conversation is left to query.
        auto gone = ct::request(
            s.port,
            "GET",
            "/v1/admin/whatsapp/messages/wamid.E1%230",
            {},
            {std::string("Authorization: Bearer ") + kAdmin}
        );
        REQUIRE(gone);
        CHECK(gone->status == 404);
        CHECK(
            ct::request(
                s.port,
                "GET",
                "/v1/admin/whatsapp/messages/wamid.E3%230",
                {},
                {std::string("Authorization: Bearer ") + kAdmin}
            )
                ->status == 404
        );
    }

    TEST_CASE("replies outside the 24-hour window are not sent") {
        FakeGraph graph;
        Server s(ct::make_temp_dir(), graph);
        const std::string to = "919800000010";
        REQUIRE(s.signed_post(text_message(to, "wamid.W1", "hi", 25L * 3600))->status == 200);
        REQUIRE(ct::poll_until(
            [&] {
                return admin_get(s, "/v1/admin/whatsapp/messages/wamid.W1%230")
                           .find("\"failed\"") != std::string::npos;
            },
            milliseconds(5000)
        ));
        CHECK(
            ct::json_int(admin_get(s, "/v1/admin/whatsapp/messages/wamid.W1%230"), "error_code") ==
            131047
        );
        CHECK(sends_to(graph, to).empty());
    }

    // The sender may hold a citizen's message (here: waiting for the number's send rate) when
    // the citizen is erased: it must not go out after the erasure.
    TEST_CASE("a notification waiting to be sent is dropped when its citizen is erased") {
        FakeGraph graph;
        Server s(ct::make_temp_dir(), graph, "  send_rate: 1\n");
        const std::vector<std::string> auth{std::string("Authorization: Bearer ") + kNotify};
        const std::string to = "919800000021";
        auto notify = [&](const std::string& key) {
            return ct::request(
                s.port,
                "POST",
                "/v1/notifications",
                R"({"citizen":")" + to + R"(","template":"t","lang":"en","idempotency_key":")" +
                    key + R"("})",
                auth
            );
        };
        REQUIRE(notify("e1")->status == 202);
        REQUIRE(wait_sends(graph, to, 1));
        REQUIRE(notify("e2")->status == 202);  // waits about a second for the send rate
        auto erased = ct::request(
            s.port,
            "DELETE",
            std::string("/v1/citizens/wa:") + kNumber + ":" + to,
            {},
            {std::string("Authorization: Bearer ") + kAdmin}
        );
        REQUIRE(erased);
        CHECK(erased->status == 200);
        std::this_thread::sleep_for(milliseconds(2000));
        CHECK(sends_to(graph, to).size() == 1);
        CHECK(
            ct::request(s.port, "GET", "/metrics")
                ->body.find("civicflow_whatsapp_sends_total{outcome=\"erased\"} 1") !=
            std::string::npos
        );
    }

    TEST_CASE("notifications send a template once per key and never to an opted-out citizen") {
        FakeGraph graph;
        Server s(ct::make_temp_dir(), graph);
        const std::string body =
            R"({"citizen":"919800000011","template":"application_update","lang":"en",)"
            R"("params":["BC-2026-000123","verification"],"idempotency_key":"app-123-stage-2"})";
        const std::vector<std::string> auth{std::string("Authorization: Bearer ") + kNotify};
        auto first = ct::request(s.port, "POST", "/v1/notifications", body, auth);
        REQUIRE(first);
        CHECK(first->status == 202);
        CHECK(ct::json_string(first->body, "status") == "queued");
        REQUIRE(wait_sends(graph, "919800000011", 1));
        const auto sent = sends_to(graph, "919800000011");
        CHECK(sent[0].body.find("\"template\"") != std::string::npos);
        CHECK(sent[0].body.find("application_update") != std::string::npos);
        auto repeat = ct::request(s.port, "POST", "/v1/notifications", body, auth);
        REQUIRE(repeat);
        CHECK(repeat->status == 200);
        CHECK(ct::json_string(repeat->body, "status") == "duplicate");
        std::this_thread::sleep_for(milliseconds(400));
        CHECK(sends_to(graph, "919800000011").size() == 1);
        // Wrong token, bad body.
        auto anon =
            ct::request(s.port, "POST", "/v1/notifications", body, {"Authorization: Bearer x"});
        REQUIRE(anon);
        CHECK(anon->status == 401);
        auto bad = ct::request(s.port, "POST", "/v1/notifications", R"({"citizen":""})", auth);
        REQUIRE(bad);
        CHECK(bad->status == 400);
        // A citizen id the webhooks would never carry is refused, not sent to.
        for (const char* citizen : {" 919800000011", "91 98000 00011", "+", "91980-0000011"}) {
            CAPTURE(citizen);
            auto odd = ct::request(
                s.port,
                "POST",
                "/v1/notifications",
                std::string(R"({"citizen":")") + citizen +
                    R"(","template":"t","lang":"en","idempotency_key":"odd"})",
                auth
            );
            REQUIRE(odd);
            CHECK(odd->status == 400);
        }
        // A citizen who says "stop" in chat is refused, however the number is written.
        const std::string to = "919800000012";
        REQUIRE(s.signed_post(text_message(to, "wamid.N1", "stop"))->status == 200);
        REQUIRE(ct::poll_until(
            [&] {
                auto r = ct::request(
                    s.port,
                    "POST",
                    "/v1/notifications",
                    R"({"citizen":"919800000012","template":"t","lang":"en","idempotency_key":"k2"})",
                    auth
                );
                return r && r->status == 409;
            },
            milliseconds(5000)
        ));
        auto plus = ct::request(
            s.port,
            "POST",
            "/v1/notifications",
            R"({"citizen":"+919800000012","template":"t","lang":"en","idempotency_key":"k3"})",
            auth
        );
        REQUIRE(plus);
        CHECK(plus->status == 409);
        std::this_thread::sleep_for(milliseconds(300));
        CHECK(sends_to(graph, "+919800000012").empty());
    }
}
