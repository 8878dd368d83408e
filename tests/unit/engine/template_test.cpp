#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <civicflow/engine/template.hpp>

using civicflow::engine::Diagnostic;
using civicflow::engine::Diagnostics;
using civicflow::engine::LocalizedText;
using civicflow::engine::Severity;
using civicflow::engine::Slots;
using civicflow::engine::SourceLocation;
using civicflow::engine::Template;

namespace {

const SourceLocation kAt{"flows/passport.yaml", 12, 10};

Template parse_ok(std::string_view source) {
    Diagnostics diags;
    Template t = Template::parse(source, diags, kAt);
    CHECK(diags.empty());
    return t;
}

/// Parses a template expected to have exactly one diagnostic and returns it.
Diagnostic one_error(std::string_view source, const SourceLocation& at = kAt) {
    Diagnostics diags;
    Template t = Template::parse(source, diags, at);
    REQUIRE(diags.items().size() == 1);
    // A broken template renders its source verbatim.
    CHECK(t.render({}) == source);
    CHECK(t.all_slots().empty());
    return diags.items().front();
}

std::string render(std::string_view source, const Slots& slots) {
    return parse_ok(source).render(slots);
}

LocalizedText::Variant variant(std::string lang, std::string_view text) {
    return LocalizedText::Variant{std::move(lang), Template::literal(text), {}};
}

}  // namespace

TEST_SUITE("engine/template") {
    TEST_CASE("plain text renders as it is") {
        const Template t = parse_ok("Office hours are 9:00-17:30 { not a slot }.");
        CHECK(t.is_plain());
        CHECK(t.render({}) == "Office hours are 9:00-17:30 { not a slot }.");
        CHECK(t.source() == "Office hours are 9:00-17:30 { not a slot }.");
        CHECK(parse_ok("").render({}) == "");
        CHECK(parse_ok("").is_plain());
        CHECK(render("closing }} alone", {}) == "closing }} alone");
    }

    TEST_CASE("slots are replaced with or without spaces inside the braces") {
        const Slots slots{{"ref", "BN123"}, {"name", "Asha"}};
        CHECK(render("File {{ ref }} for {{name}}.", slots) == "File BN123 for Asha.");
        CHECK(render("{{  ref\t}}{{ref}}", slots) == "BN123BN123");
        CHECK_FALSE(parse_ok("{{ ref }}").is_plain());
    }

    TEST_CASE("a missing slot renders empty and is reported") {
        const Template t = parse_ok("Hello {{ name }}, file {{ ref }} ({{ name }})");
        std::vector<std::string> missing;
        CHECK(t.render({{"ref", "BN1"}}, &missing) == "Hello , file BN1 ()");
        CHECK(missing == std::vector<std::string>{"name", "name"});
        CHECK(t.render({{"ref", "BN1"}}) == "Hello , file BN1 ()");  // missing is optional
    }

    TEST_CASE("a slot set to the empty string is not missing") {
        std::vector<std::string> missing;
        CHECK(parse_ok("[{{ ward }}]").render({{"ward", ""}}, &missing) == "[]");
        CHECK(missing.empty());
    }

    TEST_CASE("default applies when the slot is unset or empty") {
        const Template t = parse_ok("Ward: {{ ward | default: \"not given\" }}");
        std::vector<std::string> missing;
        CHECK(t.render({}, &missing) == "Ward: not given");
        CHECK(t.render({{"ward", ""}}, &missing) == "Ward: not given");
        CHECK(t.render({{"ward", "12"}}, &missing) == "Ward: 12");
        CHECK(missing.empty());
        CHECK(render("{{ ward | default: 'single quotes' }}", {}) == "single quotes");
        CHECK(render("{{ x | default: \"a | b }} c\" }}", {}) == "a | b }} c");
    }

    TEST_CASE("upper and lower change the case of the supported scripts") {
        const Slots slots{{"ref", "bn12ab"}, {"name", "ÉLODIE Жанна"}};
        CHECK(render("{{ ref | upper }}", slots) == "BN12AB");
        CHECK(render("{{ name | lower }}", slots) == "élodie жанна");
        CHECK(render("{{ name | upper }}", slots) == "ÉLODIE ЖАННА");
    }

    TEST_CASE("url percent-encodes everything but the unreserved characters") {
        const Slots slots{{"q", "a b/c?d=e&f~g_h.i-j"}, {"hi", "नमस्ते"}};
        CHECK(
            render("/search?q={{ q | url }}", slots) == "/search?q=a%20b%2Fc%3Fd%3De%26f~g_h.i-j"
        );
        CHECK(
            render("{{ hi | url }}", slots) ==
            "%E0%A4%A8%E0%A4%AE%E0%A4%B8%E0%A5%8D%E0%A4%A4%E0%A5%87"
        );
    }

    TEST_CASE("date formats dd-mm-yyyy and iso dates with every token") {
        const Slots slots{
            {"dob", "05-03-2024"}, {"updated", "2023-11-09T14:05:00Z"}, {"day", "2024-01-31"}};
        CHECK(render("{{ dob | date: \"DD Mon YYYY\" }}", slots) == "05 Mar 2024");
        CHECK(render("{{ dob | date: \"D Month YYYY\" }}", slots) == "5 March 2024");
        CHECK(render("{{ dob | date: \"MM/DD/YYYY\" }}", slots) == "03/05/2024");
        CHECK(render("{{ dob | date: 'D.M.YYYY' }}", slots) == "5.3.2024");
        CHECK(render("{{ updated | date: \"DD Mon YYYY\" }}", slots) == "09 Nov 2023");
        CHECK(render("{{ day | date: \"Month D, YYYY\" }}", slots) == "January 31, 2024");
    }

    TEST_CASE("date leaves values it cannot read unchanged") {
        const Slots slots{
            {"a", "soon"}, {"b", "2023-02-30"}, {"c", "31-04-2024"}, {"d", "2023-1-05"}};
        CHECK(render("{{ a | date: \"DD Mon YYYY\" }}", slots) == "soon");
        CHECK(render("{{ b | date: \"DD Mon YYYY\" }}", slots) == "2023-02-30");
        CHECK(render("{{ c | date: \"DD Mon YYYY\" }}", slots) == "31-04-2024");
        CHECK(render("{{ d | date: \"DD Mon YYYY\" }}", slots) == "2023-1-05");
    }

    TEST_CASE("filters apply left to right") {
        CHECK(
            render("{{ dob | default: \"01-01-2000\" | date: \"DD Mon YYYY\" | upper }}", {}) ==
            "01 JAN 2000"
        );
        CHECK(render("{{ x | upper | default: \"n/a\" }}", {}) == "n/a");
        const Template t = parse_ok("{{ x | upper | url }}");
        CHECK(t.render({{"x", "a b"}}) == "A%20B");
    }

    TEST_CASE("required_slots leaves out slots read with a default and all_slots lists each once") {
        const Template t =
            parse_ok("{{ name }} {{ ward | default: \"-\" }} {{ name | upper }} {{ profile_name }}"
            );
        CHECK(t.required_slots() == std::vector<std::string>{"name", "profile_name"});
        CHECK(t.all_slots() == std::vector<std::string>{"name", "ward", "profile_name"});
    }

    TEST_CASE("literal parses built-in templates") {
        const Template t = Template::literal("Welcome back! You were in {{ flow_title }}.");
        CHECK(
            t.render({{"flow_title", "Passport services"}}) ==
            "Welcome back! You were in Passport services."
        );
        CHECK(Template::literal("broken {{").render({}) == "broken {{");
    }

    TEST_CASE("an unclosed slot is e401 at the braces") {
        const Diagnostic d = one_error("Hello {{ name");
        CHECK(d.severity == Severity::kError);
        CHECK(d.code == "E401");
        CHECK(d.location.file == "flows/passport.yaml");
        CHECK(d.location.line == 12);
        CHECK(d.location.column == 16);
        CHECK(d.message == "unclosed '{{' in template");
        CHECK(d.hint == "close the slot with '}}', e.g. {{ name }}");
        CHECK(d.length == 2);
    }

    TEST_CASE("empty braces are e401") {
        const Diagnostic d = one_error("a {{ }} b");
        CHECK(d.code == "E401");
        CHECK(d.location.column == 12);
        CHECK(d.message == "empty '{{ }}' in template");
        CHECK(d.hint == "write a slot name between the braces, e.g. {{ name }}");
        CHECK(d.length == 5);
        CHECK(one_error("{{| upper }}").message == "empty '{{ }}' in template");
    }

    TEST_CASE("a bad slot name is e401 at the name") {
        const Diagnostic d = one_error("Hi {{ Name }}");
        CHECK(d.code == "E401");
        CHECK(d.location.column == 16);
        CHECK(d.message == "invalid slot name 'Name' in template");
        CHECK(
            d.hint == "slot names are lowercase letters, digits and '_', not starting with a digit"
        );
        CHECK(d.length == 4);
        CHECK(one_error("{{ 1st }}").message == "invalid slot name '1st' in template");
        CHECK(one_error("{{ a-b }}").message == "invalid slot name 'a-b' in template");
        CHECK(one_error("{{ two words }}").message == "invalid slot name 'two words' in template");
        CHECK(parse_ok("{{ _private9 }}").all_slots() == std::vector<std::string>{"_private9"});
    }

    TEST_CASE("an unknown filter is e403 with a did-you-mean hint") {
        const Diagnostic d = one_error("{{ ref | uper }}");
        CHECK(d.code == "E403");
        CHECK(d.location.column == 19);
        CHECK(d.message == "unknown filter 'uper' in template");
        CHECK(d.hint == "did you mean 'upper'?");
        CHECK(d.length == 4);
        CHECK(one_error("{{ d | dat: \"DD\" }}").hint == "did you mean 'date'?");
        CHECK(one_error("{{ d | defualt: \"x\" }}").hint == "did you mean 'default'?");
    }

    TEST_CASE("an unknown filter far from every name lists the filters") {
        const Diagnostic d = one_error("{{ ref | capitalize }}");
        CHECK(d.code == "E403");
        CHECK(d.message == "unknown filter 'capitalize' in template");
        CHECK(d.hint == "filters are url, upper, lower, date, default");
    }

    TEST_CASE("filter arguments are checked") {
        const Diagnostic needs = one_error("{{ d | date }}");
        CHECK(needs.code == "E401");
        CHECK(needs.message == "filter 'date' needs an argument");
        CHECK(needs.hint == "write it as date: \"DD Mon YYYY\"");
        CHECK(needs.location.column == 17);
        CHECK(needs.length == 4);

        const Diagnostic unquoted = one_error("{{ d | default: none }}");
        CHECK(unquoted.message == "the argument of filter 'default' must be one quoted string");
        CHECK(unquoted.hint == "write it as default: \"not given\"");
        CHECK(unquoted.location.column == 26);

        CHECK(one_error("{{ d | default: \"open }}").message == "unclosed '{{' in template");
        CHECK(
            one_error("{{ d | default: \"a\" \"b\" }}").message ==
            "the argument of filter 'default' must be one quoted string"
        );
        const Diagnostic extra = one_error("{{ d | upper: \"x\" }}");
        CHECK(extra.message == "filter 'upper' takes no argument");
        CHECK(extra.hint == "filters are url, upper, lower, date, default");
        CHECK(one_error("{{ d | }}").message == "missing filter after '|' in template");
    }

    TEST_CASE("every error of a template is reported") {
        Diagnostics diags;
        const Template t = Template::parse("{{ Bad }} and {{ ok | nope }} and {{ }}", diags, kAt);
        REQUIRE(diags.items().size() == 3);
        CHECK(diags.items()[0].code == "E401");
        CHECK(diags.items()[1].code == "E403");
        CHECK(diags.items()[2].code == "E401");
        CHECK(t.render({{"ok", "x"}}) == "{{ Bad }} and {{ ok | nope }} and {{ }}");
    }

    TEST_CASE("a multi-line template reports at its own location") {
        const Diagnostic d = one_error("line one\n{{ Bad }}");
        CHECK(d.location.line == 12);
        CHECK(d.location.column == 10);
    }

    TEST_CASE("the column advances by characters after non-ascii text") {
        // "नमस्ते " is 7 characters (code points, as every diagnostic column counts), 19 bytes.
        const Diagnostic d = one_error("नमस्ते {{ x | nope }}");
        CHECK(d.location.column == 10 + 7 + 7);
    }

    TEST_CASE("filters are parsed with their kind and argument") {
        Diagnostics diags;
        const Template t = Template::parse(
            "{{ a | url | upper | lower | date: \"D\" | default: 'x' }}", diags, kAt
        );
        CHECK(diags.empty());
        CHECK(t.required_slots().empty());
        CHECK(t.render({{"a", "A B"}}) == "a%20b");
    }

    TEST_CASE("localized text picks the language, then every-language text, then the fallback") {
        const LocalizedText text({variant("en", "Hello"), variant("hi", "नमस्ते")});
        CHECK(text.pick("hi", "en")->render({}) == "नमस्ते");
        CHECK(text.pick("ta", "en")->render({}) == "Hello");
        CHECK(text.pick("ta", "hi")->render({}) == "नमस्ते");
        CHECK(text.pick("ta", "bn")->render({}) == "Hello");  // the first
        CHECK(text.has("hi"));
        CHECK_FALSE(text.has("ta"));
        CHECK_FALSE(text.empty());

        const LocalizedText every({variant("", "Same for all")});
        CHECK(every.pick("hi", "en")->render({}) == "Same for all");
        CHECK(every.has("ta"));
    }

    TEST_CASE("localized text renders with slots and reports missing ones") {
        const LocalizedText text({variant("en", "File {{ ref }}"), variant("hi", "फ़ाइल {{ ref }}")}
        );
        std::vector<std::string> missing;
        CHECK(text.render("hi", "en", {{"ref", "BN1"}}, &missing) == "फ़ाइल BN1");
        CHECK(text.render("en", "en", {}, &missing) == "File ");
        CHECK(missing == std::vector<std::string>{"ref"});
    }

    TEST_CASE("empty localized text renders nothing") {
        const LocalizedText none;
        CHECK(none.empty());
        CHECK(none.pick("en", "en") == nullptr);
        CHECK(none.render("en", "en", {}) == "");
        CHECK_FALSE(none.has("en"));
    }
}
