/// A parsed YAML document as a plain tree with source marks, duplicate keys kept, aliases
/// expanded under a budget. The only door to yaml-cpp; the server's config goes through it too.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <civicflow/engine/diagnostic.hpp>

namespace civicflow::engine::yaml {

enum class Kind { kNull, kScalar, kSequence, kMap };

/// Where part of a scalar's text was written. A text differs from its source where it has
/// escapes ("\t"), lines folded into one, or the indentation of a block scalar ('|', '>'):
/// from byte `offset` of the text on, the text runs as written from line:column, up to the
/// next segment.
struct TextSegment {
    std::size_t offset = 0;
    int line = 0;    // 1-based
    int column = 0;  // 1-based, in characters
    bool operator==(const TextSegment&) const = default;
};

/// {line, column} of byte `offset` of `text`, given its segments; nullopt when they are empty
/// (the source could not be followed).
std::optional<std::pair<int, int>> position_in(
    const std::vector<TextSegment>& segments, std::string_view text, std::size_t offset
);

/// One node. Map entries keep authoring order and duplicates (the checker reports E104).
/// `quoted` is true for single- or double-quoted scalars ("yes" stays text, never a bool).
struct Node {
    Kind kind = Kind::kNull;
    int line = 0;    // 1-based
    int column = 0;  // 1-based
    std::string scalar;
    bool quoted = false;
    // A plain scalar followed on its line by " #" and a word ("#1", not "# note"): YAML read
    // the rest as a comment, so a text "Call helpline #1" ends at "helpline". 1-based column
    // of the '#', 0: none.
    int comment_column = 0;
    std::vector<TextSegment> segments;  // scalars: where `scalar` was written; empty: unknown
    std::vector<Node> items;            // kSequence
    std::vector<std::pair<Node, Node>> entries;  // kMap: key node, value node

    bool is_null() const { return kind == Kind::kNull; }

    bool is_scalar() const { return kind == Kind::kScalar; }

    bool is_sequence() const { return kind == Kind::kSequence; }

    bool is_map() const { return kind == Kind::kMap; }

    /// The value of the first entry whose key is `key`, or nullptr.
    const Node* find(std::string_view key) const;
    /// "a mapping", "a list", "a text value" or "nothing": for messages.
    std::string kind_name() const;
};

/// Limits that make pathological input an error instead of a crash, hang or memory blow-up.
struct Limits {
    std::size_t max_bytes = 4U * 1024U * 1024U;         // larger files are refused before parsing
    int max_depth = 64;                                 // nesting of maps and lists
    std::size_t max_nodes = 200000;                     // after alias expansion (alias bombs)
    std::size_t max_alias_bytes = 16U * 1024U * 1024U;  // text anchors and aliases may copy
};

/// A parsed file: the root node (null when parsing failed) and what went wrong.
struct Document {
    std::string file;
    std::optional<Node> root;
};

/// Parses `text` (the contents of `file`). Errors (E100 syntax, E106 too deep, E107 alias
/// problems, E108 too large) are appended to `diags`; on any of them `root` is empty.
Document parse(
    const std::string& file, std::string_view text, Diagnostics& diags, const Limits& limits = {}
);

}  // namespace civicflow::engine::yaml
