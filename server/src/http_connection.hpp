// One accepted HTTP connection (private to the server).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <civicflow/server/config.hpp>

namespace civicflow::server {

class MessageService;
class Store;
class HttpConnection;

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

// State shared by the listener and its connections.
struct ServerContext {
    ServerContext(Limits l, bool access, MessageService& s, Store& st, std::string token = {})
        : limits(l)
        , access_log(access)
        , service(s)
        , store(st)
        , admin_token(std::move(token)) {}

    Limits limits;
    bool access_log;
    MessageService& service;
    Store& store;
    std::string admin_token;
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

// A connection: a reader coroutine (requests in), a writer coroutine (responses out, in order),
// one coroutine per request in between; all on the socket's strand, so no member needs a lock.
class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
public:
    HttpConnection(boost::asio::ip::tcp::socket socket, std::shared_ptr<ServerContext> ctx);
    ~HttpConnection();

    void start();
    // Thread-safe (posted to the strand): stop reading new requests, finish the queued ones.
    void drain();
    // Thread-safe: close now.
    void force_close();

private:
    struct Pending {
        std::optional<HttpResponse> response;
        bool keep_alive = true;
    };

    boost::asio::awaitable<void> read_loop();
    boost::asio::awaitable<void> write_loop();
    boost::asio::awaitable<void> handle(HttpRequest request, std::shared_ptr<Pending> pending);
    boost::asio::awaitable<void> wait(boost::asio::steady_timer& timer);
    // Turns a read error into an error response (413, 431, 400) or a quiet close.
    void on_read_error(const boost::beast::error_code& ec);
    void push_error(unsigned status, const char* code, const char* message);
    void close();

    boost::beast::tcp_stream stream_;
    boost::beast::flat_buffer buffer_;
    std::shared_ptr<ServerContext> ctx_;
    std::uint64_t id_ = 0;
    std::deque<std::shared_ptr<Pending>> queue_;
    boost::asio::steady_timer reader_wake_;
    boost::asio::steady_timer writer_wake_;
    bool reader_done_ = false;
    bool idle_ = false;
    bool draining_ = false;
    bool closed_ = false;
};

// Whether an Authorization header value is "Bearer <token>", compared in constant time (the
// comparison of two digests does not depend on where, or whether, the strings differ).
bool bearer_matches(std::string_view header, std::string_view token);

// Decodes %XX escapes of a path segment; nullopt when malformed.
std::optional<std::string> percent_decode(std::string_view segment);

// Routes one request to its handler and builds the response (never throws).
boost::asio::awaitable<HttpResponse> route_request(ServerContext& ctx, HttpRequest request);

}  // namespace civicflow::server
