// civicflow_status_backend: a small stand-in for a department's systems, for the demo and the
// integration tests. It answers application status lookups, accepts birth certificate
// applications and grievances (returning references), knows a few sample references, and can be
// told to be slow, fail with 500 or return garbage, globally or per request.
//
//   GET  /applications/{ref}   -> 200 {"reference","type","stage","updated_at"} | 404
//   GET  /certificates/{ref}   -> the same, for birth certificate references only
//   POST /certificates/birth   -> 201 {"reference": "BC-2026-000500", ...}   (JSON object body)
//   POST /grievances           -> 201 {"ticket": "GRV-2026-000001", ...}     (JSON object body)
//   GET  /healthz              -> 200 {"status":"ok"}
//   POST /admin/mode?mode=normal|slow|fail|garbage[&delay_ms=N]   global mode
//   GET  /admin/stats          -> {"requests","in_flight","mode","delay_ms"}
//   POST /admin/reset          -> mode normal, counters 0, submitted references forgotten
// Per request: header "X-Mode: slow|fail|garbage" or query "?mode=..." overrides the global mode.
// Auth: with --token T (or STATUS_BACKEND_TOKEN), every non-admin request needs
// "Authorization: Bearer T" (401 otherwise).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

struct Application {
    std::string type;
    std::string stage;
    std::string updated_at;
};

// Everything runs on one thread (one io_context, one run()), so no locks.
struct State {
    std::string token;
    std::string mode = "normal";
    long delay_ms = 5000;
    long requests = 0;
    long in_flight = 0;
    long next_certificate = 500;
    long next_ticket = 1;
    std::map<std::string, Application, std::less<>> applications;

    void reset() {
        mode = "normal";
        requests = 0;
        next_certificate = 500;
        next_ticket = 1;
        applications = {
            {"DL1234567890123", {"passport", "Police verification in progress", "2026-01-12"}},
            {"MH0987654321098", {"passport", "Dispatched", "2026-01-10"}},
            {"KA5555555555555", {"passport", "Passport printed", "2026-01-08"}},
            {"BC-2026-000123",
             {"birth_certificate", "Certificate issued", "2026-01-14T16:20:00+05:30"}},
            {"BC-2026-000124",
             {"birth_certificate", "Under verification by the registrar", "2026-01-15"}},
        };
    }
};

std::string json_escape(std::string_view s) {
    std::string out;
    for (const char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    return out;
}

std::string query_param(std::string_view target, std::string_view name) {
    const auto q = target.find('?');
    if (q == std::string_view::npos)
        return {};
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == name && eq != std::string_view::npos) {
            return std::string(pair.substr(eq + 1));
        }
        if (amp == std::string_view::npos)
            break;
        rest = rest.substr(amp + 1);
    }
    return {};
}

std::string url_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            out +=
                static_cast<char>(std::strtol(std::string(s.substr(i + 1, 2)).c_str(), nullptr, 16)
                );
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

// A JSON object body, checked just enough: it must start with '{' and end with '}'.
// (The server under test renders bodies with a JSON writer; the backend only needs to tell an
// object from nothing.)
bool looks_like_object(std::string_view body) {
    while (!body.empty() && (body.front() == ' ' || body.front() == '\n'))
        body.remove_prefix(1);
    while (!body.empty() && (body.back() == ' ' || body.back() == '\n'))
        body.remove_suffix(1);
    return body.size() >= 2 && body.front() == '{' && body.back() == '}';
}

struct Answer {
    unsigned status = 200;
    std::string body;
};

Answer lookup(State& st, std::string_view ref, bool certificates_only) {
    auto it = st.applications.find(ref);
    if (it == st.applications.end() ||
        (certificates_only && it->second.type != "birth_certificate")) {
        return {404, R"({"error":"not_found"})"};
    }
    return {
        200,
        "{\"reference\":\"" + json_escape(it->first) + "\",\"type\":\"" + it->second.type +
            "\",\"stage\":\"" + json_escape(it->second.stage) + "\",\"updated_at\":\"" +
            it->second.updated_at + "\"}"};
}

Answer answer(State& st, const http::request<http::string_body>& req) {
    const std::string_view target = req.target();
    const std::string_view path = target.substr(0, target.find('?'));
    if (req.method() == http::verb::get && path.substr(0, 14) == "/applications/") {
        return lookup(st, url_decode(path.substr(14)), false);
    }
    if (req.method() == http::verb::get && path.substr(0, 14) == "/certificates/") {
        return lookup(st, url_decode(path.substr(14)), true);
    }
    if (path == "/certificates/birth" || path == "/grievances") {
        if (req.method() != http::verb::post)
            return {405, R"({"error":"method_not_allowed"})"};
        if (!looks_like_object(req.body()))
            return {400, R"({"error":"expected a JSON object"})"};
        char ref[32];
        if (path == "/grievances") {
            std::snprintf(ref, sizeof ref, "GRV-2026-%06ld", st.next_ticket++);
            return {201, std::string("{\"ticket\":\"") + ref + "\",\"status\":\"registered\"}"};
        }
        std::snprintf(ref, sizeof ref, "BC-2026-%06ld", st.next_certificate++);
        st.applications[ref] = {"birth_certificate", "Application received", "2026-01-20"};
        return {201, std::string("{\"reference\":\"") + ref + "\",\"status\":\"received\"}"};
    }
    return {404, R"({"error":"not_found"})"};
}

Answer admin(State& st, const http::request<http::string_body>& req) {
    const std::string_view target = req.target();
    const std::string_view path = target.substr(0, target.find('?'));
    if (path == "/admin/mode" && req.method() == http::verb::post) {
        const std::string mode = query_param(target, "mode");
        if (mode != "normal" && mode != "slow" && mode != "fail" && mode != "garbage") {
            return {400, R"({"error":"mode must be normal, slow, fail or garbage"})"};
        }
        st.mode = mode;
        if (const std::string d = query_param(target, "delay_ms"); !d.empty()) {
            st.delay_ms = std::strtol(d.c_str(), nullptr, 10);
        }
        return {
            200, "{\"mode\":\"" + st.mode + "\",\"delay_ms\":" + std::to_string(st.delay_ms) + "}"};
    }
    if (path == "/admin/stats" && req.method() == http::verb::get) {
        return {
            200,
            "{\"requests\":" + std::to_string(st.requests) +
                ",\"in_flight\":" + std::to_string(st.in_flight) + ",\"mode\":\"" + st.mode +
                "\",\"delay_ms\":" + std::to_string(st.delay_ms) + "}"};
    }
    if (path == "/admin/reset" && req.method() == http::verb::post) {
        const long delay = st.delay_ms;
        st.reset();
        st.delay_ms = delay;
        return {200, R"({"reset":true})"};
    }
    return {404, R"({"error":"not_found"})"};
}

asio::awaitable<void> serve(tcp::socket socket, State& st) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(1024 * 1024);
        stream.expires_after(std::chrono::seconds(60));
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
        if (ec)
            break;  // end of stream, timeout or garbage: just close
        auto req = parser.release();
        const std::string_view target = req.target();
        Answer a;
        bool garbage = false;
        if (target.substr(0, 7) == "/admin/") {
            a = admin(st, req);
        } else if (target == "/healthz") {
            a = {200, R"({"status":"ok"})"};
        } else {
            ++st.requests;
            std::string mode = st.mode;
            if (auto h = req.find("X-Mode"); h != req.end())
                mode = std::string(h->value());
            if (const std::string q = query_param(target, "mode"); !q.empty())
                mode = q;
            if (!st.token.empty() && req[http::field::authorization] != "Bearer " + st.token) {
                a = {401, R"({"error":"unauthorized"})"};
            } else if (mode == "fail") {
                a = {500, R"({"error":"internal"})"};
            } else {
                if (mode == "slow") {
                    ++st.in_flight;
                    asio::steady_timer timer(stream.get_executor());
                    timer.expires_after(std::chrono::milliseconds(st.delay_ms));
                    co_await timer.async_wait(kTuple);
                    --st.in_flight;
                }
                a = answer(st, req);
                garbage = mode == "garbage";
            }
        }
        http::response<http::string_body> res{static_cast<http::status>(a.status), req.version()};
        res.set(http::field::content_type, "application/json");
        res.keep_alive(req.keep_alive());
        res.body() = garbage ? "<html>this is not {json" : std::move(a.body);
        res.prepare_payload();
        stream.expires_after(std::chrono::seconds(10));
        auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
        if (wec || !res.keep_alive())
            break;
    }
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, State& st) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(kTuple);
        if (ec) {
            if (!acceptor.is_open())
                co_return;
            continue;
        }
        asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), st), asio::detached);
    }
}

int usage() {
    std::fputs(
        "usage: civicflow_status_backend [--host ADDR] [--port N] [--token T] [--delay-ms N]\n"
        "  --port 0 picks a free port; the bound address is printed as 'listening on "
        "ADDR:PORT'\n",
        stderr
    );
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    unsigned long port = 9090;
    State st;
    st.reset();
    if (const char* t = std::getenv("STATUS_BACKEND_TOKEN"))
        st.token = t;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (i + 1 >= argc)
            return usage();
        if (arg == "--host") {
            host = argv[++i];
        } else if (arg == "--port") {
            port = std::strtoul(argv[++i], nullptr, 10);
        } else if (arg == "--token") {
            st.token = argv[++i];
        } else if (arg == "--delay-ms") {
            st.delay_ms = std::strtol(argv[++i], nullptr, 10);
        } else {
            return usage();
        }
    }
    if (port > 65535)
        return usage();
    asio::io_context ioc(1);
    beast::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec)
        return usage();
    tcp::acceptor acceptor(ioc);
    const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
    acceptor.open(endpoint.protocol(), ec);
    if (!ec)
        acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec)
        acceptor.bind(endpoint, ec);
    if (!ec)
        acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        std::fprintf(
            stderr,
            "civicflow_status_backend: cannot listen on %s:%lu: %s\n",
            host.c_str(),
            port,
            ec.message().c_str()
        );
        return 1;
    }
    std::printf(
        "listening on %s:%u\n",
        host.c_str(),
        static_cast<unsigned>(acceptor.local_endpoint().port())
    );
    std::fflush(stdout);
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const beast::error_code&, int) { ioc.stop(); });
    asio::co_spawn(ioc, accept_loop(acceptor, st), asio::detached);
    ioc.run();
    return 0;
}
