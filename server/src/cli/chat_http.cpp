#include "chat_http.hpp"

#include <chrono>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace civicflow::cli {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

engine::CallResult http_call(const std::string& base_url, const engine::BackendCall& call) {
    engine::CallResult result;
    result.call_id = call.id;
    result.outcome = engine::CallResult::Outcome::kError;
    const std::string scheme = "http://";
    if (base_url.rfind(scheme, 0) != 0) {
        return result;  // https is for the server's client; chat speaks plain http
    }
    std::string rest = base_url.substr(scheme.size());
    std::string prefix;
    if (auto slash = rest.find('/'); slash != std::string::npos) {
        prefix = rest.substr(slash);
        rest = rest.substr(0, slash);
        if (!prefix.empty() && prefix.back() == '/') {
            prefix.pop_back();
        }
    }
    std::string host = rest;
    std::string port = "80";
    if (auto colon = rest.rfind(':'); colon != std::string::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    }
    asio::io_context ioc;
    asio::ip::tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    beast::error_code ec;
    const auto endpoints = resolver.resolve(host, port, ec);
    if (ec) {
        return result;
    }
    stream.expires_after(std::chrono::seconds(5));
    stream.connect(endpoints, ec);
    if (ec) {
        return result;
    }
    http::request<http::string_body> req{
        call.method == "POST" ? http::verb::post : http::verb::get, prefix + call.path, 11};
    req.set(http::field::host, host);
    req.set(http::field::user_agent, "civicflow-chat");
    if (!call.body.empty()) {
        req.set(http::field::content_type, "application/json");
        req.body() = call.body;
    }
    req.prepare_payload();
    http::write(stream, req, ec);
    if (ec) {
        result.outcome = ec == beast::error::timeout ? engine::CallResult::Outcome::kTimeout
                                                     : engine::CallResult::Outcome::kError;
        return result;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1024 * 1024);
    http::read(stream, buffer, parser, ec);
    if (ec) {
        result.outcome = ec == beast::error::timeout ? engine::CallResult::Outcome::kTimeout
                                                     : engine::CallResult::Outcome::kError;
        return result;
    }
    result.outcome = engine::CallResult::Outcome::kResponse;
    result.status = static_cast<int>(parser.get().result_int());
    result.body = parser.get().body();
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    return result;
}

}  // namespace civicflow::cli
