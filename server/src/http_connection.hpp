// One accepted HTTP connection (private to the server).
#pragma once

#include <atomic>
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
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <civicflow/server/config.hpp>

namespace civicflow::server {

class MessageService;
class Store;
class HttpConnection;
class WhatsAppChannel;

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

// State shared by the listener and its connections.
struct ServerContext {
    ServerContext(
        Limits l,
        bool access,
        MessageService& s,
        Store& st,
        std::string token = {},
        WhatsAppChannel* wa = nullptr
    )
        : limits(l)
        , access_log(access)
        , service(s)
        , store(st)
        , admin_token(std::move(token))
        , whatsapp(wa) {}

    Limits limits;
    bool access_log;
    MessageService& service;
    Store& store;
    std::string admin_token;
    WhatsAppChannel* whatsapp;  // nullptr: the channel is not configured
    std::atomic<bool> draining{false};

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
// a single-threaded io_context), so no member needs a lock.
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

private:
    boost::asio::awaitable<void> run();
    // Reads one request into `req`; false when the connection must end (after answering any
    // protocol error).
    boost::asio::awaitable<bool> read_request(HttpRequest& req);
    boost::asio::awaitable<void> write_error(
        unsigned status, const char* code, const char* message
    );
    // The error response to a failed read, or none when the peer simply left.
    boost::asio::awaitable<void> on_read_error(const boost::beast::error_code& ec);
    void close();

    boost::beast::tcp_stream stream_;
    boost::beast::flat_buffer buffer_;
    std::shared_ptr<ServerContext> ctx_;
    std::uint64_t id_ = 0;
    bool idle_ = false;
    bool draining_ = false;
    bool closed_ = false;
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
boost::asio::awaitable<HttpResponse> route_request(ServerContext& ctx, HttpRequest request);

}  // namespace civicflow::server
