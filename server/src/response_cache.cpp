#include <algorithm>

#include <civicflow/server/response_cache.hpp>

namespace civicflow::server {

ResponseCache::ResponseCache(std::chrono::milliseconds ttl, std::size_t capacity)
    : ttl_ms_(ttl.count())
    , capacity_(capacity) {}

std::optional<ResponseCache::Entry> ResponseCache::get(
    const std::string& key, std::int64_t now_ms
) {
    if (!enabled())
        return std::nullopt;
    std::lock_guard lock(mutex_);
    auto it = slots_.find(key);
    if (it == slots_.end())
        return std::nullopt;
    if (it->second.expires_at <= now_ms) {
        slots_.erase(it);
        return std::nullopt;
    }
    return it->second.entry;
}

void ResponseCache::put(const std::string& key, Entry entry, std::int64_t now_ms) {
    if (!enabled())
        return;
    std::lock_guard lock(mutex_);
    if (slots_.size() >= capacity_ && slots_.find(key) == slots_.end()) {
        std::erase_if(slots_, [now_ms](const auto& kv) { return kv.second.expires_at <= now_ms; });
        if (slots_.size() >= capacity_) {
            auto oldest =
                std::min_element(slots_.begin(), slots_.end(), [](const auto& a, const auto& b) {
                    return a.second.expires_at < b.second.expires_at;
                });
            slots_.erase(oldest);
        }
    }
    slots_[key] = Slot{std::move(entry), now_ms + ttl_ms_};
}

std::size_t ResponseCache::size() const {
    std::lock_guard lock(mutex_);
    return slots_.size();
}

}  // namespace civicflow::server
