// The response head the connection writes, and the sweeper's interval.
#include "http_connection.hpp"

#include <string>

#include <doctest/doctest.h>

using civicflow::server::format_head;
using civicflow::server::HttpAnswer;
using civicflow::server::Limits;
using civicflow::server::Millis;
using civicflow::server::sweep_interval;

namespace {

std::string head_of(const HttpAnswer& answer, unsigned version, bool keep_alive) {
    std::string out;
    format_head(answer, version, keep_alive, out);
    return out;
}

}  // namespace

TEST_SUITE("server/http_connection") {
    TEST_CASE("an HTTP/1.1 answer kept alive carries its headers and length, no Connection") {
        const HttpAnswer answer{200, R"({"status":"ok"})", "application/json", "req-1"};
        CHECK(
            head_of(answer, 11, true) ==
            "HTTP/1.1 200 OK\r\nServer: civicflow\r\nContent-Type: application/json\r\n"
            "X-Request-Id: req-1\r\nContent-Length: 15\r\n\r\n"
        );
    }

    TEST_CASE("the last answer of an HTTP/1.1 connection says Connection: close") {
        const HttpAnswer answer{413, "{}", "application/json", "r"};
        CHECK(
            head_of(answer, 11, false) ==
            "HTTP/1.1 413 Payload Too Large\r\nServer: civicflow\r\n"
            "Content-Type: application/json\r\nX-Request-Id: r\r\nConnection: close\r\n"
            "Content-Length: 2\r\n\r\n"
        );
    }

    TEST_CASE("HTTP/1.0 says keep-alive only when the connection stays open") {
        const HttpAnswer answer{200, "ok", "text/plain", ""};
        CHECK(
            head_of(answer, 10, true) ==
            "HTTP/1.0 200 OK\r\nServer: civicflow\r\nContent-Type: text/plain\r\n"
            "Connection: keep-alive\r\nContent-Length: 2\r\n\r\n"
        );
        CHECK(
            head_of(answer, 10, false) ==
            "HTTP/1.0 200 OK\r\nServer: civicflow\r\nContent-Type: text/plain\r\n"
            "Content-Length: 2\r\n\r\n"
        );
    }

    TEST_CASE("405 names the allowed methods; HEAD keeps the headers, the GET's length included") {
        HttpAnswer answer{405, "{\"error\":1}", "application/json", "id", "GET, HEAD"};
        answer.head = true;
        CHECK(
            head_of(answer, 11, true) ==
            "HTTP/1.1 405 Method Not Allowed\r\nServer: civicflow\r\n"
            "Content-Type: application/json\r\nX-Request-Id: id\r\nAllow: GET, HEAD\r\n"
            "Content-Length: 11\r\n\r\n"
        );
    }

    TEST_CASE("a 503 says when to retry") {
        const HttpAnswer answer{503, "{}", "application/json", "r"};
        CHECK(
            head_of(answer, 11, true) ==
            "HTTP/1.1 503 Service Unavailable\r\nServer: civicflow\r\n"
            "Content-Type: application/json\r\nX-Request-Id: r\r\nRetry-After: 1\r\n"
            "Content-Length: 2\r\n\r\n"
        );
    }

    TEST_CASE("format_head appends to what the buffer holds") {
        std::string out = "kept";
        format_head(HttpAnswer{204, "", "application/json", ""}, 11, true, out);
        CHECK(out.rfind("keptHTTP/1.1 204 No Content\r\n", 0) == 0);
    }

    TEST_CASE("the sweeper ticks at a quarter of the shorter timeout, within 10 to 500 ms") {
        Limits limits;
        limits.read_timeout = Millis{10'000};
        limits.idle_timeout = Millis{60'000};
        CHECK(sweep_interval(limits) == Millis{500});
        limits.read_timeout = Millis{300};
        CHECK(sweep_interval(limits) == Millis{75});
        limits.idle_timeout = Millis{20};
        CHECK(sweep_interval(limits) == Millis{10});
    }
}
