/// Diagnostics for flow authors: located, coded, with a hint; formatted GCC-style or as JSON.
#pragma once

#include <string>
#include <vector>

namespace civicflow::engine {

enum class Severity { kError, kWarning };

/// A 1-based position in a source file. line == 0 means "the whole file".
struct SourceLocation {
    std::string file;
    int line = 0;
    int column = 0;
};

/// One problem found while loading or checking flows. `code` is stable forever (E1xx shape,
/// E2xx graph, E3xx matchers, E4xx templates and text, W1xx warnings); every code has a section
/// in docs/flow-errors.md. `length` is how many columns the snippet marker underlines (>= 1).
struct Diagnostic {
    Severity severity = Severity::kError;
    std::string code;
    SourceLocation location;
    std::string message;
    std::string hint;
    int length = 1;
};

/// Collects diagnostics across every layer of a check so all problems are reported in one run.
class Diagnostics {
public:
    void error(
        std::string code,
        SourceLocation loc,
        std::string message,
        std::string hint = {},
        int length = 1
    );
    void warning(
        std::string code,
        SourceLocation loc,
        std::string message,
        std::string hint = {},
        int length = 1
    );

    void add(Diagnostic d) { items_.push_back(std::move(d)); }

    void append(const Diagnostics& other);

    const std::vector<Diagnostic>& items() const { return items_; }

    bool has_errors() const;
    int error_count() const;
    int warning_count() const;

    bool empty() const { return items_.empty(); }

    /// Orders by file, line, column, then code, so output is stable.
    void sort();

private:
    std::vector<Diagnostic> items_;
};

/// Reads source lines for snippets. Implementations: a map of file -> contents (tests,
/// the loader's own copy), so formatting never touches the disk.
class SourceCache {
public:
    void put(const std::string& file, std::string contents);
    /// The 1-based line of `file`, without its newline; empty when unknown.
    std::string line(const std::string& file, int line) const;

private:
    struct File {
        std::string name;
        std::string contents;
        std::vector<std::size_t> line_starts;  // byte offset of each line: O(1) look-ups
    };

    std::vector<File> files_;
};

/// GCC-style text: "file:line:col: error[CODE]: message", then a numbered snippet with a
/// caret marker and "  hint: ..." when present, then a summary line per file
/// ("flows/x.yaml: 2 errors, 0 warnings"). Summaries are omitted when `summary` is false.
std::string format_text(const Diagnostics& diags, const SourceCache& sources, bool summary = true);

/// The same diagnostics as a JSON array of objects
/// {"file","line","column","severity","code","message","hint"}.
std::string format_json(const Diagnostics& diags);

/// Levenshtein-based suggestion: the candidate within edit distance 2 of `word`, nearest first,
/// or empty when none is close enough.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

/// A byte as messages name it: "0x1B".
std::string byte_name(unsigned char c);

}  // namespace civicflow::engine
