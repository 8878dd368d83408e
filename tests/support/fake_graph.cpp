#include "fake_graph.hpp"

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <rapidjson/document.h>

namespace civicflow::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kBodyLimit = 4 * 1024 * 1024;
constexpr std::chrono::seconds kIdleTimeout(30);

struct ErrorReply {
    unsigned status;
    int code;
    const char* message;
};

ErrorReply error_of(FakeGraph::Failure failure) {
    using F = FakeGraph::Failure;
    switch (failure) {
        case F::kServerError:
            return {500, 131000, "(#131000) Something went wrong"};
        case F::kRateLimit:
            return {429, 130429, "(#130429) Rate limit hit"};
        case F::kPairRateLimit:
            return {
                400, 131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit"};
        case F::kReengagement:
            return {400, 131047, "(#131047) Re-engagement message"};
        case F::kUndeliverable:
            return {400, 131026, "(#131026) Message undeliverable"};
    }
    return {500, 131000, "(#131000) Something went wrong"};
}

// A Graph API error body: the shape every Cloud API error has.
std::string error_body(int code, const std::string& message) {
    return R"({"error":{"message":")" + message + R"(","type":"OAuthException","code":)" +
           std::to_string(code) + R"(,"error_data":{"messaging_product":"whatsapp","details":")" +
           message + R"("},"fbtrace_id":"AFakeTraceId"}})";
}

// "/v23.0/106540352242922/messages" -> "106540352242922"; "" for any other target.
std::string phone_number_id_of(std::string_view target) {
    if (target.size() < 2 || target[0] != '/' || target[1] != 'v') {
        return {};
    }
    const std::size_t second = target.find('/', 1);
    if (second == std::string_view::npos) {
        return {};
    }
    const std::size_t third = target.find('/', second + 1);
    if (third == std::string_view::npos || third == second + 1 ||
        target.substr(third) != "/messages") {
        return {};
    }
    return std::string(target.substr(second + 1, third - second - 1));
}

struct Parsed {
    std::string recipient;
    bool mark_read = false;
};

Parsed parse_body(const std::string& body) {
    Parsed out;
    rapidjson::Document doc;
    doc.Parse(body.data(), body.size());
    if (doc.HasParseError() || !doc.IsObject()) {
        return out;
    }
    for (const char* name : {"to", "recipient"}) {
        const auto it = doc.FindMember(name);
        if (it != doc.MemberEnd() && it->value.IsString()) {
            out.recipient.assign(it->value.GetString(), it->value.GetStringLength());
            break;
        }
    }
    out.mark_read = doc.HasMember("status");
    return out;
}

}  // namespace

struct FakeGraph::Impl {
    struct RecipientRule {
        Failure failure;
        std::size_t remaining;
    };

    asio::io_context ioc{1};
    tcp::acceptor acceptor{ioc};
    std::thread thread;
    std::uint16_t port = 0;

    mutable std::mutex mutex;
    mutable std::condition_variable recorded;
    std::vector<Request> requests;
    std::deque<Failure> next;
    std::map<std::string, RecipientRule> by_recipient;
    std::optional<std::string> token;
    std::uint64_t wamids = 0;

    // Decides and records the answer to one request, atomically.
    http::response<http::string_body> answer(const http::request<http::string_body>& req) {
        Request rec;
        rec.method = std::string(req.method_string());
        rec.target = std::string(req.target());
        rec.phone_number_id = phone_number_id_of(rec.target);
        if (const auto auth = req.find(http::field::authorization); auth != req.end()) {
            rec.authorization = std::string(auth->value());
        }
        rec.body = req.body();
        const Parsed parsed = parse_body(rec.body);
        rec.recipient = parsed.recipient;

        unsigned status = 200;
        std::string body;
        {
            std::lock_guard lock(mutex);
            if (req.method() != http::verb::post || rec.phone_number_id.empty()) {
                status = 404;
                body = error_body(100, "Unsupported request: unknown path or method");
            } else if (token && rec.authorization != "Bearer " + *token) {
                status = 401;
                body = error_body(190, "Error validating access token");
            } else if (std::optional<Failure> failure = take_failure(rec.recipient)) {
                const ErrorReply e = error_of(*failure);
                status = e.status;
                body = error_body(e.code, e.message);
            } else if (parsed.mark_read) {
                body = R"({"success":true})";
            } else {
                char wamid[32];
                std::snprintf(
                    wamid,
                    sizeof wamid,
                    "wamid.FAKE%06llu",
                    static_cast<unsigned long long>(++wamids)
                );
                body = R"({"messaging_product":"whatsapp","contacts":[{"input":")" + rec.recipient +
                       R"(","wa_id":")" + rec.recipient + R"("}],"messages":[{"id":")" + wamid +
                       R"(","message_status":"accepted"}]})";
            }
            rec.status = static_cast<int>(status);
            requests.push_back(std::move(rec));
        }
        recorded.notify_all();

        http::response<http::string_body> res{static_cast<http::status>(status), req.version()};
        res.set(http::field::content_type, "application/json; charset=UTF-8");
        res.keep_alive(req.keep_alive());
        res.body() = std::move(body);
        res.prepare_payload();
        return res;
    }

    // Called with the mutex held. Next-N rules first, then the recipient's rule.
    std::optional<Failure> take_failure(const std::string& recipient) {
        if (!next.empty()) {
            const Failure f = next.front();
            next.pop_front();
            return f;
        }
        const auto it = by_recipient.find(recipient);
        if (recipient.empty() || it == by_recipient.end()) {
            return std::nullopt;
        }
        const Failure f = it->second.failure;
        if (--it->second.remaining == 0) {
            by_recipient.erase(it);
        }
        return f;
    }

    asio::awaitable<void> session(tcp::socket socket) {
        beast::tcp_stream stream(std::move(socket));
        beast::flat_buffer buffer;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(kBodyLimit);
            stream.expires_after(kIdleTimeout);
            auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
            if (ec) {
                break;  // closed by the client, timed out, or not HTTP: drop the connection
            }
            const http::request<http::string_body> req = parser.release();
            http::response<http::string_body> res = answer(req);
            const bool keep_alive = res.keep_alive();
            auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
            if (wec || !keep_alive) {
                break;
            }
        }
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    }

    asio::awaitable<void> listen() {
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(kTuple);
            if (ec) {
                if (ec == asio::error::operation_aborted) {
                    co_return;
                }
                continue;
            }
            asio::co_spawn(ioc, session(std::move(socket)), asio::detached);
        }
    }
};

FakeGraph::FakeGraph()
    : impl_(std::make_unique<Impl>()) {
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    beast::error_code ec;
    impl_->acceptor.open(endpoint.protocol(), ec);
    if (!ec) {
        impl_->acceptor.bind(endpoint, ec);
    }
    if (!ec) {
        impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        throw std::runtime_error("fake Graph API: cannot listen on 127.0.0.1: " + ec.message());
    }
    impl_->port = impl_->acceptor.local_endpoint().port();
    asio::co_spawn(impl_->ioc, impl_->listen(), asio::detached);
    impl_->thread = std::thread([impl = impl_.get()] { impl->ioc.run(); });
}

FakeGraph::~FakeGraph() {
    impl_->ioc.stop();
    impl_->thread.join();
}

std::uint16_t FakeGraph::port() const {
    return impl_->port;
}

std::string FakeGraph::base_url() const {
    return "http://127.0.0.1:" + std::to_string(impl_->port) + "/v23.0";
}

void FakeGraph::require_token(std::string token) {
    std::lock_guard lock(impl_->mutex);
    impl_->token = std::move(token);
}

void FakeGraph::fail_next(std::size_t count, Failure failure) {
    std::lock_guard lock(impl_->mutex);
    impl_->next.insert(impl_->next.end(), count, failure);
}

void FakeGraph::fail_recipient(std::string recipient, Failure failure, std::size_t count) {
    std::lock_guard lock(impl_->mutex);
    if (count == 0) {
        impl_->by_recipient.erase(recipient);
        return;
    }
    impl_->by_recipient[std::move(recipient)] = Impl::RecipientRule{failure, count};
}

std::vector<FakeGraph::Request> FakeGraph::requests() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->requests;
}

std::size_t FakeGraph::request_count() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->requests.size();
}

bool FakeGraph::wait_for_requests(std::size_t count, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(impl_->mutex);
    return impl_->recorded.wait_for(lock, timeout, [&] { return impl_->requests.size() >= count; });
}

void FakeGraph::clear() {
    std::lock_guard lock(impl_->mutex);
    impl_->requests.clear();
    impl_->next.clear();
    impl_->by_recipient.clear();
}

}  // namespace civicflow::testing
