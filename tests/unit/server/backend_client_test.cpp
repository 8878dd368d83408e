// BackendClient against a real HTTP server on 127.0.0.1 (a small threaded Beast server in this
// file): retries with backoff for GET only, the response size limit, the auth header taken from
// the environment, connection reuse.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <doctest/doctest.h>

#include <civicflow/server/backend_client.hpp>

#include "store_test_support.hpp"

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/socket.h>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using namespace civicflow;
using civicflow::testing::run;
using namespace std::chrono_literals;

namespace {

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// A self-signed certificate for "localhost" (its own trust anchor) and its key, as PEM.
struct TestCertificate {
    std::string cert_pem;
    std::string key_pem;
};

TestCertificate make_certificate() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    REQUIRE(key != nullptr);
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(
        name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0
    );
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    for (const auto& [nid, value] :
         {std::pair{NID_subject_alt_name, "DNS:localhost"},
          std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
        REQUIRE(ext != nullptr);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    REQUIRE(X509_sign(x, key, EVP_sha256()) > 0);
    auto pem = [](auto write) {
        BIO* bio = BIO_new(BIO_s_mem());
        write(bio);
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio, &data);
        std::string out(data, static_cast<std::size_t>(n));
        BIO_free(bio);
        return out;
    };
    TestCertificate c;
    c.cert_pem = pem([&](BIO* b) { PEM_write_bio_X509(b, x); });
    c.key_pem = pem([&](BIO* b) {
        PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
    });
    X509_free(x);
    EVP_PKEY_free(key);
    return c;
}

// Answers every request with `handler`, one thread per connection, keep-alive honoured; over
// TLS when given a certificate.
class TestBackend {
public:
    explicit TestBackend(
        std::function<Response(const Request&, int n)> handler, const TestCertificate* tls = nullptr
    )
        : handler_(std::move(handler))
        , acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        if (tls != nullptr) {
            tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
            tls_->use_certificate_chain(asio::buffer(tls->cert_pem));
            tls_->use_private_key(asio::buffer(tls->key_pem), asio::ssl::context::pem);
        }
        port_ = acceptor_.local_endpoint().port();
        accept_thread_ = std::thread([this] { accept_loop(); });
    }

    ~TestBackend() {
        stopping_ = true;
        boost::system::error_code ec;
        {
            // Unblocks the accept and every blocked read.
            std::lock_guard lock(mutex_);
            for (auto& s : sockets_)
                s->shutdown(tcp::socket::shutdown_both, ec);
        }
        ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
        acceptor_.close(ec);
        accept_thread_.join();
        for (auto& t : connection_threads_)
            t.join();
    }

    std::uint16_t port() const { return port_; }

    int requests() const { return requests_.load(); }

    int connections() const { return connections_.load(); }

    std::string last_header(const std::string& name) const {
        std::lock_guard lock(mutex_);
        return last_headers_.count(name) != 0 ? last_headers_.at(name) : std::string();
    }

private:
    void accept_loop() {
        while (!stopping_) {
            auto socket = std::make_shared<tcp::socket>(ioc_);
            boost::system::error_code ec;
            acceptor_.accept(*socket, ec);
            if (ec)
                return;
            ++connections_;
            std::lock_guard lock(mutex_);
            sockets_.push_back(socket);
            connection_threads_.emplace_back([this, socket] {
                if (!tls_) {
                    serve(*socket);
                    return;
                }
                asio::ssl::stream<tcp::socket&> stream(*socket, *tls_);
                boost::system::error_code hec;
                stream.handshake(asio::ssl::stream_base::server, hec);
                if (!hec)
                    serve(stream);
            });
        }
    }

    template <typename Stream>
    void serve(Stream& socket) {
        beast::flat_buffer buffer;
        for (;;) {
            Request req;
            boost::system::error_code ec;
            http::read(socket, buffer, req, ec);
            if (ec)
                return;
            const int n = ++requests_;
            {
                std::lock_guard lock(mutex_);
                last_headers_.clear();
                for (const auto& field : req)
                    last_headers_[std::string(field.name_string())] = std::string(field.value());
            }
            Response res = handler_(req, n);
            res.version(11);
            res.keep_alive(req.keep_alive());
            res.prepare_payload();
            http::write(socket, res, ec);
            if (ec || !req.keep_alive())
                return;
        }
    }

    std::function<Response(const Request&, int)> handler_;
    std::unique_ptr<asio::ssl::context> tls_;
    asio::io_context ioc_;
    tcp::acceptor acceptor_;
    std::uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<int> requests_{0};
    std::atomic<int> connections_{0};
    mutable std::mutex mutex_;
    std::vector<std::shared_ptr<tcp::socket>> sockets_;
    std::vector<std::thread> connection_threads_;
    std::map<std::string, std::string> last_headers_;
    std::thread accept_thread_;
};

Response json(int status, std::string body) {
    Response res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, "application/json");
    res.body() = std::move(body);
    return res;
}

server::BackendConfig config_for(const TestBackend& backend) {
    server::BackendConfig c;
    c.name = "status";
    c.base_url = "http://127.0.0.1:" + std::to_string(backend.port());
    c.host = "127.0.0.1";
    c.port = std::to_string(backend.port());
    c.timeout = 3s;
    c.breaker_failures = 100;
    return c;
}

// The client on its own io_context thread, as in the server; calls are awaited from the test's.
struct Client {
    explicit Client(
        const server::BackendConfig& config, server::BackendClient::EnvLookup env = {}
    ) {
        if (!env)
            env = [](const char*) -> const char* {
                return nullptr;
            };
        auto created = server::BackendClient::create(io.ioc.get_executor(), {config}, env);
        REQUIRE_MESSAGE(created, created.error().message);
        client = std::move(*created);
    }

    engine::CallResult call(std::string method, std::string path, std::string body = "") {
        return run(client->call(
            {"main/lookup/1", "status", std::move(method), std::move(path), std::move(body)}, "rid"
        ));
    }

    testing::IoThread io;
    std::unique_ptr<server::BackendClient> client;  // after `io`: destroyed before it stops
};

}  // namespace

TEST_SUITE("server/backend_client") {
    TEST_CASE("a GET is retried after 5xx with growing backoff, then answered") {
        TestBackend backend([](const Request&, int n) {
            return n <= 2 ? json(503, R"({"error":"busy"})") : json(200, R"({"status":"ok"})");
        });
        auto config = config_for(backend);
        config.retries = 2;
        config.backoff = 40ms;
        Client client(config);
        const auto started = std::chrono::steady_clock::now();
        const engine::CallResult r = client.call("GET", "/v1/status/PA123");
        const auto elapsed = std::chrono::steady_clock::now() - started;
        CHECK(r.outcome == engine::CallResult::Outcome::kResponse);
        CHECK(r.status == 200);
        CHECK(r.body == R"({"status":"ok"})");
        CHECK(backend.requests() == 3);
        // Backoff 40 ms then 80 ms, each with +-50% jitter: at least 20 + 40 ms in all.
        CHECK(elapsed >= 60ms);
        // Kept alive: the retries went over the first connection.
        CHECK(backend.connections() == 1);
    }

    TEST_CASE("a POST is never retried: it may have reached the backend") {
        TestBackend backend([](const Request&, int) { return json(500, R"({"error":"x"})"); });
        auto config = config_for(backend);
        config.retries = 3;
        config.backoff = 10ms;
        Client client(config);
        const engine::CallResult r = client.call("POST", "/v1/grievances", R"({"text":"t"})");
        CHECK(r.outcome == engine::CallResult::Outcome::kResponse);
        CHECK(r.status == 500);
        CHECK(backend.requests() == 1);
    }

    TEST_CASE("a response over max_response_bytes is an error, never a truncated body") {
        const std::string big = R"({"data":")" + std::string(8000, 'a') + R"("})";
        TestBackend backend([&](const Request& req, int) {
            return req.target() == "/small" ? json(200, R"({"ok":true})") : json(200, big);
        });
        auto config = config_for(backend);
        config.max_response_bytes = 4096;
        Client client(config);
        const engine::CallResult r = client.call("GET", "/big");
        CHECK(r.outcome == engine::CallResult::Outcome::kError);
        CHECK(r.body.empty());
        // The client is still usable afterwards.
        const engine::CallResult ok = client.call("GET", "/small");
        CHECK(ok.outcome == engine::CallResult::Outcome::kResponse);
        CHECK(ok.body == R"({"ok":true})");
    }

    TEST_CASE("the auth header carries the value from the environment, with its prefix") {
        TestBackend backend([](const Request&, int) { return json(200, "{}"); });
        auto config = config_for(backend);
        config.auth = server::AuthConfig{"Authorization", "Bearer ", "CIVICFLOW_TEST_TOKEN"};
        Client client(config, [](const char* name) -> const char* {
            return std::string(name) == "CIVICFLOW_TEST_TOKEN" ? "s3cret" : nullptr;
        });
        CHECK(client.call("GET", "/x").status == 200);
        CHECK(backend.last_header("Authorization") == "Bearer s3cret");
    }

    // An expired or rotated token makes every call fail the same way: the operator must hear
    // of it at the default log level, with the variable to check and never its value.
    TEST_CASE("a backend refusing the credentials is logged at warn, naming the variable") {
        TestBackend backend([](const Request&, int n) {
            return json(n == 1 ? 401 : 403, R"({"error":"denied"})");
        });
        auto config = config_for(backend);
        config.auth = server::AuthConfig{"Authorization", "Bearer ", "CIVICFLOW_TEST_TOKEN"};
        const testing::StderrToFile log(testing::temp_dir("civicflow-log") + "/stderr");
        Client client(config, [](const char*) -> const char* { return "expired-7f3a"; });
        CHECK(client.call("GET", "/x").status == 401);
        CHECK(client.call("GET", "/y").status == 403);
        const std::string text = log.text();
        CHECK(
            text.find("level=warn rid=rid event=backend_rejected backend=status status=401 "
                      "check=CIVICFLOW_TEST_TOKEN") != std::string::npos
        );
        CHECK(text.find("status=403") != std::string::npos);
        CHECK(text.find("expired-7f3a") == std::string::npos);
    }

    // Backend names come from the config as any YAML key: /metrics escapes them, or one quote
    // would break the whole scrape.
    TEST_CASE("metrics count calls per outcome, with the backend name escaped") {
        TestBackend backend([](const Request&, int n) {
            return n == 1 ? json(200, "{}") : json(503, "{}");
        });
        auto config = config_for(backend);
        config.name = "tax\"svc";
        Client client(config);
        CHECK(run(client.client->call({"c1", "tax\"svc", "GET", "/a", ""}, "rid")).status == 200);
        CHECK(run(client.client->call({"c2", "tax\"svc", "GET", "/b", ""}, "rid")).status == 503);
        const std::string m = client.client->metrics();
        CHECK(
            m.find("civicflow_backend_calls_total{backend=\"tax\\\"svc\",outcome=\"ok\"} 1\n") !=
            std::string::npos
        );
        CHECK(
            m.find("civicflow_backend_calls_total{backend=\"tax\\\"svc\",outcome=\"failed\"} 1\n"
            ) != std::string::npos
        );
        CHECK(
            m.find("civicflow_backend_circuit_open{backend=\"tax\\\"svc\"} 0\n") !=
            std::string::npos
        );
    }

    // https base URLs: TLS with the certificate checked against the configured host name. The
    // test's certificate is made trusted through SSL_CERT_FILE, which OpenSSL's default verify
    // paths (what the client uses) read.
    TEST_CASE("an https backend is called over TLS, and an untrusted certificate is refused") {
        const TestCertificate cert = make_certificate();
        TestBackend backend(
            [](const Request& req, int) {
                return json(200, R"({"path":")" + std::string(req.target()) + R"("})");
            },
            &cert
        );
        auto config = config_for(backend);
        config.base_url = "https://localhost:" + std::to_string(backend.port());
        config.host = "localhost";
        config.tls = true;
        {
            // Not trusted (the system's CA store does not know it): an error, nothing sent.
            Client untrusted(config);
            const engine::CallResult r = untrusted.call("GET", "/v1/status/PA1");
            CHECK(r.outcome == engine::CallResult::Outcome::kError);
            CHECK(backend.requests() == 0);
        }
        const std::string dir = civicflow::testing::temp_dir("civicflow-backend");
        const std::string ca = dir + "/ca.pem";
        {
            std::FILE* f = std::fopen(ca.c_str(), "w");
            REQUIRE(f != nullptr);
            std::fwrite(cert.cert_pem.data(), 1, cert.cert_pem.size(), f);
            std::fclose(f);
        }
        ::setenv("SSL_CERT_FILE", ca.c_str(), 1);
        Client trusted(config);
        ::unsetenv("SSL_CERT_FILE");
        const engine::CallResult r = trusted.call("GET", "/v1/status/PA1");
        CHECK(r.outcome == engine::CallResult::Outcome::kResponse);
        CHECK(r.status == 200);
        CHECK(r.body == R"({"path":"/v1/status/PA1"})");
        CHECK(trusted.call("GET", "/v1/status/PA2").body == R"({"path":"/v1/status/PA2"})");
        CHECK(backend.connections() == 2);  // the refused one, then one kept alive for both
    }

    TEST_CASE("an auth variable that is not set is a configuration error") {
        TestBackend backend([](const Request&, int) { return json(200, "{}"); });
        auto config = config_for(backend);
        config.auth = server::AuthConfig{"X-Api-Key", "", "CIVICFLOW_TEST_UNSET"};
        asio::io_context ioc;
        auto created = server::BackendClient::create(
            ioc.get_executor(), {config}, [](const char*) -> const char* { return nullptr; }
        );
        REQUIRE_FALSE(created);
        CHECK(created.error().code == "config");
    }
}
