/// Performs the engine's backend calls over HTTP(S): pooled connections, timeouts, retries,
/// a circuit breaker and an optional response cache per backend.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <civicflow/engine/result.hpp>
#include <civicflow/engine/turn.hpp>
#include <civicflow/server/config.hpp>

namespace civicflow::server {

/// One client for every configured backend. call() never throws and never takes longer than the
/// backend's `timeout` (connect, retries and backoff included): every failure becomes a
/// CallResult with outcome kTimeout or kError, which the engine routes to the flow's error
/// branch. Connections are kept alive and reused (up to `max_idle_connections` idle per backend);
/// each runs on its own strand. Thread-safe.
///
/// Secrets: the auth header value is read from the environment once, in create(), and is only
/// ever written into outgoing request headers; paths, bodies and secrets are never logged.
class BackendClient {
public:
    /// Looks up an environment variable; injectable for tests.
    using EnvLookup = std::function<const char*(const char*)>;

    /// Builds the client. Fails (code "config") when an auth environment variable is unset or
    /// empty. Host names are resolved here once (blocking, before serving) and refreshed in the
    /// background every minute; a host that does not resolve yet is only a logged warning.
    static engine::Result<std::unique_ptr<BackendClient>> create(
        boost::asio::any_io_executor executor,
        const std::vector<BackendConfig>& backends,
        const EnvLookup& env
    );

    ~BackendClient();
    BackendClient(const BackendClient&) = delete;
    BackendClient& operator=(const BackendClient&) = delete;

    /// Performs `call`. `request_id` only tags log lines.
    boost::asio::awaitable<engine::CallResult> call(
        engine::BackendCall call, std::string request_id
    );

    bool has_backend(std::string_view name) const;

    /// Prometheus text: calls per backend and outcome, and whether each circuit is open.
    std::string metrics() const;

    /// Drops idle pooled connections (before shutdown).
    void close_idle();

    struct Impl;

private:
    explicit BackendClient(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace civicflow::server
