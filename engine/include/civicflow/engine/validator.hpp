/// Validators of `ask` answers: pattern, date, integer range, one-of, Indian mobile, PIN code.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <civicflow/engine/regex.hpp>
#include <civicflow/engine/template.hpp>

namespace civicflow::engine {

/// Milliseconds since the Unix epoch (UTC). The engine never reads a clock: callers pass it.
using Timestamp = std::int64_t;

/// A calendar date.
struct Date {
    int year = 0;
    int month = 0;
    int day = 0;
    auto operator<=>(const Date&) const = default;
};

/// Parses DD-MM-YYYY (also DD/MM/YYYY and DD.MM.YYYY, Indian digits accepted); only real
/// calendar dates (leap years included).
std::optional<Date> parse_date(std::string_view text);
/// The UTC calendar date of `now`, shifted by `utc_offset_minutes` (India: +330).
Date date_of(Timestamp now, int utc_offset_minutes);
/// DD-MM-YYYY.
std::string format_date(const Date& date);

/// One validator of an `ask` step; the answer must pass all of a step's validators.
///   validate: { pattern: '^[A-Z]{2}\d{13}$', error: { en: "...", hi: "..." } }
///   validate: { date: { not_future: true }, error: "..." }          # DD-MM-YYYY
///   validate: { date: { min: 01-01-1900, max: today }, error: "..." }
///   validate: { integer: { min: 1, max: 120 }, error: "..." }
///   validate: { one_of: [male, female, other], error: "..." }
///   validate: { mobile: true, error: "..." }    # Indian mobile: 10 digits from 6-9, +91/0 allowed
///   validate: { pin: true, error: "..." }       # Indian PIN code: 6 digits, not starting with 0
///   validate: { media: true, error: "..." }     # a photo, document, audio or video; no text
struct Validator {
    enum class Kind { kPattern, kDate, kInteger, kOneOf, kMobile, kPin, kMedia };
    Kind kind = Kind::kPattern;
    std::shared_ptr<const Regex> pattern;  // kPattern: the whole (trimmed) answer must match
    bool not_future = false;               // kDate
    std::optional<Date> min_date;          // kDate
    std::optional<Date> max_date;          // kDate
    bool max_is_today = false;             // kDate: `max: today`
    std::optional<std::int64_t> min_int;   // kInteger
    std::optional<std::int64_t> max_int;   // kInteger
    std::vector<std::string> one_of;       // kOneOf: choices as authored (compared normalized)
    LocalizedText error;
    SourceLocation location;

    /// Checks `answer`; on success returns the value to store in the slot: trimmed text with
    /// Indian digits read as ASCII; dates as DD-MM-YYYY, integers without leading zeros, mobiles
    /// as 10 digits, one-of as the choice as authored. `today` is the date the clock gives.
    std::optional<std::string> check(std::string_view answer, const Date& today) const;
};

}  // namespace civicflow::engine
