// Shared by the store tests: run a store coroutine to completion, and the conformance suite
// every Store implementation must pass.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <civicflow/server/store.hpp>

namespace civicflow::testing {

/// Runs `a` on a fresh io_context until it completes; returns its value.
// Parameters of a coroutine live in its frame (a lambda's captures would not).
template <typename T>
boost::asio::awaitable<std::optional<T>> as_optional(boost::asio::awaitable<T> a) {
    co_return co_await std::move(a);
}

/// Runs `a` on a fresh io_context until it completes; returns its value.
template <typename T>
T run(boost::asio::awaitable<T> a) {
    boost::asio::io_context ioc;
    // use_future needs a default-constructible value; Result has none.
    auto f = boost::asio::co_spawn(ioc, as_optional(std::move(a)), boost::asio::use_future);
    ioc.run();
    return std::move(*f.get());
}

inline void run(boost::asio::awaitable<void> a) {
    boost::asio::io_context ioc;
    auto f = boost::asio::co_spawn(ioc, std::move(a), boost::asio::use_future);
    ioc.run();
    f.get();
}

/// An io_context running on a thread of its own, as the server runs a component (a store, the
/// backend client); tests await that component from their own io_context (run() above).
/// Declare the component after it, so the component goes first.
struct IoThread {
    IoThread()
        : work(boost::asio::make_work_guard(ioc))
        , thread([this] { ioc.run(); }) {}

    ~IoThread() {
        work.reset();
        ioc.stop();
        thread.join();
    }

    IoThread(const IoThread&) = delete;
    IoThread& operator=(const IoThread&) = delete;

    boost::asio::io_context ioc;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work;
    std::thread thread;
};

/// A new empty directory under the system's temporary directory, named `prefix`-XXXXXX.
std::string temp_dir(const char* prefix);

/// A file's whole content ("" when it cannot be read).
std::string file_bytes(const std::string& path);

/// While alive, stderr (the server's log) goes to a file that text() reads.
class StderrToFile {
public:
    explicit StderrToFile(std::string path);
    ~StderrToFile();
    StderrToFile(const StderrToFile&) = delete;
    StderrToFile& operator=(const StderrToFile&) = delete;

    std::string text() const { return file_bytes(path_); }

private:
    std::string path_;
    int saved_;
};

/// A store under test and its clock (ms since the epoch). `clock_driven` is false for stores
/// whose expiry follows real time (Redis): the expiry checks are then skipped.
struct StoreUnderTest {
    std::unique_ptr<server::Store> store;
    std::int64_t* now = nullptr;
    bool clock_driven = true;
};

/// The behaviour every store shares: sessions, message ids, consent, pending calls, erasure,
/// expiry. `users` prefixes citizen ids so runs against a shared server do not collide.
void check_store_conformance(StoreUnderTest& s, const std::string& prefix);

}  // namespace civicflow::testing

namespace civicflow::testing {

/// A throwaway redis-server on a free loopback port, killed on destruction: no persistence,
/// or with `dir` as its working directory and, when `aof`, an append-only file there (fsync
/// always, no automatic rewrites; a restart loads it). `available()` is false when no
/// redis-server binary is installed: tests then skip.
class RedisServer {
public:
    explicit RedisServer(
        std::string dir = {}, bool aof = true, std::vector<std::string> extra_args = {}
    );
    ~RedisServer();
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    static bool available();

    bool running() const { return pid_ > 0; }

    std::uint16_t port() const { return port_; }

    /// Stops it (SIGKILL) / starts it again on the same port.
    void stop();
    bool start();
    /// Freezes it (SIGSTOP: connections stay open, nothing is answered) / lets it go on.
    void pause();
    void resume();

private:
    int pid_ = -1;
    std::uint16_t port_ = 0;
    std::string dir_;
    bool aof_ = false;
    std::vector<std::string> extra_args_;  // more redis-server options
};

}  // namespace civicflow::testing
