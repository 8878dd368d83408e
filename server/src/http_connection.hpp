// One accepted HTTP connection (private to the server).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <civicflow/server/config.hpp>

namespace civicflow::server {

class MessageService;
class Store;
class HttpConnection;
class WhatsAppChannel;
class BackendClient;

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

// A response as the server writes it. The status line and headers are formatted by
// format_head() into one buffer written together with the body in one call, rather than by
// Beast's serializer (docs/performance.md, "The connection loop").
struct HttpAnswer {
    unsigned status = 200;
    std::string body;
    const char* content_type = "application/json";
    std::string request_id;       // X-Request-Id; empty: none
    const char* allow = nullptr;  // 405: the Allow header
    bool head = false;            // the answer to HEAD: the headers only, Content-Length: 0
};

// Appends the status line and headers of `answer` to `out`: HTTP/1.0 or 1.1 as the request
// was, Server, Content-Type, X-Request-Id, Allow, the Connection header that `keep_alive` needs
// for that version, Content-Length, and the blank line.
void format_head(const HttpAnswer& answer, unsigned version, bool keep_alive, std::string& out);

// State shared by the listener and its connections.
struct ServerContext {
    ServerContext(
        Limits l,
        bool access,
        MessageService& s,
        Store& st,
        std::string token = {},
        WhatsAppChannel* wa = nullptr,
        std::string api = {}
    )
        : limits(l)
        , access_log(access)
        , service(s)
        , store(st)
        , admin_token(std::move(token))
        , api_token(std::move(api))
        , whatsapp(wa) {}

    Limits limits;
    bool access_log;
    MessageService& service;
    Store& store;
    std::string admin_token;
    std::string api_token;                    // empty: /v1/messages takes no token
    WhatsAppChannel* whatsapp;                // nullptr: the channel is not configured
    const BackendClient* backends = nullptr;  // the flows' backends, for /metrics
    std::atomic<bool> draining{false};

    // Responses of routed requests by route and status, for /metrics.
    static constexpr std::array<std::string_view, 9> kRoutes{
        "messages",
        "citizens",
        "whatsapp",
        "notifications",
        "admin",
        "metrics",
        "healthz",
        "readyz",
        "unknown"};
    static constexpr std::array<int, 11> kStatuses{
        200, 400, 401, 403, 404, 405, 409, 413, 500, 503, 0};  // 0: any other
    std::array<std::array<std::atomic<std::uint64_t>, kStatuses.size()>, kRoutes.size()>
        responses{};

    void count_response(std::string_view route, int status);

    std::uint64_t add(const std::shared_ptr<HttpConnection>& c);
    void remove(std::uint64_t id);
    std::size_t count() const;
    std::vector<std::shared_ptr<HttpConnection>> snapshot() const;

private:
    mutable std::mutex mutex_;
    std::uint64_t next_id_ = 1;
    std::unordered_map<std::uint64_t, std::weak_ptr<HttpConnection>> connections_;
};

// A connection: one coroutine reads a request, routes it and writes its response, then reads
// the next (keep-alive; pipelined requests already buffered are answered in order, one after
// the other). Everything of a connection runs on its executor (a strand, or the one thread of
// a single-threaded io_context), so no member needs a lock, except the deadline, which the
// server's sweeper reads from its own strand.
//
// Beast's request_parser parses what the socket gives; the response is written with one
// non-blocking send of its headers and body, and waited for (async_write) only when the socket
// does not take it all, so a request costs one completion handler: its read. Timeouts are
// deadlines that the server's sweeper enforces (see expire_if_due), not a timer per operation.
class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
public:
    HttpConnection(boost::asio::ip::tcp::socket socket, std::shared_ptr<ServerContext> ctx);
    ~HttpConnection();

    void start();
    // Thread-safe: stop reading new requests; the request being handled is answered (with
    // Connection: close) and the connection ends.
    void drain();
    // Thread-safe: close now.
    void force_close();
    // Thread-safe (the sweeper calls it for every connection, every tick): closes the connection
    // when its deadline (`idle_timeout` waiting for a request, `read_timeout` reading one or
    // writing a response) is past `now`; a pending read or write then ends as if the peer left.
    void expire_if_due(std::chrono::steady_clock::time_point now);

private:
    boost::asio::awaitable<void> run();
    // Reads one request into `req`; false when the connection must end (after answering any
    // protocol error).
    boost::asio::awaitable<bool> read_request(HttpRequest& req);
    // Appends bytes from the socket to buffer_, waiting for them when none are there yet.
    boost::asio::awaitable<boost::beast::error_code> read_more();
    // Writes `head` then `body`, waiting for the socket only when it does not take them at once.
    boost::asio::awaitable<boost::beast::error_code> write_all(
        std::string_view head, std::string_view body
    );
    // Formats and writes `answer`; false when the connection must end.
    boost::asio::awaitable<bool> write_answer(
        const HttpAnswer& answer, unsigned version, bool keep_alive
    );
    boost::asio::awaitable<void> write_error(
        unsigned status, const char* code, const char* message
    );
    // After an error answer that ends the connection while the client may still be sending (a
    // body over the limit): stop sending, then read and drop what arrives until the client
    // closes, for a second at most, so that it reads the answer rather than a connection reset.
    boost::asio::awaitable<void> linger();
    // The error response to a failed read, or none when the peer simply left.
    boost::asio::awaitable<void> on_read_error(const boost::beast::error_code& ec);
    void set_deadline(Millis timeout);
    void clear_deadline();
    void close();

    boost::asio::ip::tcp::socket socket_;
    boost::beast::flat_buffer buffer_;
    std::string head_;  // the status line and headers being written (its capacity is reused)
    std::shared_ptr<ServerContext> ctx_;
    // steady_clock ticks; 0: no deadline (a request being handled).
    std::atomic<std::chrono::steady_clock::rep> deadline_{0};
    std::uint64_t id_ = 0;
    bool idle_ = false;
    bool draining_ = false;
    bool closed_ = false;
    bool linger_ = false;  // an error answer was written: linger() before closing
};

// Whether an Authorization header value is "Bearer <token>", compared in constant time (the
// comparison of two digests does not depend on where, or whether, the strings differ).
bool bearer_matches(std::string_view header, std::string_view token);

// Webhook bodies may be this large (a batch of many messages), whatever `limits.body_bytes`.
inline constexpr std::size_t kWebhookBodyBytes = 3 * 1024 * 1024;
inline constexpr std::string_view kWebhookPath = "/webhooks/whatsapp";

// Decodes %XX escapes of a path segment; nullopt when malformed.
std::optional<std::string> percent_decode(std::string_view segment);

// Routes one request to its handler and builds the response (never throws).
boost::asio::awaitable<HttpAnswer> route_request(ServerContext& ctx, HttpRequest request);

// How often the server's sweeper checks connection deadlines: a quarter of the shorter timeout,
// between 10 ms and 500 ms. A connection closes between its timeout and its timeout plus this.
Millis sweep_interval(const Limits& limits);

}  // namespace civicflow::server
