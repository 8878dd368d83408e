#include "http_connection.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <exception>
#include <string_view>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>

#include <civicflow/engine/text_normalize.hpp>
#include <civicflow/server/backend_client.hpp>
#include <civicflow/server/logger.hpp>
#include <civicflow/server/message_api.hpp>
#include <civicflow/server/message_service.hpp>
#include <civicflow/server/store.hpp>
#include <civicflow/server/whatsapp_channel.hpp>

#include "metrics_text.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace civicflow::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadChunk = 4096;
// After an error answer, what the client still sends is read and dropped for this long at most.
constexpr Millis kLinger{1000};
constexpr std::size_t kLingerChunk = 65536;

bool quiet_close(const beast::error_code& ec) {
    // The client went away or stayed silent: normal life of a keep-alive connection.
    return ec == http::error::end_of_stream || ec == http::error::partial_message ||
           ec == asio::error::operation_aborted || ec == beast::error::timeout ||
           ec == asio::error::connection_reset || ec == asio::error::eof ||
           ec == asio::error::broken_pipe || ec == asio::error::not_connected ||
           ec == asio::error::bad_descriptor;
}

std::string_view path_of(std::string_view target) {
    // The absolute form (RFC 9112, 3.2.2: "http://host/path"), which a server must accept,
    // names the same resource as its path.
    for (const std::string_view scheme : {"http://", "https://"}) {
        if (target.size() > scheme.size() &&
            beast::iequals(target.substr(0, scheme.size()), scheme)) {
            const auto slash = target.find_first_of("/?", scheme.size());
            target = slash != std::string_view::npos && target[slash] == '/'
                         ? target.substr(slash)
                         : std::string_view("/");
            break;
        }
    }
    const auto q = target.find('?');
    return q == std::string_view::npos ? target : target.substr(0, q);
}

std::string_view query_of(std::string_view target) {
    const auto q = target.find('?');
    return q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
}

std::string header_of(const HttpRequest& req, std::string_view name) {
    const auto it = req.find(name);
    return it == req.end() ? std::string{} : std::string(it->value());
}

constexpr std::string_view kAdminWhatsAppPrefix = "/v1/admin/whatsapp/";

std::string metrics_text(const ServerContext& ctx) {
    using detail::append_metric;
    std::string out;
    append_metric(
        out,
        "civicflow_messages_in_flight",
        "gauge",
        "Messages accepted and not yet answered.",
        ctx.service.in_flight()
    );
    append_metric(
        out,
        "civicflow_citizens_active",
        "gauge",
        "Citizens with a message in progress.",
        ctx.service.queues().active()
    );
    append_metric(out, "civicflow_connections", "gauge", "Open HTTP connections.", ctx.count());
    out +=
        "# HELP civicflow_http_responses_total Responses of routed requests by route and status "
        "(status 0: any other).\n"
        "# TYPE civicflow_http_responses_total counter\n";
    for (std::size_t r = 0; r < ServerContext::kRoutes.size(); ++r) {
        for (std::size_t k = 0; k < ServerContext::kStatuses.size(); ++k) {
            const std::uint64_t n = ctx.responses[r][k].load(std::memory_order_relaxed);
            if (n == 0)
                continue;
            out += "civicflow_http_responses_total{route=\"" +
                   std::string(ServerContext::kRoutes[r]) + "\",status=\"" +
                   std::to_string(ServerContext::kStatuses[k]) + "\"} " + std::to_string(n) + "\n";
        }
    }
    if (ctx.backends != nullptr)
        out += ctx.backends->metrics();
    return out + ctx.store.metrics();
}

}  // namespace

bool bearer_matches(std::string_view header, std::string_view token) {
    constexpr std::string_view kPrefix = "Bearer ";
    if (token.empty() || header.size() < kPrefix.size() ||
        !beast::iequals(header.substr(0, kPrefix.size()), kPrefix)) {
        return false;
    }
    const std::string_view given = header.substr(kPrefix.size());
    unsigned char a[EVP_MAX_MD_SIZE];
    unsigned char b[EVP_MAX_MD_SIZE];
    unsigned int na = 0;
    unsigned int nb = 0;
    if (EVP_Digest(given.data(), given.size(), a, &na, EVP_sha256(), nullptr) != 1 ||
        EVP_Digest(token.data(), token.size(), b, &nb, EVP_sha256(), nullptr) != 1 || na != nb) {
        return false;
    }
    return CRYPTO_memcmp(a, b, na) == 0;
}

std::optional<std::string> percent_decode(std::string_view segment) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9')
            return c - '0';
        if (c >= 'a' && c <= 'f')
            return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
            return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(segment.size());
    for (std::size_t i = 0; i < segment.size(); ++i) {
        if (segment[i] != '%') {
            out.push_back(segment[i]);
            continue;
        }
        if (i + 2 >= segment.size())
            return std::nullopt;
        const int hi = hex(segment[i + 1]);
        const int lo = hex(segment[i + 2]);
        if (hi < 0 || lo < 0)
            return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

void format_head(const HttpAnswer& answer, unsigned version, bool keep_alive, std::string& out) {
    char digits[24];
    auto append_number = [&](std::uint64_t n) {
        const auto r = std::to_chars(digits, digits + sizeof digits, n);
        out.append(digits, r.ptr);
    };
    out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    append_number(answer.status);
    out += ' ';
    const auto reason = http::obsolete_reason(static_cast<http::status>(answer.status));
    out.append(reason.data(), reason.size());
    out += "\r\nServer: civicflow\r\nContent-Type: ";
    out += answer.content_type;
    out += "\r\n";
    if (!answer.request_id.empty()) {
        out += "X-Request-Id: ";
        out += answer.request_id;
        out += "\r\n";
    }
    if (answer.allow != nullptr) {
        out += "Allow: ";
        out += answer.allow;
        out += "\r\n";
    }
    // Every 503 is temporary (the store, a citizen's lease, the connection cap, draining): a
    // client may retry after a second (RFC 9110, 10.2.3).
    if (answer.status == 503)
        out += "Retry-After: 1\r\n";
    // HTTP/1.1 keeps the connection unless told; HTTP/1.0 closes it unless told.
    if (version == 10 && keep_alive)
        out += "Connection: keep-alive\r\n";
    else if (version != 10 && !keep_alive)
        out += "Connection: close\r\n";
    // HEAD: the length the GET's body has (RFC 9110, 9.3.2), though none follows.
    out += "Content-Length: ";
    append_number(answer.body.size());
    out += "\r\n\r\n";
}

Millis sweep_interval(const Limits& limits) {
    return std::clamp(
        std::min(limits.read_timeout, limits.idle_timeout) / 4, Millis{10}, Millis{500}
    );
}

namespace {

constexpr std::string_view kCitizensPrefix = "/v1/citizens/";

asio::awaitable<ApiReply> erase_request(
    ServerContext& ctx, const HttpRequest& req, std::string_view path, const std::string& rid
) {
    if (ctx.admin_token.empty()) {
        co_return ApiReply{
            403,
            encode_error(
                "forbidden", "erasure over HTTP is disabled (no CIVICFLOW_ADMIN_TOKEN)", rid
            )};
    }
    const auto auth = req.find(http::field::authorization);
    if (auth == req.end() || !bearer_matches(auth->value(), ctx.admin_token)) {
        Logger::log(LogLevel::kWarn, rid, "admin_unauthorized", "route=citizens");
        co_return ApiReply{
            401, encode_error("unauthorized", "a valid admin bearer token is required", rid)};
    }
    // One path segment; a '/' in the id itself comes percent-encoded (%2F), as any id
    // /v1/messages accepts can be erased.
    const auto segment = path.substr(kCitizensPrefix.size());
    auto user =
        segment.find('/') == std::string_view::npos ? percent_decode(segment) : std::nullopt;
    if (!user || user->empty() || user->size() > kMaxIdBytes || !engine::is_valid_utf8(*user)) {
        co_return ApiReply{
            400,
            encode_error(
                "invalid_field",
                "the citizen id must be 1 to " + std::to_string(kMaxIdBytes) +
                    " bytes of UTF-8, percent-encoded",
                rid
            )};
    }
    co_return co_await ctx.service.erase_citizen(std::move(*user), rid);
}

}  // namespace

void ServerContext::count_response(std::string_view route, int status) {
    std::size_t r = kRoutes.size() - 1;
    for (std::size_t i = 0; i < kRoutes.size(); ++i) {
        if (kRoutes[i] == route) {
            r = i;
            break;
        }
    }
    std::size_t k = kStatuses.size() - 1;
    for (std::size_t i = 0; i + 1 < kStatuses.size(); ++i) {
        if (kStatuses[i] == status) {
            k = i;
            break;
        }
    }
    responses[r][k].fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t ServerContext::add(const std::shared_ptr<HttpConnection>& c) {
    std::lock_guard lock(mutex_);
    const std::uint64_t id = next_id_++;
    connections_.emplace(id, c);
    return id;
}

void ServerContext::remove(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    connections_.erase(id);
}

std::size_t ServerContext::count() const {
    std::lock_guard lock(mutex_);
    return connections_.size();
}

std::vector<std::shared_ptr<HttpConnection>> ServerContext::snapshot() const {
    std::vector<std::shared_ptr<HttpConnection>> out;
    std::lock_guard lock(mutex_);
    out.reserve(connections_.size());
    for (const auto& [id, weak] : connections_) {
        if (auto c = weak.lock())
            out.push_back(std::move(c));
    }
    return out;
}

asio::awaitable<HttpAnswer> route_request(ServerContext& ctx, HttpRequest req) {
    const auto started = std::chrono::steady_clock::now();
    std::string rid;
    if (auto it = req.find("X-Request-Id"); it != req.end() && is_valid_request_id(it->value())) {
        rid = std::string(it->value());
    } else {
        rid = new_request_id();
    }
    const std::string_view path = path_of(req.target());
    const http::verb method = req.method();
    std::string_view route = "unknown";
    ApiReply reply;
    const char* allow = nullptr;
    try {
        if (path == "/v1/messages") {
            route = "messages";
            if (method != http::verb::post) {
                allow = "POST";
            } else if (!ctx.api_token.empty() && !bearer_matches(header_of(req, "Authorization"), ctx.api_token)) {
                Logger::log(LogLevel::kWarn, rid, "api_unauthorized", "route=messages");
                reply = ApiReply{
                    401, encode_error("unauthorized", "a valid API bearer token is required", rid)};
            } else {
                reply = co_await ctx.service.handle(std::move(req.body()), rid);
            }
        } else if (path.substr(0, kCitizensPrefix.size()) == kCitizensPrefix) {
            route = "citizens";
            if (method == http::verb::delete_) {
                reply = co_await erase_request(ctx, req, path, rid);
            } else {
                allow = "DELETE";
            }
        } else if (path == kWebhookPath) {
            route = "whatsapp";
            if (ctx.whatsapp == nullptr) {
                reply = ApiReply{
                    404, encode_error("not_found", "the WhatsApp channel is not configured", rid)};
            } else if (method == http::verb::get) {
                reply = ctx.whatsapp->verify(query_of(req.target()), rid);
            } else if (method == http::verb::post) {
                std::string signature = header_of(req, "X-Hub-Signature-256");
                reply = co_await ctx.whatsapp->receive(
                    std::move(req.body()), std::move(signature), rid
                );
            } else {
                allow = "GET, POST";
            }
        } else if (path == "/v1/notifications") {
            route = "notifications";
            if (ctx.whatsapp == nullptr) {
                reply = ApiReply{
                    404, encode_error("not_found", "the WhatsApp channel is not configured", rid)};
            } else if (method == http::verb::post) {
                std::string auth = header_of(req, "Authorization");
                reply = co_await ctx.whatsapp->notify(std::move(req.body()), std::move(auth), rid);
            } else {
                allow = "POST";
            }
        } else if (path.substr(0, kAdminWhatsAppPrefix.size()) == kAdminWhatsAppPrefix) {
            route = "admin";
            if (ctx.whatsapp == nullptr) {
                reply = ApiReply{
                    404, encode_error("not_found", "the WhatsApp channel is not configured", rid)};
            } else if (method == http::verb::get) {
                reply = co_await ctx.whatsapp->admin(
                    std::string(path), header_of(req, "Authorization"), rid
                );
            } else {
                allow = "GET";
            }
        } else if (path == "/metrics") {
            route = "metrics";
            if (method == http::verb::get) {
                reply = ApiReply{200, metrics_text(ctx)};
                if (ctx.whatsapp != nullptr)
                    reply.body += co_await ctx.whatsapp->metrics();
                reply.content_type = "text/plain; version=0.0.4";
            } else {
                allow = "GET";
            }
        } else if (path == "/healthz") {
            route = "healthz";
            if (method == http::verb::get || method == http::verb::head) {
                reply = ApiReply{200, R"({"status":"ok"})"};
            } else {
                allow = "GET, HEAD";
            }
        } else if (path == "/readyz") {
            route = "readyz";
            if (method == http::verb::get || method == http::verb::head) {
                if (ctx.draining.load()) {
                    reply = ApiReply{
                        503, encode_error("not_ready", "the server is shutting down", rid)};
                } else {
                    auto ping = co_await ctx.store.ping();
                    reply = ping ? ApiReply{200, R"({"status":"ready"})"}
                                 : ApiReply{
                                       503,
                                       encode_error(
                                           "not_ready", "the session store is unreachable", rid
                                       )};
                }
            } else {
                allow = "GET, HEAD";
            }
        } else {
            reply = ApiReply{404, encode_error("not_found", "no such endpoint", rid)};
        }
        if (allow != nullptr) {
            reply = ApiReply{
                405,
                encode_error(
                    "method_not_allowed", std::string("this endpoint accepts ") + allow, rid
                )};
        }
    } catch (const std::exception& e) {
        // A bug, not a client error: one log line (no personal data: e.what() of our own code
        // and of the libraries we call never includes message text) and a 500 with the id.
        Logger::log(
            LogLevel::kError,
            rid,
            "handler_exception",
            std::string("route=") + std::string(route) + " what=\"" + e.what() + "\""
        );
        reply =
            ApiReply{500, encode_error("internal", "internal error; quote the request id", rid)};
    }
    ctx.count_response(route, reply.status);
    // HEAD: the same headers, no body.
    HttpAnswer answer{
        reply.status,
        std::move(reply.body),
        reply.content_type,
        rid,
        allow,
        method == http::verb::head};
    if (ctx.access_log) {
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - started
        )
                            .count();
        Logger::log(
            LogLevel::kInfo,
            rid,
            "request",
            "route=" + std::string(route) + " status=" + std::to_string(reply.status) +
                " us=" + std::to_string(us)
        );
    }
    co_return answer;
}

HttpConnection::HttpConnection(asio::ip::tcp::socket socket, std::shared_ptr<ServerContext> ctx)
    : socket_(std::move(socket))
    , ctx_(std::move(ctx)) {}

HttpConnection::~HttpConnection() {
    if (id_ != 0)
        ctx_->remove(id_);
}

void HttpConnection::start() {
    id_ = ctx_->add(shared_from_this());
    beast::error_code ec;
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);
    asio::co_spawn(socket_.get_executor(), run(), [](std::exception_ptr e) {
        if (!e)
            return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            Logger::log(
                LogLevel::kError,
                {},
                "connection_exception",
                std::string("what=\"") + ex.what() + "\""
            );
        }
    });
}

void HttpConnection::drain() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
        self->draining_ = true;
        if (self->idle_) {
            // Waiting for a next request that will not be served: end the read (the kernel
            // reports end of stream to the pending read), leave writes untouched.
            beast::error_code ec;
            self->socket_.shutdown(asio::ip::tcp::socket::shutdown_receive, ec);
        }
    });
}

void HttpConnection::force_close() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->close(); });
}

void HttpConnection::expire_if_due(std::chrono::steady_clock::time_point now) {
    const auto due = [this, now] {
        const auto deadline = deadline_.load(std::memory_order_relaxed);
        return deadline != 0 && deadline <= now.time_since_epoch().count();
    };
    if (!due())
        return;
    // Checked again on the connection's executor: the request may have moved on meanwhile.
    asio::dispatch(socket_.get_executor(), [self = shared_from_this(), due] {
        if (due())
            self->close();
    });
}

void HttpConnection::set_deadline(Millis timeout) {
    deadline_.store(
        (std::chrono::steady_clock::now() + timeout).time_since_epoch().count(),
        std::memory_order_relaxed
    );
}

void HttpConnection::clear_deadline() {
    deadline_.store(0, std::memory_order_relaxed);
}

asio::awaitable<beast::error_code> HttpConnection::read_more() {
    // Asio tries the read at once and waits for the socket only when nothing is there; waiting
    // for readability first (async_wait) would cost an epoll_ctl call per request.
    auto [ec, n] = co_await socket_.async_read_some(buffer_.prepare(kReadChunk), kTuple);
    if (!ec)
        buffer_.commit(n);
    co_return ec;
}

asio::awaitable<beast::error_code> HttpConnection::write_all(
    std::string_view head, std::string_view body
) {
    beast::error_code ec;
    std::size_t n = socket_.write_some(
        std::array<asio::const_buffer, 2>{asio::buffer(head), asio::buffer(body)}, ec
    );
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        n = 0;
    }
    if (ec || n == head.size() + body.size())
        co_return ec;
    // The socket's send buffer is full (a client slow to read): wait for it, bounded by the
    // read timeout.
    if (n < head.size()) {
        head.remove_prefix(n);
    } else {
        body.remove_prefix(n - head.size());
        head = {};
    }
    set_deadline(ctx_->limits.read_timeout);
    auto [wec, written] = co_await asio::async_write(
        socket_, std::array<asio::const_buffer, 2>{asio::buffer(head), asio::buffer(body)}, kTuple
    );
    clear_deadline();
    co_return wec;
}

asio::awaitable<bool> HttpConnection::write_answer(
    const HttpAnswer& answer, unsigned version, bool keep_alive
) {
    head_.clear();
    format_head(answer, version, keep_alive, head_);
    const auto ec =
        co_await write_all(head_, answer.head ? std::string_view{} : std::string_view{answer.body});
    if (ec) {
        if (!quiet_close(ec))
            Logger::log(LogLevel::kWarn, {}, "write_failed", "error=\"" + ec.message() + "\"");
        co_return false;
    }
    co_return true;
}

asio::awaitable<void> HttpConnection::write_error(
    unsigned status, const char* code, const char* message
) {
    std::string rid = new_request_id();
    Logger::log(
        LogLevel::kInfo,
        rid,
        "bad_request",
        std::string("status=") + std::to_string(status) + " code=" + code
    );
    HttpAnswer answer{status, encode_error(code, message, rid), "application/json", std::move(rid)};
    if (co_await write_answer(answer, 11, false))
        linger_ = true;
}

asio::awaitable<void> HttpConnection::linger() {
    beast::error_code ec;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    set_deadline(std::min(ctx_->limits.read_timeout, kLinger));
    for (;;) {
        buffer_.clear();
        auto [rec, n] = co_await socket_.async_read_some(buffer_.prepare(kLingerChunk), kTuple);
        if (rec)
            break;
    }
}

asio::awaitable<void> HttpConnection::on_read_error(const beast::error_code& ec) {
    if (ec == http::error::body_limit) {
        co_await write_error(413, "body_too_large", "the request body is over the size limit");
    } else if (ec == http::error::header_limit) {
        co_await write_error(
            431, "headers_too_large", "the request headers are over the size limit"
        );
    } else if (quiet_close(ec)) {
        // Nothing to answer: the peer left, went quiet past a timeout, or we are closing.
    } else if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
        co_await write_error(400, "invalid_http", "the request is not valid HTTP/1.1");
    } else {
        Logger::log(LogLevel::kWarn, {}, "read_failed", "error=\"" + ec.message() + "\"");
    }
}

asio::awaitable<bool> HttpConnection::read_request(HttpRequest& req) {
    const Limits& limits = ctx_->limits;
    if (buffer_.size() == 0) {
        // Between requests: the idle timeout applies until the next request's first byte.
        idle_ = true;
        set_deadline(limits.idle_timeout);
        const auto ec = co_await read_more();
        idle_ = false;
        if (ec) {
            co_await on_read_error(ec);
            co_return false;
        }
    }
    // From the first byte of a request to its last: the read timeout (slow clients).
    set_deadline(limits.read_timeout);
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits.header_bytes));
    // Until the target is known, the larger of the API's and the webhook's body limits (Meta
    // batches many messages into one POST: up to 3 MiB); the header then sets the one that
    // applies, and a Content-Length over it is refused before any byte of the body is read.
    const bool webhooks = ctx_->whatsapp != nullptr;
    parser.body_limit(
        webhooks ? std::max<std::uint64_t>(limits.body_bytes, kWebhookBodyBytes) : limits.body_bytes
    );
    parser.eager(false);  // put() stops after the header, so the body limit can be set
    bool header_done = false;
    for (;;) {
        beast::error_code ec = http::error::need_more;
        std::size_t used = 0;
        if (buffer_.size() > 0) {
            used = parser.put(buffer_.data(), ec);
            buffer_.consume(used);
        }
        if (ec && ec != http::error::need_more) {
            co_await on_read_error(ec);
            co_return false;
        }
        if (!header_done && parser.is_header_done()) {
            header_done = true;
            const auto& header = parser.get();
            if (!webhooks || path_of(header.target()) != kWebhookPath) {
                if (const auto length = parser.content_length();
                    length && *length > limits.body_bytes) {
                    co_await on_read_error(http::error::body_limit);
                    co_return false;
                }
                parser.body_limit(limits.body_bytes);
            }
            parser.eager(true);
            // curl and others wait for "100 Continue" before sending larger bodies.
            const auto expect = header.find(http::field::expect);
            if (!parser.is_done() && expect != header.end() &&
                beast::iequals(expect->value(), "100-continue")) {
                if (const auto cec = co_await write_all("HTTP/1.1 100 Continue\r\n\r\n", {})) {
                    co_await on_read_error(cec);
                    co_return false;
                }
            }
        }
        if (parser.is_done())
            break;
        if (!ec && used > 0 && buffer_.size() > 0)
            continue;  // the rest of what is buffered: the body
        ec = co_await read_more();
        if (ec == asio::error::eof) {
            // The peer closed: between requests, or in the middle of one.
            ec = parser.got_some() ? http::error::partial_message : http::error::end_of_stream;
        }
        if (ec) {
            co_await on_read_error(ec);
            co_return false;
        }
    }
    req = parser.release();
    co_return true;
}

asio::awaitable<void> HttpConnection::run() {
    auto self = shared_from_this();
    while (!closed_ && !draining_) {
        HttpRequest req;
        if (!co_await read_request(req))
            break;
        const unsigned version = req.version();
        const bool keep_alive = req.keep_alive();
        // No deadline while the request is handled: a slow backend call is bounded by its own
        // timeout, and the socket has no operation pending.
        clear_deadline();
        HttpAnswer answer;
        try {
            answer = co_await route_request(*ctx_, std::move(req));
        } catch (const std::exception& e) {
            // route_request catches handler failures; this covers allocation failures around it.
            std::string rid = new_request_id();
            Logger::log(
                LogLevel::kError, rid, "handler_exception", std::string("what=\"") + e.what() + "\""
            );
            answer = HttpAnswer{
                500,
                encode_error("internal", "internal error; quote the request id", rid),
                "application/json",
                std::move(rid)};
        }
        if (closed_)
            break;
        // The last response of a draining connection tells the client to go elsewhere.
        const bool last = !keep_alive || draining_;
        if (!co_await write_answer(answer, version, !last) || last)
            break;
    }
    if (linger_ && !closed_)
        co_await linger();
    close();
}

void HttpConnection::close() {
    if (closed_)
        return;
    closed_ = true;
    clear_deadline();
    beast::error_code ec;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    socket_.close(ec);
}

}  // namespace civicflow::server
