#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include <civicflow/engine/regex.hpp>

using civicflow::engine::pattern_hint;
using civicflow::engine::Regex;
using civicflow::engine::RegexSet;

namespace {

using Captures = std::vector<std::pair<std::string, std::string>>;

std::shared_ptr<const Regex> must_compile(std::string_view pattern) {
    auto compiled = Regex::compile(pattern);
    REQUIRE(compiled.has_value());
    return compiled.value();
}

}  // namespace

TEST_SUITE("engine/regex") {
    TEST_CASE("compile reports re2's reason for an invalid pattern") {
        auto missing_paren = Regex::compile("(?i)\\b(lost");
        REQUIRE_FALSE(missing_paren.has_value());
        CHECK(missing_paren.error().message == "missing ): (?i)\\b(lost");

        auto bad_repeat = Regex::compile("a**");
        REQUIRE_FALSE(bad_repeat.has_value());
        CHECK(bad_repeat.error().message == "bad repetition operator: **");

        auto bad_group = Regex::compile("(?<ref>x)");
        REQUIRE_FALSE(bad_group.has_value());
        CHECK(bad_group.error().message == "invalid perl operator: (?<");
    }

    TEST_CASE("the hint of an invalid pattern names what RE2 lacks") {
        CHECK(
            pattern_hint("(?<=Rs)\\d+").find("no look-ahead or look-behind") != std::string::npos
        );
        CHECK(pattern_hint("fee(?!s)").find("no look-ahead or look-behind") != std::string::npos);
        CHECK(pattern_hint("(a)\\1").find("no back-references") != std::string::npos);
        CHECK(
            pattern_hint("a\\\\1") ==
            "patterns use RE2 syntax; named groups are written (?P<name>...)"
        );
        CHECK(
            pattern_hint("(?<name>x)") ==
            "patterns use RE2 syntax; named groups are written (?P<name>...)"
        );
    }

    TEST_CASE("full_match needs the whole text to match") {
        auto re = must_compile("[A-Z]{2}\\d{13}");
        CHECK(re->full_match("BN1234567890123"));
        CHECK_FALSE(re->full_match("BN1234567890123 "));
        CHECK_FALSE(re->full_match("x BN1234567890123"));
        CHECK(re->pattern() == "[A-Z]{2}\\d{13}");
    }

    TEST_CASE("patterns are utf-8 aware") {
        auto re = must_compile("^.{5}$");
        CHECK(re->full_match("शुल्क"));  // five code points, fifteen bytes
        auto hindi = must_compile("(?i)पासपोर्ट\\s+शुल्क");
        CHECK(hindi->search("मेरा पासपोर्ट  शुल्क?", nullptr));
    }

    TEST_CASE("search finds a match anywhere and returns named captures in order") {
        auto re = must_compile("(?P<ref>[A-Z]{2}\\d{4})(?:-(?P<year>\\d{4}))?");
        Captures captures;
        REQUIRE(re->search("my file is BN1234-2023, thanks", &captures));
        CHECK(captures == Captures{{"ref", "BN1234"}, {"year", "2023"}});
        CHECK(re->group_names() == std::vector<std::string>{"ref", "year"});
    }

    TEST_CASE("search leaves out named groups that did not take part") {
        auto re = must_compile("(?P<ref>[A-Z]{2}\\d{4})(?:-(?P<year>\\d{4}))?");
        Captures captures;
        REQUIRE(re->search("BN1234", &captures));
        CHECK(captures == Captures{{"ref", "BN1234"}});
    }

    TEST_CASE("search without a match leaves the captures untouched") {
        auto re = must_compile("(?P<ref>\\d+)");
        Captures captures{{"earlier", "value"}};
        CHECK_FALSE(re->search("no digits here", &captures));
        CHECK(captures == Captures{{"earlier", "value"}});
        CHECK(re->search("42", nullptr));
    }

    TEST_CASE("search keeps empty captures of groups that matched nothing") {
        auto re = must_compile("a(?P<mid>x*)b");
        Captures captures;
        REQUIRE(re->search("ab", &captures));
        CHECK(captures == Captures{{"mid", ""}});
    }

    TEST_CASE("group_names ignores unnamed groups") {
        auto re = must_compile("(a)(?P<second>b)(c)(?P<fourth>d)");
        CHECK(re->group_names() == std::vector<std::string>{"second", "fourth"});
        CHECK(must_compile("plain")->group_names().empty());
    }

    TEST_CASE("regex set reports every matching pattern in ascending order") {
        auto set = RegexSet::build({"(?i)tatkal", "\\d{6}", "lost|stolen", "(?i)\\bfee\\b"});
        REQUIRE(set.has_value());
        CHECK(set.value()->size() == 4);
        std::vector<int> hits{99};
        set.value()->matches("My passport was stolen, TATKAL please, pin 110001", hits);
        CHECK(hits == std::vector<int>{0, 1, 2});
        set.value()->matches("what is the Fee?", hits);
        CHECK(hits == std::vector<int>{3});
        set.value()->matches("nothing", hits);
        CHECK(hits.empty());
    }

    TEST_CASE("an empty regex set matches nothing") {
        auto set = RegexSet::build({});
        REQUIRE(set.has_value());
        std::vector<int> hits{1};
        set.value()->matches("anything", hits);
        CHECK(hits.empty());
        CHECK(set.value()->size() == 0);
    }

    TEST_CASE("regex set refuses an invalid pattern with re2's reason") {
        auto set = RegexSet::build({"ok", "(unclosed"});
        REQUIRE_FALSE(set.has_value());
        CHECK(set.error().message == "missing ): (unclosed");
    }
}
