#include <array>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <civicflow/server/http_server.hpp>
#include <civicflow/server/logger.hpp>
#include <civicflow/server/message_api.hpp>
#include <civicflow/server/message_service.hpp>
#include <civicflow/server/whatsapp_channel.hpp>

#include "http_connection.hpp"

namespace civicflow::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
    Impl(asio::any_io_executor ex, Options options, MessageService& service, Store& store)
        : executor(ex)
        , single_threaded(options.io_threads == 1)
        , strand(asio::make_strand(ex))
        , acceptor(strand)
        , ctx(std::make_shared<ServerContext>(
              options.limits,
              options.access_log,
              service,
              store,
              options.admin_token,
              options.whatsapp,
              options.api_token
          )) {
        ctx->backends = options.backends;
    }

    asio::any_io_executor executor;
    bool single_threaded;
    asio::strand<asio::any_io_executor> strand;
    tcp::acceptor acceptor;
    std::shared_ptr<ServerContext> ctx;
    asio::steady_timer sweep_timer{strand};
    bool stopped = false;  // drained or destroyed: the sweeper ends

    // Past the connection cap: answer 503 and close, bounded by a short timeout, so the
    // client learns why instead of seeing a reset.
    static asio::awaitable<void> refuse(tcp::socket socket) {
        beast::tcp_stream stream(std::move(socket));
        std::string rid = new_request_id();
        HttpAnswer answer{
            503,
            encode_error("too_many_connections", "the server is at its connection limit", rid),
            "application/json",
            std::move(rid)};
        std::string head;
        format_head(answer, 11, false, head);
        stream.expires_after(std::chrono::seconds(1));
        co_await asio::async_write(
            stream,
            std::array<asio::const_buffer, 2>{asio::buffer(head), asio::buffer(answer.body)},
            kTuple
        );
        beast::error_code ec;
        stream.socket().shutdown(tcp::socket::shutdown_send, ec);
        stream.close();
    }

    asio::awaitable<void> accept_loop() {
        auto self = shared_from_this();
        for (;;) {
            // A strand per connection only when several threads run the io_context: with one,
            // the strand would cost a lock and a type-erased executor copy per operation and
            // protect nothing. (A named variable: g++ 12 mishandles temporaries of a
            // conditional expression inside co_await.)
            asio::any_io_executor socket_executor = executor;
            if (!single_threaded)
                socket_executor = asio::make_strand(executor);
            auto [ec, socket] = co_await acceptor.async_accept(socket_executor, kTuple);
            if (ec) {
                if (ec == asio::error::operation_aborted || !acceptor.is_open())
                    break;
                // Out of file descriptors and the like: log once per failure and pause briefly
                // so a persistent condition does not spin a core.
                Logger::log(
                    LogLevel::kError, {}, "accept_failed", "error=\"" + ec.message() + "\""
                );
                asio::steady_timer pause(strand, std::chrono::milliseconds(50));
                co_await pause.async_wait(kTuple);
                continue;
            }
            if (ctx->draining.load()) {
                beast::error_code ignored;
                socket.close(ignored);
                continue;
            }
            if (ctx->count() >= ctx->limits.max_connections) {
                Logger::log(
                    LogLevel::kWarn,
                    {},
                    "connection_refused",
                    "reason=max_connections limit=" + std::to_string(ctx->limits.max_connections)
                );
                auto ex = socket.get_executor();
                asio::co_spawn(ex, refuse(std::move(socket)), asio::detached);
                continue;
            }
            auto connection = std::make_shared<HttpConnection>(std::move(socket), ctx);
            connection->start();
        }
    }

    // Enforces the connections' read and idle timeouts: every sweep_interval(), closes those
    // whose deadline has passed. One timer for the server instead of one per connection
    // re-armed at every read and write.
    asio::awaitable<void> sweep_loop() {
        auto self = shared_from_this();
        const auto interval = sweep_interval(ctx->limits);
        while (!stopped) {
            sweep_timer.expires_after(interval);
            co_await sweep_timer.async_wait(kTuple);
            const auto now = std::chrono::steady_clock::now();
            for (auto& c : ctx->snapshot())
                c->expire_if_due(now);
        }
    }

    void stop_sweeping() {
        stopped = true;
        sweep_timer.cancel();
    }

    asio::awaitable<void> drain(std::chrono::milliseconds timeout, std::function<void(bool)> done) {
        auto self = shared_from_this();
        ctx->draining.store(true);
        beast::error_code ec;
        acceptor.close(ec);
        for (auto& c : ctx->snapshot())
            c->drain();
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        asio::steady_timer tick(strand);
        // Polling a counter every few milliseconds during shutdown only: simpler than making
        // every connection and message report its end, and it costs nothing while serving.
        for (;;) {
            const std::size_t open = ctx->count();
            // Messages in flight, and the WhatsApp channel's turns and sends in progress.
            const std::size_t in_flight =
                ctx->service.in_flight() +
                (ctx->whatsapp != nullptr ? ctx->whatsapp->in_flight() : 0);
            if (open == 0 && in_flight == 0) {
                stop_sweeping();
                done(true);
                co_return;
            }
            if (std::chrono::steady_clock::now() >= deadline) {
                Logger::log(
                    LogLevel::kWarn,
                    {},
                    "drain_deadline",
                    "connections=" + std::to_string(open) +
                        " messages_in_flight=" + std::to_string(in_flight)
                );
                for (auto& c : ctx->snapshot())
                    c->force_close();
                stop_sweeping();
                done(false);
                co_return;
            }
            // New connections accepted just before the acceptor closed are drained too.
            for (auto& c : ctx->snapshot())
                c->drain();
            tick.expires_after(std::chrono::milliseconds(5));
            co_await tick.async_wait(kTuple);
        }
    }
};

HttpServer::HttpServer(
    asio::any_io_executor executor, Options options, MessageService& service, Store& store
)
    : impl_(std::make_shared<Impl>(std::move(executor), options, service, store)) {}

HttpServer::~HttpServer() {
    beast::error_code ec;
    impl_->acceptor.close(ec);
    asio::dispatch(impl_->strand, [impl = impl_] { impl->stop_sweeping(); });
}

engine::Result<std::uint16_t> HttpServer::listen(const std::string& host, std::uint16_t port) {
    beast::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) {
        return engine::Error{
            "listen",
            "invalid listen host '" + host + "' (expected an IP address such as 127.0.0.1)"};
    }
    const tcp::endpoint endpoint(address, port);
    auto& acceptor = impl_->acceptor;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec)
        acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec)
        acceptor.bind(endpoint, ec);
    if (!ec)
        acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        return engine::Error{
            "listen",
            "cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message()};
    }
    return acceptor.local_endpoint().port();
}

void HttpServer::start() {
    asio::co_spawn(impl_->strand, impl_->accept_loop(), asio::detached);
    asio::co_spawn(impl_->strand, impl_->sweep_loop(), asio::detached);
}

void HttpServer::drain(std::chrono::milliseconds timeout, std::function<void(bool clean)> done) {
    auto impl = impl_;
    asio::co_spawn(impl->strand, impl->drain(timeout, std::move(done)), asio::detached);
}

std::size_t HttpServer::connections() const {
    return impl_->ctx->count();
}

}  // namespace civicflow::server
