#include <algorithm>
#include <charconv>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <civicflow/engine/yaml_document.hpp>
#include <civicflow/server/config.hpp>
#include <civicflow/server/store.hpp>

namespace civicflow::server {
namespace {

using engine::Diagnostics;
using engine::SourceLocation;
using engine::yaml::Node;

constexpr std::int64_t kMaxDurationMs = 365LL * 24 * 3600 * 1000;

std::optional<std::int64_t> parse_int(std::string_view text) {
    std::int64_t value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc{} || ptr != end || text.empty())
        return std::nullopt;
    return value;
}

// Reads config nodes into typed values, reporting every problem at the node's location.
class Reader {
public:
    Reader(const std::string& file, Diagnostics& diags)
        : file_(file)
        , diags_(diags) {}

    SourceLocation loc(const Node& node) const { return {file_, node.line, node.column}; }

    // Reports keys of `map` that are not in `allowed` (E102 with a suggestion) and duplicates
    // (E104); `where` names the object for the message ("in 'limits'").
    void check_keys(
        const Node& map, const std::vector<std::string>& allowed, const std::string& where
    ) {
        std::vector<std::string> seen;
        for (const auto& [key, value] : map.entries) {
            if (std::find(allowed.begin(), allowed.end(), key.scalar) == allowed.end()) {
                const std::string near = engine::did_you_mean(key.scalar, allowed);
                diags_.error(
                    "E102",
                    loc(key),
                    "unknown key '" + key.scalar + "' " + where,
                    near.empty() ? "allowed keys: " + join(allowed)
                                 : "did you mean '" + near + "'?",
                    static_cast<int>(std::max<std::size_t>(1, key.scalar.size()))
                );
            } else if (std::find(seen.begin(), seen.end(), key.scalar) != seen.end()) {
                diags_.error(
                    "E104",
                    loc(key),
                    "duplicate key '" + key.scalar + "' " + where,
                    {},
                    static_cast<int>(key.scalar.size())
                );
            }
            seen.push_back(key.scalar);
        }
    }

    bool expect_map(const Node& node, const std::string& what) {
        if (node.is_map())
            return true;
        diags_.error(
            "E101", loc(node), "'" + what + "' must be a mapping, found " + node.kind_name()
        );
        return false;
    }

    bool expect_scalar(const Node& node, const std::string& what) {
        if (node.is_scalar())
            return true;
        diags_.error(
            "E101", loc(node), "'" + what + "' must be a text value, found " + node.kind_name()
        );
        return false;
    }

    void invalid(const Node& node, const std::string& message, const std::string& hint = {}) {
        diags_.error(
            "E109",
            loc(node),
            message,
            hint,
            static_cast<int>(std::max<std::size_t>(1, node.scalar.size()))
        );
    }

    void read_string(const Node& node, const std::string& what, std::string& out) {
        if (expect_scalar(node, what))
            out = node.scalar;
    }

    // `positive`: 0 is refused too (a zero timeout or time to live would fail or expire
    // everything at once).
    void read_duration(
        const Node& node, const std::string& what, Millis& out, bool positive = false
    ) {
        if (!expect_scalar(node, what))
            return;
        auto parsed = parse_duration(node.scalar);
        if (!parsed) {
            invalid(
                node,
                "invalid duration '" + node.scalar + "' for '" + what + "'",
                "write an integer and a unit: 250ms, 10s, 30m, 2h, 1d"
            );
            return;
        }
        if (positive && parsed->count() <= 0) {
            invalid(node, "'" + what + "' must be above 0");
            return;
        }
        out = *parsed;
    }

    template <typename T>
    void read_number(
        const Node& node, const std::string& what, std::int64_t min, std::int64_t max, T& out
    ) {
        if (!expect_scalar(node, what))
            return;
        const auto value = parse_int(node.scalar);
        if (!value || *value < min || *value > max) {
            invalid(
                node,
                "invalid value '" + node.scalar + "' for '" + what + "'",
                "expected an integer from " + std::to_string(min) + " to " + std::to_string(max)
            );
            return;
        }
        out = static_cast<T>(*value);
    }

    void read_bool(const Node& node, const std::string& what, bool& out) {
        if (!expect_scalar(node, what))
            return;
        if (node.scalar == "true") {
            out = true;
        } else if (node.scalar == "false") {
            out = false;
        } else {
            invalid(
                node,
                "invalid value '" + node.scalar + "' for '" + what + "'",
                "expected true or false"
            );
        }
    }

    static std::string join(const std::vector<std::string>& words) {
        std::string out;
        for (const auto& w : words) {
            if (!out.empty())
                out += ", ";
            out += w;
        }
        return out;
    }

    Diagnostics& diags() { return diags_; }

private:
    const std::string& file_;
    Diagnostics& diags_;
};

void read_limits(Reader& r, const Node& node, Limits& limits) {
    if (!r.expect_map(node, "limits"))
        return;
    r.check_keys(
        node,
        {"body_bytes", "header_bytes", "read_timeout", "idle_timeout", "max_connections"},
        "in 'limits'"
    );
    constexpr std::int64_t kMaxBytes = 64LL * 1024 * 1024;
    if (const Node* n = node.find("body_bytes")) {
        r.read_number(*n, "body_bytes", 1024, kMaxBytes, limits.body_bytes);
    }
    if (const Node* n = node.find("header_bytes")) {
        r.read_number(*n, "header_bytes", 1024, 1024 * 1024, limits.header_bytes);
    }
    if (const Node* n = node.find("read_timeout")) {
        r.read_duration(*n, "read_timeout", limits.read_timeout, true);
    }
    if (const Node* n = node.find("idle_timeout")) {
        r.read_duration(*n, "idle_timeout", limits.idle_timeout, true);
    }
    if (const Node* n = node.find("max_connections")) {
        r.read_number(*n, "max_connections", 1, 1'000'000, limits.max_connections);
    }
}

void read_store(Reader& r, const Node& node, StoreConfig& store) {
    if (!r.expect_map(node, "store"))
        return;
    r.check_keys(
        node,
        {"type",
         "session_ttl",
         "ended_session_ttl",
         "message_ttl",
         "sweep_interval",
         "durable",
         "cache_sessions",
         "lease_ttl",
         "command_timeout",
         "erasure_rewrite"},
        "in 'store'"
    );
    if (const Node* n = node.find("type")) {
        r.read_string(*n, "type", store.type);
        if (n->is_scalar() && !parse_store_spec(n->scalar)) {
            r.invalid(
                *n,
                "unknown store '" + n->scalar + "'",
                "expected memory, sqlite:PATH or redis://HOST[:PORT]"
            );
        }
    }
    if (const Node* n = node.find("session_ttl")) {
        r.read_duration(*n, "session_ttl", store.session_ttl, true);
    }
    if (const Node* n = node.find("ended_session_ttl")) {
        r.read_duration(*n, "ended_session_ttl", store.ended_session_ttl, true);
    }
    if (const Node* n = node.find("message_ttl")) {
        r.read_duration(*n, "message_ttl", store.message_ttl, true);
    }
    if (const Node* n = node.find("sweep_interval")) {
        r.read_duration(*n, "sweep_interval", store.sweep_interval);
        if (n->is_scalar() && store.sweep_interval.count() < 1000)
            r.invalid(*n, "'sweep_interval' must be at least 1s");
    }
    if (const Node* n = node.find("durable"))
        r.read_bool(*n, "durable", store.durable);
    if (const Node* n = node.find("cache_sessions"))
        r.read_number(*n, "cache_sessions", 0, 100'000'000, store.cache_sessions);
    if (const Node* n = node.find("lease_ttl")) {
        r.read_duration(*n, "lease_ttl", store.lease_ttl);
        if (n->is_scalar() && store.lease_ttl.count() < 1000)
            r.invalid(*n, "'lease_ttl' must be at least 1s");
    }
    if (const Node* n = node.find("command_timeout"))
        r.read_duration(*n, "command_timeout", store.command_timeout, true);
    if (const Node* n = node.find("erasure_rewrite"))
        r.read_duration(*n, "erasure_rewrite", store.erasure_rewrite);  // 0: never
    // A command answered after the lease passed on could overwrite the next holder's turn.
    // Checked whichever of the two the file sets (the other keeps its default).
    const Node* timeout_node = node.find("command_timeout");
    const Node* at = timeout_node != nullptr ? timeout_node : node.find("lease_ttl");
    if (at != nullptr && at->is_scalar() && store.command_timeout * 2 > store.lease_ttl)
        r.invalid(*at, "'command_timeout' must be at most half of 'lease_ttl'");
}

// Characters of UTF-8 text (bytes that do not continue a sequence).
std::size_t code_points(std::string_view text) {
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    }));
}

void read_whatsapp(Reader& r, const Node& node, WhatsAppConfig& wa) {
    if (!r.expect_map(node, "whatsapp"))
        return;
    r.check_keys(
        node,
        {"numbers",
         "app_secret_env",
         "verify_token_env",
         "access_token_env",
         "api_base_env",
         "notify_token_env",
         "send_rate",
         "recipient_interval",
         "retry_backoff",
         "max_retry_backoff",
         "max_attempts",
         "send_timeout",
         "list_button",
         "mark_read"},
        "in 'whatsapp'"
    );
    if (const Node* n = node.find("numbers")) {
        if (r.expect_map(*n, "numbers")) {
            for (const auto& [key, value] : n->entries) {
                const bool digits = !key.scalar.empty() &&
                                    std::all_of(key.scalar.begin(), key.scalar.end(), [](char c) {
                                        return c >= '0' && c <= '9';
                                    });
                if (!digits) {
                    r.invalid(
                        key,
                        "invalid phone number id '" + key.scalar + "'",
                        "use the numeric id Meta shows for the number, in quotes"
                    );
                    continue;
                }
                if (!r.expect_map(value, "number '" + key.scalar + "'"))
                    continue;
                r.check_keys(value, {"flow"}, "in number '" + key.scalar + "'");
                std::string flow;
                if (const Node* f = value.find("flow")) {
                    r.read_string(*f, "flow", flow);
                } else {
                    r.diags().error(
                        "E103", r.loc(value), "missing key 'flow' in number '" + key.scalar + "'"
                    );
                }
                wa.numbers.emplace_back(key.scalar, std::move(flow));
            }
        }
    }
    const std::pair<const char*, std::string*> envs[] = {
        {"app_secret_env", &wa.app_secret_env},
        {"verify_token_env", &wa.verify_token_env},
        {"access_token_env", &wa.access_token_env},
        {"api_base_env", &wa.api_base_env},
        {"notify_token_env", &wa.notify_token_env},
    };
    for (const auto& [key, out] : envs) {
        if (const Node* n = node.find(key))
            r.read_string(*n, key, *out);
    }
    if (const Node* n = node.find("send_rate")) {
        int rate = 0;
        r.read_number(*n, "send_rate", 1, 1'000'000, rate);
        if (rate > 0)
            wa.send_rate = rate;
    }
    if (const Node* n = node.find("recipient_interval"))
        r.read_duration(*n, "recipient_interval", wa.recipient_interval);
    if (const Node* n = node.find("retry_backoff"))
        r.read_duration(*n, "retry_backoff", wa.retry_backoff);
    if (const Node* n = node.find("max_retry_backoff"))
        r.read_duration(*n, "max_retry_backoff", wa.max_retry_backoff);
    if (const Node* n = node.find("max_attempts"))
        r.read_number(*n, "max_attempts", 1, 100, wa.max_attempts);
    if (const Node* n = node.find("send_timeout"))
        r.read_duration(*n, "send_timeout", wa.send_timeout, true);
    if (const Node* n = node.find("list_button")) {
        r.read_string(*n, "list_button", wa.list_button);
        if (n->is_scalar() && (n->scalar.empty() || code_points(n->scalar) > 20))
            r.invalid(*n, "'list_button' must be 1 to 20 characters (a WhatsApp limit)");
    }
    if (const Node* n = node.find("mark_read"))
        r.read_bool(*n, "mark_read", wa.mark_read);
}

bool valid_header_name(std::string_view name) {
    if (name.empty())
        return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_';
    });
}

void read_backend(Reader& r, const Node& key, const Node& node, BackendConfig& b) {
    b.name = key.scalar;
    const std::string where = "in backend '" + b.name + "'";
    if (!r.expect_map(node, "backends." + b.name))
        return;
    r.check_keys(
        node,
        {"base_url",
         "auth",
         "connect_timeout",
         "timeout",
         "retries",
         "backoff",
         "circuit_breaker",
         "max_response_bytes",
         "cache_ttl",
         "max_idle_connections"},
        where
    );
    if (const Node* n = node.find("base_url")) {
        if (r.expect_scalar(*n, "base_url") && !split_base_url(n->scalar, b)) {
            r.invalid(
                *n,
                "invalid base_url '" + n->scalar + "' " + where,
                "expected http://host[:port][/path] or https://..."
            );
        }
    } else {
        r.diags().error("E103", r.loc(node), "missing key 'base_url' " + where);
    }
    if (const Node* n = node.find("auth")) {
        if (r.expect_map(*n, "auth")) {
            r.check_keys(*n, {"header", "prefix", "env"}, "in 'auth' of backend '" + b.name + "'");
            AuthConfig auth;
            if (const Node* h = n->find("header")) {
                r.read_string(*h, "header", auth.header);
                if (h->is_scalar() && !valid_header_name(auth.header)) {
                    r.invalid(*h, "invalid header name '" + h->scalar + "' " + where);
                }
            }
            if (const Node* p = n->find("prefix"))
                r.read_string(*p, "prefix", auth.prefix);
            if (const Node* e = n->find("env")) {
                r.read_string(*e, "env", auth.env);
            } else {
                // The secret must come from the environment: a literal value in the file is
                // exactly what this design forbids, so there is no key for one.
                r.diags().error(
                    "E103",
                    r.loc(*n),
                    "missing key 'env' in 'auth' of backend '" + b.name + "'",
                    "name the environment variable that holds the secret"
                );
            }
            b.auth = auth;
        }
    }
    if (const Node* n = node.find("connect_timeout")) {
        r.read_duration(*n, "connect_timeout", b.connect_timeout, true);
    }
    if (const Node* n = node.find("timeout"))
        r.read_duration(*n, "timeout", b.timeout);
    if (const Node* n = node.find("retries"))
        r.read_number(*n, "retries", 0, 10, b.retries);
    if (const Node* n = node.find("backoff"))
        r.read_duration(*n, "backoff", b.backoff);
    if (const Node* n = node.find("circuit_breaker")) {
        if (r.expect_map(*n, "circuit_breaker")) {
            r.check_keys(
                *n, {"failures", "pause"}, "in 'circuit_breaker' of backend '" + b.name + "'"
            );
            if (const Node* f = n->find("failures")) {
                r.read_number(*f, "failures", 1, 1000, b.breaker_failures);
            }
            if (const Node* p = n->find("pause"))
                r.read_duration(*p, "pause", b.breaker_pause);
        }
    }
    if (const Node* n = node.find("max_response_bytes")) {
        r.read_number(*n, "max_response_bytes", 256, 64LL * 1024 * 1024, b.max_response_bytes);
    }
    if (const Node* n = node.find("cache_ttl"))
        r.read_duration(*n, "cache_ttl", b.cache_ttl);
    if (const Node* n = node.find("max_idle_connections")) {
        r.read_number(*n, "max_idle_connections", 0, 1024, b.max_idle_connections);
    }
    if (b.timeout.count() == 0) {
        if (const Node* n = node.find("timeout"))
            r.invalid(*n, "'timeout' must be above 0 " + where);
    }
}

}  // namespace

// Splits "http(s)://host[:port][/base]" into the backend's fields.
bool split_base_url(std::string_view url, BackendConfig& b) {
    std::string_view rest;
    if (url.substr(0, 7) == "http://") {
        b.tls = false;
        rest = url.substr(7);
    } else if (url.substr(0, 8) == "https://") {
        b.tls = true;
        rest = url.substr(8);
    } else {
        return false;
    }
    const auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    std::string_view path =
        slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
    while (!path.empty() && path.back() == '/')
        path.remove_suffix(1);
    if (authority.empty() || authority.find('@') != std::string_view::npos)
        return false;
    std::string_view host = authority;
    std::string_view port;
    if (authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos)
            return false;
        host = authority.substr(1, close - 1);
        const auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                return false;
            port = after.substr(1);
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty())
        return false;
    if (!port.empty()) {
        const auto p = parse_int(port);
        if (!p || *p < 1 || *p > 65535)
            return false;
    }
    b.host = std::string(host);
    b.port = port.empty() ? (b.tls ? "443" : "80") : std::string(port);
    b.base_path = std::string(path);
    b.base_url = std::string(url);
    return true;
}

engine::Result<ListenAddress> parse_listen_address(std::string_view text) {
    const engine::Error bad{
        "listen",
        "invalid listen address (expected HOST:PORT, e.g. "
        "127.0.0.1:8080)"};
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return bad;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos)
            return bad;
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    const auto p = parse_int(port);
    if (host.empty() || !p || *p < 0 || *p > 65535)
        return bad;
    return ListenAddress{std::string(host), static_cast<std::uint16_t>(*p)};
}

engine::Result<Millis> parse_duration(std::string_view text) {
    const engine::Error bad{"duration", "invalid duration (expected e.g. 250ms, 10s, 30m)"};
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
        ++digits;
    if (digits == 0 || digits > 12)
        return bad;
    const auto value = parse_int(text.substr(0, digits));
    const std::string_view unit = text.substr(digits);
    std::int64_t scale = 0;
    if (unit == "ms") {
        scale = 1;
    } else if (unit == "s") {
        scale = 1000;
    } else if (unit == "m") {
        scale = 60'000;
    } else if (unit == "h") {
        scale = 3'600'000;
    } else if (unit == "d") {
        scale = 86'400'000;
    } else {
        return bad;
    }
    if (!value || *value > kMaxDurationMs / scale)
        return bad;
    return Millis{*value * scale};
}

std::optional<ServerConfig> parse_config(
    const std::string& file, std::string_view text, engine::Diagnostics& diags
) {
    const int errors_before = diags.error_count();
    engine::yaml::Document doc = engine::yaml::parse(file, text, diags);
    if (!doc.root)
        return std::nullopt;
    Reader r(file, diags);
    ServerConfig config;
    const Node& root = *doc.root;
    if (!root.is_map()) {
        diags.error(
            "E101", r.loc(root), "the config file must be a mapping, found " + root.kind_name()
        );
        return std::nullopt;
    }
    r.check_keys(
        root,
        {"version",
         "flows",
         "listen",
         "threads",
         "busy_poll",
         "shutdown_timeout",
         "log",
         "limits",
         "store",
         "backends",
         "whatsapp"},
        "in the config file"
    );
    if (const Node* n = root.find("version")) {
        if (r.expect_scalar(*n, "version") && n->scalar != "1") {
            diags.error(
                "E105",
                r.loc(*n),
                "unsupported config version '" + n->scalar + "'",
                "the supported version is 1"
            );
        }
    } else {
        diags.error(
            "E103",
            {file, root.line, root.column},
            "missing key 'version' in the config file",
            "add 'version: 1'"
        );
    }
    if (const Node* n = root.find("flows"))
        r.read_string(*n, "flows", config.flows_dir);
    if (const Node* n = root.find("listen")) {
        if (r.expect_scalar(*n, "listen")) {
            auto addr = parse_listen_address(n->scalar);
            if (addr) {
                config.listen_host = addr->host;
                config.listen_port = addr->port;
            } else {
                r.invalid(
                    *n,
                    "invalid listen address '" + n->scalar + "'",
                    "expected HOST:PORT, e.g. 127.0.0.1:8080"
                );
            }
        }
    }
    if (const Node* n = root.find("threads"))
        r.read_number(*n, "threads", 0, 256, config.threads);
    if (const Node* n = root.find("busy_poll")) {
        r.read_duration(*n, "busy_poll", config.busy_poll);
        if (config.busy_poll > Millis{1000}) {
            r.invalid(*n, "'busy_poll' must be at most 1s", "2ms covers 1,000 requests/s");
            config.busy_poll = Millis{0};
        }
    }
    if (const Node* n = root.find("shutdown_timeout")) {
        r.read_duration(*n, "shutdown_timeout", config.shutdown_timeout);
    }
    if (const Node* n = root.find("log")) {
        if (r.expect_map(*n, "log")) {
            r.check_keys(*n, {"level", "access"}, "in 'log'");
            if (const Node* l = n->find("level")) {
                r.read_string(*l, "level", config.log_level);
                const std::vector<std::string> levels{"debug", "info", "warn", "error"};
                if (l->is_scalar() &&
                    std::find(levels.begin(), levels.end(), l->scalar) == levels.end()) {
                    r.invalid(
                        *l,
                        "unknown log level '" + l->scalar + "'",
                        "allowed values: debug, info, warn, error"
                    );
                }
            }
            if (const Node* a = n->find("access"))
                r.read_bool(*a, "access", config.access_log);
        }
    }
    if (const Node* n = root.find("limits"))
        read_limits(r, *n, config.limits);
    if (const Node* n = root.find("store"))
        read_store(r, *n, config.store);
    if (const Node* n = root.find("whatsapp")) {
        config.whatsapp.in_file = true;
        read_whatsapp(r, *n, config.whatsapp);
    }
    if (const Node* n = root.find("backends")) {
        if (n->is_map()) {
            for (const auto& [key, value] : n->entries) {
                if (std::any_of(
                        config.backends.begin(),
                        config.backends.end(),
                        [&](const BackendConfig& b) { return b.name == key.scalar; }
                    )) {
                    diags.error(
                        "E104",
                        r.loc(key),
                        "duplicate backend '" + key.scalar + "'",
                        {},
                        static_cast<int>(key.scalar.size())
                    );
                    continue;
                }
                BackendConfig backend;
                read_backend(r, key, value, backend);
                config.backends.push_back(std::move(backend));
            }
        } else if (!n->is_null()) {
            r.expect_map(*n, "backends");
        }
    }
    if (diags.error_count() > errors_before)
        return std::nullopt;
    return config;
}

}  // namespace civicflow::server
