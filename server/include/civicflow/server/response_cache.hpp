/// A small TTL cache of backend GET responses, keyed by path.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace civicflow::server {

/// Bounded (`capacity` entries) and thread-safe. When full, expired entries are dropped first,
/// then the entry closest to expiry, so a burst of distinct paths cannot grow memory.
/// Time is passed in (milliseconds) so tests drive expiry.
class ResponseCache {
public:
    struct Entry {
        int status = 0;
        std::string body;
    };

    ResponseCache(std::chrono::milliseconds ttl, std::size_t capacity);

    bool enabled() const { return ttl_ms_ > 0 && capacity_ > 0; }

    std::optional<Entry> get(const std::string& key, std::int64_t now_ms);
    void put(const std::string& key, Entry entry, std::int64_t now_ms);
    std::size_t size() const;

private:
    struct Slot {
        Entry entry;
        std::int64_t expires_at = 0;
    };

    mutable std::mutex mutex_;
    std::int64_t ttl_ms_;
    std::size_t capacity_;
    std::unordered_map<std::string, Slot> slots_;
};

}  // namespace civicflow::server
