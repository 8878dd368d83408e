/// The server configuration file (YAML, read through the engine's YAML reader) and its defaults.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <civicflow/engine/diagnostic.hpp>
#include <civicflow/engine/result.hpp>

namespace civicflow::server {

using Millis = std::chrono::milliseconds;

/// Protection limits of the HTTP listener.
///   limits: { body_bytes: 65536, header_bytes: 8192, read_timeout: 10s, idle_timeout: 60s,
///             max_connections: 10000, pipeline: 16 }
struct Limits {
    std::size_t body_bytes = 64 * 1024;    // larger bodies: 413
    std::size_t header_bytes = 8 * 1024;   // larger headers: 431
    Millis read_timeout{10'000};           // from a request's first byte to its last
    Millis idle_timeout{60'000};           // keep-alive wait for the next request
    std::size_t max_connections = 10'000;  // past it new connections get a 503 and are closed
    std::size_t pipeline = 16;             // requests read ahead of their responses per connection
};

/// How the auth header of a backend is built; the secret itself only ever lives in the
/// environment variable `env` (read at startup, never logged).
///   auth: { header: Authorization, prefix: "Bearer ", env: CIVICFLOW_STATUS_TOKEN }
struct AuthConfig {
    std::string header = "Authorization";
    std::string prefix;
    std::string env;
};

/// One backend the flows may call by name.
///   backends:
///     status:
///       base_url: http://127.0.0.1:9090
///       auth: { header: Authorization, prefix: "Bearer ", env: CIVICFLOW_STATUS_TOKEN }
///       connect_timeout: 1s
///       timeout: 3s             # total, retries included
///       retries: 2              # GET only; exponential backoff with jitter
///       backoff: 100ms
///       circuit_breaker: { failures: 5, pause: 30s }
///       max_response_bytes: 65536
///       cache_ttl: 0s           # GET responses (2xx); 0 = no cache
///       max_idle_connections: 32
struct BackendConfig {
    std::string name;
    std::string base_url;
    bool tls = false;       // https
    std::string host;       // from base_url
    std::string port;       // from base_url, defaulted by scheme
    std::string base_path;  // from base_url, without a trailing '/'
    std::optional<AuthConfig> auth;
    Millis connect_timeout{1'000};
    Millis timeout{3'000};
    int retries = 0;
    Millis backoff{100};
    int breaker_failures = 5;
    Millis breaker_pause{30'000};
    std::size_t max_response_bytes = 64 * 1024;
    Millis cache_ttl{0};
    std::size_t max_idle_connections = 32;
};

/// Where sessions, processed message ids, consent and pending calls live, and for how long.
///   store:
///     type: sqlite:civicflow.db   # memory | sqlite:PATH | redis://HOST:PORT
///     session_ttl: 7d             # kept this long after the flow's idle_timeout has passed
///     ended_session_ttl: 1d       # a finished conversation, after its last message
///     message_ttl: 8d             # processed message ids and their responses
///     sweep_interval: 1m          # sqlite: how often expired rows are deleted
///     durable: true               # sqlite: fsync every commit (synchronous=FULL)
///     lease_ttl: 30s              # redis: a crashed instance's per-citizen lease expires
struct StoreConfig {
    std::string type = "sqlite:civicflow.db";
    Millis session_ttl{7LL * 24 * 3600 * 1000};
    Millis ended_session_ttl{24LL * 3600 * 1000};
    Millis message_ttl{8LL * 24 * 3600 * 1000};
    Millis sweep_interval{60'000};
    bool durable = true;
    Millis lease_ttl{30'000};
};

/// Everything `civicflow serve` runs with. Defaults apply to whatever the file leaves out.
///   version: 1
///   flows: flows/
///   listen: 127.0.0.1:8080
///   threads: 2
///   shutdown_timeout: 10s
///   log: { level: info, access: false }
struct ServerConfig {
    std::string flows_dir = "flows";
    std::string listen_host = "127.0.0.1";
    std::uint16_t listen_port = 8080;
    int threads = 0;  // 0: the number of cores
    Millis shutdown_timeout{10'000};
    std::string log_level = "info";
    bool access_log = false;
    Limits limits;
    StoreConfig store;
    std::vector<BackendConfig> backends;
};

/// Host and port of a listen address.
struct ListenAddress {
    std::string host;
    std::uint16_t port = 0;
};

/// Parses "HOST:PORT" ("127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0"). Error code "listen".
engine::Result<ListenAddress> parse_listen_address(std::string_view text);

/// Parses a duration "250ms", "10s", "30m", "2h", "1d". Error code "duration".
engine::Result<Millis> parse_duration(std::string_view text);

/// Parses the config file `file` with contents `text` on top of the defaults. Every problem is
/// added to `diags` (E100 syntax, E101 wrong type, E102 unknown key with a suggestion, E103
/// missing key, E105 version, E109 invalid value), all in one run; returns nullopt when there is
/// an error. Environment variables are not read here.
std::optional<ServerConfig> parse_config(
    const std::string& file, std::string_view text, engine::Diagnostics& diags
);

}  // namespace civicflow::server
