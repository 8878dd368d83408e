/// The HTTP/1.1 listener: accepts connections and routes /v1/messages, /v1/citizens/{id},
/// /healthz and /readyz.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include <civicflow/engine/result.hpp>
#include <civicflow/server/config.hpp>

namespace civicflow::server {

class MessageService;
class Store;
class WhatsAppChannel;
class BackendClient;

/// Async Beast server in the C++20 coroutine style: one coroutine per connection reads a
/// request, routes it, writes the response and reads the next.
///
/// Keep-alive and pipelining: requests sent back to back on one connection are answered in
/// order, one after the other (a citizen's ordering across connections is the message service's
/// job). Every read has a timeout (`idle_timeout` before a request's first byte, `read_timeout`
/// until its last), every parser a header and body limit (431 and 413), the listener a
/// connection cap (503 and close). A handler that throws becomes a 500 carrying the request id;
/// errors are logged once, with the request id and no personal data. end_of_stream is a normal
/// close.
///
/// Thread-safe; run the io_context on as many threads as wanted.
class HttpServer {
public:
    struct Options {
        Limits limits;
        bool access_log = false;
        /// Bearer token of DELETE /v1/citizens/{id} (from CIVICFLOW_ADMIN_TOKEN); empty: the
        /// endpoint answers 403. Compared in constant time.
        std::string admin_token;
        /// Bearer token POST /v1/messages requires (from CIVICFLOW_API_TOKEN); empty: none, for
        /// a server reached only by trusted callers. Compared in constant time.
        std::string api_token;
        /// Threads running the io_context. With one, connections use the io_context's executor
        /// directly (its single thread already serializes them); with more (or 0, unknown),
        /// each connection gets its own strand.
        int io_threads = 0;
        /// The WhatsApp channel behind /webhooks/whatsapp, /v1/notifications and
        /// /v1/admin/whatsapp/...; nullptr: those answer 404.
        WhatsAppChannel* whatsapp = nullptr;
        /// The flows' backend client, whose call counts /metrics shows; nullptr: none.
        const BackendClient* backends = nullptr;
    };

    HttpServer(
        boost::asio::any_io_executor executor,
        Options options,
        MessageService& service,
        Store& store
    );
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    /// Binds and listens; returns the bound port (useful with port 0). Error code "listen".
    engine::Result<std::uint16_t> listen(const std::string& host, std::uint16_t port);

    /// Starts accepting. Call once, after listen().
    void start();

    /// Graceful drain: stops accepting, lets connections finish the requests they have read
    /// (their last response carries Connection: close), closes idle ones, and waits for every
    /// message in flight (backend calls included). Calls `done(true)` when all is finished, or
    /// force-closes what is left and calls `done(false)` after `timeout`. Thread-safe; call once.
    void drain(std::chrono::milliseconds timeout, std::function<void(bool clean)> done);

    /// Open connections.
    std::size_t connections() const;

    struct Impl;

private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace civicflow::server
