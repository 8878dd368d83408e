#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <tuple>

#include <civicflow/engine/matcher.hpp>
#include <civicflow/engine/text_normalize.hpp>

namespace civicflow::engine {

namespace {

/// Keywords of five code points or more accept one typo (citizens type on phone keyboards);
/// shorter words are too easily confused ("fee"/"few").
constexpr std::size_t kTypoMinLength = 5;
/// Longer words are not typo-indexed: no keyword is that long, and it bounds the stack buffers.
constexpr std::size_t kTypoMaxLength = 48;
/// Sequences longer than this many words are not indexed (the length mask has 64 bits).
constexpr std::size_t kMaxSequenceWords = 64;

constexpr int kKeywordScore = 2;
constexpr int kTypoScore = 1;
constexpr int kPhraseWordScore = 2;
constexpr int kPatternScore = 3;

// ---------------------------------------------------------------------------------------------
// Hashing. Every lookup on the per-message path goes through HashIndex, a flat open-addressing
// table of 64-bit hashes: one multiply-heavy hash per word and a cache-friendly probe, instead of
// std::unordered_map's node chasing. Candidates are always verified (string equality or
// edit_distance), so a hash collision costs time, never a wrong answer.

inline std::uint64_t mix64(std::uint64_t x) {
    // splitmix64's finalizer: spreads every input bit over the low bits used for the slot.
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return x;
}

inline std::uint64_t hash_bytes(std::string_view text) {
    std::uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a
    for (char c : text) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001B3ULL;
    }
    return mix64(h ^ text.size());
}

/// A multimap from 64-bit hash to int, built once (add) and then only read (find).
class HashIndex {
public:
    void add(std::uint64_t hash, int value) {
        if ((count_ + 1) * 2 > slots_.size()) {
            grow();
        }
        place(hash, value);
        ++count_;
    }

    /// Calls visit(value) for each value stored under `hash` until visit returns true.
    template <typename Visit>
    void find(std::uint64_t hash, Visit&& visit) const {
        if (slots_.empty()) {
            return;
        }
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t i = hash & mask; slots_[i].value >= 0; i = (i + 1) & mask) {
            if (slots_[i].hash == hash && visit(slots_[i].value)) {
                return;
            }
        }
    }

    bool empty() const { return count_ == 0; }

private:
    struct Slot {
        std::uint64_t hash = 0;
        int value = -1;  // -1: empty
    };

    void place(std::uint64_t hash, int value) {
        const std::size_t mask = slots_.size() - 1;
        std::size_t i = hash & mask;
        while (slots_[i].value >= 0) {
            i = (i + 1) & mask;
        }
        slots_[i] = Slot{hash, value};
    }

    void grow() {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(std::max<std::size_t>(16, old.size() * 2), Slot{});
        for (const Slot& slot : old) {
            if (slot.value >= 0) {
                place(slot.hash, slot.value);
            }
        }
    }

    std::vector<Slot> slots_;  // size: a power of two, at most half full
    std::size_t count_ = 0;
};

/// Strings with a value each, found by exact text.
template <typename Value>
struct StringTable {
    std::vector<std::string> keys;
    std::vector<Value> values;
    HashIndex index;

    int find(std::string_view key, std::uint64_t hash) const {
        int found = -1;
        index.find(hash, [&](int id) {
            if (keys[static_cast<std::size_t>(id)] == key) {
                found = id;
                return true;
            }
            return false;
        });
        return found;
    }

    int find(std::string_view key) const { return find(key, hash_bytes(key)); }

    int insert(std::string_view key) {
        const std::uint64_t hash = hash_bytes(key);
        int id = find(key, hash);
        if (id < 0) {
            id = static_cast<int>(keys.size());
            keys.emplace_back(key);
            values.emplace_back();
            index.add(hash, id);
        }
        return id;
    }

    Value& operator[](int id) { return values[static_cast<std::size_t>(id)]; }

    const Value& operator[](int id) const { return values[static_cast<std::size_t>(id)]; }

    bool empty() const { return keys.empty(); }
};

/// Hashes of a word and of each of its one-code-point deletions, computed together in O(length)
/// with a polynomial hash: deleting code point i leaves prefix(i) * P^(rest) + suffix(i + 1).
/// out[0] is the whole word, out[1 + i] the word without code point i. Returns the number of code
/// points, or 0 when the word is longer than kTypoMaxLength.
using DeletionHashes = std::array<std::uint64_t, kTypoMaxLength + 1>;

std::size_t deletion_hashes(std::string_view word, DeletionHashes& out) {
    constexpr std::uint64_t kBase = 0x9E3779B97F4A7C15ULL;
    constexpr std::uint64_t kLengthSalt = 0xD6E8FEB86659FD93ULL;
    // Only the first k + 1 entries are written and read: no zero-filling on this hot path.
    std::array<std::uint64_t, kTypoMaxLength + 1> unit;
    std::size_t k = 0;
    for (std::size_t i = 0; i < word.size();) {
        if (k == kTypoMaxLength) {
            return 0;
        }
        // A code point's bytes packed into one number: a unique unit without decoding.
        std::uint64_t u = static_cast<unsigned char>(word[i++]);
        while (i < word.size() && (static_cast<unsigned char>(word[i]) & 0xC0) == 0x80) {
            u = (u << 8) | static_cast<unsigned char>(word[i++]);
        }
        unit[k++] = u;
    }
    std::array<std::uint64_t, kTypoMaxLength + 1> power;
    std::array<std::uint64_t, kTypoMaxLength + 1> prefix;
    std::array<std::uint64_t, kTypoMaxLength + 1> suffix;
    power[0] = 1;
    prefix[0] = 0;
    for (std::size_t i = 0; i < k; ++i) {
        power[i + 1] = power[i] * kBase;
        prefix[i + 1] = prefix[i] * kBase + unit[i];
    }
    suffix[k] = 0;
    for (std::size_t i = k; i-- > 0;) {
        suffix[i] = unit[i] * power[k - 1 - i] + suffix[i + 1];
    }
    out[0] = mix64(prefix[k] + k * kLengthSalt);
    for (std::size_t i = 0; i < k; ++i) {
        out[i + 1] = mix64(prefix[i] * power[k - 1 - i] + suffix[i + 1] + (k - 1) * kLengthSalt);
    }
    return k;
}

// ---------------------------------------------------------------------------------------------

/// One way a term can be found. `lang` is an interned language id; 0 means every language.
struct Posting {
    int rule = 0;
    int term = 0;
    int lang = 0;

    bool operator==(const Posting&) const = default;
};

/// A word sequence that must appear contiguously: a phrase, or a keyword that normalizes to
/// several words ("main menu").
struct Sequence {
    int rule = 0;
    int term = 0;
    int lang = 0;
    int score = 0;
};

/// A word of five code points or more that a message word may reach with one typo, and the
/// keyword key it stands for.
struct TypoSurface {
    std::string word;
    int key = 0;
    int lang = 0;
};

struct CompiledPattern {
    int rule = 0;
    int term = 0;
    std::shared_ptr<const Regex> regex;
    bool has_names = false;
};

/// Per-thread working memory of match(): sized once, reset through the `touched` lists, so a
/// match allocates nothing after the first few messages on a thread.
struct Scratch {
    std::vector<int> score;        // per rule
    std::vector<int> term_points;  // per term: points already granted
    std::vector<int> touched_rules;
    std::vector<int> touched_terms;
    std::vector<std::string_view> words;
    std::vector<std::string_view> canon;
    std::vector<int> pattern_hits;
    std::vector<int> checked_surfaces;
    std::string joined;
};

Scratch& scratch() {
    thread_local Scratch s;
    return s;
}

inline bool lang_ok(int posting_lang, int message_lang) {
    return posting_lang == 0 || posting_lang == message_lang;
}

}  // namespace

struct TextMatcher::Index {
    std::vector<std::string> langs{""};  // interned language codes; [0] = every language
    std::vector<StringTable<std::string>> synonyms{1};  // per language id: word -> canonical

    StringTable<std::vector<Posting>> keys;  // canonical keyword -> its postings

    std::vector<TypoSurface> surfaces;
    HashIndex deletions;  // hash of each surface and of each of its 1-deletions -> surface id
    // One bit per deletion hash (its top bits), small enough for the L1/L2 cache: most message
    // words are no typo of anything, and this answers that without probing the table.
    std::vector<std::uint64_t> deletion_filter;
    int filter_shift = 64;

    bool maybe_deletion(std::uint64_t hash) const {
        const std::uint64_t bit = hash >> filter_shift;
        return (deletion_filter[bit >> 6] >> (bit & 63)) & 1;
    }

    std::size_t shortest_surface = 0;
    std::size_t longest_surface = 0;

    // Sequences are found without scanning candidates: the first word gives the lengths of the
    // sequences that start with it, and each length costs one lookup of the joined words. A
    // common first word ("how much", "how do i", ...) then costs nothing extra.
    std::vector<Sequence> sequences;
    StringTable<std::uint64_t> first_word;           // bit (length - 1) set per length
    StringTable<std::vector<int>> sequence_by_text;  // words joined by spaces -> sequence ids

    std::shared_ptr<const RegexSet> pattern_set;
    std::vector<CompiledPattern> patterns;  // parallel to the set's indices

    int term_count = 0;

    int intern(std::string_view lang) {
        const int found = find_lang(lang);
        if (found >= 0) {
            return found;
        }
        langs.emplace_back(lang);
        synonyms.emplace_back();
        return static_cast<int>(langs.size() - 1);
    }

    int find_lang(std::string_view lang) const {
        for (std::size_t i = 0; i < langs.size(); ++i) {
            if (langs[i] == lang) {
                return static_cast<int>(i);
            }
        }
        return -1;  // a language no term or synonym names: only every-language terms count
    }

    /// The canonical form of `word` in language `lang`: that language's synonyms first, then the
    /// every-language ones.
    std::string_view canon(std::string_view word, int lang) const {
        const StringTable<std::string>* tables[2] = {
            lang > 0 ? &synonyms[static_cast<std::size_t>(lang)] : nullptr, &synonyms[0]};
        std::uint64_t hash = 0;
        bool hashed = false;
        for (const StringTable<std::string>* table : tables) {
            if (table == nullptr || table->empty()) {
                continue;
            }
            if (!hashed) {
                hash = hash_bytes(word);
                hashed = true;
            }
            if (const int id = table->find(word, hash); id >= 0) {
                return (*table)[id];
            }
        }
        return word;
    }

    /// The forms a term takes: in its own language, or, for an every-language term, with the
    /// common synonyms plus one variant per language whose synonyms read it differently.
    std::vector<std::pair<int, std::vector<std::string>>> variants(
        const std::vector<std::string_view>& words, int lang
    ) const {
        auto canon_all = [&](int l) {
            std::vector<std::string> out;
            out.reserve(words.size());
            for (std::string_view w : words) {
                out.emplace_back(canon(w, l));
            }
            return out;
        };
        std::vector<std::pair<int, std::vector<std::string>>> result;
        result.emplace_back(lang, canon_all(lang));
        if (lang == 0) {
            for (std::size_t l = 1; l < langs.size(); ++l) {
                auto form = canon_all(static_cast<int>(l));
                if (form != result.front().second) {
                    result.emplace_back(static_cast<int>(l), std::move(form));
                }
            }
        }
        return result;
    }
};

TextMatcher::TextMatcher() = default;

TextMatcher::~TextMatcher() = default;

std::shared_ptr<const TextMatcher> TextMatcher::build(
    const std::vector<MatchRule>& rules, const Synonyms& synonyms, Diagnostics& diags
) {
    auto matcher = std::make_shared<TextMatcher>();
    matcher->rule_count_ = rules.size();
    auto index = std::make_unique<Index>();
    Index& ix = *index;

    // Synonyms and languages first, so that every-language terms get a variant per language.
    for (const auto& [key, canonical] : synonyms.entries) {
        const int lang = ix.intern(key.first);
        const std::string word = normalize(key.second);
        const std::string canon = normalize(canonical);
        // Synonyms map single words; anything else could never equal one message word.
        if (word.empty() || canon.empty() || word.find(' ') != std::string::npos ||
            canon.find(' ') != std::string::npos) {
            continue;
        }
        StringTable<std::string>& table = ix.synonyms[static_cast<std::size_t>(lang)];
        const bool is_new = table.find(word) < 0;
        const int id = table.insert(word);
        if (is_new) {
            table[id] = canon;  // the first mapping of a word wins
        }
    }
    for (const MatchRule& rule : rules) {
        for (const Term& term : rule.keywords) {
            ix.intern(term.lang);
        }
        for (const Term& term : rule.phrases) {
            ix.intern(term.lang);
        }
    }

    std::set<std::tuple<std::string, int, int>> surface_seen;
    auto add_surface = [&](const std::string& word, int key, int lang) {
        const std::size_t length = utf8_length(word);
        if (length < kTypoMinLength || length > kTypoMaxLength) {
            return;
        }
        if (surface_seen.emplace(word, key, lang).second) {
            ix.surfaces.push_back(TypoSurface{word, key, lang});
        }
    };
    // A keyword is one term per rule and canonical word, so "fee" and its synonym "fees" in the
    // same rule score once ("each distinct keyword").
    std::map<std::pair<int, std::string>, int> keyword_terms;

    auto add_sequence =
        [&](const std::vector<std::string>& words, int rule, int term, int lang, int score) {
            if (words.size() > kMaxSequenceWords) {
                return;  // longer than any message a citizen types
            }
            std::string joined;
            for (const std::string& w : words) {
                if (!joined.empty()) {
                    joined.push_back(' ');
                }
                joined += w;
            }
            const int id = static_cast<int>(ix.sequences.size());
            ix.sequences.push_back(Sequence{rule, term, lang, score});
            ix.sequence_by_text[ix.sequence_by_text.insert(joined)].push_back(id);
            ix.first_word[ix.first_word.insert(words.front())] |= std::uint64_t{1}
                                                                  << (words.size() - 1);
        };

    for (std::size_t r = 0; r < rules.size(); ++r) {
        const int rule = static_cast<int>(r);
        const MatchRule& mr = rules[r];
        for (const Term& term : mr.keywords) {
            const std::string norm = normalize(term.text);
            const std::vector<std::string_view> words = split_words(norm);
            if (words.empty()) {
                continue;  // punctuation only: nothing a message could match
            }
            const int lang = ix.find_lang(term.lang);
            if (words.size() > 1) {
                const int id = ix.term_count++;
                for (auto& [variant_lang, form] : ix.variants(words, lang)) {
                    add_sequence(form, rule, id, variant_lang, kKeywordScore);
                }
                continue;
            }
            for (auto& [variant_lang, form] : ix.variants(words, lang)) {
                auto [it, inserted] =
                    keyword_terms.try_emplace({rule, form.front()}, ix.term_count);
                if (inserted) {
                    ++ix.term_count;
                }
                const int key = ix.keys.insert(form.front());
                const Posting posting{rule, it->second, variant_lang};
                auto& list = ix.keys[key];
                if (std::find(list.begin(), list.end(), posting) == list.end()) {
                    list.push_back(posting);
                }
                add_surface(std::string(words.front()), key, variant_lang);
                add_surface(form.front(), key, variant_lang);
            }
        }
        for (const Term& term : mr.phrases) {
            const std::string norm = normalize(term.text);
            const std::vector<std::string_view> words = split_words(norm);
            if (words.empty()) {
                continue;
            }
            const int lang = ix.find_lang(term.lang);
            const int id = ix.term_count++;
            const int score = kPhraseWordScore * static_cast<int>(words.size());
            for (auto& [variant_lang, form] : ix.variants(words, lang)) {
                add_sequence(form, rule, id, variant_lang, score);
            }
        }
    }

    // Synonyms are keywords too: "chargse" should find the rule that lists "fee" when "charges"
    // is a synonym of "fee".
    for (std::size_t l = 0; l < ix.synonyms.size(); ++l) {
        const StringTable<std::string>& table = ix.synonyms[l];
        for (std::size_t i = 0; i < table.keys.size(); ++i) {
            const std::string& canonical = table.values[i];
            if (const int key = ix.keys.find(canonical); key >= 0) {
                add_surface(table.keys[i], key, static_cast<int>(l));
                add_surface(canonical, key, static_cast<int>(l));
            }
        }
    }

    // Deletion neighbourhood: a word within one edit of a surface shares its whole form or a
    // 1-deletion with one of the surface's, so looking up the message word and its deletions
    // finds every candidate; edit_distance then confirms.
    DeletionHashes hashes{};
    std::set<std::uint64_t> seen;
    std::vector<std::uint64_t> all_hashes;
    for (std::size_t s = 0; s < ix.surfaces.size(); ++s) {
        const std::size_t length = deletion_hashes(ix.surfaces[s].word, hashes);
        seen.clear();
        for (std::size_t h = 0; h <= length; ++h) {
            if (seen.insert(hashes[h]).second) {  // "ss": both deletions are the same word
                ix.deletions.add(hashes[h], static_cast<int>(s));
                all_hashes.push_back(hashes[h]);
            }
        }
        ix.shortest_surface = s == 0 ? length : std::min(ix.shortest_surface, length);
        ix.longest_surface = std::max(ix.longest_surface, length);
    }

    // About 16 bits per hash: a false positive (one wasted probe) for roughly 1 word in 16.
    int filter_bits = 12;
    while (filter_bits < 30 && (std::size_t{1} << filter_bits) < all_hashes.size() * 16) {
        ++filter_bits;
    }
    ix.filter_shift = 64 - filter_bits;
    ix.deletion_filter.assign((std::size_t{1} << filter_bits) / 64, 0);
    for (std::uint64_t hash : all_hashes) {
        const std::uint64_t bit = hash >> ix.filter_shift;
        ix.deletion_filter[bit >> 6] |= std::uint64_t{1} << (bit & 63);
    }

    // Patterns: each compiled alone first so that an error points at its own location, then
    // every valid one goes into one RE2::Set for a single pass per message.
    std::vector<std::string> sources;
    for (std::size_t r = 0; r < rules.size(); ++r) {
        for (const PatternSpec& spec : rules[r].patterns) {
            auto compiled = Regex::compile(spec.source);
            if (!compiled) {
                diags.error(
                    "E301",
                    spec.location,
                    "invalid regular expression: " + compiled.error().message,
                    pattern_hint(spec.source),
                    std::max(1, static_cast<int>(utf8_length(spec.source)))
                );
                continue;
            }
            const bool has_names = !compiled.value()->group_names().empty();
            ix.patterns.push_back(CompiledPattern{
                static_cast<int>(r), ix.term_count++, compiled.value(), has_names});
            sources.push_back(spec.source);
        }
    }
    if (!sources.empty()) {
        auto set = RegexSet::build(sources);
        // A refusal here is RE2's memory budget for the combined program; match() then searches
        // the patterns one by one instead, slower but with the same answers.
        if (set) {
            ix.pattern_set = set.value();
        }
    }

    matcher->index_ = std::move(index);
    return matcher;
}

std::optional<MatchResult> TextMatcher::match(
    std::string_view raw, std::string_view normalized, std::string_view lang
) const {
    const Index& ix = *index_;
    Scratch& s = scratch();
    if (s.score.size() < rule_count_) {
        s.score.resize(rule_count_, 0);
    }
    if (s.term_points.size() < static_cast<std::size_t>(ix.term_count)) {
        s.term_points.resize(static_cast<std::size_t>(ix.term_count), 0);
    }
    const int message_lang = ix.find_lang(lang);

    auto credit = [&s](int rule, int term, int points) {
        int& granted = s.term_points[static_cast<std::size_t>(term)];
        if (points <= granted) {
            return;  // each distinct term counts once, at its best
        }
        if (granted == 0) {
            s.touched_terms.push_back(term);
        }
        int& score = s.score[static_cast<std::size_t>(rule)];
        if (score == 0) {
            s.touched_rules.push_back(rule);
        }
        score += points - granted;
        granted = points;
    };
    auto credit_key = [&](int key, int points) {
        bool any = false;
        for (const Posting& p : ix.keys[key]) {
            if (lang_ok(p.lang, message_lang)) {
                credit(p.rule, p.term, points);
                any = true;
            }
        }
        return any;
    };

    // Words, and their canonical (synonym) forms.
    s.words.clear();
    s.canon.clear();
    for (std::size_t i = 0; i < normalized.size();) {
        while (i < normalized.size() && normalized[i] == ' ') {
            ++i;
        }
        const std::size_t start = i;
        while (i < normalized.size() && normalized[i] != ' ') {
            ++i;
        }
        if (i > start) {
            const std::string_view word = normalized.substr(start, i - start);
            s.words.push_back(word);
            s.canon.push_back(ix.canon(word, message_lang));
        }
    }

    const std::size_t word_count = s.words.size();
    DeletionHashes hashes;
    for (std::size_t w = 0; w < word_count; ++w) {
        const std::string_view word = s.words[w];
        const std::string_view canon = s.canon[w];
        const std::uint64_t canon_hash = hash_bytes(canon);
        bool exact = false;
        if (const int key = ix.keys.find(canon, canon_hash); key >= 0) {
            exact = credit_key(key, kKeywordScore);
        }

        // One typo only when the word found nothing exactly: "hours" must not also score for a
        // rule listing "house". A deletion can bring a five-letter keyword down to four.
        std::size_t length = 0;  // in code points; 0: no typo lookup
        if (!exact && !ix.deletions.empty() && word.size() + 1 >= ix.shortest_surface) {
            length = deletion_hashes(word, hashes);
        }
        if (length > 0 && length + 1 >= ix.shortest_surface && length <= ix.longest_surface + 1) {
            s.checked_surfaces.clear();
            for (std::size_t h = 0; h <= length; ++h) {
                if (!ix.maybe_deletion(hashes[h])) {
                    continue;
                }
                ix.deletions.find(hashes[h], [&](int id) {
                    const TypoSurface& surface = ix.surfaces[static_cast<std::size_t>(id)];
                    if (!lang_ok(surface.lang, message_lang) ||
                        std::find(s.checked_surfaces.begin(), s.checked_surfaces.end(), id) !=
                            s.checked_surfaces.end()) {
                        return false;
                    }
                    s.checked_surfaces.push_back(id);
                    if (edit_distance(word, surface.word, 1) == 1) {
                        credit_key(surface.key, kTypoScore);
                    }
                    return false;
                });
            }
        }

        const int first = ix.first_word.find(canon, canon_hash);
        if (first < 0) {
            continue;
        }
        const std::uint64_t lengths = ix.first_word[first];
        s.joined.assign(canon);
        for (std::size_t len = 1; len <= kMaxSequenceWords && w + len <= word_count; ++len) {
            if ((lengths >> (len - 1)) == 0) {
                break;  // no longer sequence starts with this word
            }
            if (len > 1) {
                s.joined.push_back(' ');
                s.joined.append(s.canon[w + len - 1]);
            }
            if ((lengths & (std::uint64_t{1} << (len - 1))) == 0) {
                continue;
            }
            const int found = ix.sequence_by_text.find(s.joined);
            if (found < 0) {
                continue;
            }
            for (int id : ix.sequence_by_text[found]) {
                const Sequence& seq = ix.sequences[static_cast<std::size_t>(id)];
                if (lang_ok(seq.lang, message_lang)) {
                    credit(seq.rule, seq.term, seq.score);
                }
            }
        }
    }

    // Patterns read the raw text with Indian digits as ASCII; pure-ASCII text (the usual case)
    // is used in place, without a copy.
    std::string converted;
    std::string_view pattern_text = raw;
    s.pattern_hits.clear();
    if (!ix.patterns.empty()) {
        if (std::any_of(raw.begin(), raw.end(), [](char c) {
                return static_cast<unsigned char>(c) >= 0x80;
            })) {
            converted = ascii_digits(raw);
            pattern_text = converted;
        }
        if (ix.pattern_set) {
            ix.pattern_set->matches(pattern_text, s.pattern_hits);
        } else {
            for (std::size_t p = 0; p < ix.patterns.size(); ++p) {
                if (ix.patterns[p].regex->search(pattern_text, nullptr)) {
                    s.pattern_hits.push_back(static_cast<int>(p));
                }
            }
        }
        for (int hit : s.pattern_hits) {
            const CompiledPattern& p = ix.patterns[static_cast<std::size_t>(hit)];
            credit(p.rule, p.term, kPatternScore);
        }
    }

    int best_rule = -1;
    int best_score = 0;
    for (int rule : s.touched_rules) {
        const int score = s.score[static_cast<std::size_t>(rule)];
        if (score > best_score || (score == best_score && rule < best_rule)) {
            best_rule = rule;
            best_score = score;
        }
    }
    for (int rule : s.touched_rules) {
        s.score[static_cast<std::size_t>(rule)] = 0;
    }
    for (int term : s.touched_terms) {
        s.term_points[static_cast<std::size_t>(term)] = 0;
    }
    s.touched_rules.clear();
    s.touched_terms.clear();

    std::optional<MatchResult> result;
    if (best_rule < 0) {
        return result;
    }
    result.emplace();
    result->rule = best_rule;
    result->score = best_score;
    // Captures come only from the winner's patterns, so only those run a second time.
    for (int hit : s.pattern_hits) {
        const CompiledPattern& p = ix.patterns[static_cast<std::size_t>(hit)];
        if (p.rule == best_rule && p.has_names) {
            p.regex->search(pattern_text, &result->captures);
        }
    }
    return result;
}

}  // namespace civicflow::engine
