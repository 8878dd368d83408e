#include <optional>
#include <string>

#include <doctest/doctest.h>

#include <civicflow/engine/validator.hpp>

using civicflow::engine::Date;
using civicflow::engine::date_of;
using civicflow::engine::format_date;
using civicflow::engine::parse_date;
using civicflow::engine::Regex;
using civicflow::engine::Timestamp;
using civicflow::engine::Validator;

namespace {

using Kind = Validator::Kind;

const Date kToday{2024, 6, 15};

Validator make(Kind kind) {
    Validator v;
    v.kind = kind;
    return v;
}

std::optional<std::string> check(const Validator& v, std::string_view answer) {
    return v.check(answer, kToday);
}

}  // namespace

TEST_SUITE("engine/validator") {
    TEST_CASE("parse_date reads dd-mm-yyyy with dashes, slashes or dots") {
        CHECK(parse_date("05-03-2024") == Date{2024, 3, 5});
        CHECK(parse_date("05/03/2024") == Date{2024, 3, 5});
        CHECK(parse_date("05.03.2024") == Date{2024, 3, 5});
        CHECK(parse_date("5-3-2024") == Date{2024, 3, 5});
        CHECK(parse_date("  31-12-1999 ") == Date{1999, 12, 31});
        CHECK(parse_date("०५-०३-२०२४") == Date{2024, 3, 5});  // Devanagari digits
        CHECK(parse_date("০৫/০৩/২০২৪") == Date{2024, 3, 5});  // Bengali digits
    }

    TEST_CASE("parse_date refuses other shapes") {
        CHECK_FALSE(parse_date(""));
        CHECK_FALSE(parse_date("2024-03-05"));
        CHECK_FALSE(parse_date("05-03-24"));
        CHECK_FALSE(parse_date("05-03/2024"));  // mixed separators
        CHECK_FALSE(parse_date("005-03-2024"));
        CHECK_FALSE(parse_date("05-03-20245"));
        CHECK_FALSE(parse_date("05 03 2024"));
        CHECK_FALSE(parse_date("05-03-2024x"));
        CHECK_FALSE(parse_date("a5-03-2024"));
    }

    TEST_CASE("parse_date accepts only real calendar dates") {
        CHECK(parse_date("29-02-2024") == Date{2024, 2, 29});
        CHECK_FALSE(parse_date("29-02-2023"));
        CHECK(parse_date("29-02-2000") == Date{2000, 2, 29});  // divisible by 400
        CHECK_FALSE(parse_date("29-02-1900"));                 // divisible by 100
        CHECK_FALSE(parse_date("31-04-2024"));
        CHECK(parse_date("30-04-2024") == Date{2024, 4, 30});
        CHECK_FALSE(parse_date("00-01-2024"));
        CHECK_FALSE(parse_date("01-00-2024"));
        CHECK_FALSE(parse_date("01-13-2024"));
        CHECK_FALSE(parse_date("32-01-2024"));
    }

    TEST_CASE("date_of gives the local calendar date for a utc offset") {
        CHECK(date_of(0, 0) == Date{1970, 1, 1});
        // 2024-02-29T18:29:59.999Z is still the 29th in India (+05:30 -> 23:59:59.999).
        const Timestamp before = 1709231399999;
        CHECK(date_of(before, 0) == Date{2024, 2, 29});
        CHECK(date_of(before, 330) == Date{2024, 2, 29});
        CHECK(date_of(before + 1, 330) == Date{2024, 3, 1});
        CHECK(date_of(before + 1, 0) == Date{2024, 2, 29});
        CHECK(date_of(-1, 0) == Date{1969, 12, 31});
        CHECK(date_of(0, -60) == Date{1969, 12, 31});
        CHECK(date_of(951782400000, 0) == Date{2000, 2, 29});
    }

    TEST_CASE("format_date writes dd-mm-yyyy") {
        CHECK(format_date(Date{2024, 3, 5}) == "05-03-2024");
        CHECK(format_date(Date{999, 12, 31}) == "31-12-0999");
    }

    TEST_CASE("date validator stores the date as dd-mm-yyyy") {
        const Validator v = make(Kind::kDate);
        CHECK(check(v, "5/3/2024") == "05-03-2024");
        CHECK(check(v, "29-02-2024") == "29-02-2024");
        CHECK_FALSE(check(v, "29-02-2023"));
        CHECK_FALSE(check(v, "31-04-2024"));
        CHECK_FALSE(check(v, "tomorrow"));
    }

    TEST_CASE("date validator with not_future refuses dates after today") {
        Validator v = make(Kind::kDate);
        v.not_future = true;
        CHECK(check(v, "15-06-2024") == "15-06-2024");
        CHECK(check(v, "14-06-2024") == "14-06-2024");
        CHECK_FALSE(check(v, "16-06-2024"));
        CHECK_FALSE(check(v, "01-01-2030"));
    }

    TEST_CASE("date validator with min, max and max today") {
        Validator v = make(Kind::kDate);
        v.min_date = Date{1900, 1, 1};
        v.max_date = Date{2024, 12, 31};
        CHECK(check(v, "01-01-1900") == "01-01-1900");
        CHECK_FALSE(check(v, "31-12-1899"));
        CHECK(check(v, "31-12-2024") == "31-12-2024");
        CHECK_FALSE(check(v, "01-01-2025"));
        v.max_date.reset();
        v.max_is_today = true;
        CHECK(check(v, "15-06-2024") == "15-06-2024");
        CHECK_FALSE(check(v, "16-06-2024"));
    }

    TEST_CASE("mobile validator accepts indian numbers with prefixes, spaces and dashes") {
        const Validator v = make(Kind::kMobile);
        CHECK(check(v, "9876543210") == "9876543210");
        CHECK(check(v, "+91 98765 43210") == "9876543210");
        CHECK(check(v, "+919876543210") == "9876543210");
        CHECK(check(v, "919876543210") == "9876543210");
        CHECK(check(v, "09876543210") == "9876543210");
        CHECK(check(v, "98765-43210") == "9876543210");
        CHECK(check(v, "६८७६५४३२१०") == "6876543210");
        CHECK(check(v, " 7000000000 ") == "7000000000");
    }

    TEST_CASE("mobile validator refuses other numbers") {
        const Validator v = make(Kind::kMobile);
        CHECK_FALSE(check(v, "5876543210"));     // must start with 6-9
        CHECK_FALSE(check(v, "987654321"));      // nine digits
        CHECK_FALSE(check(v, "98765432100"));    // eleven digits, no 0 prefix
        CHECK_FALSE(check(v, "+1 9876543210"));  // another country
        CHECK_FALSE(check(v, "+91 5876543210"));
        CHECK_FALSE(check(v, "98765x3210"));
        CHECK_FALSE(check(v, ""));
    }

    TEST_CASE("pin validator accepts six digits not starting with zero") {
        const Validator v = make(Kind::kPin);
        CHECK(check(v, "110001") == "110001");
        CHECK(check(v, " 110 001 ") == "110001");
        CHECK(check(v, "११०००१") == "110001");
        CHECK_FALSE(check(v, "010001"));
        CHECK_FALSE(check(v, "11001"));
        CHECK_FALSE(check(v, "1100011"));
        CHECK_FALSE(check(v, "11000a"));
    }

    TEST_CASE("integer validator checks the range and drops leading zeros") {
        Validator v = make(Kind::kInteger);
        v.min_int = 1;
        v.max_int = 120;
        CHECK(check(v, "42") == "42");
        CHECK(check(v, "007") == "7");
        CHECK(check(v, "+5") == "5");
        CHECK(check(v, "१२०") == "120");
        CHECK(check(v, " 1 ") == "1");
        CHECK_FALSE(check(v, "0"));
        CHECK_FALSE(check(v, "121"));
        CHECK_FALSE(check(v, "4.5"));
        CHECK_FALSE(check(v, "forty"));
        CHECK_FALSE(check(v, "-"));
        CHECK_FALSE(check(v, ""));
    }

    TEST_CASE("integer validator without bounds takes any 64-bit integer") {
        const Validator v = make(Kind::kInteger);
        CHECK(check(v, "-0") == "0");
        CHECK(check(v, "-17") == "-17");
        CHECK(check(v, "9223372036854775807") == "9223372036854775807");
        CHECK(check(v, "-9223372036854775808") == "-9223372036854775808");
        CHECK_FALSE(check(v, "9223372036854775808"));
        CHECK_FALSE(check(v, "99999999999999999999999"));
    }

    TEST_CASE("one_of validator compares normalized text and stores the authored choice") {
        Validator v = make(Kind::kOneOf);
        v.one_of = {"Male", "Female", "Other / prefer not to say", "महिला"};
        CHECK(check(v, "male") == "Male");
        CHECK(check(v, "  FEMALE! ") == "Female");
        CHECK(check(v, "other prefer not to say") == "Other / prefer not to say");
        CHECK(check(v, "महिला।") == "महिला");
        CHECK_FALSE(check(v, "mal"));
        CHECK_FALSE(check(v, "???"));
    }

    TEST_CASE("pattern validator needs the whole trimmed answer to match") {
        Validator v = make(Kind::kPattern);
        auto re = Regex::compile("[A-Z]{2}\\d{13}");
        REQUIRE(re.has_value());
        v.pattern = re.value();
        CHECK(check(v, "BN1234567890123") == "BN1234567890123");
        CHECK(check(v, "  BN1234567890123\n") == "BN1234567890123");
        CHECK(check(v, "BN१२३४५६७८९०१२३") == "BN1234567890123");
        CHECK_FALSE(check(v, "my file BN1234567890123"));
        CHECK_FALSE(check(v, "bn1234567890123"));
    }

    TEST_CASE("pattern validator without a compiled pattern refuses everything") {
        const Validator v = make(Kind::kPattern);
        CHECK_FALSE(check(v, "anything"));
    }
}
