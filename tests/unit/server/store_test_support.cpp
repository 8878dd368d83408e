#include "store_test_support.hpp"

#include <doctest/doctest.h>

namespace civicflow::testing {

using server::Consent;
using server::PendingCall;
using server::TurnWrite;

void check_store_conformance(StoreUnderTest& s, const std::string& prefix) {
    server::Store& store = *s.store;
    const std::string a = prefix + "919800000001";
    const std::string b = prefix + "919800000002";

    auto empty = run(store.load(a, "m1"));
    REQUIRE(empty);
    CHECK_FALSE(empty->session);
    CHECK_FALSE(empty->response);
    CHECK_FALSE(empty->pending);
    CHECK(run(store.ping()));

    // One write carries a turn's session, response and consent together.
    TurnWrite w;
    w.user = a;
    w.session = R"({"v":1,"flow":"main"})";
    w.session_ttl_ms = 60'000;
    w.message_id = "m1";
    w.response = R"({"user":"a"})";
    w.consent = Consent{false, 1234, "api"};
    REQUIRE(run(store.write(w)));
    auto loaded = run(store.load(a, "m1"));
    REQUIRE(loaded);
    CHECK(loaded->session == R"({"v":1,"flow":"main"})");
    CHECK(loaded->response == R"({"user":"a"})");
    CHECK_FALSE(run(store.load(a, "m2"))->response);
    CHECK_FALSE(run(store.load(b, "m1"))->session);
    CHECK_FALSE(run(store.load(b, "m1"))->response);
    auto consent = run(store.load_consent(a));
    REQUIRE(consent);
    CHECK(*consent == Consent{false, 1234, "api"});
    CHECK_FALSE(*run(store.load_consent(b)));

    // A write without a session leaves the stored one alone.
    TurnWrite pending;
    pending.user = a;
    pending.pending = PendingCall{"m2", {"main/lookup/1", "status", "GET", "/x", ""}, 99, {}};
    REQUIRE(run(store.write(pending)));
    loaded = run(store.load(a, {}));
    CHECK(loaded->session == R"({"v":1,"flow":"main"})");
    REQUIRE(loaded->pending);
    CHECK(*loaded->pending == *pending.pending);
    // acquire_and_load() reads what load() reads, under the citizen's lease.
    auto leased = run(store.acquire_and_load(a, "m1"));
    REQUIRE(leased);
    CHECK(leased->lease.user == a);
    CHECK(leased->state.session == R"({"v":1,"flow":"main"})");
    CHECK(leased->state.response == R"({"user":"a"})");
    REQUIRE(leased->state.pending);
    CHECK(*leased->state.pending == *pending.pending);
    run(store.release_lease(leased->lease));
    TurnWrite cleared;
    cleared.user = a;
    cleared.clear_pending = true;
    REQUIRE(run(store.write(cleared)));
    CHECK_FALSE(run(store.load(a, {}))->pending);

    // Erasure: everything about a, nothing about b.
    TurnWrite other;
    other.user = b;
    other.session = "s-b";
    other.session_ttl_ms = 60'000;
    other.message_id = "m1";
    other.response = "r-b";
    REQUIRE(run(store.write(other)));
    REQUIRE(run(store.write(pending)));
    REQUIRE(run(store.erase_citizen(a)));
    loaded = run(store.load(a, "m1"));
    CHECK_FALSE(loaded->session);
    CHECK_FALSE(loaded->response);
    CHECK_FALSE(loaded->pending);
    CHECK_FALSE(*run(store.load_consent(a)));
    CHECK(run(store.load(b, "m1"))->response == "r-b");

    if (!s.clock_driven)
        return;
    // Expiry: sessions after their own ttl, message ids after the store's message ttl (1h in
    // these tests).
    *s.now += 59'999;
    CHECK(run(store.load(b, "m1"))->session == "s-b");
    *s.now += 1;
    CHECK_FALSE(run(store.load(b, "m1"))->session);
    CHECK(run(store.load(b, "m1"))->response == "r-b");
    *s.now += 3'600'000;
    CHECK_FALSE(run(store.load(b, "m1"))->response);
}

}  // namespace civicflow::testing

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace civicflow::testing {
namespace {

constexpr const char* kRedisServer = "/usr/bin/redis-server";

int connect_loopback(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// A port free right now: bind port 0, read it back, close (redis-server needs a number).
std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

}  // namespace

std::string temp_dir(const char* prefix) {
    std::string pattern =
        std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX");
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    return pattern;
}

std::string file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

StderrToFile::StderrToFile(std::string path)
    : path_(std::move(path))
    , saved_(::dup(STDERR_FILENO)) {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
}

StderrToFile::~StderrToFile() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
}

bool RedisServer::available() {
    return ::access(kRedisServer, X_OK) == 0;
}

RedisServer::RedisServer(std::string dir, bool aof, std::vector<std::string> extra_args)
    : dir_(std::move(dir))
    , aof_(aof && !dir_.empty())
    , extra_args_(std::move(extra_args)) {
    if (!available())
        return;
    port_ = free_port();
    start();
}

RedisServer::~RedisServer() {
    stop();
}

bool RedisServer::start() {
    const std::string port = std::to_string(port_);
    std::vector<std::string> args{
        kRedisServer,
        "--port",
        port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--loglevel",
        "warning",
        "--logfile",
        "/dev/null"};
    if (!dir_.empty())
        args.insert(args.end(), {"--dir", dir_});
    if (aof_) {
        args.insert(
            args.end(),
            {"--appendonly", "yes", "--appendfsync", "always", "--auto-aof-rewrite-percentage", "0"}
        );
    } else {
        args.insert(args.end(), {"--appendonly", "no"});
    }
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    if (posix_spawn(&pid, kRedisServer, nullptr, nullptr, argv.data(), environ) != 0)
        return false;
    pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        const int fd = connect_loopback(port_);
        if (fd >= 0) {
            ::close(fd);
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

void RedisServer::pause() {
    if (pid_ > 0)
        ::kill(pid_, SIGSTOP);
}

void RedisServer::resume() {
    if (pid_ > 0)
        ::kill(pid_, SIGCONT);
}

void RedisServer::stop() {
    if (pid_ <= 0)
        return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
}

}  // namespace civicflow::testing
