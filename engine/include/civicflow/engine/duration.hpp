/// Durations as flow authors and testers write them: 90s, 30m, 2h, 1d.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace civicflow::engine {

/// Milliseconds in `text`: a whole number without sign followed by one unit, s, m, h or d, at
/// most 365 days. nullopt for anything else ("30", "1.5h", "-2m", "30 m").
std::optional<std::int64_t> parse_duration_ms(std::string_view text);

}  // namespace civicflow::engine
