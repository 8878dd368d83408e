// yaml::Node -> Flow / Helpline, with every shape check of LANGUAGE.md. Problems are collected,
// never thrown; whatever could be read is still returned so the graph checks run too.
#include "flow_parser.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <civicflow/engine/duration.hpp>
#include <civicflow/engine/regex.hpp>
#include <civicflow/engine/text_normalize.hpp>

namespace civicflow::engine::detail {

namespace {

using yaml::Kind;
using yaml::Node;

// ---------------------------------------------------------------------------------------------
// Built-in defaults (LANGUAGE.md "Helpline file"): one table for commands, one for messages.

struct DefaultCommand {
    Command command;
    std::string_view name;
    std::array<std::string_view, 3> words;  // empty entries unused
};

constexpr std::array<DefaultCommand, 9> kDefaultCommands{{
    {Command::kMenu, "menu", {"menu", "main menu", ""}},
    {Command::kHelp, "help", {"help", "", ""}},
    {Command::kBack, "back", {"back", "", ""}},
    {Command::kLanguage, "language", {"language", "change language", ""}},
    {Command::kStop, "stop", {"stop", "unsubscribe", ""}},
    {Command::kStart, "start", {"start", "subscribe", ""}},
    {Command::kAgent, "agent", {"agent", "officer", "talk to officer"}},
    {Command::kErase, "erase", {"delete my data", "", ""}},
    {Command::kSkip, "skip", {"skip", "", ""}},
}};

struct DefaultMessage {
    std::string_view key;
    std::string_view text;
};

constexpr std::array<DefaultMessage, 27> kDefaultMessages{{
    {"fallback", "Sorry, I did not understand that."},
    {"help",
     "Send MENU for the main menu, BACK to go back, LANGUAGE to change the language, AGENT to "
     "talk to an officer, or STOP to get no more messages."},
    {"expired", "Welcome back! You were in the middle of {{ flow_title }}."},
    {"resume", "Continue where I was"},
    {"restart", "Start over"},
    {"stopped", "You will get no more messages. Send START to subscribe again."},
    {"started", "Welcome back! You will get messages again."},
    {"agent", "An officer will reply to you here during office hours."},
    {"language_prompt", "Choose your language:"},
    {"wait", "Please wait, I am still checking."},
    {"ended", "Thank you. Send any message to start again."},
    {"error", "Sorry, something went wrong. Let us start again."},
    {"erase_confirm", "This deletes everything we hold about you. Are you sure?"},
    {"erase_yes", "Yes, delete"},
    {"erase_no", "No, keep it"},
    {"erased", "Your data has been deleted."},
    {"erase_cancelled", "Nothing was deleted."},
    {"nothing_back", "There is nothing to go back to."},
    {"send_text", "Please send your answer as text here."},
    {"empty_answer", "Please send an answer."},
    {"invalid_pattern", "That does not look right. Please try again."},
    {"invalid_date", "Please send a valid date as DD-MM-YYYY, for example 05-08-2024."},
    {"invalid_integer", "Please send a number in the allowed range."},
    {"invalid_one_of", "Please send one of the choices offered."},
    {"invalid_mobile", "Please send a 10-digit Indian mobile number."},
    {"invalid_pin", "Please send a 6-digit PIN code."},
    {"invalid_media", "Please send a photo or a document here."},
}};

// ---------------------------------------------------------------------------------------------
// Name formats.

bool is_lower(char c) {
    return c >= 'a' && c <= 'z';
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool valid_option_id(std::string_view id) {
    if (id.empty() || !(is_lower(id[0]) || is_digit(id[0]))) {
        return false;
    }
    return std::all_of(id.begin(), id.end(), [](char c) {
        return is_lower(c) || is_digit(c) || c == '_' || c == '-';
    });
}

std::string join(const std::vector<std::string>& items, std::string_view separator = ", ") {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) {
            out += separator;
        }
        out += item;
    }
    return out;
}

std::string quote(std::string_view s) {
    return "'" + std::string(s) + "'";
}

/// What E101 asks for: how to write a value of the expected kind where `found` is.
enum class Shape { kMapping, kList, kText, kBoolean, kLocalizedText, kWords };

std::string shape_hint(Shape expected, const Node& found) {
    if (found.is_null()) {
        return "give it a value after the ':' (or on the lines below it, indented), or remove "
               "the key";
    }
    switch (expected) {
        case Shape::kMapping:
            return "write its keys on the lines below it, each 'key: value', indented by two "
                   "more spaces";
        case Shape::kList:
            return "write one item per line below it, each starting with '- ', or "
                   "[first, second] on one line";
        case Shape::kText:
            return "write one text after the ':'; quote it if it holds ': ' or starts with '-', "
                   "'[' or '{'";
        case Shape::kBoolean:
            return "write true or false";
        case Shape::kLocalizedText:
            return "write one text, or one text per language on the lines below it "
                   "(en: \"...\", hi: \"...\")";
        case Shape::kWords:
            return "write [word, other words] or '- word' lines, or one such list per language "
                   "(en: [...], hi: [...])";
    }
    return {};
}

/// Parses a whole decimal integer (optional sign), nothing else.
std::optional<std::int64_t> to_integer(std::string_view text) {
    if (!text.empty() && text[0] == '+') {
        text.remove_prefix(1);
    }
    std::int64_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end) {
        return std::nullopt;
    }
    return value;
}

// ---------------------------------------------------------------------------------------------

/// Reads one file. Holds the file name and the diagnostics so the helpers stay short.
class Reader {
public:
    Reader(const std::string& file, Diagnostics& diags)
        : file_(file)
        , diags_(diags) {}

    ParsedFile read(const Node& root);

private:
    // --- locations ---
    SourceLocation loc(const Node& n) const { return SourceLocation{file_, n.line, n.column}; }

    /// How many columns a value spans on its line, for the caret marker.
    static int span(const Node& n) {
        if (n.kind != Kind::kScalar) {
            return 1;
        }
        const auto nl = n.scalar.find('\n');
        const std::string_view first =
            std::string_view(n.scalar).substr(0, nl == std::string::npos ? n.scalar.size() : nl);
        return static_cast<int>(utf8_length(first)) + (n.quoted ? 2 : 0);
    }

    void error(std::string code, const Node& at, std::string message, std::string hint = {}) {
        diags_.error(std::move(code), loc(at), std::move(message), std::move(hint), span(at));
    }

    // --- shapes ---

    /// E101 unless `n` is a mapping.
    bool expect_map(const Node& n, const std::string& what) {
        if (n.is_map()) {
            return true;
        }
        error(
            "E101",
            n,
            what + " must be a mapping, found " + n.kind_name(),
            shape_hint(Shape::kMapping, n)
        );
        return false;
    }

    bool expect_list(const Node& n, const std::string& what) {
        if (n.is_sequence()) {
            return true;
        }
        error(
            "E101", n, what + " must be a list, found " + n.kind_name(), shape_hint(Shape::kList, n)
        );
        return false;
    }

    /// The scalar text of `n`, or E101.
    std::optional<std::string> scalar(const Node& n, const std::string& what) {
        if (n.is_scalar()) {
            return n.scalar;
        }
        error(
            "E101",
            n,
            what + " must be a text value, found " + n.kind_name(),
            shape_hint(Shape::kText, n)
        );
        return std::nullopt;
    }

    /// Reports unknown (E102), duplicate (E104) and non-text (E101) keys of `map`.
    void check_keys(
        const Node& map, const std::vector<std::string>& allowed, const std::string& owner
    ) {
        // Sets, not lists: a pathological file may have 100,000 keys in one mapping.
        std::unordered_map<std::string_view, const Node*> seen;
        for (const auto& [key, value] : map.entries) {
            if (!key.is_scalar()) {
                error("E101", key, "keys in " + owner + " must be text, found " + key.kind_name());
                continue;
            }
            const auto first = seen.find(key.scalar);
            if (first != seen.end()) {
                error(
                    "E104",
                    key,
                    "duplicate key " + quote(key.scalar) + " in " + owner,
                    "the first " + quote(key.scalar) + " is on line " +
                        std::to_string(first->second->line) + "; only one is allowed"
                );
                continue;
            }
            seen.emplace(key.scalar, &key);
            if (std::find(allowed.begin(), allowed.end(), key.scalar) != allowed.end()) {
                continue;
            }
            std::string hint;
            const std::string near = did_you_mean(key.scalar, allowed);
            if (!near.empty()) {
                hint = "did you mean " + quote(near) + "?";
                near_misses_.emplace(&map, near);
            } else if (key.scalar == "<<") {
                hint = "YAML merge keys are not supported; write the keys out";
            } else {
                hint = "allowed keys: " + join(allowed);
            }
            error("E102", key, "unknown key " + quote(key.scalar) + " in " + owner, hint);
        }
    }

    /// E103 at the enclosing mapping when `key` is missing.
    const Node* require(
        const Node& map, std::string_view key, const std::string& owner, std::string hint = {}
    ) {
        const Node* value = map.find(key);
        // A misspelt key ('thn:', 'stats:') already has its E102 with "did you mean": saying
        // the key is missing as well would only double the one mistake.
        if (value == nullptr && near_misses_.count({&map, std::string(key)}) == 0) {
            diags_.error(
                "E103", loc(map), "missing key " + quote(key) + " in " + owner, std::move(hint)
            );
        }
        return value;
    }

    // --- values ---

    std::optional<std::string> name_value(
        const Node& n,
        const std::string& what,
        bool (*valid)(std::string_view),
        std::string_view rule
    ) {
        auto text = scalar(n, what);
        if (!text) {
            return std::nullopt;
        }
        if (!valid(*text)) {
            error("E109", n, "invalid " + what + " " + quote(*text), std::string(rule));
            return std::nullopt;
        }
        return text;
    }

    std::optional<std::string> state_id(const Node& n, const std::string& what) {
        return name_value(
            n,
            what,
            &is_valid_state_id,
            "state ids are lowercase letters, digits, '_', '.' and '-', starting "
            "with a letter"
        );
    }

    std::optional<std::string> slot_name(const Node& n, const std::string& what) {
        auto name = name_value(
            n,
            what,
            &is_valid_name,
            "slot names are lowercase letters, digits and '_', starting with "
            "a letter"
        );
        if (name && (*name == "profile_name" || *name == "flow_title" || *name == "lang")) {
            error(
                "E109",
                n,
                what + " " + quote(*name) + " is a built-in variable",
                "choose another name; built-ins are set by the engine"
            );
            return std::nullopt;
        }
        return name;
    }

    std::optional<bool> boolean(const Node& n, const std::string& what) {
        if (n.is_scalar() && !n.quoted) {
            if (n.scalar == "true" || n.scalar == "True" || n.scalar == "TRUE") {
                return true;
            }
            if (n.scalar == "false" || n.scalar == "False" || n.scalar == "FALSE") {
                return false;
            }
        }
        if (!n.is_scalar()) {
            error(
                "E101",
                n,
                what + " must be true or false, found " + n.kind_name(),
                shape_hint(Shape::kBoolean, n)
            );
        } else {
            error("E109", n, what + " must be true or false, found " + quote(n.scalar));
        }
        return std::nullopt;
    }

    std::optional<std::int64_t> integer(
        const Node& n, const std::string& what, std::int64_t minimum
    ) {
        auto text = scalar(n, what);
        if (!text) {
            return std::nullopt;
        }
        const auto value = to_integer(*text);
        if (!value || *value < minimum) {
            error(
                "E109",
                n,
                what + " must be a whole number of at least " + std::to_string(minimum) +
                    ", found " + quote(*text)
            );
            return std::nullopt;
        }
        return value;
    }

    TemplateRead make_read(const std::string& owner, const Template& tpl, const Node& n) const {
        return TemplateRead{owner, tpl.required_slots(), loc(n), span(n), n.scalar, n.segments};
    }

    Template parse_template(const Node& n) {
        // Diagnostics go where the offending part was written (escapes, folded lines and
        // block scalars included); failing that, Template::parse advances the column into a
        // one-line source, and a quoted value starts one column after its quote.
        SourceLocation at = loc(n);
        if (n.quoted && at.column > 0) {
            ++at.column;
        }
        return Template::parse(n.scalar, diags_, at, [&n](std::size_t offset) {
            return yaml::position_in(n.segments, n.scalar, offset);
        });
    }

    /// A template-valued scalar (`path:`, `set:` values, `url:`), recording what it reads.
    std::optional<Template> template_value(
        const Node& n,
        const std::string& what,
        const std::string& owner,
        std::vector<TemplateRead>* reads
    ) {
        auto text = scalar(n, what);
        if (!text) {
            return std::nullopt;
        }
        Template tpl = parse_template(n);
        if (reads != nullptr) {
            reads->push_back(make_read(owner, tpl, n));
        }
        return tpl;
    }

    /// W105: a text left unquoted and followed by " #" lost the rest of its line to a comment.
    /// E109: a text holding a control character (only an escape such as "\0" or "\x1b" in a
    /// double-quoted text can put one there: raw ones are E100), which no phone shows.
    void check_text_scalar(const Node& n, const std::string& what) {
        for (const char ch : n.scalar) {
            const auto c = static_cast<unsigned char>(ch);
            if (is_control_character(c)) {
                error(
                    "E109",
                    n,
                    what + " holds a control character (" + byte_name(c) +
                        "), which citizens' phones do not show",
                    "remove the escape that makes it (\\0, \\x.., \\u00..)"
                );
                break;
            }
        }
        if (n.comment_column == 0)
            return;
        diags_.warning(
            "W105",
            SourceLocation{file_, n.line, n.column},
            what + " ends before ' #': YAML reads the rest of the line as a comment",
            "quote the text to keep the '#': say: \"Call helpline #1\"",
            static_cast<int>(utf8_length(n.scalar))
        );
    }

    /// A text: one string, or a map language -> string (E101, E109 for bad language codes).
    LocalizedText text(
        const Node& n,
        const std::string& what,
        const std::string& owner,
        std::vector<TemplateRead>* reads,
        std::vector<TextUse>* uses
    ) {
        std::vector<LocalizedText::Variant> variants;
        TextUse use{what, {}, loc(n), span(n)};
        if (n.is_scalar()) {
            check_text_scalar(n, what);
            Template tpl = parse_template(n);
            if (reads != nullptr) {
                reads->push_back(make_read(owner, tpl, n));
            }
            variants.push_back(LocalizedText::Variant{"", std::move(tpl), loc(n)});
            use.languages.emplace_back();
        } else if (n.is_map() && !n.entries.empty()) {
            check_language_keys(n, what);
            std::unordered_set<std::string_view> languages_seen;
            for (const auto& [key, value] : n.entries) {
                if (!key.is_scalar() || !is_valid_language_code(key.scalar)) {
                    continue;
                }
                if (!languages_seen.insert(key.scalar).second) {
                    continue;  // duplicate, reported
                }
                if (!value.is_scalar()) {
                    error(
                        "E101",
                        value,
                        "the " + quote(key.scalar) + " text of " + what +
                            " must be a text value, found " + value.kind_name(),
                        shape_hint(Shape::kText, value)
                    );
                    continue;
                }
                check_text_scalar(value, "the " + quote(key.scalar) + " text of " + what);
                Template tpl = parse_template(value);
                if (reads != nullptr) {
                    reads->push_back(make_read(owner, tpl, value));
                }
                variants.push_back(LocalizedText::Variant{key.scalar, std::move(tpl), loc(value)});
                use.languages.push_back(key.scalar);
            }
        } else {
            error(
                "E101",
                n,
                what + " must be a text or a mapping of languages to texts, found " +
                    (n.is_map() ? std::string("an empty mapping") : n.kind_name()),
                shape_hint(Shape::kLocalizedText, n)
            );
            return {};
        }
        if (uses != nullptr) {
            uses->push_back(std::move(use));
        }
        return LocalizedText(std::move(variants));
    }

    /// Keys of a per-language map: E104 duplicates, E109 malformed language codes.
    void check_language_keys(const Node& map, const std::string& what) {
        std::unordered_set<std::string_view> seen;
        for (const auto& [key, value] : map.entries) {
            if (!key.is_scalar()) {
                error(
                    "E101",
                    key,
                    "language keys of " + what + " must be text, found " + key.kind_name()
                );
                continue;
            }
            if (!is_valid_language_code(key.scalar)) {
                error(
                    "E109",
                    key,
                    "invalid language code " + quote(key.scalar) + " in " + what,
                    "language codes are 2 or 3 lowercase letters, e.g. en, hi, mr"
                );
                continue;
            }
            if (!seen.insert(key.scalar).second) {
                error("E104", key, "duplicate language " + quote(key.scalar) + " in " + what);
            }
        }
    }

    /// A list of strings, or a map language -> list of strings.
    std::vector<Term> word_list(const Node& n, const std::string& what) {
        std::vector<Term> terms;
        auto read_list = [&](const Node& list, const std::string& lang) {
            if (!expect_list(list, what)) {
                return;
            }
            for (const Node& item : list.items) {
                if (auto word = scalar(item, "each entry of " + what)) {
                    if (normalize(*word).empty()) {
                        error(
                            "E109",
                            item,
                            "entry " + quote(*word) + " of " + what + " has no letters or digits"
                        );
                        continue;
                    }
                    terms.push_back(Term{lang, *word, loc(item)});
                }
            }
        };
        if (n.is_map()) {
            check_language_keys(n, what);
            for (const auto& [key, value] : n.entries) {
                if (key.is_scalar() && is_valid_language_code(key.scalar)) {
                    read_list(value, key.scalar);
                }
            }
        } else if (n.is_sequence()) {
            read_list(n, "");
        } else {
            error(
                "E101",
                n,
                what + " must be a list of words or a mapping of languages to lists, found " +
                    n.kind_name(),
                shape_hint(Shape::kWords, n)
            );
        }
        return terms;
    }

    std::optional<Target> target(const Node& n, const std::string& what) {
        auto id = state_id(n, what);
        if (!id) {
            return std::nullopt;
        }
        Target t;
        t.state = *id;
        t.location = loc(n);
        return t;
    }

    /// `keywords`, `phrases`, `patterns` of a route or FAQ entry. Patterns are compiled alone
    /// first so E301 names the owner; only valid ones reach the matcher.
    MatchRule match_rule(
        const Node& map, const std::string& owner, std::vector<std::string>& captures
    ) {
        MatchRule rule;
        rule.location = loc(map);
        const int errors_before = diags_.error_count();
        if (const Node* k = map.find("keywords")) {
            rule.keywords = word_list(*k, "'keywords' of " + owner);
        }
        if (const Node* p = map.find("phrases")) {
            rule.phrases = word_list(*p, "'phrases' of " + owner);
        }
        bool had_patterns = false;
        if (const Node* p = map.find("patterns")) {
            if (expect_list(*p, "'patterns' of " + owner)) {
                for (const Node& item : p->items) {
                    auto source = scalar(item, "each entry of 'patterns' of " + owner);
                    if (!source) {
                        continue;
                    }
                    had_patterns = true;
                    auto compiled = Regex::compile(*source);
                    if (!compiled) {
                        error(
                            "E301",
                            item,
                            "invalid regular expression in " + owner + ": " +
                                compiled.error().message,
                            pattern_hint(*source)
                        );
                        continue;
                    }
                    for (const auto& name : (*compiled)->group_names()) {
                        captures.push_back(name);
                    }
                    rule.patterns.push_back(PatternSpec{*source, loc(item)});
                }
            }
        }
        // Keys given with a wrong value have their own error (E101, E301) already.
        if (rule.keywords.empty() && rule.phrases.empty() && rule.patterns.empty() &&
            !had_patterns && diags_.error_count() == errors_before) {
            diags_.error(
                "E302",
                loc(map),
                owner + " has no keywords, phrases or patterns",
                "add at least one of 'keywords', 'phrases' or 'patterns'"
            );
        }
        return rule;
    }

    // --- files ---
    std::optional<ParsedFlow> read_flow(const Node& root);
    std::optional<ParsedHelpline> read_helpline(const Node& root);
    void read_version(const Node& root, const std::string& owner);
    void read_state(const Node& key, const Node& value, ParsedFlow& out);
    void read_menu(
        const Node& n, State& st, StateInfo& info, const std::string& owner, FlowInfo& flow_info
    );
    void read_ask(
        const Node& map, State& st, StateInfo& info, const std::string& owner, FlowInfo& flow_info
    );
    void read_validators(
        const Node& n, Ask& ask, StateInfo& info, const std::string& owner, FlowInfo& flow_info
    );
    void read_call(const Node& map, State& st, StateInfo& info, const std::string& owner);
    void read_routes(
        const Node& n,
        State& st,
        StateInfo& info,
        const std::string& owner,
        const Synonyms& synonyms
    );
    void read_otherwise(
        const Node& n, State& st, StateInfo& info, const std::string& owner, FlowInfo& flow_info
    );
    void read_faq(const Node& n, ParsedFlow& out);
    Synonyms read_synonyms(const Node& n, const std::string& owner);
    std::vector<std::string> read_languages(const Node& n, const std::string& owner);

    const std::string& file_;
    Diagnostics& diags_;
    // (mapping, key) pairs an unknown key of that mapping was reported as a likely typo of.
    std::set<std::pair<const Node*, std::string>> near_misses_;
};

// ---------------------------------------------------------------------------------------------

ParsedFile Reader::read(const Node& root) {
    ParsedFile out;
    if (root.is_null()) {
        diags_.error(
            "E103",
            loc(root),
            "file is empty: missing key 'flow'",
            "a flow file starts with 'flow: NAME', the helpline file with "
            "'helpline: NAME'"
        );
        out.unnamed_flow = true;
        return out;
    }
    if (!root.is_map()) {
        error(
            "E101",
            root,
            "the top level of a flow file must be a mapping, found " + root.kind_name(),
            "start the file with 'flow: NAME' (or 'helpline: NAME') at the left margin, then "
            "the flow's other keys"
        );
        out.unnamed_flow = true;
        return out;
    }
    const Node* flow = root.find("flow");
    const Node* helpline = root.find("helpline");
    if (flow != nullptr && helpline != nullptr) {
        const Node* second = nullptr;
        for (const auto& [key, value] : root.entries) {
            if (key.is_scalar() && (key.scalar == "flow" || key.scalar == "helpline")) {
                second = &key;  // the later of the two is the conflicting one
            }
        }
        error(
            "E110",
            *second,
            "file has both 'flow' and 'helpline'",
            "a file is either a flow file ('flow: NAME') or the helpline file "
            "('helpline: NAME'); split it in two"
        );
        out.unnamed_flow = true;
        return out;
    }
    if (helpline != nullptr) {
        out.helpline = read_helpline(root);
        return out;
    }
    if (flow == nullptr) {
        diags_.error(
            "E103",
            loc(root),
            "missing key 'flow' in file",
            root.find("conversations") != nullptr
                ? "this is a conversation test: keep test files in a folder of their own "
                  "(flows/tests/) and run them with 'civicflow test'"
                : "a flow file starts with 'flow: NAME', the helpline file with "
                  "'helpline: NAME'"
        );
        out.unnamed_flow = true;
        return out;
    }
    out.flow = read_flow(root);
    out.unnamed_flow = !out.flow.has_value();
    return out;
}

void Reader::read_version(const Node& root, const std::string& owner) {
    const Node* version = require(root, "version", owner, "add 'version: 1'");
    if (version == nullptr) {
        return;
    }
    if (version->is_scalar() && version->scalar == "1") {
        return;
    }
    const std::string found = version->is_scalar() ? quote(version->scalar) : version->kind_name();
    error(
        "E105",
        *version,
        "unsupported version " + found + " in " + owner,
        "only 'version: 1' is supported"
    );
}

std::vector<std::string> Reader::read_languages(const Node& n, const std::string& owner) {
    std::vector<std::string> languages;
    std::unordered_set<std::string> listed;
    const std::string what = "'languages' of " + owner;
    if (!expect_list(n, what)) {
        return languages;
    }
    for (const Node& item : n.items) {
        auto code = scalar(item, "each entry of " + what);
        if (!code) {
            continue;
        }
        if (!is_valid_language_code(*code)) {
            error(
                "E109",
                item,
                "invalid language code " + quote(*code) + " in " + what,
                "language codes are 2 or 3 lowercase letters, e.g. en, hi, mr"
            );
            continue;
        }
        if (!listed.insert(*code).second) {
            error("E203", item, "language " + quote(*code) + " is listed twice in " + what);
            continue;
        }
        languages.push_back(*code);
    }
    if (n.items.empty()) {
        error("E109", n, what + " is empty", "list at least one language, e.g. [en]");
    }
    return languages;
}

std::optional<ParsedFlow> Reader::read_flow(const Node& root) {
    ParsedFlow out;
    Flow& flow = out.flow;
    FlowInfo& info = out.info;
    flow.file = file_;

    const Node* name_node = root.find("flow");
    auto name = name_value(
        *name_node,
        "flow name",
        &is_valid_name,
        "flow names are lowercase letters, digits and '_', starting with a "
        "letter"
    );
    if (!name) {
        // Without a name the flow cannot take part in cross-file checks; still check its shape.
        name = std::string();
    }
    flow.name = *name;
    flow.location = loc(*name_node);
    const std::string owner = name->empty() ? "flow" : "flow " + quote(*name);

    check_keys(
        root,
        {"version",
         "flow",
         "title",
         "languages",
         "idle_timeout",
         "start",
         "synonyms",
         "states",
         "faq"},
        owner
    );
    read_version(root, owner);

    if (const Node* title =
            require(root, "title", owner, "add a title, e.g. title: \"Passport services\"")) {
        flow.title = text(*title, "'title' of " + owner, owner, nullptr, &info.texts);
    }
    if (const Node* languages = root.find("languages")) {
        flow.languages = read_languages(*languages, owner);
        info.has_languages = !flow.languages.empty();
        if (!flow.languages.empty()) {
            flow.default_language = flow.languages.front();
        }
    }
    if (const Node* timeout = root.find("idle_timeout")) {
        if (auto text_value = scalar(*timeout, "'idle_timeout' of " + owner)) {
            const std::string& t = *text_value;
            std::optional<std::int64_t> ms = parse_duration_ms(t);
            if (ms && *ms == 0) {
                ms.reset();  // an idle timeout of zero would expire every conversation at once
            }
            if (ms) {
                flow.idle_timeout_ms = *ms;
            } else {
                error(
                    "E109",
                    *timeout,
                    "invalid duration " + quote(t) + " for 'idle_timeout' of " + owner,
                    "write a whole number and a unit: 90s, 30m, 2h or 1d"
                );
            }
        }
    }
    if (const Node* synonyms = root.find("synonyms")) {
        flow.synonyms = read_synonyms(*synonyms, owner);
    }
    if (const Node* start = require(root, "start", owner, "add 'start: STATE', the first state")) {
        if (auto id = state_id(*start, "start state")) {
            flow.start = *id;
            info.start = NameRef{*id, loc(*start), span(*start)};
        }
    }
    if (const Node* states =
            require(root, "states", owner, "add 'states:' with at least one state")) {
        if (expect_map(*states, "'states' of " + owner)) {
            std::unordered_set<std::string_view> seen;
            for (const auto& [key, value] : states->entries) {
                if (!key.is_scalar()) {
                    error("E101", key, "state ids must be text, found " + key.kind_name());
                    continue;
                }
                if (!seen.insert(key.scalar).second) {
                    const auto first = flow.state_index.find(key.scalar);
                    const int first_line =
                        first == flow.state_index.end()
                            ? 0
                            : flow.states[static_cast<std::size_t>(first->second)].location.line;
                    error(
                        "E104",
                        key,
                        "duplicate state " + quote(key.scalar) + " in " + owner,
                        "the first " + quote(key.scalar) + " is on line " +
                            std::to_string(first_line) + "; rename one of them"
                    );
                    continue;
                }
                if (!is_valid_state_id(key.scalar)) {
                    error(
                        "E109",
                        key,
                        "invalid state id " + quote(key.scalar) + " in " + owner,
                        "state ids are lowercase letters, digits, '_', '.' and '-', starting "
                        "with a letter"
                    );
                    continue;
                }
                read_state(key, value, out);
            }
            if (states->entries.empty()) {
                error(
                    "E109", *states, "'states' of " + owner + " is empty", "add at least one state"
                );
            }
        }
    }
    if (const Node* faq = root.find("faq")) {
        read_faq(*faq, out);
    }
    if (name->empty()) {
        return std::nullopt;
    }
    return out;
}

Synonyms Reader::read_synonyms(const Node& n, const std::string& owner) {
    Synonyms synonyms;
    const std::string what = "'synonyms' of " + owner;
    if (!expect_map(n, what)) {
        return synonyms;
    }
    check_language_keys(n, what);
    for (const auto& [lang, words] : n.entries) {
        if (!lang.is_scalar() || !is_valid_language_code(lang.scalar)) {
            continue;
        }
        const std::string lang_what = "the " + quote(lang.scalar) + " synonyms of " + owner;
        if (!expect_map(words, lang_what)) {
            continue;
        }
        for (const auto& [canonical, list] : words.entries) {
            if (!canonical.is_scalar()) {
                error("E101", canonical, "words in " + lang_what + " must be text");
                continue;
            }
            const std::string canon = normalize(canonical.scalar);
            if (canon.empty()) {
                error(
                    "E109",
                    canonical,
                    "word " + quote(canonical.scalar) + " in " + lang_what +
                        " has no letters or digits"
                );
                continue;
            }
            const std::string list_what = "the synonyms of " + quote(canonical.scalar);
            if (!expect_list(list, list_what)) {
                continue;
            }
            for (const Node& item : list.items) {
                if (auto word = scalar(item, "each entry of " + list_what)) {
                    const std::string w = normalize(*word);
                    if (!w.empty()) {
                        synonyms.entries.push_back({{lang.scalar, w}, canon});
                    }
                }
            }
        }
    }
    return synonyms;
}

void Reader::read_state(const Node& key, const Node& value, ParsedFlow& out) {
    Flow& flow = out.flow;
    State st;
    StateInfo info;
    st.id = key.scalar;
    st.location = loc(key);
    const std::string owner = "state " + quote(st.id);
    const auto register_state = [&]() {
        flow.state_index.emplace(st.id, static_cast<int>(flow.states.size()));
        flow.states.push_back(std::move(st));
        out.info.states.push_back(std::move(info));
    };
    if (!expect_map(value, owner)) {
        info.broken = true;  // still a known id: later references to it are not errors
        register_state();
        return;
    }
    static const std::vector<std::string> kStateKeys{
        "say",  "media",    "set",      "language", "help",       "menu",     "ask",
        "slot", "validate", "attempts", "then",     "on_give_up", "optional", "call",
        "on",   "goto",     "enter",    "end",      "match",      "otherwise"};
    check_keys(value, kStateKeys, owner);

    // Decorations, in the order they apply on entry.
    if (const Node* set = value.find("set")) {
        if (expect_map(*set, "'set' of " + owner)) {
            for (const auto& [slot_key, tpl] : set->entries) {
                auto slot = slot_name(slot_key, "slot");
                if (!slot) {
                    continue;
                }
                if (auto parsed = template_value(
                        tpl,
                        "'set' value of slot " + quote(*slot) + " in " + owner,
                        owner,
                        &info.reads
                    )) {
                    st.set.emplace_back(*slot, std::move(*parsed));
                }
            }
        }
    }
    if (const Node* language = value.find("language")) {
        if (auto code = scalar(*language, "'language' of " + owner)) {
            if (is_valid_language_code(*code)) {
                st.language = *code;
                info.language = NameRef{*code, loc(*language), span(*language)};
            } else {
                error(
                    "E109",
                    *language,
                    "invalid language code " + quote(*code) + " in " + owner,
                    "language codes are 2 or 3 lowercase letters, e.g. en, hi, mr"
                );
            }
        }
    }
    if (const Node* say = value.find("say")) {
        st.say = text(*say, "'say' of " + owner, owner, &info.reads, &out.info.texts);
    }
    if (const Node* media = value.find("media")) {
        const std::string what = "'media' of " + owner;
        if (expect_map(*media, what)) {
            check_keys(*media, {"url", "caption"}, what);
            Media m;
            if (const Node* url = require(*media, "url", what)) {
                if (auto tpl = template_value(*url, "'url' of " + what, owner, &info.reads)) {
                    m.url = std::move(*tpl);
                }
            }
            if (const Node* caption = media->find("caption")) {
                m.caption =
                    text(*caption, "'caption' of " + what, owner, &info.reads, &out.info.texts);
            }
            st.media = std::move(m);
        }
    }
    if (const Node* help = value.find("help")) {
        st.help = text(*help, "'help' of " + owner, owner, &info.reads, &out.info.texts);
    }

    // Exactly one action; `match` may join `menu` (free-text routes beside the options).
    static const std::array<std::string_view, 7> kActions{
        "menu", "ask", "call", "goto", "enter", "end", "match"};
    std::vector<const Node*> action_keys;
    for (const auto& [k, v] : value.entries) {
        if (k.is_scalar() &&
            std::find(kActions.begin(), kActions.end(), k.scalar) != kActions.end() &&
            std::none_of(action_keys.begin(), action_keys.end(), [&](const Node* seen) {
                return seen->scalar == k.scalar;
            })) {
            action_keys.push_back(&k);
        }
    }
    std::vector<const Node*> primary;  // the actions that exclude each other
    for (const Node* k : action_keys) {
        const bool match_beside_menu = k->scalar == "match" && value.find("menu") != nullptr;
        if (!match_beside_menu) {
            primary.push_back(k);
        }
    }
    if (primary.empty()) {
        // A misspelt action ("gotoo") is already reported as E102 with its correction; a
        // second message about the missing action would only repeat it.
        const bool misspelt_action =
            std::any_of(value.entries.begin(), value.entries.end(), [&](const auto& entry) {
                const Node& k = entry.first;
                return k.is_scalar() &&
                       std::find(kStateKeys.begin(), kStateKeys.end(), k.scalar) ==
                           kStateKeys.end() &&
                       !did_you_mean(
                            k.scalar, {"menu", "ask", "call", "goto", "enter", "end", "match"}
                       )
                            .empty();
            });
        info.broken = true;
        if (misspelt_action) {
            register_state();
            return;
        }
        diags_.error(
            "E111",
            loc(value),
            owner + " has no action",
            value.find("then") != nullptr
                ? "'then' continues an 'ask'; after a 'say', write 'goto: STATE' instead"
                : "add one of: menu, ask, call, goto, enter, end, match"
        );
        info.broken = true;
        register_state();
        return;
    }
    for (std::size_t i = 1; i < primary.size(); ++i) {
        error(
            "E110",
            *primary[i],
            owner + " has both " + quote(primary[0]->scalar) + " and " + quote(primary[i]->scalar) +
                "; a state has exactly one action",
            primary[i]->scalar == "goto" && primary[0]->scalar == "ask"
                ? "an ask continues with 'then:'"
                : "split the state in two and link them with goto"
        );
    }
    const std::string action = primary[0]->scalar;

    // Keys that belong to one kind of action only.
    struct Owned {
        std::string_view key;
        std::vector<std::string_view> actions;
    };

    static const std::array<Owned, 7> kOwned{{
        {"slot", {"ask"}},
        {"validate", {"ask"}},
        {"attempts", {"ask"}},
        {"on_give_up", {"ask"}},
        {"optional", {"ask"}},
        {"then", {"ask", "enter"}},
        {"on", {"call"}},
    }};
    for (const auto& [k, v] : value.entries) {
        if (!k.is_scalar()) {
            continue;
        }
        for (const Owned& owned : kOwned) {
            if (k.scalar == owned.key &&
                std::find(owned.actions.begin(), owned.actions.end(), action) ==
                    owned.actions.end()) {
                error(
                    "E110",
                    k,
                    quote(k.scalar) + " does not apply to a " + quote(action) + " state (" + owner +
                        ")",
                    quote(k.scalar) + " belongs to " + quote(owned.actions[0]) +
                        (owned.actions.size() > 1 ? " or " + quote(owned.actions[1]) : "") +
                        " states; remove it"
                );
            }
        }
        if (k.scalar == "otherwise" && action != "menu" && action != "match") {
            error(
                "E110",
                k,
                "'otherwise' does not apply to a " + quote(action) + " state (" + owner + ")",
                "'otherwise' belongs to menu and match states; remove it"
            );
        }
    }

    const Node& action_value = *value.find(action);
    if (action == "menu") {
        st.kind = StateKind::kMenu;
        for (const auto& [k, v] : value.entries) {
            if (k.is_scalar() && k.scalar == "menu") {
                info.menu_location = loc(k);
            }
        }
        if (value.find("say") == nullptr) {
            diags_.error(
                "E103",
                loc(value),
                "missing key 'say' in " + owner,
                "a menu shows its text from 'say' above the options"
            );
        }
        read_menu(action_value, st, info, owner, out.info);
        st.menu_text = st.say;
        if (const Node* match = value.find("match")) {
            read_routes(*match, st, info, owner, flow.synonyms);
        }
    } else if (action == "ask") {
        st.kind = StateKind::kAsk;
        read_ask(value, st, info, owner, out.info);
    } else if (action == "call") {
        st.kind = StateKind::kCall;
        read_call(value, st, info, owner);
    } else if (action == "goto") {
        st.kind = StateKind::kGoto;
        if (auto t = target(action_value, "'goto' of " + owner)) {
            st.go = std::move(*t);
        }
    } else if (action == "enter") {
        st.kind = StateKind::kEnter;
        Enter enter;
        if (auto name = name_value(
                action_value,
                "flow name in 'enter' of " + owner,
                &is_valid_name,
                "flow names are lowercase letters, digits and '_', starting "
                "with a letter"
            )) {
            enter.flow = *name;
            info.enter_flow = NameRef{*name, loc(action_value), span(action_value)};
        }
        if (const Node* then = value.find("then")) {
            if (auto t = target(*then, "'then' of " + owner)) {
                enter.then = std::move(*t);
            }
        }
        st.enter = std::move(enter);
    } else if (action == "end") {
        st.kind = StateKind::kEnd;
        if (auto flag = boolean(action_value, "'end' of " + owner); flag && !*flag) {
            error(
                "E109",
                action_value,
                "'end' of " + owner + " must be true",
                "write 'end: true', or remove the key and give the state another action"
            );
        }
    } else if (action == "match") {
        st.kind = StateKind::kFreeText;
        read_routes(action_value, st, info, owner, flow.synonyms);
    }
    if (const Node* otherwise = value.find("otherwise");
        otherwise != nullptr && (action == "menu" || action == "match")) {
        read_otherwise(*otherwise, st, info, owner, out.info);
    }
    register_state();
}

void Reader::read_menu(
    const Node& n, State& st, StateInfo& info, const std::string& owner, FlowInfo& flow_info
) {
    const std::string what = "'menu' of " + owner;
    if (!expect_list(n, what)) {
        return;
    }
    if (n.items.empty()) {
        error(
            "E109", n, what + " has no options", "add options: - { id: x, title: \"X\", goto: x }"
        );
        return;
    }
    int number = 0;
    for (const Node& item : n.items) {
        ++number;
        std::string option_owner = "option " + std::to_string(number) + " of " + owner;
        if (!expect_map(item, option_owner)) {
            continue;
        }
        MenuOption option;
        option.location = loc(item);
        if (const Node* id = item.find("id"); id != nullptr && id->is_scalar()) {
            option_owner = "option " + quote(id->scalar) + " of " + owner;
        }
        check_keys(item, {"id", "title", "goto", "enter"}, option_owner);
        if (const Node* id = require(item, "id", option_owner, "add 'id: NAME'")) {
            if (auto text_value = scalar(*id, "'id' of " + option_owner)) {
                if (valid_option_id(*text_value)) {
                    option.id = *text_value;
                    option.location = loc(*id);
                } else {
                    error(
                        "E109",
                        *id,
                        "invalid option id " + quote(*text_value) + " in " + owner,
                        "option ids are lowercase letters, digits, '_' and '-'"
                    );
                }
            }
        }
        if (const Node* title = require(item, "title", option_owner, "add 'title: \"...\"'")) {
            option.title =
                text(*title, "'title' of " + option_owner, owner, &info.reads, &flow_info.texts);
            for (const auto& variant : option.title.variants()) {
                if (variant.text.all_slots().empty()) {
                    option.match_titles.push_back(normalize(variant.text.render({})));
                }
            }
        }
        const Node* go = item.find("goto");
        const Node* enter = item.find("enter");
        if (go != nullptr && enter != nullptr) {
            const Node* second = nullptr;
            for (const auto& [k, v] : item.entries) {
                if (k.is_scalar() && (k.scalar == "goto" || k.scalar == "enter")) {
                    second = &k;
                }
            }
            error(
                "E110",
                *second,
                option_owner + " has both 'goto' and 'enter'",
                "an option either goes to a state or enters a flow"
            );
        } else if (go != nullptr) {
            if (auto t = target(*go, "'goto' of " + option_owner)) {
                option.target = std::move(*t);
            }
        } else if (enter != nullptr) {
            if (auto name = name_value(
                    *enter,
                    "flow name in 'enter' of " + option_owner,
                    &is_valid_name,
                    "flow names are lowercase letters, digits and '_', "
                    "starting with a letter"
                )) {
                option.target.flow = *name;
                option.target.location = loc(*enter);
            }
        } else {
            diags_.error(
                "E103",
                loc(item),
                "missing key 'goto' in " + option_owner,
                "an option leads somewhere: add 'goto: STATE' or 'enter: FLOW'"
            );
        }
        st.menu.push_back(std::move(option));
    }
}

void Reader::read_ask(
    const Node& map, State& st, StateInfo& info, const std::string& owner, FlowInfo& flow_info
) {
    Ask ask;
    ask.prompt = text(*map.find("ask"), "'ask' of " + owner, owner, &info.reads, &flow_info.texts);
    if (const Node* slot =
            require(map, "slot", owner, "an ask saves its answer: add 'slot: NAME'")) {
        if (auto name = slot_name(*slot, "slot")) {
            ask.slot = *name;
        }
    }
    if (const Node* validate = map.find("validate")) {
        read_validators(*validate, ask, info, owner, flow_info);
    }
    if (const Node* attempts = map.find("attempts")) {
        if (auto n = integer(*attempts, "'attempts' of " + owner, 1)) {
            ask.attempts = static_cast<int>(std::min<std::int64_t>(*n, 1000));
        }
    }
    // An ask written with 'goto' instead of 'then' gets one error (E110, whose hint says
    // "an ask continues with 'then:'"), not a second one for the missing 'then'.
    const Node* then = map.find("goto") != nullptr
                           ? map.find("then")
                           : require(map, "then", owner, "add 'then: STATE' for a valid answer");
    if (then != nullptr) {
        if (auto t = target(*then, "'then' of " + owner)) {
            ask.then = std::move(*t);
        }
    }
    if (const Node* give_up = map.find("on_give_up")) {
        if (auto t = target(*give_up, "'on_give_up' of " + owner)) {
            ask.give_up = std::move(*t);
        }
    }
    if (const Node* optional = map.find("optional")) {
        ask.optional = boolean(*optional, "'optional' of " + owner).value_or(false);
    }
    st.ask = std::move(ask);
}

void Reader::read_validators(
    const Node& n, Ask& ask, StateInfo& info, const std::string& owner, FlowInfo& flow_info
) {
    std::vector<const Node*> maps;
    if (n.is_map()) {
        maps.push_back(&n);
    } else if (n.is_sequence()) {
        for (const Node& item : n.items) {
            maps.push_back(&item);
        }
    } else {
        error(
            "E101",
            n,
            "'validate' of " + owner + " must be a mapping or a list of mappings, found " +
                n.kind_name()
        );
        return;
    }
    static const std::vector<std::string> kKinds{
        "pattern", "date", "integer", "one_of", "mobile", "pin", "media"};
    const std::string what = "validator of " + owner;
    for (const Node* m : maps) {
        if (!expect_map(*m, what)) {
            continue;
        }
        std::vector<std::string> keys = kKinds;
        keys.emplace_back("error");
        check_keys(*m, keys, what);
        std::vector<const Node*> kinds;
        for (const auto& [k, v] : m->entries) {
            if (k.is_scalar() &&
                std::find(kKinds.begin(), kKinds.end(), k.scalar) != kKinds.end()) {
                kinds.push_back(&k);
            }
        }
        if (kinds.empty()) {
            diags_.error(
                "E103",
                loc(*m),
                "missing kind in " + what,
                "a validator has one of: " + join(kKinds)
            );
            continue;
        }
        for (std::size_t i = 1; i < kinds.size(); ++i) {
            error(
                "E110",
                *kinds[i],
                what + " has both " + quote(kinds[0]->scalar) + " and " + quote(kinds[i]->scalar),
                "write one validator per kind: validate: [ {...}, {...} ]"
            );
        }
        Validator v;
        v.location = loc(*m);
        const std::string kind = kinds[0]->scalar;
        const Node& arg = *m->find(kind);
        bool ok = true;
        if (kind == "pattern") {
            v.kind = Validator::Kind::kPattern;
            if (auto source = scalar(arg, "'pattern' of " + what)) {
                auto compiled = Regex::compile(*source);
                if (compiled) {
                    v.pattern = *compiled;
                } else {
                    error(
                        "E301",
                        arg,
                        "invalid regular expression in " + owner + ": " + compiled.error().message,
                        pattern_hint(*source)
                    );
                    ok = false;
                }
            } else {
                ok = false;
            }
        } else if (kind == "date") {
            v.kind = Validator::Kind::kDate;
            if (arg.is_map()) {
                const std::string date_what = "'date' of " + what;
                check_keys(arg, {"not_future", "min", "max"}, date_what);
                if (const Node* nf = arg.find("not_future")) {
                    v.not_future = boolean(*nf, "'not_future' of " + date_what).value_or(false);
                }
                auto read_date = [&](const char* key, std::optional<Date>& out, bool allow_today) {
                    const Node* d = arg.find(key);
                    if (d == nullptr) {
                        return;
                    }
                    auto t = scalar(*d, quote(key) + " of " + date_what);
                    if (!t) {
                        return;
                    }
                    if (allow_today && *t == "today") {
                        v.max_is_today = true;
                        return;
                    }
                    out = parse_date(*t);
                    if (!out) {
                        error(
                            "E109",
                            *d,
                            "invalid date " + quote(*t) + " in " + date_what,
                            std::string("write a real date as DD-MM-YYYY") +
                                (allow_today ? ", or 'today'" : "")
                        );
                    }
                };
                read_date("min", v.min_date, false);
                read_date("max", v.max_date, true);
                if (v.min_date && v.max_date && *v.min_date > *v.max_date) {
                    error(
                        "E109",
                        arg,
                        "'min' is after 'max' in " + date_what,
                        "no date could pass: swap them"
                    );
                }
            } else if (auto flag = boolean(arg, "'date' of " + what); !flag || !*flag) {
                ok = false;
            }
        } else if (kind == "integer") {
            v.kind = Validator::Kind::kInteger;
            if (arg.is_map()) {
                const std::string int_what = "'integer' of " + what;
                check_keys(arg, {"min", "max"}, int_what);
                for (const char* key : {"min", "max"}) {
                    if (const Node* bound = arg.find(key)) {
                        if (auto t = scalar(*bound, quote(key) + " of " + int_what)) {
                            auto value = to_integer(*t);
                            if (!value) {
                                error(
                                    "E109",
                                    *bound,
                                    quote(key) + " of " + int_what +
                                        " must be a whole number, found " + quote(*t)
                                );
                            } else {
                                (std::string_view(key) == "min" ? v.min_int : v.max_int) = value;
                            }
                        }
                    }
                }
                if (v.min_int && v.max_int && *v.min_int > *v.max_int) {
                    error("E109", arg, "'min' is above 'max' in " + int_what);
                }
            } else if (auto flag = boolean(arg, "'integer' of " + what); !flag || !*flag) {
                ok = false;
            }
        } else if (kind == "one_of") {
            v.kind = Validator::Kind::kOneOf;
            if (expect_list(arg, "'one_of' of " + what)) {
                for (const Node& choice : arg.items) {
                    if (auto c = scalar(choice, "each choice of 'one_of' of " + what)) {
                        v.one_of.push_back(*c);
                    }
                }
                if (arg.items.empty()) {
                    error("E109", arg, "'one_of' of " + what + " has no choices");
                }
            }
        } else {
            v.kind = kind == "mobile" ? Validator::Kind::kMobile
                     : kind == "pin"  ? Validator::Kind::kPin
                                      : Validator::Kind::kMedia;
            auto flag = boolean(arg, quote(kind) + " of " + what);
            if (flag && !*flag) {
                error(
                    "E109",
                    arg,
                    quote(kind) + " of " + what + " must be true",
                    "remove the validator instead of setting it to false"
                );
            }
            ok = flag.value_or(false);
        }
        if (const Node* err = m->find("error")) {
            v.error = text(*err, "'error' of " + what, owner, &info.reads, &flow_info.texts);
        }
        if (ok) {
            ask.validators.push_back(std::move(v));
        }
    }
}

void Reader::read_call(const Node& map, State& st, StateInfo& info, const std::string& owner) {
    Call call;
    const Node& n = *map.find("call");
    const std::string what = "'call' of " + owner;
    if (expect_map(n, what)) {
        check_keys(n, {"backend", "method", "path", "body", "save"}, what);
        if (const Node* backend =
                require(n, "backend", what, "name the backend of the server config")) {
            if (auto name = scalar(*backend, "'backend' of " + what)) {
                call.backend = *name;
            }
        }
        if (const Node* method = n.find("method")) {
            if (auto m = scalar(*method, "'method' of " + what)) {
                if (*m == "GET" || *m == "POST") {
                    call.method = *m;
                } else {
                    error(
                        "E109",
                        *method,
                        "invalid method " + quote(*m) + " in " + what,
                        "use GET or POST"
                    );
                }
            }
        }
        if (const Node* path = require(n, "path", what, "add 'path: \"/...\"'")) {
            if (auto tpl = template_value(*path, "'path' of " + what, owner, &info.reads)) {
                call.path = std::move(*tpl);
            }
        }
        if (const Node* body = n.find("body")) {
            if (call.method != "POST") {
                const Node* key = nullptr;
                for (const auto& [k, v] : n.entries) {
                    if (k.is_scalar() && k.scalar == "body") {
                        key = &k;
                    }
                }
                error(
                    "E110",
                    *key,
                    "'body' needs 'method: POST' in " + what,
                    "a GET request has no body; add 'method: POST'"
                );
            }
            if (expect_map(*body, "'body' of " + what)) {
                for (const auto& [field, tpl] : body->entries) {
                    auto name = scalar(field, "field names of 'body' of " + what);
                    if (!name) {
                        continue;
                    }
                    if (auto parsed = template_value(
                            tpl,
                            "field " + quote(*name) + " of 'body' of " + what,
                            owner,
                            &info.reads
                        )) {
                        call.body.emplace_back(*name, std::move(*parsed));
                    }
                }
            }
        }
        if (const Node* save = n.find("save")) {
            if (expect_map(*save, "'save' of " + what)) {
                for (const auto& [slot_key, pointer] : save->entries) {
                    auto slot = slot_name(slot_key, "slot");
                    if (!slot) {
                        continue;
                    }
                    auto p =
                        scalar(pointer, "JSON pointer of slot " + quote(*slot) + " in " + what);
                    if (!p) {
                        continue;
                    }
                    if (!p->empty() && (*p)[0] != '/') {
                        error(
                            "E109",
                            pointer,
                            "invalid JSON pointer " + quote(*p) + " for slot " + quote(*slot) +
                                " in " + what,
                            "a JSON pointer starts with '/', e.g. /status/stage"
                        );
                        continue;
                    }
                    call.save.emplace_back(*slot, *p);
                }
            }
        }
    }
    if (const Node* on = require(map, "on", owner, "add 'on: { ok: STATE, error: STATE }'")) {
        const std::string on_what = "'on' of " + owner;
        if (expect_map(*on, on_what)) {
            check_keys(*on, {"ok", "not_found", "error"}, on_what);
            if (const Node* ok =
                    require(*on, "ok", on_what, "add 'ok: STATE' for a successful call")) {
                if (auto t = target(*ok, "'ok' of " + on_what)) {
                    call.on_ok = std::move(*t);
                }
            }
            if (const Node* nf = on->find("not_found")) {
                if (auto t = target(*nf, "'not_found' of " + on_what)) {
                    call.on_not_found = std::move(*t);
                }
            }
            if (const Node* err =
                    require(*on, "error", on_what, "add 'error: STATE' for a failed call")) {
                if (auto t = target(*err, "'error' of " + on_what)) {
                    call.on_error = std::move(*t);
                }
            }
        }
    }
    st.call = std::move(call);
}

void Reader::read_routes(
    const Node& n, State& st, StateInfo& info, const std::string& owner, const Synonyms& synonyms
) {
    if (!expect_list(n, "'match' of " + owner)) {
        return;
    }
    std::vector<MatchRule> rules;
    int number = 0;
    for (const Node& item : n.items) {
        ++number;
        const std::string route_owner = "route " + std::to_string(number) + " of " + owner;
        if (!expect_map(item, route_owner)) {
            continue;
        }
        check_keys(item, {"keywords", "phrases", "patterns", "goto"}, route_owner);
        std::vector<std::string> captures;
        Route route;
        route.rule = match_rule(item, route_owner, captures);
        if (const Node* go = require(item, "goto", route_owner, "add 'goto: STATE'")) {
            if (auto t = target(*go, "'goto' of " + route_owner)) {
                route.target = std::move(*t);
            }
        }
        rules.push_back(route.rule);
        st.routes.push_back(std::move(route));
        info.route_captures.push_back(std::move(captures));
    }
    if (n.items.empty()) {
        error(
            "E302",
            n,
            "'match' of " + owner + " has no routes",
            "add routes: - { keywords: [...], goto: STATE }"
        );
    }
    if (!rules.empty()) {
        st.route_matcher = TextMatcher::build(rules, synonyms, diags_);
    }
}

void Reader::read_otherwise(
    const Node& n, State& st, StateInfo& info, const std::string& owner, FlowInfo& flow_info
) {
    const std::string what = "'otherwise' of " + owner;
    if (!expect_map(n, what)) {
        return;
    }
    check_keys(n, {"say", "retry", "then"}, what);
    Otherwise o;
    if (const Node* say = n.find("say")) {
        o.say = text(*say, "'say' of " + what, owner, &info.reads, &flow_info.texts);
    }
    if (const Node* retry = n.find("retry")) {
        if (auto r = integer(*retry, "'retry' of " + what, 0)) {
            o.retry = static_cast<int>(std::min<std::int64_t>(*r, 1000));
        }
    }
    if (const Node* then = n.find("then")) {
        if (auto t = target(*then, "'then' of " + what)) {
            o.then = std::move(*t);
        }
    }
    st.otherwise = std::move(o);
}

void Reader::read_faq(const Node& n, ParsedFlow& out) {
    Flow& flow = out.flow;
    const std::string flow_owner = flow.name.empty() ? "flow" : "flow " + quote(flow.name);
    if (!expect_list(n, "'faq' of " + flow_owner)) {
        return;
    }
    std::vector<MatchRule> rules;
    int number = 0;
    for (const Node& item : n.items) {
        ++number;
        std::string owner = "faq " + std::to_string(number) + " of " + flow_owner;
        if (!expect_map(item, owner)) {
            continue;
        }
        FaqEntry entry;
        entry.location = loc(item);
        if (const Node* id = item.find("id"); id != nullptr && id->is_scalar()) {
            owner = "faq " + quote(id->scalar);
        }
        check_keys(item, {"id", "match", "answer", "goto"}, owner);
        if (const Node* id = require(item, "id", owner, "add 'id: NAME'")) {
            if (auto text_value = scalar(*id, "'id' of " + owner)) {
                if (valid_option_id(*text_value)) {
                    entry.id = *text_value;
                    entry.location = loc(*id);
                } else {
                    error(
                        "E109",
                        *id,
                        "invalid faq id " + quote(*text_value) + " in " + flow_owner,
                        "faq ids are lowercase letters, digits, '_' and '-'"
                    );
                }
            }
        }
        std::vector<std::string> captures;
        if (const Node* match = require(item, "match", owner, "add 'match: { keywords: [...] }'")) {
            const std::string match_what = "'match' of " + owner;
            if (expect_map(*match, match_what)) {
                check_keys(*match, {"keywords", "phrases", "patterns"}, match_what);
                entry.rule = match_rule(*match, owner, captures);
            }
        }
        if (const Node* answer = require(item, "answer", owner, "add 'answer: \"...\"'")) {
            entry.answer =
                text(*answer, "'answer' of " + owner, owner, &out.info.faq_reads, &out.info.texts);
        }
        if (const Node* go = item.find("goto")) {
            if (auto t = target(*go, "'goto' of " + owner)) {
                entry.target = std::move(*t);
            }
        }
        rules.push_back(entry.rule);
        flow.faq.push_back(std::move(entry));
        out.info.faq_captures.push_back(std::move(captures));
    }
    if (!rules.empty()) {
        flow.faq_matcher = TextMatcher::build(rules, flow.synonyms, diags_);
    }
}

std::optional<ParsedHelpline> Reader::read_helpline(const Node& root) {
    ParsedHelpline out;
    Helpline& h = out.helpline;
    h.file = file_;
    const Node* name_node = root.find("helpline");
    out.info.location = loc(*name_node);
    std::string owner = "helpline file";
    if (auto name = scalar(*name_node, "helpline name")) {
        if (name->empty()) {
            error("E109", *name_node, "the helpline name is empty");
        } else {
            h.name = *name;
            owner = "helpline " + quote(*name);
        }
    }
    check_keys(
        root,
        {"version",
         "helpline",
         "entry",
         "languages",
         "language_names",
         "utc_offset",
         "commands",
         "messages"},
        owner
    );
    read_version(root, owner);
    if (const Node* entry =
            require(root, "entry", owner, "add 'entry: FLOW', the flow a new citizen starts in")) {
        if (auto flow = name_value(
                *entry,
                "entry flow",
                &is_valid_name,
                "flow names are lowercase letters, digits and '_', starting "
                "with a letter"
            )) {
            h.entry = *flow;
            out.info.entry = NameRef{*flow, loc(*entry), span(*entry)};
        }
    }
    bool languages_read = false;
    if (const Node* languages = require(root, "languages", owner, "add 'languages: [en]'")) {
        h.languages = read_languages(*languages, owner);
        languages_read = !h.languages.empty();
        if (!h.languages.empty()) {
            h.default_language = h.languages.front();
        }
    }
    // Without a valid 'languages' (its own error), no name could be checked against it.
    if (const Node* names = root.find("language_names"); names && languages_read) {
        const std::string what = "'language_names' of " + owner;
        if (expect_map(*names, what)) {
            check_language_keys(*names, what);
            for (const auto& [lang, label] : names->entries) {
                if (!lang.is_scalar() || !is_valid_language_code(lang.scalar)) {
                    continue;
                }
                if (std::find(h.languages.begin(), h.languages.end(), lang.scalar) ==
                    h.languages.end()) {
                    error(
                        "E109",
                        lang,
                        "language " + quote(lang.scalar) + " in " + what +
                            " is not a language of the helpline",
                        "helpline languages: " + join(h.languages)
                    );
                    continue;
                }
                if (auto text_value = scalar(label, "the name of language " + quote(lang.scalar))) {
                    h.language_labels.emplace_back(lang.scalar, *text_value);
                }
            }
        }
    }
    if (const Node* offset = root.find("utc_offset")) {
        if (auto t = scalar(*offset, "'utc_offset' of " + owner)) {
            // "+05:30": sign, hours, colon, minutes.
            const std::string& s = *t;
            bool ok = s.size() == 6 && (s[0] == '+' || s[0] == '-') && is_digit(s[1]) &&
                      is_digit(s[2]) && s[3] == ':' && is_digit(s[4]) && is_digit(s[5]);
            int minutes = 0;
            if (ok) {
                const int hh = (s[1] - '0') * 10 + (s[2] - '0');
                const int mm = (s[4] - '0') * 10 + (s[5] - '0');
                ok = hh <= 14 && mm < 60;
                minutes = (hh * 60 + mm) * (s[0] == '-' ? -1 : 1);
            }
            if (ok) {
                h.utc_offset_minutes = minutes;
            } else {
                error(
                    "E109",
                    *offset,
                    "invalid 'utc_offset' " + quote(s) + " in " + owner,
                    "write the offset as \"+05:30\" (quoted)"
                );
            }
        }
    }
    if (const Node* commands = root.find("commands")) {
        const std::string what = "'commands' of " + owner;
        if (expect_map(*commands, what)) {
            std::vector<std::string> names;
            for (const DefaultCommand& c : kDefaultCommands) {
                names.emplace_back(c.name);
            }
            check_keys(*commands, names, what);
            std::unordered_set<std::string_view> done;
            for (const auto& [key, words] : commands->entries) {
                if (!key.is_scalar() || !done.insert(key.scalar).second) {
                    continue;  // duplicate: reported above
                }
                const auto known = std::find_if(
                    kDefaultCommands.begin(),
                    kDefaultCommands.end(),
                    [&](const DefaultCommand& c) { return c.name == key.scalar; }
                );
                if (known == kDefaultCommands.end()) {
                    continue;  // unknown: reported above
                }
                for (const Term& term : word_list(words, "command " + quote(key.scalar))) {
                    h.command_words.push_back({known->command, {term.lang, normalize(term.text)}});
                }
            }
        }
    }
    if (const Node* messages = root.find("messages")) {
        const std::string what = "'messages' of " + owner;
        if (expect_map(*messages, what)) {
            std::vector<std::string> keys;
            for (const DefaultMessage& m : kDefaultMessages) {
                keys.emplace_back(m.key);
            }
            check_keys(*messages, keys, what);
            std::unordered_set<std::string_view> done;
            for (const auto& [key, value] : messages->entries) {
                if (!key.is_scalar() ||
                    std::find(keys.begin(), keys.end(), key.scalar) == keys.end() ||
                    !done.insert(key.scalar).second) {
                    continue;
                }
                const std::string message_owner = "message " + quote(key.scalar);
                h.messages.emplace_back(
                    key.scalar,
                    text(value, message_owner, message_owner, &out.info.reads, &out.info.texts)
                );
            }
        }
    }
    for (const DefaultMessage& m : kDefaultMessages) {
        if (h.message(m.key) == nullptr)
            out.info.builtin_messages.emplace_back(m.key);
    }
    apply_helpline_defaults(h);
    if (h.name.empty()) {
        return std::nullopt;
    }
    return out;
}

}  // namespace

bool is_valid_language_code(std::string_view code) {
    return (code.size() == 2 || code.size() == 3) &&
           std::all_of(code.begin(), code.end(), is_lower);
}

bool is_valid_state_id(std::string_view id) {
    if (id.empty() || !is_lower(id[0])) {
        return false;
    }
    return std::all_of(id.begin(), id.end(), [](char c) {
        return is_lower(c) || is_digit(c) || c == '_' || c == '.' || c == '-';
    });
}

bool is_valid_name(std::string_view name) {
    if (name.empty() || !is_lower(name[0])) {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return is_lower(c) || is_digit(c) || c == '_';
    });
}

const std::vector<std::string>& builtin_slots() {
    static const std::vector<std::string> kBuiltins{"profile_name", "flow_title", "lang"};
    return kBuiltins;
}

void apply_helpline_defaults(Helpline& helpline) {
    for (const DefaultCommand& c : kDefaultCommands) {
        const bool defined = std::any_of(
            helpline.command_words.begin(),
            helpline.command_words.end(),
            [&](const auto& entry) { return entry.first == c.command; }
        );
        if (defined) {
            continue;
        }
        for (std::string_view word : c.words) {
            if (!word.empty()) {
                // Language "" = every language: the engine accepts these whatever the session's
                // language is.
                helpline.command_words.push_back({c.command, {"", normalize(word)}});
            }
        }
    }
    for (const DefaultMessage& m : kDefaultMessages) {
        if (helpline.message(m.key) != nullptr) {
            continue;
        }
        std::vector<LocalizedText::Variant> variants;
        variants.push_back(LocalizedText::Variant{"", Template::literal(m.text), {}});
        helpline.messages.emplace_back(std::string(m.key), LocalizedText(std::move(variants)));
    }
}

ParsedFile parse_file(const yaml::Node& root, const std::string& file, Diagnostics& diags) {
    Reader reader(file, diags);
    return reader.read(root);
}

}  // namespace civicflow::engine::detail
