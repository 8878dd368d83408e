// The only translation unit that includes RE2 (STYLE.md section 2): everything else sees
// civicflow::engine::Regex and RegexSet.
#include <algorithm>
#include <array>

#include <re2/re2.h>
#include <re2/set.h>

#include <civicflow/engine/regex.hpp>

namespace civicflow::engine {

namespace {

re2::RE2::Options make_options() {
    re2::RE2::Options options;
    options.set_encoding(re2::RE2::Options::EncodingUTF8);
    // Errors are returned to the author as diagnostics; RE2 must not print them to stderr.
    options.set_log_errors(false);
    return options;
}

re2::StringPiece piece(std::string_view text) {
    return re2::StringPiece(text.data(), text.size());
}

}  // namespace

struct Regex::Impl {
    explicit Impl(std::string_view source)
        : pattern(source)
        , re(re2::StringPiece(pattern), make_options()) {}

    std::string pattern;
    re2::RE2 re;
    int group_count = 0;
    // (capturing group index, name), ascending by index: the order the groups appear in.
    std::vector<std::pair<int, std::string>> named_groups;
};

Regex::Regex(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

Regex::~Regex() = default;

Result<std::shared_ptr<const Regex>> Regex::compile(std::string_view pattern) {
    auto impl = std::make_unique<Impl>(pattern);
    if (!impl->re.ok()) {
        return Error{"E301", impl->re.error()};
    }
    impl->group_count = impl->re.NumberOfCapturingGroups();
    for (const auto& [name, index] : impl->re.NamedCapturingGroups()) {
        impl->named_groups.emplace_back(index, name);
    }
    std::sort(impl->named_groups.begin(), impl->named_groups.end());
    return std::shared_ptr<const Regex>(new Regex(std::move(impl)));
}

bool Regex::full_match(std::string_view text) const {
    return re2::RE2::FullMatch(piece(text), impl_->re);
}

bool Regex::search(
    std::string_view text, std::vector<std::pair<std::string, std::string>>* captures
) const {
    const re2::RE2& re = impl_->re;
    if (captures == nullptr || impl_->named_groups.empty()) {
        // Without named groups RE2 can answer from its DFA alone, which is much faster.
        return re.Match(piece(text), 0, text.size(), re2::RE2::UNANCHORED, nullptr, 0);
    }
    // Submatches only up to the last named group; on the stack for the usual few groups.
    const int wanted = impl_->named_groups.back().first + 1;
    constexpr int kSmall = 16;
    std::array<re2::StringPiece, kSmall> small;
    std::vector<re2::StringPiece> big;
    re2::StringPiece* subs = small.data();
    if (wanted > kSmall) {
        big.resize(static_cast<std::size_t>(wanted));
        subs = big.data();
    }
    if (!re.Match(piece(text), 0, text.size(), re2::RE2::UNANCHORED, subs, wanted)) {
        return false;
    }
    for (const auto& [index, name] : impl_->named_groups) {
        const re2::StringPiece& sub = subs[index];
        if (sub.data() != nullptr) {  // null data: the group did not take part in the match
            captures->emplace_back(name, std::string(sub.data(), sub.size()));
        }
    }
    return true;
}

std::vector<std::string> Regex::group_names() const {
    std::vector<std::string> names;
    names.reserve(impl_->named_groups.size());
    for (const auto& group : impl_->named_groups) {
        names.push_back(group.second);
    }
    return names;
}

const std::string& Regex::pattern() const {
    return impl_->pattern;
}

struct RegexSet::Impl {
    Impl()
        : set(make_options(), re2::RE2::UNANCHORED) {}

    re2::RE2::Set set;
    // The same patterns compiled one by one: used only when the set's DFA runs out of memory on
    // some input, so a hostile message degrades speed, never correctness.
    std::vector<std::unique_ptr<re2::RE2>> singles;
};

RegexSet::RegexSet(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

RegexSet::~RegexSet() = default;

Result<std::shared_ptr<const RegexSet>> RegexSet::build(const std::vector<std::string>& patterns) {
    auto impl = std::make_unique<Impl>();
    for (const std::string& pattern : patterns) {
        std::string error;
        if (impl->set.Add(re2::StringPiece(pattern), &error) < 0) {
            return Error{"E301", error};
        }
        auto single = std::make_unique<re2::RE2>(re2::StringPiece(pattern), make_options());
        if (!single->ok()) {
            return Error{"E301", single->error()};
        }
        impl->singles.push_back(std::move(single));
    }
    // An empty RE2::Set cannot be compiled usefully; matches() answers nothing without it.
    if (!patterns.empty() && !impl->set.Compile()) {
        return Error{"E301", "the patterns are too large to compile together"};
    }
    return std::shared_ptr<const RegexSet>(new RegexSet(std::move(impl)));
}

void RegexSet::matches(std::string_view text, std::vector<int>& out) const {
    out.clear();
    if (impl_->singles.empty()) {
        return;
    }
    re2::RE2::Set::ErrorInfo info{};
    if (impl_->set.Match(piece(text), &out, &info)) {
        std::sort(out.begin(), out.end());
        return;
    }
    out.clear();
    if (info.kind == re2::RE2::Set::kNoError) {
        return;  // simply no match
    }
    for (std::size_t i = 0; i < impl_->singles.size(); ++i) {
        if (re2::RE2::PartialMatch(piece(text), *impl_->singles[i])) {
            out.push_back(static_cast<int>(i));
        }
    }
}

std::size_t RegexSet::size() const {
    return impl_->singles.size();
}

std::string pattern_hint(std::string_view source) {
    for (const std::string_view around : {"(?=", "(?!", "(?<=", "(?<!"}) {
        if (source.find(around) != std::string_view::npos) {
            return "RE2 has no look-ahead or look-behind ((?=, (?!, (?<=, (?<!): match the text "
                   "itself, and capture the part you need with (?P<name>...)";
        }
    }
    for (std::size_t i = 0; i + 1 < source.size(); ++i) {
        if (source[i] == '\\' && source[i + 1] >= '1' && source[i + 1] <= '9')
            return "RE2 has no back-references (\\1): write the repeated part out";
        if (source[i] == '\\')
            ++i;  // an escaped character, e.g. \\ then 1
    }
    return "patterns use RE2 syntax; named groups are written (?P<name>...)";
}

}  // namespace civicflow::engine
