#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>

#include <civicflow/server/logger.hpp>

#include "hex.hpp"

#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <unistd.h>

namespace civicflow::server {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

std::string_view level_name(LogLevel level) {
    switch (level) {
        case LogLevel::kDebug:
            return "debug";
        case LogLevel::kInfo:
            return "info";
        case LogLevel::kWarn:
            return "warn";
        case LogLevel::kError:
            return "error";
    }
    return "info";
}

std::string timestamp() {
    const auto now = std::chrono::system_clock::now();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    std::array<char, 32> buf{};
    const int n = std::snprintf(
        buf.data(),
        buf.size(),
        "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        static_cast<int>(ms % 1000)
    );
    return std::string(buf.data(), static_cast<std::size_t>(n > 0 ? n : 0));
}

struct LogKey {
    std::array<unsigned char, 32> bytes{};

    LogKey() {
        const char* env = std::getenv("CIVICFLOW_LOG_KEY");
        if (env != nullptr && *env != '\0') {
            // Derive a fixed-size key from the operator's secret so short values still work.
            const std::string_view secret(env);
            unsigned int len = 0;
            HMAC(
                EVP_sha256(),
                "civicflow-log-key",
                17,
                reinterpret_cast<const unsigned char*>(secret.data()),
                secret.size(),
                bytes.data(),
                &len
            );
            return;
        }
        if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
            // Without a random key, tags would be reversible; refuse to pretend otherwise.
            std::fputs("civicflow: cannot draw a random log key\n", stderr);
            std::abort();
        }
    }
};

const LogKey& log_key() {
    static const LogKey key;
    return key;
}

// One write(2) per buffer where possible: a line never interleaves with another process's.
void write_all(std::string_view text) {
    const char* data = text.data();
    std::size_t left = text.size();
    while (left > 0) {
        const ssize_t n = ::write(STDERR_FILENO, data, left);
        if (n <= 0)
            return;
        data += n;
        left -= static_cast<std::size_t>(n);
    }
}

// The writer thread of Logger::Async.
struct AsyncWriter {
    std::mutex mutex;
    std::condition_variable wake;
    std::string queue;  // whole lines
    std::size_t max_bytes = 0;
    std::uint64_t dropped_unreported = 0;
    bool idle = false;
    bool stopping = false;
    std::thread thread;

    void run() {
        std::string batch;
        for (;;) {
            std::uint64_t dropped = 0;
            {
                std::unique_lock lock(mutex);
                if (queue.empty() && dropped_unreported == 0 && !stopping) {
                    idle = true;
                    wake.wait(lock, [&] {
                        return !queue.empty() || dropped_unreported != 0 || stopping;
                    });
                    idle = false;
                }
                if (queue.empty() && dropped_unreported == 0 && stopping)
                    return;
                batch.swap(queue);
                dropped = dropped_unreported;
                dropped_unreported = 0;
            }
            write_all(batch);
            batch.clear();
            if (dropped != 0) {
                write_all(
                    timestamp() +
                    " level=warn event=log_lines_dropped count=" + std::to_string(dropped) + "\n"
                );
            }
        }
    }
};

// Never freed: a thread may still be logging while the server shuts down.
AsyncWriter& async_writer() {
    static AsyncWriter* const w = new AsyncWriter;
    return *w;
}

std::atomic<bool> g_async_on{false};
std::atomic<std::uint64_t> g_dropped{0};

}  // namespace

Logger::Async::Async(std::size_t max_queued_bytes) {
    AsyncWriter& w = async_writer();
    std::lock_guard lock(w.mutex);
    if (w.thread.joinable())
        return;  // one at a time: this one does nothing
    owner_ = true;
    w.max_bytes = max_queued_bytes;
    w.stopping = false;
    w.thread = std::thread([&w] { w.run(); });
    g_async_on.store(true);
}

Logger::Async::~Async() {
    if (!owner_)
        return;
    AsyncWriter& w = async_writer();
    {
        std::lock_guard lock(w.mutex);
        w.stopping = true;  // from now on lines are written directly
    }
    w.wake.notify_one();
    w.thread.join();  // after writing everything queued
    g_async_on.store(false);
}

std::uint64_t Logger::dropped() {
    return g_dropped.load();
}

void Logger::set_level(LogLevel level) {
    g_level.store(static_cast<int>(level));
}

bool Logger::enabled(LogLevel level) {
    return static_cast<int>(level) >= g_level.load();
}

void Logger::log(
    LogLevel level, std::string_view request_id, std::string_view event, std::string_view fields
) {
    if (!enabled(level))
        return;
    std::string line = timestamp();
    line += " level=";
    line += level_name(level);
    if (!request_id.empty()) {
        line += " rid=";
        line += request_id;
    }
    line += " event=";
    line += event;
    if (!fields.empty()) {
        line += ' ';
        line += fields;
    }
    line += '\n';
    if (g_async_on.load()) {
        AsyncWriter& w = async_writer();
        bool queued = false;
        bool wake = false;
        {
            std::lock_guard lock(w.mutex);
            if (!w.stopping) {
                if (w.queue.size() + line.size() > w.max_bytes) {
                    ++w.dropped_unreported;
                    g_dropped.fetch_add(1);
                    return;
                }
                w.queue += line;
                queued = true;
                wake = w.idle;
                w.idle = false;
            }
        }
        if (wake)
            w.wake.notify_one();
        if (queued)
            return;
    }
    // One write(2) per line: lines from different threads stay whole (stderr is unbuffered).
    write_all(line);
}

std::string citizen_tag(std::string_view user) {
    const LogKey& key = log_key();
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int len = 0;
    HMAC(
        EVP_sha256(),
        key.bytes.data(),
        static_cast<int>(key.bytes.size()),
        reinterpret_cast<const unsigned char*>(user.data()),
        user.size(),
        mac.data(),
        &len
    );
    std::string out;
    append_hex(out, std::span(mac.data(), 6));
    return out;
}

std::string new_request_id() {
    static const std::uint32_t prefix = [] {
        std::uint32_t p = 0;
        if (RAND_bytes(reinterpret_cast<unsigned char*>(&p), sizeof p) != 1) {
            p = static_cast<std::uint32_t>(::getpid());
        }
        return p;
    }();
    static std::atomic<std::uint32_t> counter{0};
    const std::uint64_t value = (static_cast<std::uint64_t>(prefix) << 32) |
                                counter.fetch_add(1, std::memory_order_relaxed);
    std::array<unsigned char, 8> bytes{};
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        bytes[i] = static_cast<unsigned char>(value >> (56 - 8 * i));  // most significant first
    }
    std::string out;
    append_hex(out, bytes);
    return out;
}

bool is_valid_request_id(std::string_view id) {
    if (id.empty() || id.size() > 64)
        return false;
    for (const char c : id) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

}  // namespace civicflow::server
