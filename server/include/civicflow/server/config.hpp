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
///             max_connections: 10000 }
struct Limits {
    std::size_t body_bytes = 64 * 1024;    // larger bodies: 413
    std::size_t header_bytes = 8 * 1024;   // larger headers: 431
    Millis read_timeout{10'000};           // from a request's first byte to its last
    Millis idle_timeout{60'000};           // keep-alive wait for the next request
    std::size_t max_connections = 10'000;  // past it new connections get a 503 and are closed
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
///     durable: true               # sqlite: fdatasync the WAL after each group commit
///     cache_sessions: 50000       # sqlite: citizens whose session is also kept in memory
///     lease_ttl: 30s              # redis: a crashed instance's per-citizen lease expires
///     command_timeout: 3s         # redis: no answer this long: reconnect, requests get 503
struct StoreConfig {
    std::string type = "sqlite:civicflow.db";
    Millis session_ttl{7LL * 24 * 3600 * 1000};
    Millis ended_session_ttl{24LL * 3600 * 1000};
    Millis message_ttl{8LL * 24 * 3600 * 1000};
    Millis sweep_interval{60'000};
    bool durable = true;
    std::size_t cache_sessions = 50'000;
    Millis lease_ttl{30'000};
    Millis command_timeout{3'000};
    Millis erasure_rewrite{10LL * 60 * 1000};  // redis: AOF rewrite this long after an erasure
};

/// The WhatsApp Cloud API channel. Secrets and the API base URL come from the environment
/// variables named here (never from the file); the channel is on when the app secret variable
/// is set. With no `numbers`, every phone number id starts in the helpline's entry flow.
///   whatsapp:
///     numbers:                          # phone number id -> the flow its citizens start in
///       "106540352242922": { flow: passport }
///     app_secret_env: CIVICFLOW_WA_APP_SECRET
///     verify_token_env: CIVICFLOW_WA_VERIFY_TOKEN
///     access_token_env: CIVICFLOW_WA_ACCESS_TOKEN
///     api_base_env: CIVICFLOW_WA_API_BASE   # default https://graph.facebook.com/v23.0
///     notify_token_env: CIVICFLOW_NOTIFY_TOKEN  # bearer token of POST /v1/notifications
///     send_rate: 80                     # messages per second per phone number
///     recipient_interval: 200ms         # least time between two sends to one citizen
///     retry_backoff: 1s                 # first retry delay; doubles, with jitter
///     max_retry_backoff: 5m
///     max_attempts: 10                  # then the message is recorded as failed
///     send_timeout: 10s                 # one Graph API request
///     list_button: Choose               # button text of list menus (at most 20 characters)
///     mark_read: true                   # mark each message read, with a typing indicator
struct WhatsAppConfig {
    bool in_file = false;  // the config file has a 'whatsapp' section
    std::vector<std::pair<std::string, std::string>> numbers;  // phone number id, entry flow
    std::string app_secret_env = "CIVICFLOW_WA_APP_SECRET";
    std::string verify_token_env = "CIVICFLOW_WA_VERIFY_TOKEN";
    std::string access_token_env = "CIVICFLOW_WA_ACCESS_TOKEN";
    std::string api_base_env = "CIVICFLOW_WA_API_BASE";
    std::string notify_token_env = "CIVICFLOW_NOTIFY_TOKEN";
    double send_rate = 80;
    Millis recipient_interval{200};
    Millis retry_backoff{1'000};
    Millis max_retry_backoff{300'000};
    int max_attempts = 10;
    Millis send_timeout{10'000};
    std::string list_button = "Choose";
    bool mark_read = true;
};

/// Everything `civicflow serve` runs with. Defaults apply to whatever the file leaves out.
///   version: 1
///   flows: flows/
///   listen: 127.0.0.1:8080
///   threads: 2
///   busy_poll: 0ms
///   shutdown_timeout: 10s
///   log: { level: info, access: false }
struct ServerConfig {
    std::string flows_dir = "flows";
    std::string listen_host = "127.0.0.1";
    std::uint16_t listen_port = 8080;
    int threads = 0;  // 0: the number of cores
    // How long the I/O thread keeps polling for work before it sleeps; 0: it sleeps at once
    // (at most 1s; needs threads: 1). Polling keeps a virtual CPU from halting, whose wake-up
    // can take a millisecond or more on a VM; it costs a core while requests come more often
    // than that.
    Millis busy_poll{0};
    Millis shutdown_timeout{10'000};
    std::string log_level = "info";
    bool access_log = false;
    Limits limits;
    StoreConfig store;
    std::vector<BackendConfig> backends;
    WhatsAppConfig whatsapp;
};

/// Host and port of a listen address.
struct ListenAddress {
    std::string host;
    std::uint16_t port = 0;
};

/// Parses "HOST:PORT" ("127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0"). Error code "listen".
engine::Result<ListenAddress> parse_listen_address(std::string_view text);

/// Fills `b`'s tls, host, port and base_path from "http(s)://host[:port][/base]"; false when
/// the URL is not of that form (user info, another scheme, an empty host or a bad port).
bool split_base_url(std::string_view url, BackendConfig& b);

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
