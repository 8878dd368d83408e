#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <civicflow/engine/matcher.hpp>
#include <civicflow/engine/text_normalize.hpp>

using civicflow::engine::Diagnostics;
using civicflow::engine::MatchResult;
using civicflow::engine::MatchRule;
using civicflow::engine::normalize;
using civicflow::engine::PatternSpec;
using civicflow::engine::Severity;
using civicflow::engine::SourceLocation;
using civicflow::engine::Synonyms;
using civicflow::engine::Term;
using civicflow::engine::TextMatcher;

namespace {

using Captures = std::vector<std::pair<std::string, std::string>>;

MatchRule keywords(std::vector<std::string> words, const std::string& lang = "") {
    MatchRule rule;
    for (auto& w : words) {
        rule.keywords.push_back(Term{lang, std::move(w), {}});
    }
    return rule;
}

MatchRule phrases(std::vector<std::string> texts, const std::string& lang = "") {
    MatchRule rule;
    for (auto& t : texts) {
        rule.phrases.push_back(Term{lang, std::move(t), {}});
    }
    return rule;
}

MatchRule patterns(std::vector<std::string> sources) {
    MatchRule rule;
    for (auto& s : sources) {
        rule.patterns.push_back(PatternSpec{std::move(s), {}});
    }
    return rule;
}

struct Built {
    std::shared_ptr<const TextMatcher> matcher;
    Diagnostics diags;

    std::optional<MatchResult> match(const std::string& text, const std::string& lang = "en")
        const {
        return matcher->match(text, normalize(text), lang);
    }

    /// The winning rule, or -1.
    int rule(const std::string& text, const std::string& lang = "en") const {
        auto result = match(text, lang);
        return result ? result->rule : -1;
    }

    int score(const std::string& text, const std::string& lang = "en") const {
        auto result = match(text, lang);
        return result ? result->score : 0;
    }
};

Built build(const std::vector<MatchRule>& rules, const Synonyms& synonyms = {}) {
    Built built;
    built.matcher = TextMatcher::build(rules, synonyms, built.diags);
    return built;
}

Synonyms synonyms(std::vector<std::pair<std::pair<std::string, std::string>, std::string>> entries
) {
    Synonyms s;
    s.entries = std::move(entries);
    return s;
}

}  // namespace

TEST_SUITE("engine/matcher") {
    TEST_CASE("a keyword matches regardless of case and punctuation") {
        auto m = build({keywords({"fee"}), keywords({"hours"})});
        CHECK(m.matcher->rule_count() == 2);
        CHECK(m.rule("What is the FEE?") == 0);
        CHECK(m.rule("office hours!!") == 1);
        CHECK(m.rule("nothing related") == -1);
        CHECK_FALSE(m.match("").has_value());
        CHECK(m.diags.empty());
    }

    TEST_CASE("keywords match whole words only") {
        auto m = build({keywords({"fee"})});
        CHECK(m.rule("feedback") == -1);
        CHECK(m.rule("coffee") == -1);
    }

    TEST_CASE("each distinct keyword scores two points once") {
        auto m = build({keywords({"passport", "fee", "renew"})});
        CHECK(m.score("passport") == 2);
        CHECK(m.score("passport fee") == 4);
        CHECK(m.score("fee fee fee") == 2);
        CHECK(m.score("renew passport fee") == 6);
    }

    TEST_CASE("the highest score wins and ties go to the rule declared first") {
        auto m =
            build({keywords({"passport"}), keywords({"passport", "lost"}), keywords({"lost"})});
        CHECK(m.rule("passport") == 0);
        CHECK(m.rule("lost passport") == 1);
        CHECK(m.rule("lost") == 1);
    }

    TEST_CASE("one typo is accepted in keywords of five letters or more") {
        auto m = build({keywords({"passport"}), keywords({"hours"})});
        CHECK(m.rule("pasport") == 0);    // deletion
        CHECK(m.rule("passsport") == 0);  // insertion
        CHECK(m.rule("passpord") == 0);   // substitution
        CHECK(m.rule("psasport") == 0);   // transposition
        CHECK(m.rule("hours") == 1);
        CHECK(m.rule("huors") == 1);
        CHECK(m.rule("hour") == 1);  // a deletion may leave four letters
        CHECK(m.score("pasport") == 1);
        CHECK(m.score("passport") == 2);
    }

    TEST_CASE("two typos are refused") {
        auto m = build({keywords({"passport"})});
        CHECK(m.rule("pasprot") == -1);
        CHECK(m.rule("paspor") == -1);
        CHECK(m.rule("bassbort") == -1);
    }

    TEST_CASE("no typo is accepted in keywords shorter than five letters") {
        auto m = build({keywords({"fee"}), keywords({"form"})});
        CHECK(m.rule("fes") == -1);
        CHECK(m.rule("foem") == -1);
        CHECK(m.rule("forms") == -1);
        CHECK(m.rule("fee") == 0);
    }

    TEST_CASE("typos work in hindi by code point") {
        auto m = build({keywords({"पासपोर्ट"}, "hi")});
        CHECK(m.rule("पसपोर्ट", "hi") == 0);  // one vowel sign dropped
        CHECK(m.score("पसपोर्ट", "hi") == 1);
    }

    TEST_CASE("an exact keyword beats a typo of another rule's keyword") {
        auto m = build({keywords({"hours"}), keywords({"house"})});
        CHECK(m.rule("house") == 1);
        CHECK(m.score("house") == 2);
        CHECK(m.rule("hours") == 0);
    }

    TEST_CASE("a keyword found exactly and through a typo counts once at two points") {
        auto m = build({keywords({"passport"})});
        CHECK(m.score("pasport passport") == 2);
    }

    TEST_CASE("synonyms map words to their canonical keyword") {
        auto syn = synonyms(
            {{{"en", "fees"}, "fee"},
             {{"en", "charges"}, "fee"},
             {{"en", "cost"}, "fee"},
             {{"hi", "फ़ीस"}, "शुल्क"},
             {{"hi", "फीस"}, "शुल्क"}}
        );
        auto m = build({keywords({"fee"}, "en"), keywords({"शुल्क"}, "hi")}, syn);
        CHECK(m.rule("how much does it cost", "en") == 0);
        CHECK(m.rule("Charges?", "en") == 0);
        CHECK(m.rule("फीस कितनी है", "hi") == 1);
        CHECK(m.rule("फ़ीस", "hi") == 1);
        // Synonyms of one language do not apply to another.
        CHECK(m.rule("cost", "hi") == -1);
    }

    TEST_CASE("a keyword listed as a synonym matches its canonical word and the other synonyms") {
        auto syn = synonyms({{{"en", "fees"}, "fee"}, {{"en", "charges"}, "fee"}});
        auto m = build({keywords({"charges"}, "en")}, syn);
        CHECK(m.rule("fee", "en") == 0);
        CHECK(m.rule("fees", "en") == 0);
        CHECK(m.rule("charges", "en") == 0);
    }

    TEST_CASE("synonyms that share a canonical word count as one keyword") {
        auto syn = synonyms({{{"en", "fees"}, "fee"}});
        auto m = build({keywords({"fee", "fees"}, "en")}, syn);
        CHECK(m.score("fee fees", "en") == 2);
    }

    TEST_CASE("a typo in a synonym still finds the canonical keyword") {
        auto syn = synonyms({{{"en", "charges"}, "fee"}});
        auto m = build({keywords({"fee"}, "en")}, syn);
        CHECK(m.rule("chargse", "en") == 0);
        CHECK(m.score("chargse", "en") == 1);
    }

    TEST_CASE("an every-language keyword uses each language's synonyms") {
        auto syn = synonyms({{{"en", "fees"}, "fee"}});
        auto m = build({keywords({"fees"})}, syn);
        CHECK(m.rule("fee", "en") == 0);
        CHECK(m.rule("fees", "en") == 0);
        CHECK(m.rule("fees", "hi") == 0);
        CHECK(m.rule("fee", "hi") == -1);  // "fee" means "fees" only in English
    }

    TEST_CASE("every-language synonyms apply in every language") {
        auto syn = synonyms({{{"", "pp"}, "passport"}});
        auto m = build({keywords({"passport"}, "en"), keywords({"passport"}, "hi")}, syn);
        CHECK(m.rule("lost pp", "en") == 0);
        CHECK(m.rule("lost pp", "hi") == 1);
    }

    TEST_CASE("terms of another language do not count") {
        auto m = build({keywords({"fee"}, "en"), keywords({"शुल्क"}, "hi"), keywords({"menu"})});
        CHECK(m.rule("fee", "en") == 0);
        CHECK(m.rule("fee", "hi") == -1);
        CHECK(m.rule("शुल्क", "hi") == 1);
        CHECK(m.rule("शुल्क", "en") == -1);
        CHECK(m.rule("menu", "hi") == 2);
        CHECK(m.rule("menu", "ta") == 2);  // a language no term names: only every-language terms
        CHECK(m.rule("fee", "ta") == -1);
    }

    TEST_CASE("a phrase matches its words in sequence and scores two per word") {
        auto m = build({phrases({"how much"}), keywords({"much"}), phrases({"कितना लगता"}, "hi")});
        CHECK(m.rule("How much is it?") == 0);
        CHECK(m.score("How much is it?") == 4);
        CHECK(m.rule("much how") == 1);
        CHECK(m.rule("how is much") == 1);
        CHECK(m.rule("कितना लगता है", "hi") == 2);
        CHECK(m.rule("कितना लगता है", "en") == -1);
    }

    TEST_CASE("a phrase at the end of the message and a phrase longer than the message") {
        auto m = build({phrases({"renew my passport"})});
        CHECK(m.rule("please renew my passport") == 0);
        CHECK(m.score("please renew my passport") == 6);
        CHECK(m.rule("renew my") == -1);
    }

    TEST_CASE("phrases use synonyms") {
        auto syn = synonyms({{{"en", "fees"}, "fee"}});
        auto m = build({phrases({"tatkal fee"}, "en")}, syn);
        CHECK(m.rule("what are tatkal fees", "en") == 0);
    }

    TEST_CASE("a keyword of several words must appear as a sequence and scores two") {
        auto m = build({keywords({"main menu"})});
        CHECK(m.rule("back to main menu") == 0);
        CHECK(m.score("back to main menu") == 2);
        CHECK(m.rule("menu main") == -1);
    }

    TEST_CASE("a pattern scores three and fills named captures") {
        auto m = build({keywords({"status"}), patterns({"(?P<ref>[A-Z]{2}\\d{13})"})});
        auto result = m.match("status of BN1234567890123");
        REQUIRE(result.has_value());
        CHECK(result->rule == 1);
        CHECK(result->score == 3);
        CHECK(result->captures == Captures{{"ref", "BN1234567890123"}});
    }

    TEST_CASE("patterns see indian digits as ascii digits") {
        auto m = build({patterns({"(?P<pin>\\b\\d{6}\\b)"})});
        auto result = m.match("मेरा पिन ११०००१ है", "hi");
        REQUIRE(result.has_value());
        CHECK(result->captures == Captures{{"pin", "110001"}});
    }

    TEST_CASE("patterns run on the raw text, not the normalized one") {
        auto m = build({patterns({"^[A-Z]{2}-\\d+$"})});
        CHECK(m.rule("BN-42") == 0);
        CHECK(m.rule("bn-42") == -1);
    }

    TEST_CASE("only the winning rule's patterns give captures") {
        auto m = build(
            {patterns({"(?P<a>\\d+)"}),
             MatchRule{{}, {}, {PatternSpec{"(?P<b>\\d+)", {}}, PatternSpec{"(?P<c>x)", {}}}, {}}}
        );
        auto result = m.match("x 12");
        REQUIRE(result.has_value());
        CHECK(result->rule == 1);
        CHECK(result->score == 6);
        CHECK(result->captures == Captures{{"b", "12"}, {"c", "x"}});
    }

    TEST_CASE("keywords, phrases and patterns add up") {
        auto m = build({
            keywords({"lost"}),
            MatchRule{
                {Term{"", "passport", {}}},
                {Term{"", "i lost", {}}},
                {PatternSpec{"(?i)stolen", {}}},
                {}},
        });
        CHECK(m.rule("I lost my passport") == 1);
        CHECK(m.score("I lost my passport") == 6);
        CHECK(m.score("i lost my passport, it was stolen") == 9);
    }

    TEST_CASE("an invalid pattern is reported as e301 and left out") {
        SourceLocation at{"flows/passport.yaml", 14, 19};
        MatchRule bad;
        bad.patterns.push_back(PatternSpec{"(?i)\\b(lost|stolen)\\b(", at});
        bad.patterns.push_back(PatternSpec{"(?i)tatkal", {}});
        auto m = build({bad, keywords({"fee"})});
        REQUIRE(m.diags.items().size() == 1);
        const auto& d = m.diags.items().front();
        CHECK(d.severity == Severity::kError);
        CHECK(d.code == "E301");
        CHECK(d.location.file == "flows/passport.yaml");
        CHECK(d.location.line == 14);
        CHECK(d.location.column == 19);
        CHECK(d.message == "invalid regular expression: missing ): (?i)\\b(lost|stolen)\\b(");
        CHECK(d.hint == "patterns use RE2 syntax; named groups are written (?P<name>...)");
        CHECK(d.length == 22);
        // The valid pattern of the same rule and the other rules still work.
        CHECK(m.rule("Tatkal please") == 0);
        CHECK(m.rule("fee") == 1);
        CHECK(m.rule("lost (") == -1);
    }

    TEST_CASE("empty and punctuation-only terms are ignored") {
        auto m = build({keywords({"", "?!"}), keywords({"fee"})});
        CHECK(m.rule("fee") == 1);
        CHECK(m.rule("?!") == -1);
    }

    TEST_CASE("a matcher without rules matches nothing") {
        auto m = build({});
        CHECK(m.matcher->rule_count() == 0);
        CHECK_FALSE(m.match("anything").has_value());
    }

    TEST_CASE("one matcher answers several threads at once") {
        // match() keeps its working memory per thread; two threads with different messages must
        // not see each other's scores.
        auto m = build({keywords({"passport", "renew"}), keywords({"pension", "status"})});
        auto run = [&m](const std::string& text, int expected, int& wrong) {
            const std::string norm = normalize(text);
            for (int i = 0; i < 2000; ++i) {
                auto result = m.matcher->match(text, norm, "en");
                if (!result || result->rule != expected || result->score != 4) {
                    ++wrong;
                }
            }
        };
        int wrong_a = 0;
        int wrong_b = 0;
        std::thread a(run, "renew my passport", 0, std::ref(wrong_a));
        std::thread b(run, "pension status please", 1, std::ref(wrong_b));
        a.join();
        b.join();
        CHECK(wrong_a == 0);
        CHECK(wrong_b == 0);
    }

    TEST_CASE("a match among a thousand rules finds the one rule with a typo") {
        // How fast is measured by bench/engine (engine_bench), never asserted here.
        std::vector<MatchRule> rules;
        for (int i = 0; i < 1000; ++i) {
            const std::string n = std::to_string(i);
            MatchRule rule = keywords({"topic" + n, "subject" + n, "x" + n});
            rule.phrases.push_back(Term{"", "question number " + n, {}});
            if (i % 10 == 0) {
                rule.patterns.push_back(PatternSpec{"(?i)form\\s*" + n + "\\b", {}});
            }
            rules.push_back(std::move(rule));
        }
        auto m = build(rules);
        const std::string text = "Hello, I have a question about topc512 please";
        const std::string norm = normalize(text);
        REQUIRE(m.matcher->match(text, norm, "en")->rule == 512);
        CHECK(m.matcher->match("form 40", normalize("form 40"), "en")->rule == 40);
    }
}
