#include "fake_graph.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <doctest/doctest.h>

#include <civicflow/server/whatsapp/graph_errors.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

using civicflow::server::whatsapp::classify_send;
using civicflow::server::whatsapp::kind_name;
using civicflow::server::whatsapp::SendOutcome;
using civicflow::testing::FakeGraph;
using Failure = FakeGraph::Failure;

namespace {

struct Reply {
    int status = 0;
    std::string body;
};

// A blocking HTTP/1.1 client over one keep-alive connection (POSIX sockets: the test checks the
// fake from the outside, as the sender will see it).
class Client {
public:
    explicit Client(std::uint16_t port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }

    ~Client() { ::close(fd_); }

    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    Reply post(
        const std::string& target,
        const std::string& body,
        const std::string& token = "test-token",
        const std::string& method = "POST"
    ) {
        const std::string request =
            method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "Authorization: Bearer " +
            token +
            "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n\r\n" + body;
        REQUIRE(
            ::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size())
        );
        return read_reply();
    }

private:
    Reply read_reply() {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        std::optional<std::size_t> header_end;
        std::size_t content_length = 0;
        for (;;) {
            if (!header_end) {
                const std::size_t end = buffer_.find("\r\n\r\n");
                if (end != std::string::npos) {
                    header_end = end + 4;
                    const std::size_t cl = buffer_.find("Content-Length: ");
                    REQUIRE(cl != std::string::npos);
                    content_length = std::stoul(buffer_.substr(cl + 16));
                }
            }
            if (header_end && buffer_.size() >= *header_end + content_length) {
                Reply reply;
                reply.status = std::stoi(buffer_.substr(9, 3));
                reply.body = buffer_.substr(*header_end, content_length);
                buffer_.erase(0, *header_end + content_length);
                return reply;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now()
            );
            REQUIRE_MESSAGE(left.count() > 0, "no answer from the fake Graph API");
            pollfd pfd{fd_, POLLIN, 0};
            if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
                continue;
            }
            char chunk[4096];
            const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
            REQUIRE_MESSAGE(n > 0, "the fake Graph API closed the connection");
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    int fd_ = -1;
    std::string buffer_;
};

const std::string kPath = "/v23.0/106540352242922/messages";

std::string text_to(const std::string& to) {
    return R"({"messaging_product":"whatsapp","recipient_type":"individual","to":")" + to +
           R"(","type":"text","text":{"body":"hello"}})";
}

}  // namespace

TEST_SUITE("tests/support/fake_graph") {
    TEST_CASE("a send is answered with a fresh wamid and recorded in full") {
        FakeGraph graph;
        CHECK(graph.base_url() == "http://127.0.0.1:" + std::to_string(graph.port()) + "/v23.0");
        Client client(graph.port());
        const Reply first = client.post(kPath, text_to("16505551234"));
        CHECK(first.status == 200);
        CHECK(
            first.body ==
            R"({"messaging_product":"whatsapp","contacts":[{"input":"16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.FAKE000001","message_status":"accepted"}]})"
        );
        const SendOutcome sent = classify_send(200, first.body);
        CHECK(sent.kind == SendOutcome::Kind::kSent);
        CHECK(sent.wamid == "wamid.FAKE000001");

        // Same connection (keep-alive), next wamid; a BSUID recipient is recorded as well.
        const std::string bsuid_body =
            R"({"messaging_product":"whatsapp","recipient":"US.13491208655302741918","type":"text","text":{"body":"hi"}})";
        CHECK(classify_send(200, client.post(kPath, bsuid_body).body).wamid == "wamid.FAKE000002");

        const auto requests = graph.requests();
        REQUIRE(requests.size() == 2);
        CHECK(requests[0].method == "POST");
        CHECK(requests[0].target == kPath);
        CHECK(requests[0].phone_number_id == "106540352242922");
        CHECK(requests[0].authorization == "Bearer test-token");
        CHECK(requests[0].body == text_to("16505551234"));
        CHECK(requests[0].recipient == "16505551234");
        CHECK(requests[0].status == 200);
        CHECK(requests[1].recipient == "US.13491208655302741918");
    }

    TEST_CASE("mark-as-read is answered with success and no wamid") {
        FakeGraph graph;
        Client client(graph.port());
        const Reply reply = client.post(
            kPath,
            R"({"messaging_product":"whatsapp","status":"read","message_id":"wamid.X","typing_indicator":{"type":"text"}})"
        );
        CHECK(reply.status == 200);
        CHECK(reply.body == R"({"success":true})");
        REQUIRE(graph.request_count() == 1);
        CHECK(graph.requests()[0].recipient.empty());
    }

    TEST_CASE("each scripted failure is answered in its error class") {
        struct Case {
            Failure failure;
            int status;
            int code;
            SendOutcome::Kind kind;
        };

        const Case cases[] = {
            {Failure::kServerError, 500, 131000, SendOutcome::Kind::kRetry},
            {Failure::kRateLimit, 429, 130429, SendOutcome::Kind::kThrottled},
            {Failure::kPairRateLimit, 400, 131056, SendOutcome::Kind::kThrottled},
            {Failure::kReengagement, 400, 131047, SendOutcome::Kind::kPermanent},
            {Failure::kUndeliverable, 400, 131026, SendOutcome::Kind::kPermanent},
        };
        FakeGraph graph;
        Client client(graph.port());
        for (const Case& c : cases) {
            CAPTURE(c.code);
            graph.fail_next(1, c.failure);
            const Reply reply = client.post(kPath, text_to("16505551234"));
            CHECK(reply.status == c.status);
            const SendOutcome outcome =
                classify_send(static_cast<unsigned>(reply.status), reply.body);
            CHECK(kind_name(outcome.kind) == kind_name(c.kind));
            CHECK(outcome.error_code == c.code);
            CHECK_FALSE(outcome.error_title.empty());
        }
        // The rules are used up: the next send succeeds with the first wamid handed out.
        const Reply ok = client.post(kPath, text_to("16505551234"));
        CHECK(ok.status == 200);
        CHECK(classify_send(200, ok.body).wamid == "wamid.FAKE000001");
        CHECK(graph.request_count() == 6);
        CHECK(graph.requests()[1].status == 429);
    }

    TEST_CASE("next-N failures apply to the next N requests in order") {
        FakeGraph graph;
        Client client(graph.port());
        graph.fail_next(2, Failure::kServerError);
        graph.fail_next(1, Failure::kRateLimit);
        CHECK(client.post(kPath, text_to("1")).status == 500);
        CHECK(client.post(kPath, text_to("2")).status == 500);
        CHECK(client.post(kPath, text_to("3")).status == 429);
        CHECK(client.post(kPath, text_to("4")).status == 200);
    }

    TEST_CASE("recipient failures apply to that recipient only, as many times as asked") {
        FakeGraph graph;
        Client client(graph.port());
        graph.fail_recipient("919800000001", Failure::kReengagement);
        graph.fail_recipient("919800000002", Failure::kPairRateLimit, 2);
        for (int i = 0; i < 3; ++i) {
            CHECK(client.post(kPath, text_to("919800000001")).status == 400);
        }
        CHECK(client.post(kPath, text_to("919800000003")).status == 200);
        const Reply throttled = client.post(kPath, text_to("919800000002"));
        CHECK(classify_send(400, throttled.body).error_code == 131056);
        CHECK(client.post(kPath, text_to("919800000002")).status == 400);
        CHECK(client.post(kPath, text_to("919800000002")).status == 200);

        graph.clear();
        CHECK(graph.request_count() == 0);
        CHECK(client.post(kPath, text_to("919800000001")).status == 200);
    }

    TEST_CASE("a wrong token, method or path gets a Graph error") {
        FakeGraph graph;
        graph.require_token("right-token");
        Client client(graph.port());
        const Reply denied = client.post(kPath, text_to("1"), "wrong-token");
        CHECK(denied.status == 401);
        CHECK(classify_send(401, denied.body).error_code == 190);
        CHECK(client.post(kPath, text_to("1"), "right-token").status == 200);
        CHECK(client.post("/v23.0/106540352242922/media", "{}", "right-token").status == 404);
        CHECK(client.post("/v23.0//messages", "{}", "right-token").status == 404);
        CHECK(client.post(kPath, "", "right-token", "GET").status == 404);
        REQUIRE(graph.request_count() == 5);
        CHECK(graph.requests()[2].phone_number_id.empty());
    }

    TEST_CASE("requests from concurrent connections are all recorded") {
        FakeGraph graph;
        Client a(graph.port());
        Client b(graph.port());
        for (int i = 0; i < 5; ++i) {
            CHECK(a.post(kPath, text_to("a")).status == 200);
            CHECK(b.post(kPath, text_to("b")).status == 200);
        }
        CHECK(graph.wait_for_requests(10, std::chrono::milliseconds(5000)));
        CHECK_FALSE(graph.wait_for_requests(11, std::chrono::milliseconds(1)));
    }
}
