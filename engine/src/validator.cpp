#include <limits>

#include <civicflow/engine/text_normalize.hpp>
#include <civicflow/engine/validator.hpp>

namespace civicflow::engine {

namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && is_space(text.front())) {
        text.remove_prefix(1);
    }
    while (!text.empty() && is_space(text.back())) {
        text.remove_suffix(1);
    }
    return text;
}

bool is_leap(int year) {
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int days_in_month(int year, int month) {
    static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && is_leap(year) ? 29 : kDays[month - 1];
}

/// Reads 1..max_digits ASCII digits at `pos`; false when there are none or too many.
bool read_number(
    std::string_view text, std::size_t& pos, int min_digits, int max_digits, int& value
) {
    value = 0;
    int count = 0;
    while (pos < text.size() && is_digit(text[pos])) {
        if (++count > max_digits) {
            return false;
        }
        value = value * 10 + (text[pos] - '0');
        ++pos;
    }
    return count >= min_digits;
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm; proleptic Gregorian).
Date civil_from_days(std::int64_t days) {
    days += 719468;
    const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    const auto doe = static_cast<unsigned>(days - era * 146097);                 // [0, 146096]
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
    const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);  // [0, 365]
    const unsigned mp = (5 * doy + 2) / 153;                       // [0, 11]
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;               // [1, 31]
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;                  // [1, 12]
    Date date;
    date.year = static_cast<int>(m <= 2 ? y + 1 : y);
    date.month = static_cast<int>(m);
    date.day = static_cast<int>(d);
    return date;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    std::int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        --q;
    }
    return q;
}

/// Parses an optionally signed decimal integer; false on anything else or on overflow.
bool parse_int64(std::string_view text, std::int64_t& out) {
    bool negative = false;
    if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
        negative = text.front() == '-';
        text.remove_prefix(1);
    }
    if (text.empty()) {
        return false;
    }
    // Accumulate negatively so that INT64_MIN is representable.
    std::int64_t value = 0;
    constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
    for (char c : text) {
        if (!is_digit(c)) {
            return false;
        }
        const int digit = c - '0';
        if (value < (kMin + digit) / 10) {
            return false;
        }
        value = value * 10 - digit;
    }
    if (!negative) {
        if (value == kMin) {
            return false;
        }
        value = -value;
    }
    out = value;
    return true;
}

std::optional<std::string> check_mobile(std::string_view answer) {
    std::string digits;
    digits.reserve(answer.size());
    for (char c : answer) {
        if (is_space(c) || c == '-') {
            continue;  // "98765 43210", "98765-43210"
        }
        digits.push_back(c);
    }
    std::string_view number = digits;
    if (number.starts_with("+")) {
        if (!number.starts_with("+91")) {
            return std::nullopt;  // another country
        }
        number.remove_prefix(3);
    } else if (number.size() == 12 && number.starts_with("91")) {
        number.remove_prefix(2);
    } else if (number.size() == 11 && number.starts_with("0")) {
        number.remove_prefix(1);  // trunk prefix
    }
    if (number.size() != 10 || number.front() < '6' || number.front() > '9') {
        return std::nullopt;
    }
    for (char c : number) {
        if (!is_digit(c)) {
            return std::nullopt;
        }
    }
    return std::string(number);
}

std::optional<std::string> check_pin(std::string_view answer) {
    std::string digits;
    for (char c : answer) {
        if (c == ' ') {
            continue;  // "110 001" is a common way to write it
        }
        if (!is_digit(c)) {
            return std::nullopt;
        }
        digits.push_back(c);
    }
    if (digits.size() != 6 || digits.front() == '0') {
        return std::nullopt;
    }
    return digits;
}

}  // namespace

std::optional<Date> parse_date(std::string_view text) {
    const std::string ascii = ascii_digits(trim(text));
    const std::string_view s = ascii;
    std::size_t pos = 0;
    Date date;
    if (!read_number(s, pos, 1, 2, date.day) || pos >= s.size()) {
        return std::nullopt;
    }
    const char separator = s[pos];
    if (separator != '-' && separator != '/' && separator != '.') {
        return std::nullopt;
    }
    ++pos;
    if (!read_number(s, pos, 1, 2, date.month) || pos >= s.size() || s[pos] != separator) {
        return std::nullopt;
    }
    ++pos;
    if (!read_number(s, pos, 4, 4, date.year) || pos != s.size()) {
        return std::nullopt;
    }
    if (date.month < 1 || date.month > 12 || date.day < 1 ||
        date.day > days_in_month(date.year, date.month)) {
        return std::nullopt;
    }
    return date;
}

Date date_of(Timestamp now, int utc_offset_minutes) {
    constexpr std::int64_t kMillisPerDay = 86'400'000;
    const std::int64_t local = now + static_cast<std::int64_t>(utc_offset_minutes) * 60'000;
    return civil_from_days(floor_div(local, kMillisPerDay));
}

std::string format_date(const Date& date) {
    std::string out;
    out.reserve(10);
    auto two = [&out](int v) {
        out.push_back(static_cast<char>('0' + (v / 10) % 10));
        out.push_back(static_cast<char>('0' + v % 10));
    };
    two(date.day);
    out.push_back('-');
    two(date.month);
    out.push_back('-');
    const int year = date.year < 0 ? 0 : date.year;
    two(year / 100);
    two(year % 100);
    return out;
}

std::optional<std::string> Validator::check(std::string_view answer, const Date& today) const {
    const std::string text = ascii_digits(trim(answer));
    switch (kind) {
        case Kind::kMedia:
            return std::nullopt;  // typed text is never a photo: media arrives as media input
        case Kind::kPattern:
            if (pattern == nullptr || !pattern->full_match(text)) {
                return std::nullopt;
            }
            return text;
        case Kind::kDate: {
            const std::optional<Date> date = parse_date(text);
            if (!date) {
                return std::nullopt;
            }
            if ((not_future || max_is_today) && *date > today) {
                return std::nullopt;
            }
            if ((min_date && *date < *min_date) || (max_date && *date > *max_date)) {
                return std::nullopt;
            }
            return format_date(*date);
        }
        case Kind::kInteger: {
            std::int64_t value = 0;
            if (!parse_int64(text, value)) {
                return std::nullopt;
            }
            if ((min_int && value < *min_int) || (max_int && value > *max_int)) {
                return std::nullopt;
            }
            return std::to_string(value);
        }
        case Kind::kOneOf: {
            const std::string wanted = normalize(text);
            if (wanted.empty()) {
                return std::nullopt;
            }
            for (const std::string& choice : one_of) {
                if (normalize(choice) == wanted) {
                    return choice;
                }
            }
            return std::nullopt;
        }
        case Kind::kMobile:
            return check_mobile(text);
        case Kind::kPin:
            return check_pin(text);
    }
    return std::nullopt;
}

}  // namespace civicflow::engine
