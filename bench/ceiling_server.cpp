// The benchmark ceiling: the least a Beast server can do per request in the same coroutine style
// as civicflow (read with a timeout and limits, answer a fixed JSON body of a typical reply's
// size, keep-alive). civicflow's throughput is reported as a fraction of this one's.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// About the size of a civicflow reply with a short text and a session.
const std::string kBody =
    R"({"user":"bench-0001","replies":[{"type":"text","text":"This WhatsApp helpline is open 24 )"
    R"(hours. Officers reply from 10:00 to 17:00, Monday to Saturday."}],"session":{"flow":)"
    R"("main","state":"menu","lang":"en","waiting_for":"menu"}})";

asio::awaitable<void> serve(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(65536);
        parser.header_limit(8192);
        stream.expires_after(std::chrono::seconds(60));
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
        if (ec)
            break;
        const auto& req = parser.get();
        http::response<http::string_body> res{http::status::ok, req.version()};
        res.set(http::field::content_type, "application/json");
        res.keep_alive(req.keep_alive());
        res.body() = kBody;
        res.prepare_payload();
        auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
        if (wec || !res.keep_alive())
            break;
    }
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, asio::io_context& ioc) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(ioc), kTuple);
        if (ec) {
            if (!acceptor.is_open())
                co_return;
            continue;
        }
        // As civicflow does: without it, a response written while the previous one is still
        // unacknowledged (pipelined requests in the open-loop passes) waits for the client's
        // delayed ACK, up to 40 ms.
        socket.set_option(tcp::no_delay(true), ec);
        auto ex = socket.get_executor();
        asio::co_spawn(ex, serve(std::move(socket)), asio::detached);
    }
}

}  // namespace

int main(int argc, char** argv) {
    unsigned long port = 8081;
    int threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view arg = argv[i];
        if (arg == "--port")
            port = std::strtoul(argv[i + 1], nullptr, 10);
        if (arg == "--threads")
            threads = std::atoi(argv[i + 1]);
    }
    asio::io_context ioc(threads);
    tcp::acceptor acceptor(
        ioc, {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)}
    );
    std::printf(
        "listening on 127.0.0.1:%u\n", static_cast<unsigned>(acceptor.local_endpoint().port())
    );
    std::fflush(stdout);
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const beast::error_code&, int) { ioc.stop(); });
    asio::co_spawn(ioc, accept_loop(acceptor, ioc), asio::detached);
    std::vector<std::thread> pool;
    for (int i = 1; i < threads; ++i)
        pool.emplace_back([&] { ioc.run(); });
    ioc.run();
    for (auto& t : pool)
        t.join();
    return 0;
}
