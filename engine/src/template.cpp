#include <algorithm>
#include <array>
#include <optional>
#include <tuple>

#include <civicflow/engine/template.hpp>
#include <civicflow/engine/text_normalize.hpp>
#include <civicflow/engine/validator.hpp>

namespace civicflow::engine {

namespace {

constexpr std::string_view kFilterList = "filters are url, upper, lower, date, default";

struct FilterName {
    std::string_view name;
    FilterKind kind;
    bool needs_argument;
    std::string_view example;
};

constexpr std::array<FilterName, 5> kFilters{{
    {"url", FilterKind::kUrl, false, ""},
    {"upper", FilterKind::kUpper, false, ""},
    {"lower", FilterKind::kLower, false, ""},
    {"date", FilterKind::kDate, true, "date: \"DD Mon YYYY\""},
    {"default", FilterKind::kDefault, true, "default: \"not given\""},
}};

constexpr std::array<std::string_view, 12> kMonthNames{
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December"};

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool valid_slot_name(std::string_view name) {
    if (name.empty()) {
        return false;
    }
    const char first = name.front();
    if (!(first == '_' || (first >= 'a' && first <= 'z'))) {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    });
}

/// Offsets (begin, end) of `text[begin, end)` with blanks removed from both ends.
std::pair<std::size_t, std::size_t> trimmed(
    std::string_view text, std::size_t begin, std::size_t end
) {
    while (begin < end && is_blank(text[begin])) {
        ++begin;
    }
    while (end > begin && is_blank(text[end - 1])) {
        --end;
    }
    return {begin, end};
}

/// Reports template diagnostics at the template's location, moved to the offending byte when
/// the source sits on one line (a multi-line YAML scalar would need its own line mapping).
class Reporter {
public:
    Reporter(
        std::string_view source,
        Diagnostics& diags,
        const SourceLocation& loc,
        const Template::Locate* locate
    )
        : source_(source)
        , one_line_(source.find('\n') == std::string_view::npos)
        , diags_(diags)
        , loc_(loc)
        , locate_(locate) {}

    void error(
        const char* code,
        std::size_t offset,
        std::size_t length,
        std::string message,
        std::string hint
    ) {
        SourceLocation at = loc_;
        // Columns count characters (as the diagnostics' own do): Hindi text before the
        // mistake takes three bytes a letter.
        const std::size_t from = std::min(offset, source_.size());
        const std::size_t width =
            utf8_length(source_.substr(from, std::min(length, source_.size() - from)));
        std::optional<std::pair<int, int>> written;
        if (locate_ != nullptr && *locate_) {
            written = (*locate_)(from);
        }
        if (written) {
            std::tie(at.line, at.column) = *written;
        } else if (one_line_ && at.column > 0) {
            at.column += static_cast<int>(utf8_length(source_.substr(0, from)));
        }
        diags_.error(
            code, at, std::move(message), std::move(hint), std::max(1, static_cast<int>(width))
        );
        failed_ = true;
    }

    bool failed() const { return failed_; }

private:
    std::string_view source_;
    bool one_line_;
    bool failed_ = false;
    Diagnostics& diags_;
    const SourceLocation& loc_;
    const Template::Locate* locate_;
};

/// Splits the expression source[begin, end) at '|' characters outside quotes.
std::vector<std::pair<std::size_t, std::size_t>> split_pipes(
    std::string_view source, std::size_t begin, std::size_t end
) {
    std::vector<std::pair<std::size_t, std::size_t>> pieces;
    char quote = 0;
    std::size_t start = begin;
    for (std::size_t i = begin; i < end; ++i) {
        const char c = source[i];
        if (quote != 0) {
            if (c == quote) {
                quote = 0;
            }
        } else if (c == '"' || c == '\'') {
            quote = c;
        } else if (c == '|') {
            pieces.emplace_back(start, i);
            start = i + 1;
        }
    }
    pieces.emplace_back(start, end);
    return pieces;
}

/// Parses one filter, source[begin, end) already trimmed and non-empty.
std::optional<Filter> parse_filter(
    std::string_view source, std::size_t begin, std::size_t end, Reporter& report
) {
    std::size_t name_end = begin;
    while (name_end < end && source[name_end] != ':' && !is_blank(source[name_end])) {
        ++name_end;
    }
    const std::string name(source.substr(begin, name_end - begin));
    const auto known = std::find_if(kFilters.begin(), kFilters.end(), [&](const FilterName& f) {
        return f.name == name;
    });
    if (known == kFilters.end()) {
        std::vector<std::string> candidates;
        for (const FilterName& f : kFilters) {
            candidates.emplace_back(f.name);
        }
        const std::string suggestion = did_you_mean(name, candidates);
        report.error(
            "E403",
            begin,
            name.size(),
            "unknown filter '" + name + "' in template",
            suggestion.empty() ? std::string(kFilterList) : "did you mean '" + suggestion + "'?"
        );
        return std::nullopt;
    }
    Filter filter;
    filter.kind = known->kind;
    std::size_t pos = name_end;
    while (pos < end && is_blank(source[pos])) {
        ++pos;
    }
    const bool has_argument = pos < end;
    if (!known->needs_argument) {
        if (has_argument) {
            report.error(
                "E401",
                pos,
                end - pos,
                "filter '" + name + "' takes no argument",
                std::string(kFilterList)
            );
            return std::nullopt;
        }
        return filter;
    }
    const std::string usage = "write it as " + std::string(known->example);
    if (!has_argument || source[pos] != ':') {
        report.error("E401", begin, end - begin, "filter '" + name + "' needs an argument", usage);
        return std::nullopt;
    }
    ++pos;
    while (pos < end && is_blank(source[pos])) {
        ++pos;
    }
    const std::size_t arg_begin = pos;
    const char quote = pos < end ? source[pos] : '\0';
    std::size_t close = std::string_view::npos;
    if (quote == '"' || quote == '\'') {
        close = source.find(quote, pos + 1);
    }
    if (close == std::string_view::npos || close >= end ||
        trimmed(source, close + 1, end).first != end) {
        report.error(
            "E401",
            arg_begin,
            std::max<std::size_t>(1, end - arg_begin),
            "the argument of filter '" + name + "' must be one quoted string",
            usage
        );
        return std::nullopt;
    }
    filter.argument = std::string(source.substr(pos + 1, close - pos - 1));
    return filter;
}

void percent_encode(std::string_view value, std::string& out) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (char c : value) {
        const auto b = static_cast<unsigned char>(c);
        const bool unreserved = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') ||
                                (b >= '0' && b <= '9') || b == '-' || b == '.' || b == '_' ||
                                b == '~';
        if (unreserved) {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(kHex[b >> 4]);
            out.push_back(kHex[b & 0x0F]);
        }
    }
}

/// Reads DD-MM-YYYY (as validators store dates) or ISO 8601 YYYY-MM-DD with an optional time
/// part, as backends usually send them.
std::optional<Date> read_any_date(std::string_view value) {
    while (!value.empty() && is_blank(value.front())) {
        value.remove_prefix(1);
    }
    while (!value.empty() && is_blank(value.back())) {
        value.remove_suffix(1);
    }
    if (auto date = parse_date(value)) {
        return date;
    }
    if (value.size() < 10 || value[4] != '-' || value[7] != '-' ||
        (value.size() > 10 && value[10] != 'T' && value[10] != ' ')) {
        return std::nullopt;
    }
    const std::string as_dmy = std::string(value.substr(8, 2)) + "-" +
                               std::string(value.substr(5, 2)) + "-" +
                               std::string(value.substr(0, 4));
    // parse_date accepts one-digit fields; ISO requires two, so check the digits here.
    for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
        if (value[i] < '0' || value[i] > '9') {
            return std::nullopt;
        }
    }
    return parse_date(as_dmy);
}

void append_number(int value, int width, std::string& out) {
    std::string digits = std::to_string(value);
    if (static_cast<int>(digits.size()) < width) {
        out.append(static_cast<std::size_t>(width) - digits.size(), '0');
    }
    out += digits;
}

/// Formats `value` with the tokens DD, D, MM, M, Mon, Month, YYYY; unparsable dates unchanged.
std::string format_with(const std::string& value, std::string_view format) {
    const std::optional<Date> date = read_any_date(value);
    if (!date) {
        return value;
    }
    const std::string_view month = kMonthNames[static_cast<std::size_t>(date->month - 1)];
    std::string out;
    out.reserve(format.size() + 8);
    std::size_t i = 0;
    while (i < format.size()) {
        const std::string_view rest = format.substr(i);
        // Longest token first: "Month" before "Mon" before "MM" before "M".
        if (rest.starts_with("Month")) {
            out += month;
            i += 5;
        } else if (rest.starts_with("Mon")) {
            out += month.substr(0, 3);
            i += 3;
        } else if (rest.starts_with("YYYY")) {
            append_number(date->year, 4, out);
            i += 4;
        } else if (rest.starts_with("DD")) {
            append_number(date->day, 2, out);
            i += 2;
        } else if (rest.starts_with("MM")) {
            append_number(date->month, 2, out);
            i += 2;
        } else if (rest.front() == 'D') {
            append_number(date->day, 1, out);
            i += 1;
        } else if (rest.front() == 'M') {
            append_number(date->month, 1, out);
            i += 1;
        } else {
            out.push_back(rest.front());
            i += 1;
        }
    }
    return out;
}

void add_unique(std::vector<std::string>& names, const std::string& name) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
        names.push_back(name);
    }
}

bool has_default(const TemplatePart& part) {
    return std::any_of(part.filters.begin(), part.filters.end(), [](const Filter& f) {
        return f.kind == FilterKind::kDefault;
    });
}

}  // namespace

Template Template::parse(std::string_view source, Diagnostics& diags, const SourceLocation& loc) {
    return parse(source, diags, loc, Locate{});
}

Template Template::parse(
    std::string_view source, Diagnostics& diags, const SourceLocation& loc, const Locate& locate
) {
    Template result;
    result.source_ = std::string(source);
    Reporter report(source, diags, loc, &locate);
    std::vector<TemplatePart> parts;
    auto add_literal = [&parts](std::string_view text, std::size_t offset) {
        if (text.empty()) {
            return;
        }
        if (!parts.empty() && !parts.back().is_slot) {
            parts.back().text += text;
            return;
        }
        TemplatePart part;
        part.text = std::string(text);
        part.offset = static_cast<int>(offset);
        parts.push_back(std::move(part));
    };

    std::size_t pos = 0;
    while (pos < source.size()) {
        const std::size_t open = source.find("{{", pos);
        if (open == std::string_view::npos) {
            add_literal(source.substr(pos), pos);
            break;
        }
        add_literal(source.substr(pos, open - pos), pos);
        // The closing braces, skipping quoted filter arguments (a default text may hold "}}").
        std::size_t close = std::string_view::npos;
        char quote = 0;
        for (std::size_t i = open + 2; i < source.size(); ++i) {
            const char c = source[i];
            if (quote != 0) {
                if (c == quote) {
                    quote = 0;
                }
            } else if (c == '"' || c == '\'') {
                quote = c;
            } else if (c == '}' && i + 1 < source.size() && source[i + 1] == '}') {
                close = i;
                break;
            }
        }
        if (close == std::string_view::npos) {
            report.error(
                "E401",
                open,
                2,
                "unclosed '{{' in template",
                "close the slot with '}}', e.g. {{ name }}"
            );
            break;
        }
        pos = close + 2;

        const auto pieces = split_pipes(source, open + 2, close);
        const auto [name_begin, name_end] =
            trimmed(source, pieces.front().first, pieces.front().second);
        if (name_begin == name_end) {
            report.error(
                "E401",
                open,
                close + 2 - open,
                "empty '{{ }}' in template",
                "write a slot name between the braces, e.g. {{ name }}"
            );
            continue;
        }
        TemplatePart part;
        part.is_slot = true;
        part.offset = static_cast<int>(open);
        part.text = std::string(source.substr(name_begin, name_end - name_begin));
        bool ok = true;
        if (!valid_slot_name(part.text)) {
            report.error(
                "E401",
                name_begin,
                name_end - name_begin,
                "invalid slot name '" + part.text + "' in template",
                "slot names are lowercase letters, digits and '_', not starting with a "
                "digit"
            );
            ok = false;
        }
        for (std::size_t k = 1; k < pieces.size(); ++k) {
            const auto [begin, end] = trimmed(source, pieces[k].first, pieces[k].second);
            if (begin == end) {
                report.error(
                    "E401",
                    pieces[k].first > 0 ? pieces[k].first - 1 : 0,
                    1,
                    "missing filter after '|' in template",
                    std::string(kFilterList)
                );
                ok = false;
                continue;
            }
            if (auto filter = parse_filter(source, begin, end, report)) {
                part.filters.push_back(std::move(*filter));
            } else {
                ok = false;
            }
        }
        if (ok) {
            parts.push_back(std::move(part));
        }
    }

    if (report.failed()) {
        // A broken template shows its source as written rather than a partial rendering.
        parts.clear();
        add_literal(source, 0);
    }
    result.parts_ = std::move(parts);
    return result;
}

Template Template::literal(std::string_view source) {
    Diagnostics ignored;
    return parse(source, ignored, SourceLocation{});
}

std::string Template::render(const Slots& slots, std::vector<std::string>* missing) const {
    return render(slots, Overlay{}, missing);
}

std::string Template::render(const Slots& slots, Overlay overlay, std::vector<std::string>* missing)
    const {
    std::string out;
    out.reserve(source_.size());
    for (const TemplatePart& part : parts_) {
        if (!part.is_slot) {
            out += part.text;
            continue;
        }
        const auto it = slots.find(part.text);
        std::string value;
        bool found = it != slots.end();
        if (found) {
            value = it->second;
        } else {
            for (const auto& [name, v] : overlay) {
                if (name == part.text) {
                    value = v;
                    found = true;
                    break;
                }
            }
        }
        if (!found && missing != nullptr && !has_default(part)) {
            missing->push_back(part.text);
        }
        for (const Filter& filter : part.filters) {
            switch (filter.kind) {
                case FilterKind::kUrl: {
                    std::string encoded;
                    encoded.reserve(value.size() * 3);
                    percent_encode(value, encoded);
                    value = std::move(encoded);
                    break;
                }
                case FilterKind::kUpper:
                    value = to_upper(value);
                    break;
                case FilterKind::kLower:
                    value = to_lower(value);
                    break;
                case FilterKind::kDate:
                    value = format_with(value, filter.argument);
                    break;
                case FilterKind::kDefault:
                    if (value.empty()) {
                        value = filter.argument;
                    }
                    break;
            }
        }
        out += value;
    }
    return out;
}

std::vector<std::string> Template::required_slots() const {
    std::vector<std::string> names;
    for (const TemplatePart& part : parts_) {
        if (part.is_slot && !has_default(part)) {
            add_unique(names, part.text);
        }
    }
    return names;
}

std::vector<std::string> Template::all_slots() const {
    std::vector<std::string> names;
    for (const TemplatePart& part : parts_) {
        if (part.is_slot) {
            add_unique(names, part.text);
        }
    }
    return names;
}

const Template* LocalizedText::pick(std::string_view lang, std::string_view fallback) const {
    if (variants_.empty()) {
        return nullptr;
    }
    const Variant* every = nullptr;
    const Variant* fallback_variant = nullptr;
    for (const Variant& v : variants_) {
        if (v.lang == lang) {
            return &v.text;
        }
        if (v.lang.empty() && every == nullptr) {
            every = &v;
        }
        if (v.lang == fallback && fallback_variant == nullptr) {
            fallback_variant = &v;
        }
    }
    if (every != nullptr) {
        return &every->text;
    }
    if (fallback_variant != nullptr) {
        return &fallback_variant->text;
    }
    return &variants_.front().text;
}

bool LocalizedText::has(std::string_view lang) const {
    return std::any_of(variants_.begin(), variants_.end(), [&](const Variant& v) {
        return v.lang == lang || v.lang.empty();
    });
}

std::string LocalizedText::render(
    std::string_view lang,
    std::string_view fallback,
    const Slots& slots,
    std::vector<std::string>* missing
) const {
    const Template* text = pick(lang, fallback);
    return text == nullptr ? std::string() : text->render(slots, missing);
}

}  // namespace civicflow::engine
