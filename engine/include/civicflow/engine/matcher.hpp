/// Free-text matching of citizen messages against rules (keywords, phrases, RE2 patterns),
/// compiled once at load time into word indexes and one RE2::Set.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <civicflow/engine/diagnostic.hpp>
#include <civicflow/engine/regex.hpp>

namespace civicflow::engine {

/// A word or phrase as authored, with the language it belongs to ("" = every language).
struct Term {
    std::string lang;
    std::string text;
    SourceLocation location;
};

/// A regular expression as authored.
struct PatternSpec {
    std::string source;
    SourceLocation location;
};

/// One rule: what makes a message match it.
///   match:
///     keywords: [fee, fees, cost, "शुल्क"]          # any language
///     keywords: { en: [fee, cost], hi: [शुल्क, फीस] }  # or per language
///     phrases: ["how much", "कितना लगता"]
///     patterns: ['(?i)tatkal\s+fee', '(?P<ref>[A-Z]{2}\d{13})']   # named captures fill slots
struct MatchRule {
    std::vector<Term> keywords;
    std::vector<Term> phrases;
    std::vector<PatternSpec> patterns;
    SourceLocation location;
};

/// Words that mean the same, per language; each maps to its canonical (first) word.
///   synonyms:
///     en: { fee: [fees, charges, cost, price] }
///     hi: { शुल्क: [फीस, फ़ीस] }
struct Synonyms {
    // (lang, normalized word) -> normalized canonical word; lang "" for every language
    std::vector<std::pair<std::pair<std::string, std::string>, std::string>> entries;
};

/// The result of a match: which rule won and the named captures of its patterns.
struct MatchResult {
    int rule = -1;
    int score = 0;
    std::vector<std::pair<std::string, std::string>> captures;
};

/// A compiled set of rules. Scoring: each distinct keyword found scores 2 (1 when found only
/// through a one-letter typo, allowed in words of five letters or more), each phrase scores 2 per
/// word, each pattern found scores 3; the highest score wins, ties go to the rule declared first.
/// Immutable and thread-safe after build().
class TextMatcher {
public:
    /// Compiles `rules`. Invalid patterns are reported as E301 (with RE2's reason) into `diags`
    /// and left out; the rest still compile.
    static std::shared_ptr<const TextMatcher> build(
        const std::vector<MatchRule>& rules, const Synonyms& synonyms, Diagnostics& diags
    );

    /// Matches a message. `raw` is the text as received (patterns see it with Indian digits read as
    /// ASCII); `normalized` is normalize(raw). Only terms of `lang` or of every language count.
    std::optional<MatchResult> match(
        std::string_view raw, std::string_view normalized, std::string_view lang
    ) const;

    std::size_t rule_count() const { return rule_count_; }

    struct Index;
    ~TextMatcher();
    TextMatcher(const TextMatcher&) = delete;
    TextMatcher& operator=(const TextMatcher&) = delete;
    TextMatcher();

private:
    std::size_t rule_count_ = 0;
    std::unique_ptr<Index> index_;
};

}  // namespace civicflow::engine
