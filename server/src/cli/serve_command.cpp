// civicflow serve: load the flows and the config, then run the HTTP server until SIGTERM/SIGINT.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <civicflow/engine/diagnostic.hpp>
#include <civicflow/engine/loader.hpp>
#include <civicflow/server/backend_client.hpp>
#include <civicflow/server/channel_memory_store.hpp>
#include <civicflow/server/channel_sqlite_store.hpp>
#include <civicflow/server/config.hpp>
#include <civicflow/server/http_server.hpp>
#include <civicflow/server/logger.hpp>
#include <civicflow/server/memory_store.hpp>
#include <civicflow/server/message_service.hpp>
#include <civicflow/server/redis_store.hpp>
#include <civicflow/server/sqlite_store.hpp>
#include <civicflow/server/whatsapp_channel.hpp>

#include "commands.hpp"

namespace civicflow::cli {
namespace {

namespace asio = boost::asio;
using server::Logger;
using server::LogLevel;

constexpr const char* kServeUsage =
    "usage: civicflow serve [--flows DIR] [--config FILE] [--listen HOST:PORT] [--threads N]\n"
    "                       [--store memory|sqlite:PATH|redis://HOST[:PORT]]\n"
    "\n"
    "  --flows DIR         flow directory (default: the config's 'flows', else flows/)\n"
    "  --config FILE       server config (YAML): limits, store, backends\n"
    "  --listen HOST:PORT  address to listen on (default 127.0.0.1:8080; also the environment\n"
    "                      variable CIVICFLOW_LISTEN); port 0 picks a free port\n"
    "  --threads N         I/O threads (default, or 0: the number of cores)\n"
    "  --store STORE       where sessions live (default sqlite:civicflow.db; also the\n"
    "                      environment variable CIVICFLOW_STORE)\n"
    "\n"
    "\n"
    "Environment: CIVICFLOW_API_TOKEN, when set, is the bearer token POST /v1/messages requires;\n"
    "CIVICFLOW_ADMIN_TOKEN the one of DELETE /v1/citizens/{id} (unset: that endpoint is off).\n"
    "\n"
    "Prints 'listening on HOST:PORT' once bound. SIGTERM or SIGINT drains and exits 0.\n";

struct ServeArgs {
    std::string flows;
    std::string config;
    std::string listen;
    std::string store;
    int threads = -1;
};

int usage_error(const std::string& message) {
    std::fprintf(stderr, "civicflow serve: %s\n\n%s", message.c_str(), kServeUsage);
    return 2;
}

bool read_file(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return false;
    std::ostringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return !in.bad();
}

LogLevel parse_level(const std::string& level) {
    if (level == "debug")
        return LogLevel::kDebug;
    if (level == "warn")
        return LogLevel::kWarn;
    if (level == "error")
        return LogLevel::kError;
    return LogLevel::kInfo;
}

std::string_view store_kind(const server::StoreSpec& spec) {
    switch (spec.kind) {
        case server::StoreSpec::Kind::kMemory:
            return "memory";
        case server::StoreSpec::Kind::kSqlite:
            return "sqlite";
        case server::StoreSpec::Kind::kRedis:
            return "redis";
    }
    return "unknown";
}

// A bearer token from the environment (CIVICFLOW_ADMIN_TOKEN: DELETE /v1/citizens/{id};
// CIVICFLOW_API_TOKEN: POST /v1/messages); read once, never logged.
std::string token_from_env(const char* name) {
    const char* token = std::getenv(name);
    return token == nullptr ? std::string() : std::string(token);
}

std::string admin_token() {
    return token_from_env("CIVICFLOW_ADMIN_TOKEN");
}

// What the WhatsApp channel runs on; destroyed in reverse order after the server.
struct WhatsAppParts {
    std::unique_ptr<server::ChannelStore> store;
    std::unique_ptr<server::BackendClient> graph;
    std::unique_ptr<server::WhatsAppChannel> channel;
};

engine::Result<WhatsAppParts> start_whatsapp(
    asio::io_context& ioc,
    const server::ServerConfig& config,
    const server::StoreSpec& spec,
    const engine::FlowSet& flows,
    server::MessageService& service,
    server::Store& store
) {
    const server::WhatsAppConfig& wa = config.whatsapp;
    for (const auto& [number, flow] : wa.numbers) {
        if (flows.find_flow(flow) == nullptr) {
            return engine::Error{
                "config",
                "whatsapp number '" + number + "' starts in flow '" + flow +
                    "', which the flows do not define"};
        }
    }
    auto env = [](const std::string& name) {
        const char* value = std::getenv(name.c_str());
        return value == nullptr ? std::string() : std::string(value);
    };
    WhatsAppParts parts;
    server::ChannelRetention retention;
    retention.inbox = config.store.message_ttl;
    switch (spec.kind) {
        case server::StoreSpec::Kind::kMemory:
            parts.store = std::make_unique<server::ChannelMemoryStore>(retention);
            break;
        case server::StoreSpec::Kind::kSqlite:
        case server::StoreSpec::Kind::kRedis: {
            // The session database itself (tables wa_*), or with Redis a local file: the
            // channel's inbox and outbox are not shared between instances yet.
            server::ChannelSqliteStore::Options options;
            options.path =
                spec.kind == server::StoreSpec::Kind::kSqlite ? spec.path : "civicflow-whatsapp.db";
            options.retention = retention;
            options.sweep_interval = config.store.sweep_interval;
            options.durable = config.store.durable;
            auto opened = server::ChannelSqliteStore::open(std::move(options));
            if (!opened)
                return opened.error();
            parts.store = std::move(*opened);
            break;
        }
    }
    server::BackendConfig graph;
    graph.name = "whatsapp";
    graph.base_url = env(wa.api_base_env);
    if (graph.base_url.empty())
        graph.base_url = "https://graph.facebook.com/v23.0";
    if (!server::split_base_url(graph.base_url, graph)) {
        return engine::Error{
            "config", wa.api_base_env + " is not an http(s)://host[:port][/path] URL"};
    }
    graph.auth = server::AuthConfig{"Authorization", "Bearer ", wa.access_token_env};
    graph.timeout = wa.send_timeout;
    graph.connect_timeout = std::min(wa.send_timeout, server::Millis{3'000});
    graph.retries = 0;  // the outbox retries, with its own backoff
    graph.breaker_failures = 50;
    graph.breaker_pause = server::Millis{5'000};
    // As many pooled connections as conversations the sender may have in flight, so that a
    // burst of replies reuses connections instead of opening one per send.
    graph.max_idle_connections = 512;
    auto client = server::BackendClient::create(ioc.get_executor(), {graph}, [](const char* name) {
        return std::getenv(name);
    });
    if (!client)
        return client.error();
    parts.graph = std::move(*client);
    server::WhatsAppSecrets secrets{
        env(wa.app_secret_env), env(wa.verify_token_env), env(wa.notify_token_env), admin_token()};
    server::BackendClient* graph_client = parts.graph.get();
    parts.channel = std::make_unique<server::WhatsAppChannel>(
        ioc.get_executor(),
        wa,
        std::move(secrets),
        service,
        store,
        *parts.store,
        [graph_client](engine::BackendCall call, std::string rid) {
            return graph_client->call(std::move(call), std::move(rid));
        }
    );
    server::WhatsAppChannel* channel = parts.channel.get();
    service.add_eraser([channel](const std::string& user) { return channel->erase(user); });
    Logger::log(
        LogLevel::kInfo,
        {},
        "whatsapp_enabled",
        "numbers=" + std::to_string(wa.numbers.size()) + " api=" + graph.host
    );
    return parts;
}

// Warns about backends the flows call but the config does not declare: those calls would take
// the flow's error branch on every message.
void check_backends(const engine::FlowSet& flows, const server::BackendClient& client) {
    std::vector<std::string> reported;
    for (const auto& flow : flows.flows) {
        for (const auto& state : flow.states) {
            if (!state.call)
                continue;
            const std::string& name = state.call->backend;
            if (client.has_backend(name))
                continue;
            if (std::find(reported.begin(), reported.end(), name) != reported.end())
                continue;
            reported.push_back(name);
            Logger::log(
                LogLevel::kWarn,
                {},
                "backend_undeclared",
                "backend=" + name + " flow=" + flow.name + " state=" + state.id
            );
        }
    }
}

// Runs the handlers of `ioc` on this thread until it stops. With `spin` above zero the thread
// polls for that long after its last handler before it sleeps in epoll_wait (config
// `busy_poll`): on a VM a halted virtual CPU may take over a millisecond to wake up for the
// next request.
void run_io(asio::io_context& ioc, std::chrono::nanoseconds spin) {
    if (spin.count() <= 0) {
        ioc.run();
        return;
    }
    auto last = std::chrono::steady_clock::now();
    while (!ioc.stopped()) {
        if (ioc.poll() > 0) {
            last = std::chrono::steady_clock::now();
            continue;
        }
        if (std::chrono::steady_clock::now() - last < spin)
            continue;
        if (ioc.run_one() == 0)
            break;
        last = std::chrono::steady_clock::now();
    }
}

}  // namespace

int run_serve(int argc, char** argv) {
    ServeArgs args;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&](std::string& out) {
            if (i + 1 >= argc)
                return false;
            out = argv[++i];
            return true;
        };
        if (arg == "--help" || arg == "-h") {
            std::fputs(kServeUsage, stdout);
            return 0;
        }
        if (arg == "--flows") {
            if (!value(args.flows))
                return usage_error("--flows needs a directory");
        } else if (arg == "--config") {
            if (!value(args.config))
                return usage_error("--config needs a file");
        } else if (arg == "--listen") {
            if (!value(args.listen))
                return usage_error("--listen needs HOST:PORT");
        } else if (arg == "--store") {
            if (!value(args.store))
                return usage_error("--store needs memory, sqlite:PATH or redis://HOST[:PORT]");
        } else if (arg == "--threads") {
            std::string n;
            if (!value(n))
                return usage_error("--threads needs a number");
            char* end = nullptr;
            const long t = std::strtol(n.c_str(), &end, 10);
            if (end == n.c_str() || *end != '\0' || t < 0 || t > 256) {
                return usage_error("--threads must be a number from 0 (the number of cores) to 256"
                );
            }
            args.threads = static_cast<int>(t);
        } else {
            return usage_error("unknown option '" + std::string(arg.substr(0, 64)) + "'");
        }
    }

    // Configuration: defaults < config file < environment < flags.
    server::ServerConfig config;
    if (!args.config.empty()) {
        std::string text;
        if (!read_file(args.config, text)) {
            std::fprintf(
                stderr, "civicflow serve: cannot read config file '%s'\n", args.config.c_str()
            );
            return 2;
        }
        engine::Diagnostics diags;
        auto parsed = server::parse_config(args.config, text, diags);
        if (!diags.empty()) {
            engine::SourceCache sources;
            sources.put(args.config, text);
            diags.sort();
            std::fputs(engine::format_text(diags, sources).c_str(), stderr);
        }
        if (!parsed)
            return 2;
        config = std::move(*parsed);
    }
    if (const char* env = std::getenv("CIVICFLOW_LISTEN"); env != nullptr && *env != '\0') {
        args.listen = args.listen.empty() ? env : args.listen;
    }
    if (!args.listen.empty()) {
        auto addr = server::parse_listen_address(args.listen);
        if (!addr)
            return usage_error(addr.error().message);
        config.listen_host = addr->host;
        config.listen_port = addr->port;
    }
    if (const char* env = std::getenv("CIVICFLOW_STORE"); env != nullptr && *env != '\0') {
        args.store = args.store.empty() ? env : args.store;
    }
    if (!args.store.empty())
        config.store.type = args.store;
    auto store_spec = server::parse_store_spec(config.store.type);
    if (!store_spec)
        return usage_error(store_spec.error().message);
    if (!args.flows.empty())
        config.flows_dir = args.flows;
    if (args.threads >= 0)
        config.threads = args.threads;
    if (config.threads <= 0) {
        config.threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
    }
    // Several polling threads defeat the purpose: the one that sleeps takes the reactor into
    // epoll_wait, and the others poll a queue that socket events no longer reach.
    if (config.busy_poll.count() > 0 && config.threads != 1) {
        std::fprintf(
            stderr,
            "civicflow serve: busy_poll needs one I/O thread (threads: 1 or --threads 1); "
            "%d are configured\n",
            config.threads
        );
        return 2;
    }
    Logger::set_level(parse_level(config.log_level));

    // Flows: any error refuses to start, with every diagnostic printed.
    auto files = engine::read_flow_dir(config.flows_dir);
    if (!files) {
        std::fprintf(stderr, "civicflow serve: %s\n", files.error().message.c_str());
        return 2;
    }
    engine::LoadResult loaded = engine::load_flows(*files, config.flows_dir);
    if (!loaded.diagnostics.empty()) {
        std::fputs(engine::format_text(loaded.diagnostics, loaded.sources).c_str(), stderr);
    }
    if (!loaded.flows)
        return 2;

    // Declared first, destroyed last: every socket, timer and pending handler below belongs to
    // this io_context and must go before it.
    asio::io_context ioc(config.threads);
    std::unique_ptr<server::Store> store_holder;
    switch (store_spec->kind) {
        case server::StoreSpec::Kind::kMemory:
            store_holder = std::make_unique<server::MemoryStore>(config.store.message_ttl);
            break;
        case server::StoreSpec::Kind::kSqlite: {
            server::SqliteStore::Options options;
            options.path = store_spec->path;
            options.message_ttl = config.store.message_ttl;
            options.sweep_interval = config.store.sweep_interval;
            options.durable = config.store.durable;
            options.cache_entries = config.store.cache_sessions;
            auto opened = server::SqliteStore::open(std::move(options));
            if (!opened) {
                std::fprintf(stderr, "civicflow serve: %s\n", opened.error().message.c_str());
                return 2;
            }
            store_holder = std::move(*opened);
            break;
        }
        case server::StoreSpec::Kind::kRedis: {
            server::RedisStore::Options options;
            options.host = store_spec->host;
            options.port = store_spec->port;
            options.message_ttl = config.store.message_ttl;
            options.lease_ttl = config.store.lease_ttl;
            options.command_timeout = config.store.command_timeout;
            options.erasure_rewrite = config.store.erasure_rewrite;
            auto redis = server::RedisStore::create(ioc.get_executor(), std::move(options));
            // Give the first connection a few seconds before listening, so a healthy start
            // does not answer its first requests with 503. Past that, serve anyway: requests
            // get 503 and /readyz says not ready until Redis answers.
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
            while (!redis->connected() && std::chrono::steady_clock::now() < deadline) {
                ioc.run_one_for(std::chrono::milliseconds(20));
                if (ioc.stopped())
                    ioc.restart();
            }
            if (!redis->connected()) {
                Logger::log(LogLevel::kWarn, {}, "store_unreachable", "store=redis");
            }
            store_holder = std::move(redis);
            break;
        }
    }
    server::Store& store = *store_holder;
    auto client = server::BackendClient::create(
        ioc.get_executor(), config.backends, [](const char* name) { return std::getenv(name); }
    );
    if (!client) {
        std::fprintf(stderr, "civicflow serve: %s\n", client.error().message.c_str());
        return 2;
    }
    server::BackendClient& backends = **client;
    check_backends(*loaded.flows, backends);
    server::MessageService service(
        loaded.flows,
        store,
        [&backends](engine::BackendCall call, std::string rid) {
            return backends.call(std::move(call), std::move(rid));
        },
        {},
        server::SessionRetention{
            config.store.session_ttl.count(), config.store.ended_session_ttl.count()}
    );
    // The WhatsApp channel: on when its app secret is in the environment.
    std::unique_ptr<server::ChannelStore> channel_store;
    std::unique_ptr<server::BackendClient> graph_client;
    std::unique_ptr<server::WhatsAppChannel> whatsapp;
    if (const char* secret = std::getenv(config.whatsapp.app_secret_env.c_str());
        secret != nullptr && *secret != '\0') {
        auto channel = start_whatsapp(ioc, config, *store_spec, *loaded.flows, service, store);
        if (!channel) {
            std::fprintf(stderr, "civicflow serve: %s\n", channel.error().message.c_str());
            return 2;
        }
        channel_store = std::move(channel->store);
        graph_client = std::move(channel->graph);
        whatsapp = std::move(channel->channel);
    } else if (config.whatsapp.in_file) {
        // Configured but without its secret (a deployment that lost its environment): say so,
        // or the webhooks would get 404 with nothing in the log.
        Logger::log(
            LogLevel::kWarn,
            {},
            "whatsapp_off",
            "reason=unset_env env=" + config.whatsapp.app_secret_env
        );
    }
    const std::string api_token = token_from_env("CIVICFLOW_API_TOKEN");
    server::HttpServer http(
        ioc.get_executor(),
        server::HttpServer::Options{
            config.limits,
            config.access_log,
            admin_token(),
            api_token,
            config.threads,
            whatsapp.get(),
            &backends},
        service,
        store
    );
    auto port = http.listen(config.listen_host, config.listen_port);
    if (!port) {
        std::fprintf(stderr, "civicflow serve: %s\n", port.error().message.c_str());
        return 2;
    }

    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    bool drained = true;
    signals.async_wait([&](const boost::system::error_code& ec, int signo) {
        if (ec)
            return;
        Logger::log(
            LogLevel::kInfo,
            {},
            "shutdown",
            std::string("signal=") + (signo == SIGINT ? "SIGINT" : "SIGTERM") +
                " timeout_ms=" + std::to_string(config.shutdown_timeout.count())
        );
        if (whatsapp)
            whatsapp->stop();
        http.drain(config.shutdown_timeout, [&](bool clean) {
            Logger::log(LogLevel::kInfo, {}, "stopped", clean ? "drained=true" : "drained=false");
            drained = clean;
            backends.close_idle();
            if (graph_client)
                graph_client->close_idle();
            ioc.stop();
        });
    });
    // From here on log lines go through a writer thread: an I/O thread never waits on stderr.
    std::optional<Logger::Async> async_log;
    async_log.emplace();
    http.start();
    if (whatsapp)
        whatsapp->start();

    // The one line tests and scripts wait for: the bound address (port 0 resolved).
    const bool ipv6 = config.listen_host.find(':') != std::string::npos;
    std::printf(
        "listening on %s%s%s:%u\n",
        ipv6 ? "[" : "",
        config.listen_host.c_str(),
        ipv6 ? "]" : "",
        static_cast<unsigned>(*port)
    );
    std::fflush(stdout);
    Logger::log(
        LogLevel::kInfo,
        {},
        "started",
        "port=" + std::to_string(*port) + " threads=" + std::to_string(config.threads) +
            " store=" + std::string(store_kind(*store_spec)) +
            " flows=" + std::to_string(loaded.flows->flows.size()) +
            " api_token=" + (api_token.empty() ? "off" : "on")
    );

    std::vector<std::thread> threads;
    const auto spin = std::chrono::duration_cast<std::chrono::nanoseconds>(config.busy_poll);
    for (int i = 1; i < config.threads; ++i)
        threads.emplace_back([&ioc, spin] { run_io(ioc, spin); });
    run_io(ioc, spin);
    for (auto& t : threads)
        t.join();
    if (!drained) {
        // Past the drain deadline some coroutines are still suspended (a backend call that
        // outlived its own timeout would be a bug, but a stuck store is possible); destroying
        // them after the objects they reference is unsafe, so leave without destructors.
        std::fflush(stdout);
        async_log.reset();  // what is queued is written first
        std::_Exit(0);
    }
    return 0;
}

}  // namespace civicflow::cli
