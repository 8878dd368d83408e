/// A fake WhatsApp Cloud API (Graph API messages endpoint) for tests: a real HTTP/1.1 server on
/// 127.0.0.1, port 0, on its own thread, that records every request and answers like Meta.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace civicflow::testing {

/// Serves POST /{version}/{phone_number_id}/messages. A message send is answered 200 with a
/// fresh wamid ("wamid.FAKE000001", "wamid.FAKE000002", ... in arrival order), a mark-as-read
/// (a body with "status") with {"success":true}; any other method or path gets a 404 Graph
/// error (code 100). Every request is recorded, answered or failed, in arrival order.
///
/// Scripted failures answer with the Graph error body of their class. A next-N rule applies to
/// the next N requests to the messages endpoint, whoever they are for; a recipient rule to the
/// requests whose "to" (or "recipient") is that recipient. Next-N rules are used up first.
///
/// Connections are kept alive (HTTP/1.1) and served concurrently. All members are thread-safe.
/// The destructor stops the server and joins its thread.
class FakeGraph {
public:
    /// The error classes of the Cloud API, as Meta sends them.
    enum class Failure {
        kServerError,    // 500, code 131000 "Something went wrong"
        kRateLimit,      // 429, code 130429 "Rate limit hit"
        kPairRateLimit,  // 400, code 131056 "(Business Account, Consumer Account) pair rate limit
                         // hit"
        kReengagement,   // 400, code 131047 "Re-engagement message" (outside the 24-hour window)
        kUndeliverable,  // 400, code 131026 "Message undeliverable"
    };

    struct Request {
        std::string method;           // "POST"
        std::string target;           // "/v23.0/106540352242922/messages"
        std::string phone_number_id;  // from the path; "" when the path is not the endpoint
        std::string authorization;    // the Authorization header as sent
        std::string body;
        std::string recipient;  // the body's "to" or "recipient"; "" for mark-as-read
        int status = 0;         // the status the fake answered
    };

    /// Starts listening; throws std::runtime_error when it cannot bind.
    FakeGraph();
    ~FakeGraph();
    FakeGraph(const FakeGraph&) = delete;
    FakeGraph& operator=(const FakeGraph&) = delete;

    std::uint16_t port() const;

    /// "http://127.0.0.1:PORT/v23.0": what CIVICFLOW_WA_API_BASE is set to in tests.
    std::string base_url() const;

    /// Requests whose Authorization is not "Bearer <token>" get 401, code 190. Off by default.
    void require_token(std::string token);

    /// The next `count` requests to the messages endpoint fail with `failure`.
    void fail_next(std::size_t count, Failure failure);

    /// Requests for `recipient` fail with `failure`, `count` times (by default: always).
    void fail_recipient(
        std::string recipient, Failure failure, std::size_t count = static_cast<std::size_t>(-1)
    );

    std::vector<Request> requests() const;
    std::size_t request_count() const;

    /// Blocks until at least `count` requests were recorded; false at the deadline.
    bool wait_for_requests(std::size_t count, std::chrono::milliseconds timeout) const;

    /// Forgets the recorded requests and every scripted failure (the wamid counter goes on).
    void clear();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace civicflow::testing
