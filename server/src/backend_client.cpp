#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <civicflow/server/backend_client.hpp>
#include <civicflow/server/circuit_breaker.hpp>
#include <civicflow/server/logger.hpp>
#include <civicflow/server/response_cache.hpp>

#include "metrics_text.hpp"

#include <sys/socket.h>

namespace civicflow::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// Pooled connections idle longer than this are dropped: servers close idle connections after
// some time, and a request written to a half-closed socket fails for no fault of the backend.
constexpr auto kMaxIdle = std::chrono::seconds(20);
constexpr auto kResolveRefresh = std::chrono::seconds(60);
constexpr std::size_t kCacheCapacity = 4096;

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               SteadyClock::now().time_since_epoch()
    )
        .count();
}

struct Connection {
    asio::strand<asio::any_io_executor> strand;
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
    beast::flat_buffer buffer;
    SteadyClock::time_point idle_since;

    explicit Connection(asio::strand<asio::any_io_executor> s)
        : strand(std::move(s)) {}

    beast::tcp_stream& lowest() { return tls ? tls->next_layer() : *plain; }
};

// Outcome of one attempt on the wire.
struct Attempt {
    enum class Kind { kResponse, kTimeout, kError };
    Kind kind = Kind::kError;
    int status = 0;
    std::string body;
    std::string reason;                    // for the log line: a fixed word, never data
    std::unique_ptr<Connection> reusable;  // handed back when the connection may be pooled
    bool stale = false;                    // a pooled connection failed before any response byte
};

bool is_timeout(const beast::error_code& ec) {
    return ec == beast::error::timeout || ec == asio::error::timed_out;
}

}  // namespace

struct BackendClient::Impl {
    // What became of calls, for GET /metrics.
    enum Outcome : std::size_t { kOk, kRejected, kFailed, kCircuitOpen, kCached, kOutcomes };

    struct Backend {
        BackendConfig config;
        std::array<std::atomic<std::uint64_t>, kOutcomes> outcomes{};
        std::string auth_value;  // secret: header value; never logged
        std::string host_header;
        CircuitBreaker breaker;
        ResponseCache cache;
        std::mutex mutex;  // guards idle, endpoints, resolved_at, resolving
        std::vector<std::unique_ptr<Connection>> idle;
        tcp::resolver::results_type endpoints;
        SteadyClock::time_point resolved_at{};
        bool resolving = false;

        explicit Backend(const BackendConfig& c)
            : config(c)
            , breaker(c.breaker_failures, c.breaker_pause)
            , cache(c.cache_ttl, kCacheCapacity) {}
    };

    asio::any_io_executor executor;
    asio::ssl::context ssl{asio::ssl::context::tls_client};
    std::vector<std::unique_ptr<Backend>> backends;
    std::atomic<bool> closing{false};

    Backend* find(std::string_view name) {
        for (auto& b : backends) {
            if (b->config.name == name)
                return b.get();
        }
        return nullptr;
    }

    static bool alive(Connection& c) {
        if (SteadyClock::now() - c.idle_since > kMaxIdle)
            return false;
        if (c.buffer.size() != 0)
            return false;  // unsolicited bytes: out of sync
        // A peek that would block means open and quiet; 0 means the peer closed; data means
        // the peer sent something unasked (garbage or a TLS alert): drop it either way.
        char byte = 0;
        const auto fd = c.lowest().socket().native_handle();
        const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }

    std::unique_ptr<Connection> take_idle(Backend& b) {
        std::lock_guard lock(b.mutex);
        while (!b.idle.empty()) {
            auto c = std::move(b.idle.back());
            b.idle.pop_back();
            if (alive(*c))
                return c;
        }
        return nullptr;
    }

    void give_back(Backend& b, std::unique_ptr<Connection> c) {
        if (closing.load())
            return;
        c->idle_since = SteadyClock::now();
        std::lock_guard lock(b.mutex);
        if (b.idle.size() < b.config.max_idle_connections)
            b.idle.push_back(std::move(c));
    }

    tcp::resolver::results_type endpoints_of(Backend& b) {
        std::lock_guard lock(b.mutex);
        const bool stale = SteadyClock::now() - b.resolved_at > kResolveRefresh;
        if ((stale || b.endpoints.empty()) && !b.resolving) {
            // Refresh in the background: a hanging DNS server must not hold any call past its
            // deadline, so calls use what is cached and never wait for the resolver.
            b.resolving = true;
            asio::co_spawn(executor, refresh(b), asio::detached);
        }
        return b.endpoints;
    }

    asio::awaitable<void> refresh(Backend& b) {
        tcp::resolver resolver(executor);
        auto [ec, results] = co_await resolver.async_resolve(b.config.host, b.config.port, kTuple);
        std::lock_guard lock(b.mutex);
        b.resolving = false;
        if (ec) {
            Logger::log(
                LogLevel::kWarn,
                {},
                "backend_resolve_failed",
                "backend=" + b.config.name + " error=\"" + ec.message() + "\""
            );
            co_return;
        }
        b.endpoints = results;
        b.resolved_at = SteadyClock::now();
    }

    http::request<http::string_body> build_request(
        const Backend& b, const engine::BackendCall& call
    ) const {
        const http::verb verb = call.method == "POST" ? http::verb::post : http::verb::get;
        std::string target = b.config.base_path;
        if (call.path.empty() || call.path.front() != '/')
            target += '/';
        target += call.path;
        http::request<http::string_body> req{verb, target, 11};
        req.set(http::field::host, b.host_header);
        req.set(http::field::user_agent, "civicflow");
        req.set(http::field::accept, "application/json");
        if (b.config.auth)
            req.set(b.config.auth->header, b.auth_value);
        if (!call.body.empty()) {
            req.set(http::field::content_type, "application/json");
            req.body() = call.body;
        }
        req.keep_alive(true);
        req.prepare_payload();
        return req;
    }

    // Connects (and handshakes) a new connection; runs on the connection's strand.
    asio::awaitable<beast::error_code> connect(
        Backend& b, Connection& c, SteadyClock::time_point deadline
    ) {
        auto endpoints = endpoints_of(b);
        if (endpoints.empty())
            co_return asio::error::host_not_found;
        const auto connect_deadline =
            std::min(deadline, SteadyClock::now() + b.config.connect_timeout);
        if (b.config.tls) {
            c.tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(c.strand, ssl);
            // SNI, then certificate checks against the configured host name.
            // (SSL_set_tlsext_host_name is a macro with a C cast; this is what it expands to.)
            if (SSL_ctrl(
                    c.tls->native_handle(),
                    SSL_CTRL_SET_TLSEXT_HOSTNAME,
                    TLSEXT_NAMETYPE_host_name,
                    const_cast<char*>(b.config.host.c_str())
                ) != 1) {
                co_return beast::error_code(
                    static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()
                );
            }
            c.tls->set_verify_mode(asio::ssl::verify_peer);
            c.tls->set_verify_callback(asio::ssl::host_name_verification(b.config.host));
        } else {
            c.plain = std::make_unique<beast::tcp_stream>(c.strand);
        }
        c.lowest().expires_at(connect_deadline);
        auto [ec, ep] = co_await c.lowest().async_connect(endpoints, kTuple);
        if (ec)
            co_return ec;
        c.lowest().socket().set_option(tcp::no_delay(true), ec);
        if (c.tls) {
            c.lowest().expires_at(connect_deadline);
            auto [hec] = co_await c.tls->async_handshake(asio::ssl::stream_base::client, kTuple);
            if (hec)
                co_return hec;
        }
        co_return beast::error_code{};
    }

    template <typename Stream>
    static asio::awaitable<Attempt> exchange(
        Stream& stream,
        Connection& c,
        http::request<http::string_body>& req,
        std::size_t max_bytes,
        SteadyClock::time_point deadline
    ) {
        Attempt a;
        c.lowest().expires_at(deadline);
        auto [wec, wn] = co_await http::async_write(stream, req, kTuple);
        if (wec) {
            a.kind = is_timeout(wec) ? Attempt::Kind::kTimeout : Attempt::Kind::kError;
            a.reason = is_timeout(wec) ? "timeout" : "write_failed";
            a.stale = true;
            co_return a;
        }
        http::response_parser<http::string_body> parser;
        parser.header_limit(16 * 1024);
        parser.body_limit(max_bytes);
        auto [rec, rn] = co_await http::async_read(stream, c.buffer, parser, kTuple);
        if (rec) {
            if (is_timeout(rec)) {
                a.kind = Attempt::Kind::kTimeout;
                a.reason = "timeout";
            } else if (rec == http::error::body_limit || rec == http::error::header_limit || rec == http::error::buffer_overflow) {
                a.reason = "response_too_large";
            } else if (rec == http::error::end_of_stream || rec == asio::error::connection_reset) {
                a.reason = "connection_closed";
                a.stale = rn == 0;
            } else {
                a.reason = "bad_response";
            }
            co_return a;
        }
        auto res = parser.release();
        a.kind = Attempt::Kind::kResponse;
        a.status = static_cast<int>(res.result_int());
        a.body = std::move(res.body());
        a.stale = false;
        if (res.keep_alive())
            a.reason = "keep";
        co_return a;
    }

    // One attempt on one connection, entirely on that connection's strand (Beast streams are
    // not thread-safe; the strand serializes their timer and I/O handlers).
    asio::awaitable<Attempt> attempt_on(
        Backend& b,
        std::unique_ptr<Connection> c,
        bool fresh,
        http::request<http::string_body> req,
        SteadyClock::time_point deadline
    ) {
        if (fresh) {
            const beast::error_code ec = co_await connect(b, *c, deadline);
            if (ec) {
                Attempt a;
                a.kind = is_timeout(ec) ? Attempt::Kind::kTimeout : Attempt::Kind::kError;
                // A refused certificate (untrusted, wrong host name) says so in the log.
                const bool tls = ec.category() == asio::error::get_ssl_category() ||
                                 ec.category() == asio::ssl::error::get_stream_category();
                a.reason = is_timeout(ec) ? "connect_timeout"
                           : tls          ? "tls_failed"
                                          : "connect_failed";
                co_return a;
            }
        }
        // (No co_await inside ?: -- g++ 12 mishandles the temporaries of that form.)
        Attempt a;
        if (c->tls) {
            a = co_await exchange(*c->tls, *c, req, b.config.max_response_bytes, deadline);
        } else {
            a = co_await exchange(*c->plain, *c, req, b.config.max_response_bytes, deadline);
        }
        if (a.kind == Attempt::Kind::kResponse && a.reason == "keep") {
            a.reason.clear();
            a.reusable = std::move(c);
        }
        a.stale = a.stale && !fresh;
        co_return a;
    }

    asio::awaitable<Attempt> attempt(
        Backend& b, const engine::BackendCall& call, SteadyClock::time_point deadline
    ) {
        const bool idempotent = call.method != "POST";
        for (int tries = 0;; ++tries) {
            std::unique_ptr<Connection> c = take_idle(b);
            const bool fresh = c == nullptr;
            if (fresh)
                c = std::make_unique<Connection>(asio::make_strand(executor));
            auto strand = c->strand;
            Attempt a = co_await asio::co_spawn(
                strand,
                attempt_on(b, std::move(c), fresh, build_request(b, call), deadline),
                asio::use_awaitable
            );
            // A pooled connection the server had closed fails before any response byte; the
            // request was not processed, but only a GET is safe to resend without doubt.
            if (a.stale && idempotent && tries == 0 && SteadyClock::now() < deadline)
                continue;
            co_return a;
        }
    }

    static std::chrono::milliseconds backoff_delay(const BackendConfig& cfg, int retry) {
        thread_local std::mt19937 rng{std::random_device{}()};
        // Exponential (backoff * 2^retry) with +-50% jitter so retries of many citizens spread.
        std::uniform_real_distribution<double> jitter(0.5, 1.5);
        const double base = static_cast<double>(cfg.backoff.count()) *
                            static_cast<double>(1LL << std::min(retry, 16));
        return std::chrono::milliseconds(static_cast<std::int64_t>(base * jitter(rng)));
    }

    asio::awaitable<engine::CallResult> call(engine::BackendCall call, std::string rid) {
        engine::CallResult result;
        result.call_id = call.id;
        result.outcome = engine::CallResult::Outcome::kError;
        Backend* b = find(call.backend);
        if (b == nullptr) {
            Logger::log(LogLevel::kError, rid, "backend_unknown", "backend=" + call.backend);
            co_return result;
        }
        const auto started = SteadyClock::now();
        const auto deadline = started + b->config.timeout;
        const bool is_get = call.method != "POST";
        if (is_get && b->cache.enabled()) {
            if (auto hit = b->cache.get(call.path, steady_ms())) {
                b->outcomes[kCached].fetch_add(1, std::memory_order_relaxed);
                result.outcome = engine::CallResult::Outcome::kResponse;
                result.status = hit->status;
                result.body = std::move(hit->body);
                co_return result;
            }
        }
        if (!b->breaker.allow(steady_ms())) {
            b->outcomes[kCircuitOpen].fetch_add(1, std::memory_order_relaxed);
            Logger::log(LogLevel::kWarn, rid, "backend_circuit_open", "backend=" + b->config.name);
            co_return result;
        }
        const int attempts = is_get ? 1 + b->config.retries : 1;
        Attempt last;
        for (int i = 0; i < attempts; ++i) {
            last = co_await attempt(*b, call, deadline);
            const bool failed = last.kind != Attempt::Kind::kResponse || last.status >= 500;
            if (!failed)
                break;
            if (i + 1 == attempts)
                break;
            const auto delay = backoff_delay(b->config, i);
            if (SteadyClock::now() + delay >= deadline)
                break;
            // A 5xx came over a healthy connection: the retry can reuse it.
            if (last.reusable)
                give_back(*b, std::move(last.reusable));
            Logger::log(
                LogLevel::kInfo,
                rid,
                "backend_retry",
                "backend=" + b->config.name + " attempt=" + std::to_string(i + 1) + " reason=" +
                    (last.reason.empty() ? "status_" + std::to_string(last.status) : last.reason)
            );
            asio::steady_timer timer(co_await asio::this_coro::executor);
            timer.expires_after(delay);
            co_await timer.async_wait(kTuple);
        }
        const auto elapsed =
            std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started)
                .count();
        if (last.reusable)
            give_back(*b, std::move(last.reusable));
        const bool failed = last.kind != Attempt::Kind::kResponse || last.status >= 500;
        if (failed) {
            b->outcomes[kFailed].fetch_add(1, std::memory_order_relaxed);
            b->breaker.record_failure(steady_ms());
            Logger::log(
                LogLevel::kWarn,
                rid,
                "backend_failed",
                "backend=" + b->config.name + " reason=" +
                    (last.reason.empty() ? "status_" + std::to_string(last.status) : last.reason) +
                    " ms=" + std::to_string(elapsed)
            );
        } else if (last.status == 401 || last.status == 403) {
            // The backend is up but refuses our credentials (an expired or rotated token): every
            // call fails the same way until an operator acts, so it is said at warn.
            b->outcomes[kRejected].fetch_add(1, std::memory_order_relaxed);
            b->breaker.record_success();
            Logger::log(
                LogLevel::kWarn,
                rid,
                "backend_rejected",
                "backend=" + b->config.name + " status=" + std::to_string(last.status) +
                    (b->config.auth ? " check=" + b->config.auth->env : std::string()) +
                    " ms=" + std::to_string(elapsed)
            );
        } else {
            b->outcomes[kOk].fetch_add(1, std::memory_order_relaxed);
            b->breaker.record_success();
            Logger::log(
                LogLevel::kDebug,
                rid,
                "backend_call",
                "backend=" + b->config.name + " status=" + std::to_string(last.status) +
                    " ms=" + std::to_string(elapsed)
            );
        }
        switch (last.kind) {
            case Attempt::Kind::kResponse:
                result.outcome = engine::CallResult::Outcome::kResponse;
                result.status = last.status;
                result.body = std::move(last.body);
                if (is_get && result.status >= 200 && result.status < 300) {
                    b->cache.put(call.path, {result.status, result.body}, steady_ms());
                }
                break;
            case Attempt::Kind::kTimeout:
                result.outcome = engine::CallResult::Outcome::kTimeout;
                break;
            case Attempt::Kind::kError:
                result.outcome = engine::CallResult::Outcome::kError;
                break;
        }
        co_return result;
    }
};

BackendClient::BackendClient(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

BackendClient::~BackendClient() = default;

engine::Result<std::unique_ptr<BackendClient>> BackendClient::create(
    asio::any_io_executor executor, const std::vector<BackendConfig>& backends, const EnvLookup& env
) {
    auto impl = std::make_unique<Impl>();
    impl->executor = executor;
    impl->ssl.set_default_verify_paths();
    impl->ssl.set_verify_mode(asio::ssl::verify_peer);
    for (const BackendConfig& cfg : backends) {
        auto b = std::make_unique<Impl::Backend>(cfg);
        if (cfg.auth) {
            const char* value = env ? env(cfg.auth->env.c_str()) : nullptr;
            if (value == nullptr || *value == '\0') {
                return engine::Error{
                    "config",
                    "backend '" + cfg.name + "': environment variable '" + cfg.auth->env +
                        "' is not set or is empty"};
            }
            b->auth_value = cfg.auth->prefix + value;
        }
        const bool default_port = (cfg.tls && cfg.port == "443") || (!cfg.tls && cfg.port == "80");
        const bool ipv6 = cfg.host.find(':') != std::string::npos;
        const std::string host = ipv6 ? "[" + cfg.host + "]" : cfg.host;
        b->host_header = default_port ? host : host + ":" + cfg.port;
        // Resolve once before serving (blocking is fine here: no request is being served yet).
        tcp::resolver resolver(executor);
        beast::error_code ec;
        auto results = resolver.resolve(cfg.host, cfg.port, ec);
        if (ec) {
            Logger::log(
                LogLevel::kWarn,
                {},
                "backend_resolve_failed",
                "backend=" + cfg.name + " error=\"" + ec.message() + "\""
            );
        } else {
            b->endpoints = results;
            b->resolved_at = SteadyClock::now();
        }
        impl->backends.push_back(std::move(b));
    }
    return std::unique_ptr<BackendClient>(new BackendClient(std::move(impl)));
}

asio::awaitable<engine::CallResult> BackendClient::call(
    engine::BackendCall call, std::string request_id
) {
    engine::CallResult failed;
    failed.call_id = call.id;
    const std::string rid = request_id;
    try {
        co_return co_await impl_->call(std::move(call), std::move(request_id));
    } catch (const std::exception& e) {
        // Nothing in call() is expected to throw (every I/O error is an error_code); this is the
        // last line so that a bug becomes the flow's error branch rather than a lost reply.
        Logger::log(
            LogLevel::kError, rid, "backend_exception", std::string("what=\"") + e.what() + "\""
        );
    }
    failed.outcome = engine::CallResult::Outcome::kError;
    co_return failed;
}

std::string BackendClient::metrics() const {
    using detail::label_value;
    static constexpr std::array<const char*, Impl::kOutcomes> kNames{
        "ok", "rejected", "failed", "circuit_open", "cached"};
    std::string out;
    if (impl_->backends.empty())
        return out;
    out +=
        "# HELP civicflow_backend_calls_total Backend calls by outcome: ok (an answer below 500, "
        "401 and 403 aside), rejected (401 or 403: the credentials), failed (5xx, timeout, "
        "connection error), circuit_open (not sent), cached (from the response cache).\n"
        "# TYPE civicflow_backend_calls_total counter\n";
    for (const auto& b : impl_->backends) {
        for (std::size_t i = 0; i < Impl::kOutcomes; ++i) {
            out += "civicflow_backend_calls_total{backend=\"" + label_value(b->config.name) +
                   "\",outcome=\"" + kNames[i] + "\"} " + std::to_string(b->outcomes[i].load()) +
                   "\n";
        }
    }
    out +=
        "# HELP civicflow_backend_circuit_open Whether a backend's circuit breaker is open (1): "
        "its calls fail at once until a probe succeeds.\n"
        "# TYPE civicflow_backend_circuit_open gauge\n";
    const std::int64_t now = steady_ms();
    for (const auto& b : impl_->backends) {
        const bool open = b->breaker.state(now) == CircuitBreaker::State::kOpen;
        out += "civicflow_backend_circuit_open{backend=\"" + label_value(b->config.name) + "\"} " +
               (open ? "1" : "0") + "\n";
    }
    return out;
}

bool BackendClient::has_backend(std::string_view name) const {
    return impl_->find(name) != nullptr;
}

void BackendClient::close_idle() {
    impl_->closing.store(true);
    for (auto& b : impl_->backends) {
        std::lock_guard lock(b->mutex);
        b->idle.clear();
    }
}

}  // namespace civicflow::server
