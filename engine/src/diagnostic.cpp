// Diagnostics for flow authors: collection, GCC-style text, JSON, "did you mean".
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <tuple>

#include <civicflow/engine/diagnostic.hpp>
#include <civicflow/engine/text_normalize.hpp>

namespace civicflow::engine {

void Diagnostics::error(
    std::string code, SourceLocation loc, std::string message, std::string hint, int length
) {
    items_.push_back(Diagnostic{
        Severity::kError,
        std::move(code),
        std::move(loc),
        std::move(message),
        std::move(hint),
        std::max(1, length)});
}

void Diagnostics::warning(
    std::string code, SourceLocation loc, std::string message, std::string hint, int length
) {
    items_.push_back(Diagnostic{
        Severity::kWarning,
        std::move(code),
        std::move(loc),
        std::move(message),
        std::move(hint),
        std::max(1, length)});
}

void Diagnostics::append(const Diagnostics& other) {
    items_.insert(items_.end(), other.items_.begin(), other.items_.end());
}

bool Diagnostics::has_errors() const {
    return error_count() > 0;
}

int Diagnostics::error_count() const {
    return static_cast<int>(std::count_if(items_.begin(), items_.end(), [](const Diagnostic& d) {
        return d.severity == Severity::kError;
    }));
}

int Diagnostics::warning_count() const {
    return static_cast<int>(items_.size()) - error_count();
}

void Diagnostics::sort() {
    // Stable: two diagnostics at the same place keep the order in which the checks found them.
    std::stable_sort(items_.begin(), items_.end(), [](const Diagnostic& a, const Diagnostic& b) {
        return std::tie(a.location.file, a.location.line, a.location.column, a.code) <
               std::tie(b.location.file, b.location.line, b.location.column, b.code);
    });
}

void SourceCache::put(const std::string& file, std::string contents) {
    std::vector<std::size_t> starts{0};
    for (std::size_t i = 0; i < contents.size(); ++i) {
        if (contents[i] == '\n') {
            starts.push_back(i + 1);
        }
    }
    for (File& f : files_) {
        if (f.name == file) {
            f.contents = std::move(contents);
            f.line_starts = std::move(starts);
            return;
        }
    }
    files_.push_back(File{file, std::move(contents), std::move(starts)});
}

std::string SourceCache::line(const std::string& file, int line) const {
    if (line < 1) {
        return {};
    }
    for (const File& f : files_) {
        if (f.name != file) {
            continue;
        }
        const auto index = static_cast<std::size_t>(line - 1);
        if (index >= f.line_starts.size()) {
            return {};
        }
        const std::size_t start = f.line_starts[index];
        std::size_t end =
            index + 1 < f.line_starts.size() ? f.line_starts[index + 1] - 1 : f.contents.size();
        if (end > start && f.contents[end - 1] == '\r') {
            --end;
        }
        return f.contents.substr(start, end - start);
    }
    return {};
}

namespace {

bool is_continuation(unsigned char c) {
    return (c & 0xC0U) == 0x80U;
}

/// The marker line under a snippet: one space per code point before the column (tabs kept, so
/// the caret lines up in a terminal), then '^' and '~' up to `length` columns, clipped to the
/// end of the line.
std::string marker(const std::string& source_line, int column, int length) {
    std::string out;
    int col = 1;
    std::size_t i = 0;
    while (i < source_line.size() && col < column) {
        const auto c = static_cast<unsigned char>(source_line[i]);
        out += c == '\t' ? '\t' : ' ';
        ++i;
        while (i < source_line.size() && is_continuation(static_cast<unsigned char>(source_line[i]))
        ) {
            ++i;
        }
        ++col;
    }
    // Columns past the end of the line (a missing value at the end of it) still get a caret.
    while (col < column) {
        out += ' ';
        ++col;
    }
    int remaining = 0;
    for (std::size_t j = i; j < source_line.size(); ++j) {
        if (!is_continuation(static_cast<unsigned char>(source_line[j]))) {
            ++remaining;
        }
    }
    const int marks = std::max(1, std::min(length, remaining));
    out += '^';
    out.append(static_cast<std::size_t>(marks - 1), '~');
    return out;
}

/// The part of a long line shown in a snippet: at most kWindow code points around the column,
/// with "..." where text was cut, so a 4 MB one-line file does not print 4 MB.
struct Window {
    std::string text;
    int column = 1;
};

Window window_of(const std::string& line, int column) {
    constexpr int kWindow = 200;
    constexpr int kBefore = 80;
    std::vector<std::size_t> starts;  // byte offset of each code point
    for (std::size_t i = 0; i < line.size(); ++i) {
        if (!is_continuation(static_cast<unsigned char>(line[i]))) {
            starts.push_back(i);
        }
    }
    const auto count = static_cast<int>(starts.size());
    if (count <= kWindow) {
        return Window{line, column};
    }
    const int first = std::clamp(column - 1 - kBefore, 0, count - kWindow);
    const int last = first + kWindow;  // one past
    const std::size_t begin = starts[static_cast<std::size_t>(first)];
    const std::size_t end = last < count ? starts[static_cast<std::size_t>(last)] : line.size();
    Window w;
    w.column = column - first;
    if (first > 0) {
        w.text = "...";
        w.column += 3;
    }
    w.text += line.substr(begin, end - begin);
    if (last < count) {
        w.text += "...";
    }
    return w;
}

// Control characters of a file (a NUL of a UTF-16 file, an escape sequence) shown as U+FFFD:
// a NUL would end the report where a C string is printed, and a terminal would act on the
// others. One code point each way, so carets stay in place.
std::string printable(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (is_control_character(c) || c == '\r') {
            out += "\xEF\xBF\xBD";
        } else {
            out += ch;
        }
    }
    return out;
}

std::string plural(int n, std::string_view word) {
    std::string out = std::to_string(n) + " " + std::string(word);
    if (n != 1) {
        out += 's';
    }
    return out;
}

void append_json_string(std::string& out, std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += '"';
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
            ++i;
        } else if (c < 0x20U || c == 0x7FU) {
            switch (c) {
                case '\n':
                    out += "\\n";
                    break;
                case '\r':
                    out += "\\r";
                    break;
                case '\t':
                    out += "\\t";
                    break;
                case '\b':
                    out += "\\b";
                    break;
                case '\f':
                    out += "\\f";
                    break;
                default:
                    out += "\\u00";
                    out += kHex[c >> 4U];
                    out += kHex[c & 0xFU];
            }
            ++i;
        } else if (c < 0x80U) {
            out += static_cast<char>(c);
            ++i;
        } else {
            // Copy one well-formed UTF-8 sequence; anything else becomes U+FFFD so the output
            // is always valid JSON, whatever bytes the author's file held.
            std::size_t len = 0;
            if (c >= 0xC2U && c <= 0xDFU) {
                len = 2;
            } else if (c >= 0xE0U && c <= 0xEFU) {
                len = 3;
            } else if (c >= 0xF0U && c <= 0xF4U) {
                len = 4;
            }
            if (len != 0 && i + len <= text.size() && is_valid_utf8(text.substr(i, len))) {
                out.append(text.substr(i, len));
                i += len;
            } else {
                out += "\xEF\xBF\xBD";
                ++i;
            }
        }
    }
    out += '"';
}

}  // namespace

std::string format_text(const Diagnostics& diags, const SourceCache& sources, bool summary) {
    std::string out;
    // Per-file counts in order of first appearance (diagnostics are usually sorted by file).
    std::vector<std::tuple<std::string, int, int>> counts;
    for (const Diagnostic& d : diags.items()) {
        const SourceLocation& loc = d.location;
        out += loc.file;
        if (loc.line > 0) {
            out += ':' + std::to_string(loc.line);
            if (loc.column > 0) {
                out += ':' + std::to_string(loc.column);
            }
        }
        out += d.severity == Severity::kError ? ": error[" : ": warning[";
        out += d.code + "]: " + d.message + '\n';
        if (loc.line > 0) {
            const std::string text = sources.line(loc.file, loc.line);
            if (!text.empty()) {
                std::string number = std::to_string(loc.line);
                if (number.size() < 5) {
                    number.insert(0, 5 - number.size(), ' ');
                }
                const Window window = window_of(text, std::max(1, loc.column));
                out += number + " | " + window.text + '\n';
                out += "      | " + marker(window.text, window.column, d.length) + '\n';
            }
        }
        if (!d.hint.empty()) {
            out += "  hint: " + d.hint + '\n';
        }
        auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& entry) {
            return std::get<0>(entry) == loc.file;
        });
        if (it == counts.end()) {
            counts.emplace_back(loc.file, 0, 0);
            it = counts.end() - 1;
        }
        ++(d.severity == Severity::kError ? std::get<1>(*it) : std::get<2>(*it));
    }
    if (summary) {
        for (const auto& [file, errors, warnings] : counts) {
            out +=
                file + ": " + plural(errors, "error") + ", " + plural(warnings, "warning") + '\n';
        }
    }
    return printable(out);
}

std::string format_json(const Diagnostics& diags) {
    std::string out = "[";
    bool first = true;
    for (const Diagnostic& d : diags.items()) {
        out += first ? "\n  {" : ",\n  {";
        first = false;
        out += "\"file\": ";
        append_json_string(out, d.location.file);
        out += ", \"line\": " + std::to_string(d.location.line);
        out += ", \"column\": " + std::to_string(d.location.column);
        out += ", \"severity\": ";
        out += d.severity == Severity::kError ? "\"error\"" : "\"warning\"";
        out += ", \"code\": ";
        append_json_string(out, d.code);
        out += ", \"message\": ";
        append_json_string(out, d.message);
        out += ", \"hint\": ";
        append_json_string(out, d.hint);
        out += '}';
    }
    out += first ? "]\n" : "\n]\n";
    return out;
}

std::string byte_name(unsigned char c) {
    char out[8];
    std::snprintf(out, sizeof out, "0x%02X", c);
    return out;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
    constexpr int kMaxDistance = 2;
    const auto word_length = static_cast<int>(utf8_length(word));
    std::string best;
    int best_distance = kMaxDistance + 1;
    for (const std::string& candidate : candidates) {
        const int distance = edit_distance(word, candidate, kMaxDistance);
        // A distance as large as the word itself means "nothing in common" ('x' -> 'id'):
        // suggesting it would only confuse.
        const int longest = std::max(word_length, static_cast<int>(utf8_length(candidate)));
        if (distance < best_distance && distance < longest) {
            best = candidate;
            best_distance = distance;
        }
    }
    return best;
}

}  // namespace civicflow::engine
