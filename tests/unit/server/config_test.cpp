#include <string>

#include <doctest/doctest.h>

#include <civicflow/server/config.hpp>

using namespace civicflow;
using namespace std::chrono_literals;

namespace {

std::string errors_of(const std::string& text) {
    engine::Diagnostics diags;
    auto config = server::parse_config("civicflow.yaml", text, diags);
    CHECK_FALSE(config);
    engine::SourceCache sources;
    sources.put("civicflow.yaml", text);
    diags.sort();
    return engine::format_text(diags, sources, false);
}

}  // namespace

TEST_SUITE("server/config") {
    TEST_CASE("a full config is read with every field") {
        engine::Diagnostics diags;
        auto c = server::parse_config(
            "civicflow.yaml",
            R"(version: 1
flows: my-flows
listen: 0.0.0.0:9000
threads: 3
busy_poll: 2ms
shutdown_timeout: 15s
log: { level: warn, access: true }
limits: { body_bytes: 2048, header_bytes: 4096, read_timeout: 5s, idle_timeout: 1m,
          max_connections: 100 }
store: { type: memory, session_ttl: 7d, message_ttl: 12h, cache_sessions: 1000 }
backends:
  status:
    base_url: https://status.example.gov.in:8443/api/
    auth: { header: X-Api-Key, env: STATUS_KEY }
    connect_timeout: 500ms
    timeout: 2s
    retries: 2
    backoff: 50ms
    circuit_breaker: { failures: 3, pause: 10s }
    max_response_bytes: 4096
    cache_ttl: 30s
)",
            diags
        );
        REQUIRE(c);
        CHECK(diags.empty());
        CHECK(c->flows_dir == "my-flows");
        CHECK(c->listen_host == "0.0.0.0");
        CHECK(c->listen_port == 9000);
        CHECK(c->threads == 3);
        CHECK(c->busy_poll == 2ms);
        CHECK(c->shutdown_timeout == 15s);
        CHECK(c->log_level == "warn");
        CHECK(c->access_log);
        CHECK(c->limits.body_bytes == 2048);
        CHECK(c->limits.idle_timeout == 1min);
        CHECK(c->store.session_ttl == 7 * 24h);
        CHECK(c->store.cache_sessions == 1000);
        REQUIRE(c->backends.size() == 1);
        const auto& b = c->backends[0];
        CHECK(b.name == "status");
        CHECK(b.tls);
        CHECK(b.host == "status.example.gov.in");
        CHECK(b.port == "8443");
        CHECK(b.base_path == "/api");
        REQUIRE(b.auth);
        CHECK(b.auth->header == "X-Api-Key");
        CHECK(b.auth->prefix.empty());
        CHECK(b.auth->env == "STATUS_KEY");
        CHECK(b.connect_timeout == 500ms);
        CHECK(b.retries == 2);
        CHECK(b.breaker_failures == 3);
        CHECK(b.breaker_pause == 10s);
        CHECK(b.max_response_bytes == 4096);
        CHECK(b.cache_ttl == 30s);
    }

    TEST_CASE("defaults apply to what the file leaves out") {
        engine::Diagnostics diags;
        auto c = server::parse_config("c.yaml", "version: 1\n", diags);
        REQUIRE(c);
        CHECK(c->flows_dir == "flows");
        CHECK(c->listen_port == 8080);
        CHECK(c->limits.body_bytes == 65536);
        CHECK(c->limits.max_connections == 10000);
        CHECK(c->store.cache_sessions == 50'000);
        CHECK(c->backends.empty());
    }

    TEST_CASE("every problem is reported in one run with its location") {
        CHECK(errors_of(R"(version: 2
limits: { body_bytes: lots, max_connection: 4 }
backends:
  status:
    base_url: ftp://example.org
    timeout: 3 seconds
    auth: { header: Authorization }
)") == R"(civicflow.yaml:1:10: error[E105]: unsupported config version '2'
    1 | version: 2
      |          ^
  hint: the supported version is 1
civicflow.yaml:2:23: error[E109]: invalid value 'lots' for 'body_bytes'
    2 | limits: { body_bytes: lots, max_connection: 4 }
      |                       ^~~~
  hint: expected an integer from 1024 to 67108864
civicflow.yaml:2:29: error[E102]: unknown key 'max_connection' in 'limits'
    2 | limits: { body_bytes: lots, max_connection: 4 }
      |                             ^~~~~~~~~~~~~~
  hint: did you mean 'max_connections'?
civicflow.yaml:5:15: error[E109]: invalid base_url 'ftp://example.org' in backend 'status'
    5 |     base_url: ftp://example.org
      |               ^~~~~~~~~~~~~~~~~
  hint: expected http://host[:port][/path] or https://...
civicflow.yaml:6:14: error[E109]: invalid duration '3 seconds' for 'timeout'
    6 |     timeout: 3 seconds
      |              ^~~~~~~~~
  hint: write an integer and a unit: 250ms, 10s, 30m, 2h, 1d
civicflow.yaml:7:11: error[E103]: missing key 'env' in 'auth' of backend 'status'
    7 |     auth: { header: Authorization }
      |           ^
  hint: name the environment variable that holds the secret
)");
    }

    TEST_CASE("the whatsapp section maps numbers to flows and names its variables") {
        engine::Diagnostics diags;
        auto c = server::parse_config(
            "civicflow.yaml",
            R"(version: 1
whatsapp:
  numbers:
    "106540352242922": { flow: passport }
    "106540352242923": { flow: main }
  app_secret_env: DEPT_WA_SECRET
  send_rate: 20
  recipient_interval: 500ms
  retry_backoff: 2s
  max_attempts: 5
  list_button: Options
  mark_read: false
)",
            diags
        );
        REQUIRE(c);
        CHECK(diags.empty());
        const auto& wa = c->whatsapp;
        REQUIRE(wa.numbers.size() == 2);
        CHECK(wa.numbers[0] == std::pair<std::string, std::string>{"106540352242922", "passport"});
        CHECK(wa.numbers[1].second == "main");
        CHECK(wa.app_secret_env == "DEPT_WA_SECRET");
        CHECK(wa.verify_token_env == "CIVICFLOW_WA_VERIFY_TOKEN");
        CHECK(wa.send_rate == 20);
        CHECK(wa.recipient_interval == server::Millis{500});
        CHECK(wa.retry_backoff == server::Millis{2000});
        CHECK(wa.max_attempts == 5);
        CHECK(wa.list_button == "Options");
        CHECK_FALSE(wa.mark_read);
        // Defaults when the section is absent.
        engine::Diagnostics none;
        auto d = server::parse_config("c.yaml", "version: 1\n", none);
        REQUIRE(d);
        CHECK(d->whatsapp.numbers.empty());
        CHECK(d->whatsapp.send_rate == 80);
        CHECK(d->whatsapp.access_token_env == "CIVICFLOW_WA_ACCESS_TOKEN");
    }

    TEST_CASE("whatsapp mistakes are reported with their location") {
        CHECK(errors_of(R"(version: 1
whatsapp:
  numbers: { "+91 98": { flow: main }, "1065": { flows: main } }
  list_button: "A button text far too long"
)") == R"(civicflow.yaml:3:14: error[E109]: invalid phone number id '+91 98'
    3 |   numbers: { "+91 98": { flow: main }, "1065": { flows: main } }
      |              ^~~~~~
  hint: use the numeric id Meta shows for the number, in quotes
civicflow.yaml:3:48: error[E103]: missing key 'flow' in number '1065'
    3 |   numbers: { "+91 98": { flow: main }, "1065": { flows: main } }
      |                                                ^
civicflow.yaml:3:50: error[E102]: unknown key 'flows' in number '1065'
    3 |   numbers: { "+91 98": { flow: main }, "1065": { flows: main } }
      |                                                  ^~~~~
  hint: did you mean 'flow'?
civicflow.yaml:4:16: error[E109]: 'list_button' must be 1 to 20 characters (a WhatsApp limit)
    4 |   list_button: "A button text far too long"
      |                ^~~~~~~~~~~~~~~~~~~~~~~~~~
)");
    }

    TEST_CASE("busy_poll longer than a second is refused") {
        CHECK(
            errors_of("version: 1\nbusy_poll: 2s\n") ==
            R"(civicflow.yaml:2:12: error[E109]: 'busy_poll' must be at most 1s
    2 | busy_poll: 2s
      |            ^~
  hint: 2ms covers 1,000 requests/s
)"
        );
    }

    TEST_CASE("listen addresses and durations are parsed strictly") {
        auto a = server::parse_listen_address("[::1]:8080");
        REQUIRE(a);
        CHECK(a->host == "::1");
        CHECK(a->port == 8080);
        CHECK_FALSE(server::parse_listen_address("localhost"));
        CHECK_FALSE(server::parse_listen_address("127.0.0.1:70000"));
        CHECK(server::parse_duration("250ms").value() == 250ms);
        CHECK(server::parse_duration("2h").value() == 2h);
        CHECK_FALSE(server::parse_duration("1.5s"));
        CHECK_FALSE(server::parse_duration("s"));
        CHECK_FALSE(server::parse_duration("10"));
    }

    TEST_CASE("timeouts and times to live of 0 are refused") {
        const std::string errors = errors_of(R"(version: 1
limits: { read_timeout: 0s, idle_timeout: 0ms }
store: { session_ttl: 0s, ended_session_ttl: 0d, message_ttl: 0s }
backends:
  status:
    base_url: http://127.0.0.1:9
    connect_timeout: 0s
whatsapp: { send_timeout: 0s }
)");
        for (const char* key :
             {"read_timeout",
              "idle_timeout",
              "session_ttl",
              "ended_session_ttl",
              "message_ttl",
              "connect_timeout",
              "send_timeout"}) {
            CAPTURE(key);
            CHECK(errors.find(std::string("'") + key + "' must be above 0") != std::string::npos);
        }
        CHECK(
            errors_of("version: 1\nstore: { lease_ttl: 4s, command_timeout: 3s }\n")
                .find("'command_timeout' must be at most half of 'lease_ttl'") != std::string::npos
        );
        // The default command_timeout (3s) against a short lease_ttl alone.
        CHECK(
            errors_of("version: 1\nstore: { lease_ttl: 2s }\n")
                .find("'command_timeout' must be at most half of 'lease_ttl'") != std::string::npos
        );
        engine::Diagnostics diags;
        auto ok = server::parse_config(
            "civicflow.yaml", "version: 1\nstore: { lease_ttl: 10s, command_timeout: 5s }\n", diags
        );
        REQUIRE(ok);
        CHECK(ok->store.command_timeout == 5s);
        CHECK(ok->store.erasure_rewrite == 10min);  // the default
    }

    TEST_CASE("store.erasure_rewrite is a duration, and 0 turns the rewrite off") {
        engine::Diagnostics diags;
        auto off = server::parse_config(
            "civicflow.yaml", "version: 1\nstore: { erasure_rewrite: 0s }\n", diags
        );
        REQUIRE(off);
        CHECK(off->store.erasure_rewrite == 0s);
        auto soon = server::parse_config(
            "civicflow.yaml", "version: 1\nstore: { erasure_rewrite: 30s }\n", diags
        );
        REQUIRE(soon);
        CHECK(soon->store.erasure_rewrite == 30s);
        CHECK(
            errors_of("version: 1\nstore: { erasure_rewrite: soon }\n")
                .find("invalid duration 'soon' for 'erasure_rewrite'") != std::string::npos
        );
    }
}
