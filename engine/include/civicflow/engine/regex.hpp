/// Regular expressions in RE2 syntax behind our own types (RE2 stays in one source file).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <civicflow/engine/result.hpp>

namespace civicflow::engine {

/// One compiled RE2 pattern. Immutable and thread-safe after compile().
class Regex {
public:
    /// Compiles `pattern` (UTF-8, RE2 syntax). On failure the Error message is RE2's reason,
    /// e.g. "missing ): (?i)\\b(lost".
    static Result<std::shared_ptr<const Regex>> compile(std::string_view pattern);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    /// True when the whole of `text` matches.
    bool full_match(std::string_view text) const;
    /// Searches `text`; on a match appends (group name, captured text) for every named group that
    /// took part and returns true.
    bool search(std::string_view text, std::vector<std::pair<std::string, std::string>>* captures)
        const;
    /// Named groups of the pattern, in order.
    std::vector<std::string> group_names() const;
    const std::string& pattern() const;

    struct Impl;

private:
    explicit Regex(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

/// Many patterns compiled once into one RE2::Set; a search answers which of them match in one
/// pass over the text. Immutable and thread-safe after build().
class RegexSet {
public:
    /// Builds from already-validated patterns (each compiled alone first, so errors carry a
    /// location). Returns an Error only if RE2 refuses the combined set (e.g. memory budget).
    static Result<std::shared_ptr<const RegexSet>> build(const std::vector<std::string>& patterns);
    ~RegexSet();
    RegexSet(const RegexSet&) = delete;
    RegexSet& operator=(const RegexSet&) = delete;

    /// Indices (into the build() list) of the patterns found in `text`, ascending.
    void matches(std::string_view text, std::vector<int>& out) const;
    std::size_t size() const;

    struct Impl;

private:
    explicit RegexSet(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

/// The hint of an E301 for `source`: what RE2 lacks that the pattern seems to use
/// (look-around, back-references), else how its syntax differs from others'.
std::string pattern_hint(std::string_view source);

}  // namespace civicflow::engine
