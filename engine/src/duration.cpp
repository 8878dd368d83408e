#include <charconv>

#include <civicflow/engine/duration.hpp>

namespace civicflow::engine {

std::optional<std::int64_t> parse_duration_ms(std::string_view text) {
    if (text.size() < 2 || text[0] < '0' || text[0] > '9') {
        return std::nullopt;
    }
    std::int64_t scale = 0;
    switch (text.back()) {
        case 's':
            scale = 1000;
            break;
        case 'm':
            scale = 60'000;
            break;
        case 'h':
            scale = 3'600'000;
            break;
        case 'd':
            scale = 86'400'000;
            break;
        default:
            return std::nullopt;
    }
    const std::string_view digits = text.substr(0, text.size() - 1);
    std::int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    constexpr std::int64_t kMaxMs = 365LL * 86'400'000;
    if (ec != std::errc() || ptr != digits.data() + digits.size() || value > kMaxMs / scale) {
        return std::nullopt;
    }
    return value * scale;
}

}  // namespace civicflow::engine
