/// Text templates: "File {{ ref | upper }} updated {{ updated | date: \"DD Mon YYYY\" }}".
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <civicflow/engine/diagnostic.hpp>

namespace civicflow::engine {

/// Slot values of a session, by slot name.
using Slots = std::map<std::string, std::string, std::less<>>;

/// A filter applied to a slot value, left to right:
///   {{ ref | url }}            percent-encodes for a URL path or query (RFC 3986 unreserved kept)
///   {{ name | upper }}         {{ name | lower }}  (ASCII and the Unicode case pairs we fold)
///   {{ dob | date: "DD Mon YYYY" }}  reads DD-MM-YYYY or ISO 8601 (YYYY-MM-DD[THH:MM...]) and
///                              writes with tokens DD, D, MM, M, Mon, Month, YYYY
///   {{ ward | default: "not given" }}  used when the slot is unset or empty
enum class FilterKind { kUrl, kUpper, kLower, kDate, kDefault };

struct Filter {
    FilterKind kind = FilterKind::kUrl;
    std::string argument;
};

/// One piece of a template: literal text, or a slot read with filters.
struct TemplatePart {
    bool is_slot = false;
    std::string text;  // literal text, or the slot name
    std::vector<Filter> filters;
    int offset = 0;  // byte offset of the part in the source, for diagnostics
};

/// A parsed template; immutable after parse, cheap to render, safe to share between threads.
class Template {
public:
    Template() = default;

    /// Parses `source`. Syntax errors (E401 unclosed or empty braces, E403 unknown filter)
    /// are added to `diags` at `loc` (the column is advanced to the offending part when the
    /// source sits on one line). On error the template renders its source verbatim.
    static Template parse(std::string_view source, Diagnostics& diags, const SourceLocation& loc);
    /// Where byte `offset` of a source was written ({line, column}), nullopt when unknown.
    using Locate = std::function<std::optional<std::pair<int, int>>(std::size_t offset)>;
    /// As parse(source, diags, loc), with each diagnostic placed by `locate` (a YAML scalar
    /// with escapes, folded lines or block indentation: see yaml::TextSegment), else at `loc`.
    static Template parse(
        std::string_view source, Diagnostics& diags, const SourceLocation& loc, const Locate& locate
    );
    /// Parses a template known to be valid (built-in messages); invalid input renders verbatim.
    static Template literal(std::string_view source);

    /// Renders with `slots`. A slot that is unset and has no default renders as "" and its name is
    /// appended to `missing` when given (the engine turns it into an R401 event).
    std::string render(const Slots& slots, std::vector<std::string>* missing = nullptr) const;

    /// Read-only values consulted when a slot is not in `slots`: the built-in variables of a
    /// turn (lang, flow_title, profile_name), so they never have to be copied into the session.
    using Overlay = std::span<const std::pair<std::string_view, std::string_view>>;
    /// As render(slots, missing), looking names up in `slots` first, then in `overlay`.
    std::string render(
        const Slots& slots, Overlay overlay, std::vector<std::string>* missing = nullptr
    ) const;

    /// Slot names read without a default filter (for the "no path sets this slot" check).
    std::vector<std::string> required_slots() const;
    /// Every slot name read.
    std::vector<std::string> all_slots() const;

    const std::string& source() const { return source_; }

    bool is_plain() const { return parts_.size() <= 1 && (parts_.empty() || !parts_[0].is_slot); }

private:
    std::string source_;
    std::vector<TemplatePart> parts_;
};

/// A citizen-visible string: either one text for every language or a map language -> text.
///   say: "Office hours are 9:00-17:30."
///   say: { en: "Office hours are 9:00-17:30.", hi: "कार्यालय का समय 9:00-17:30 है।" }
class LocalizedText {
public:
    struct Variant {
        std::string lang;  // empty: applies to every language
        Template text;
        SourceLocation location;
    };

    LocalizedText() = default;

    explicit LocalizedText(std::vector<Variant> variants)
        : variants_(std::move(variants)) {}

    /// The text for `lang`, else for `fallback` (the flow's default language), else the first.
    /// Returns nullptr only when there are no variants.
    const Template* pick(std::string_view lang, std::string_view fallback) const;

    const std::vector<Variant>& variants() const { return variants_; }

    bool empty() const { return variants_.empty(); }

    bool has(std::string_view lang) const;
    /// Convenience: pick and render; "" when empty.
    std::string render(
        std::string_view lang,
        std::string_view fallback,
        const Slots& slots,
        std::vector<std::string>* missing = nullptr
    ) const;

private:
    std::vector<Variant> variants_;
};

}  // namespace civicflow::engine
