#include <doctest/doctest.h>

#include <civicflow/engine/duration.hpp>

using civicflow::engine::parse_duration_ms;

TEST_SUITE("engine/duration") {
    TEST_CASE("a whole number and one unit is a duration") {
        CHECK(parse_duration_ms("90s") == 90'000);
        CHECK(parse_duration_ms("30m") == 1'800'000);
        CHECK(parse_duration_ms("2h") == 7'200'000);
        CHECK(parse_duration_ms("1d") == 86'400'000);
        CHECK(parse_duration_ms("0s") == 0);
        CHECK(parse_duration_ms("365d") == 365LL * 86'400'000);
    }

    TEST_CASE("anything else is refused") {
        for (const char* bad :
             {"",
              "s",
              "30",
              "1.5h",
              "-2m",
              "+2m",
              "30 m",
              "2w",
              "m30",
              "366d",
              "99999999999999999999s"}) {
            CHECK_FALSE_MESSAGE(parse_duration_ms(bad).has_value(), bad);
        }
    }
}
