// The YAML reader: yaml-cpp's event parser feeding our own tree. The only file using yaml-cpp.
//
// Why the event API and not YAML::Load: the node API silently keeps the last of two duplicate
// keys, expands aliases without limit (billion laughs) and accepts an alias to its own
// enclosing node. Building the tree ourselves lets us keep duplicates (the checker reports
// E104), expand aliases under a node budget, refuse cycles, and stop deep nesting early.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <new>
#include <sstream>
#include <unordered_map>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <civicflow/engine/text_normalize.hpp>
#include <civicflow/engine/yaml_document.hpp>

namespace civicflow::engine::yaml {

const Node* Node::find(std::string_view key) const {
    for (const auto& [k, v] : entries) {
        if (k.kind == Kind::kScalar && k.scalar == key) {
            return &v;
        }
    }
    return nullptr;
}

std::string Node::kind_name() const {
    switch (kind) {
        case Kind::kNull:
            return "nothing";
        case Kind::kScalar:
            return "a text value";
        case Kind::kSequence:
            return "a list";
        case Kind::kMap:
            return "a mapping";
    }
    return "nothing";
}

std::optional<std::pair<int, int>> position_in(
    const std::vector<TextSegment>& segments, std::string_view text, std::size_t offset
) {
    if (segments.empty()) {
        return std::nullopt;
    }
    offset = std::min(offset, text.size());
    auto it = std::upper_bound(
        segments.begin(),
        segments.end(),
        offset,
        [](std::size_t at, const TextSegment& segment) { return at < segment.offset; }
    );
    if (it != segments.begin()) {
        --it;
    }
    const std::size_t from = std::min(it->offset, offset);
    return std::pair<int, int>{
        it->line, it->column + static_cast<int>(utf8_length(text.substr(from, offset - from)))};
}

namespace {

/// A fix for a YAML reader message (yaml-cpp's texts, see yaml-cpp/exceptions.h): the reader
/// stops where it gave up, so the hint says what to look for above that point.
// Whether a line up to `line` + 1 (1-based) is indented with a tab: YAML forbids tabs there, and
// the reader's message then names whatever it tripped on next, never the tab.
bool tab_indented_up_to(std::string_view text, int line) {
    int number = 1;
    std::size_t at = 0;
    while (at < text.size() && number <= line + 1) {
        std::size_t i = at;
        bool tab = false;
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) {
            tab = tab || text[i] == '\t';
            ++i;
        }
        if (tab && i < text.size() && text[i] != '\n' && text[i] != '\r' && text[i] != '#')
            return true;
        const std::size_t end = text.find('\n', at);
        if (end == std::string_view::npos)
            break;
        at = end + 1;
        ++number;
    }
    return false;
}

// The line and column (in characters) of byte `at` of `text`.
SourceLocation location_at(const std::string& file, std::string_view text, std::size_t at) {
    const std::string_view before = text.substr(0, at);
    const std::size_t newline = before.rfind('\n');
    const std::size_t from = newline == std::string_view::npos ? 0 : newline + 1;
    return SourceLocation{
        file,
        static_cast<int>(std::count(before.begin(), before.end(), '\n')) + 1,
        static_cast<int>(utf8_length(before.substr(from))) + 1};
}

std::string syntax_hint(std::string_view message, bool tab_indented = false) {
    const auto has = [&](std::string_view part) {
        return message.find(part) != std::string_view::npos;
    };
    if (tab_indented) {
        return "indent with spaces only: a line at or above this one is indented with a tab, "
               "which YAML does not allow";
    }
    if (has("sequence flow")) {
        return "close the '[' opened on this line or above with ']', or quote a text that holds "
               "',', '[' or ']'";
    }
    if (has("map flow")) {
        return "close the '{' opened on this line or above with '}', or quote a text that holds "
               "',', '{' or '}'";
    }
    if (has("tab")) {
        return "indent with spaces only: YAML does not allow tabs for indentation";
    }
    if (has("map value") || has("map key")) {
        return "quote a text that holds ': ' (\"Timing: 10 to 5\"), and give keys at one level "
               "the same indentation";
    }
    if (has("end of map") || has("end of sequence") || has("block entry")) {
        return "give the keys (or '- ' items) of one mapping (or list) the same indentation";
    }
    if (has("EOF in scalar") || has("end of string")) {
        return "close the quote opened on this line or above";
    }
    if (has("escape") || has("hex") || has("unicode")) {
        return "in double quotes, write a backslash as \\\\, or use single quotes";
    }
    if (has("alias") || has("anchor")) {
        return "define the anchor (&name) before its alias (*name), or quote a text that "
               "starts with '*' or '&'";
    }
    return "look at this line and the ones above it: an unclosed bracket or quote, a tab, or a "
           "key indented differently from its neighbours";
}

/// Thrown by the handler to stop yaml-cpp once a diagnostic has been recorded.
struct Abort {};

/// Thrown by the probe handler when a second document starts.
struct SecondDocument {
    int line;
    int column;
};

/// Converts yaml-cpp marks (0-based line, 0-based byte column, byte position) into our 1-based
/// line and 1-based column counted in code points, so carets line up under non-ASCII text.
/// Marks arrive in text order, so counting resumes from the previous mark on the same line:
/// a 4 MB single-line document costs one pass, not one pass per node.
class Positions {
public:
    explicit Positions(std::string_view text)
        : text_(text) {}

    std::pair<int, int> at(const YAML::Mark& mark) {
        if (mark.is_null() || mark.line < 0 || mark.column < 0) {
            return {1, 1};
        }
        const int line = mark.line + 1;
        // yaml-cpp strips a UTF-8 BOM before counting: bom() puts its bytes back. A position
        // that still does not match the text falls back to the byte column.
        const auto pos = static_cast<std::size_t>(std::max(mark.pos, 0)) + bom();
        const auto byte_column = static_cast<std::size_t>(mark.column);
        if (pos > text_.size() || byte_column > pos) {
            return {line, mark.column + 1};
        }
        std::size_t from = pos - byte_column;
        int column = 1;
        if (line == cached_line_ && pos >= cached_pos_ && cached_pos_ >= from) {
            from = cached_pos_;
            column = cached_column_;
        }
        for (std::size_t i = from; i < pos; ++i) {
            if ((static_cast<unsigned char>(text_[i]) & 0xC0U) != 0x80U) {
                ++column;
            }
        }
        cached_line_ = line;
        cached_pos_ = pos;
        cached_column_ = column;
        return {line, column};
    }

    std::string_view text() const { return text_; }

    /// The bytes of a UTF-8 byte order mark, which yaml-cpp leaves out of its byte positions.
    std::size_t bom() const { return text_.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0; }

private:
    std::string_view text_;
    int cached_line_ = 0;
    std::size_t cached_pos_ = 0;
    int cached_column_ = 1;
};

/// Follows a scalar's text through its source, from its mark (byte `pos`, at line:column):
/// an anchor or tag before it, quotes, escapes, folded lines and block indentation. Empty when
/// the source cannot be followed: callers then fall back to the node's own position.
std::vector<TextSegment> map_scalar(
    std::string_view src, std::size_t p, int line, int column, std::string_view value
) {
    std::vector<TextSegment> out;
    if (p >= src.size()) {
        return out;
    }
    const auto advance = [&](std::size_t n) {
        for (; n > 0 && p < src.size(); --n, ++p) {
            if (src[p] == '\n') {
                ++line;
                column = 1;
            } else if ((static_cast<unsigned char>(src[p]) & 0xC0U) != 0x80U) {
                ++column;
            }
        }
    };
    const auto is_blank = [](char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
    };
    // An anchor (&name) or a tag (!!str) before the text.
    while (p < src.size() && (src[p] == '&' || src[p] == '!')) {
        while (p < src.size() && !is_blank(src[p])) {
            advance(1);
        }
        while (p < src.size() && is_blank(src[p])) {
            advance(1);
        }
    }
    if (p >= src.size()) {
        return out;
    }
    const char first = src[p];
    const bool double_quoted = first == '"';
    const bool single_quoted = first == '\'';
    const bool block = first == '|' || first == '>';
    std::size_t indent = 0;
    if (double_quoted || single_quoted) {
        advance(1);
    } else if (block) {
        const std::size_t header_end = src.find('\n', p);
        if (header_end == std::string_view::npos) {
            return out;
        }
        advance(header_end + 1 - p);
        // The block's indentation: that of its first line with text.
        std::size_t q = p;
        while (q < src.size()) {
            std::size_t spaces = 0;
            while (q + spaces < src.size() && src[q + spaces] == ' ') {
                ++spaces;
            }
            if (q + spaces < src.size() && src[q + spaces] != '\n' && src[q + spaces] != '\r') {
                indent = spaces;
                break;
            }
            const std::size_t next = src.find('\n', q);
            if (next == std::string_view::npos) {
                break;
            }
            q = next + 1;
        }
        for (std::size_t i = 0; i < indent && p < src.size() && src[p] == ' '; ++i) {
            advance(1);
        }
    }
    std::size_t d = 0;
    bool fresh = true;  // the next character starts a segment
    const auto mark = [&] {
        if (fresh) {
            out.push_back(TextSegment{d, line, column});
            fresh = false;
        }
    };
    // A text of many escapes or lines would keep a segment for each: past this many, its
    // diagnostics go to where it starts instead.
    constexpr std::size_t kMaxSegments = 4096;
    while (d < value.size()) {
        if (p >= src.size() || out.size() > kMaxSegments) {
            return {};
        }
        const char s = src[p];
        const char v = value[d];
        if (double_quoted && s == '\\') {
            if (p + 1 >= src.size()) {
                return {};
            }
            const char e = src[p + 1];
            if (e == '\n' || e == '\r') {  // an escaped line break: nothing in the text
                advance(e == '\r' && p + 2 < src.size() && src[p + 2] == '\n' ? 3 : 2);
                while (p < src.size() && (src[p] == ' ' || src[p] == '\t')) {
                    advance(1);
                }
                fresh = true;
                continue;
            }
            mark();
            advance(e == 'x' ? 4 : e == 'u' ? 6 : e == 'U' ? 10 : 2);
            // One character of the text: its UTF-8 bytes.
            const auto lead = static_cast<unsigned char>(v);
            d += lead < 0x80U ? 1 : lead >= 0xF0U ? 4 : lead >= 0xE0U ? 3 : lead >= 0xC0U ? 2 : 1;
            fresh = true;
            continue;
        }
        if (single_quoted && s == '\'') {
            if (p + 1 >= src.size() || src[p + 1] != '\'' || v != '\'') {
                return {};
            }
            mark();
            advance(2);
            ++d;
            fresh = true;
            continue;
        }
        if (s == v && s != '\n') {
            mark();
            advance(1);
            ++d;
            continue;
        }
        if (block && s == '\n' && v == '\n') {
            advance(1);
            ++d;
            for (std::size_t i = 0; i < indent && p < src.size() && src[p] == ' '; ++i) {
                advance(1);
            }
            fresh = true;
            continue;
        }
        if (is_blank(s)) {
            // Source whitespace the text does not have as written: trailing spaces, line
            // breaks folded into a space (or kept as '\n' for an empty line), indentation.
            std::size_t breaks = 0;
            while (p < src.size() && is_blank(src[p])) {
                breaks += src[p] == '\n' ? 1 : 0;
                advance(1);
            }
            if (block) {
                while (d < value.size() && is_blank(value[d])) {
                    ++d;
                }
            } else {
                // A quoted or plain text folds one line break into a space, and n > 1 of them
                // into n - 1 line breaks; whitespace after that is the text's own (an escape).
                const std::size_t folded = breaks <= 1 ? breaks : breaks - 1;
                for (std::size_t i = 0; i < folded; ++i) {
                    if (d >= value.size() || !is_blank(value[d])) {
                        return {};
                    }
                    ++d;
                }
            }
            fresh = true;
            continue;
        }
        return {};
    }
    return out;
}

/// Builds the tree from parser events. Every limit is checked before memory is committed.
class TreeBuilder : public YAML::EventHandler {
public:
    TreeBuilder(
        const std::string& file, Positions& positions, const Limits& limits, Diagnostics& diags
    )
        : file_(file)
        , positions_(positions)
        , limits_(limits)
        , diags_(diags) {}

    std::optional<Node> take_root() { return std::move(root_); }

    void OnDocumentStart(const YAML::Mark& /*mark*/) override {}

    void OnDocumentEnd() override {}

    void OnAnchor(const YAML::Mark& /*mark*/, const std::string& name) override {
        pending_anchor_name_ = name;
    }

    void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
        Node node = make(Kind::kNull, mark);
        count_nodes(1, mark, false);
        complete(std::move(node), anchor, 1, 0, 0);
    }

    void OnScalar(
        const YAML::Mark& mark,
        const std::string& tag,
        YAML::anchor_t anchor,
        const std::string& value
    ) override {
        Node node = make(Kind::kScalar, mark);
        node.scalar = value;
        if (mark.pos >= 0) {
            node.segments = map_scalar(
                positions_.text(),
                static_cast<std::size_t>(mark.pos) + positions_.bom(),
                node.line,
                node.column,
                value
            );
        }
        // yaml-cpp tags plain scalars "?" and quoted or block scalars "!"; an explicit tag
        // (!!str) also means "take this as text".
        node.quoted = tag != "?";
        if (!node.quoted && mark.pos >= 0 && !value.empty() &&
            value.find('\n') == std::string::npos) {
            // A one-line plain scalar is its source bytes as written: what follows it on the
            // line tells whether a comment cut it short.
            const std::string_view text = positions_.text();
            const std::size_t at = static_cast<std::size_t>(mark.pos) + positions_.bom();
            if (text.substr(at, value.size()) == value) {
                std::size_t i = at + value.size();
                while (i < text.size() && (text[i] == ' ' || text[i] == '\t'))
                    ++i;
                // "# note" is a comment as meant; "#1", "#tag" are text cut short.
                const bool attached = i + 1 < text.size() && text[i + 1] != ' ' &&
                                      text[i + 1] != '\t' && text[i + 1] != '\n' &&
                                      text[i + 1] != '\r' && text[i + 1] != '#';
                if (i > at + value.size() && i < text.size() && text[i] == '#' && attached)
                    node.comment_column =
                        node.column + static_cast<int>(utf8_length(text.substr(at, i - at)));
            }
        }
        count_nodes(1, mark, false);
        const std::size_t bytes = node.scalar.size() + node.segments.size() * sizeof(TextSegment);
        complete(std::move(node), anchor, 1, 0, bytes);
    }

    void OnSequenceStart(
        const YAML::Mark& mark,
        const std::string& /*tag*/,
        YAML::anchor_t anchor,
        YAML::EmitterStyle::value /*style*/
    ) override {
        open(Kind::kSequence, mark, anchor);
    }

    void OnSequenceEnd() override { close(); }

    void OnMapStart(
        const YAML::Mark& mark,
        const std::string& /*tag*/,
        YAML::anchor_t anchor,
        YAML::EmitterStyle::value /*style*/
    ) override {
        open(Kind::kMap, mark, anchor);
    }

    void OnMapEnd() override { close(); }

    void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
        for (const Frame& frame : stack_) {
            if (frame.anchor == anchor) {
                fail(
                    "E107",
                    mark,
                    "alias '*" + name_of(anchor) +
                        "' refers to a node that contains it (alias cycle)",
                    "an alias may only repeat a node that is already complete"
                );
            }
        }
        const auto it = anchors_.find(anchor);
        if (it == anchors_.end()) {
            // yaml-cpp reports unknown anchors itself; this is a safety net.
            fail("E100", mark, "unknown alias '*" + name_of(anchor) + "'", {});
        }
        const Stored& stored = it->second;
        if (static_cast<int>(stack_.size()) + stored.height > limits_.max_depth) {
            fail_depth(mark);
        }
        count_nodes(stored.size, mark, true);
        // Texts are copied too: a 1 MB text repeated by 3,000 aliases took 3 GB.
        count_copied_bytes(stored.bytes, positions_.at(mark));
        Node copy = stored.node;
        relocate(copy, positions_.at(mark));
        complete(std::move(copy), 0, stored.size, stored.height, stored.bytes);
    }

private:
    struct Frame {
        Node node;
        YAML::anchor_t anchor = 0;
        std::size_t size = 1;   // nodes in the subtree, this one included
        int height = 1;         // levels of maps and lists, this one included
        std::size_t bytes = 0;  // text held in the subtree (scalars and their segments)
        std::optional<Node> pending_key;
        std::size_t key_size = 0;
        int key_height = 0;
    };

    struct Stored {
        Node node;
        std::size_t size = 0;
        int height = 0;
        std::size_t bytes = 0;
    };

    Node make(Kind kind, const YAML::Mark& mark) {
        Node node;
        node.kind = kind;
        std::tie(node.line, node.column) = positions_.at(mark);
        return node;
    }

    [[noreturn]] void fail(
        const char* code, const YAML::Mark& mark, std::string message, std::string hint
    ) {
        fail(code, positions_.at(mark), std::move(message), std::move(hint));
    }

    [[noreturn]] void fail(
        const char* code, std::pair<int, int> where, std::string message, std::string hint
    ) {
        diags_.error(
            code,
            SourceLocation{file_, where.first, where.second},
            std::move(message),
            std::move(hint)
        );
        throw Abort{};
    }

    [[noreturn]] void fail_depth(const YAML::Mark& mark) {
        fail(
            "E106",
            mark,
            "nesting too deep: more than " + std::to_string(limits_.max_depth) +
                " levels of mappings and lists",
            "flows need only a few levels; check for a runaway '[' or '{'"
        );
    }

    void count_nodes(std::size_t n, const YAML::Mark& mark, bool alias) {
        count_nodes(n, positions_.at(mark), alias);
    }

    void count_nodes(std::size_t n, std::pair<int, int> where, bool alias) {
        if (n > limits_.max_nodes || nodes_ > limits_.max_nodes - n) {
            if (alias) {
                fail(
                    "E107",
                    where,
                    "alias expansion too large: the document would have more than " +
                        std::to_string(limits_.max_nodes) + " nodes",
                    "repeat fewer nodes through aliases"
                );
            }
            fail(
                "E108",
                where,
                "document too large: more than " + std::to_string(limits_.max_nodes) + " nodes",
                "split the flows into several files"
            );
        }
        nodes_ += n;
    }

    // Text copied for anchors (the stored node) and aliases, against max_alias_bytes.
    void count_copied_bytes(std::size_t bytes, std::pair<int, int> where) {
        if (bytes > limits_.max_alias_bytes || alias_bytes_ > limits_.max_alias_bytes - bytes) {
            fail(
                "E107",
                where,
                "alias expansion too large: anchors and aliases would copy more than " +
                    std::to_string(limits_.max_alias_bytes) + " bytes of text",
                "repeat less text through aliases"
            );
        }
        alias_bytes_ += bytes;
    }

    std::string name_of(YAML::anchor_t anchor) const {
        const auto it = anchor_names_.find(anchor);
        return it == anchor_names_.end() ? std::to_string(anchor) : it->second;
    }

    void remember_anchor_name(YAML::anchor_t anchor) {
        if (anchor != 0) {
            anchor_names_[anchor] = pending_anchor_name_;
        }
        pending_anchor_name_.clear();
    }

    void open(Kind kind, const YAML::Mark& mark, YAML::anchor_t anchor) {
        // Our own depth check runs before yaml-cpp recurses further, so its recursion (and the
        // stack it uses) stays bounded by max_depth, sanitizers included.
        if (static_cast<int>(stack_.size()) >= limits_.max_depth) {
            fail_depth(mark);
        }
        remember_anchor_name(anchor);
        count_nodes(1, mark, false);
        Frame frame;
        frame.node = make(kind, mark);
        frame.anchor = anchor;
        stack_.push_back(std::move(frame));
    }

    void close() {
        Frame frame = std::move(stack_.back());
        stack_.pop_back();
        if (frame.pending_key) {
            // A key without a value cannot come from yaml-cpp, but never lose a node.
            Node value;
            value.line = frame.pending_key->line;
            value.column = frame.pending_key->column;
            frame.node.entries.emplace_back(std::move(*frame.pending_key), std::move(value));
        }
        complete(std::move(frame.node), frame.anchor, frame.size, frame.height, frame.bytes);
    }

    void complete(
        Node node, YAML::anchor_t anchor, std::size_t size, int height, std::size_t bytes
    ) {
        if (anchor != 0) {
            if (node.kind != Kind::kMap && node.kind != Kind::kSequence) {
                remember_anchor_name(anchor);
            }
            // The stored copy is memory too: it counts against the same budgets.
            count_nodes(size, std::pair<int, int>{node.line, node.column}, true);
            count_copied_bytes(bytes, std::pair<int, int>{node.line, node.column});
            anchors_[anchor] = Stored{node, size, height, bytes};
        }
        if (stack_.empty()) {
            if (!root_) {
                root_ = std::move(node);
            }
            return;
        }
        Frame& parent = stack_.back();
        parent.size += size;
        parent.bytes += bytes;
        if (parent.node.kind == Kind::kSequence) {
            parent.height = std::max(parent.height, height + 1);
            parent.node.items.push_back(std::move(node));
            return;
        }
        if (!parent.pending_key) {
            parent.pending_key = std::move(node);
            parent.key_height = height;
            return;
        }
        parent.height = std::max({parent.height, parent.key_height + 1, height + 1});
        // An empty value ("key:" at the end of a line) is reported by yaml-cpp at the next
        // token, often on the next line; point at the key instead.
        if (node.kind == Kind::kNull && node.line != parent.pending_key->line) {
            node.line = parent.pending_key->line;
            node.column = parent.pending_key->column;
        }
        parent.node.entries.emplace_back(std::move(*parent.pending_key), std::move(node));
        parent.pending_key.reset();
    }

    /// An alias copy is reported where the alias is written, not where the anchor was.
    static void relocate(Node& node, std::pair<int, int> where) {
        node.line = where.first;
        node.column = where.second;
    }

    const std::string& file_;
    Positions& positions_;
    const Limits& limits_;
    Diagnostics& diags_;
    std::vector<Frame> stack_;
    std::unordered_map<YAML::anchor_t, Stored> anchors_;
    std::unordered_map<YAML::anchor_t, std::string> anchor_names_;
    std::string pending_anchor_name_;
    std::size_t nodes_ = 0;
    std::size_t alias_bytes_ = 0;  // text copied for anchors and aliases so far
    std::optional<Node> root_;
};

/// Stops at the start of a second document without building anything.
class SecondDocumentProbe : public YAML::EventHandler {
public:
    explicit SecondDocumentProbe(Positions& positions)
        : positions_(positions) {}

    void OnDocumentStart(const YAML::Mark& mark) override {
        const auto [line, column] = positions_.at(mark);
        throw SecondDocument{line, column};
    }

    void OnDocumentEnd() override {}

    void OnNull(const YAML::Mark& /*mark*/, YAML::anchor_t /*anchor*/) override {}

    void OnAlias(const YAML::Mark& /*mark*/, YAML::anchor_t /*anchor*/) override {}

    void OnScalar(
        const YAML::Mark& /*mark*/,
        const std::string& /*tag*/,
        YAML::anchor_t /*anchor*/,
        const std::string& /*value*/
    ) override {}

    void OnSequenceStart(
        const YAML::Mark& /*mark*/,
        const std::string& /*tag*/,
        YAML::anchor_t /*anchor*/,
        YAML::EmitterStyle::value /*style*/
    ) override {}

    void OnSequenceEnd() override {}

    void OnMapStart(
        const YAML::Mark& /*mark*/,
        const std::string& /*tag*/,
        YAML::anchor_t /*anchor*/,
        YAML::EmitterStyle::value /*style*/
    ) override {}

    void OnMapEnd() override {}

private:
    Positions& positions_;
};

}  // namespace

Document parse(
    const std::string& file, std::string_view text, Diagnostics& diags, const Limits& limits
) {
    Document doc;
    doc.file = file;
    if (text.size() > limits.max_bytes) {
        diags.error(
            "E108",
            SourceLocation{file, 0, 0},
            "file too large: more than " + std::to_string(limits.max_bytes) + " bytes",
            "split the flows into several files"
        );
        return doc;
    }
    if (const std::size_t valid = utf8_valid_prefix(text); valid < text.size()) {
        // A file saved in another encoding (Windows-1252, UTF-16) would load with its texts
        // garbled and be sent to citizens as invalid UTF-8.
        const bool utf16 = text.starts_with("\xFF\xFE") || text.starts_with("\xFE\xFF");
        diags.error(
            "E100",
            location_at(file, text, valid),
            utf16 ? std::string("the file is UTF-16 (it starts with a UTF-16 byte-order mark), not "
                                "UTF-8")
                  : "the file is not UTF-8: byte " +
                        byte_name(static_cast<unsigned char>(text[valid])) +
                        " cannot start or continue a character here",
            "save the file with the UTF-8 encoding (in most editors: Save as, Encoding: UTF-8)"
        );
        return doc;
    }
    if (const auto control = std::find_if(
            text.begin(),
            text.end(),
            [](char c) { return is_control_character(static_cast<unsigned char>(c)); }
        );
        control != text.end()) {
        // YAML allows no control character but tab and line breaks; one in a text would reach
        // citizens. A file saved as UTF-16 has a NUL beside every ASCII letter.
        const auto at = static_cast<std::size_t>(control - text.begin());
        const bool nul = text[at] == '\0';
        diags.error(
            "E100",
            location_at(file, text, at),
            "the file holds a control character (byte " +
                byte_name(static_cast<unsigned char>(text[at])) + ")" +
                (nul ? ": it may be saved as UTF-16, not UTF-8" : ""),
            nul ? "save the file with the UTF-8 encoding (in most editors: Save as, Encoding: "
                  "UTF-8)"
                : "delete the character (an editor may show it as a box or not at all)"
        );
        return doc;
    }
    Positions positions(text);
    std::istringstream stream{std::string(text)};
    YAML::Parser parser(stream);
    TreeBuilder builder(file, positions, limits, diags);
    const std::size_t before = diags.items().size();
    try {
        if (!parser.HandleNextDocument(builder)) {
            // An empty file (or only comments) is an empty document.
            Node empty;
            empty.line = 1;
            empty.column = 1;
            doc.root = std::move(empty);
            return doc;
        }
        SecondDocumentProbe probe(positions);
        parser.HandleNextDocument(probe);
    } catch (const Abort&) {
        return doc;
    } catch (const SecondDocument& second) {
        diags.error(
            "E100",
            SourceLocation{file, second.line, second.column},
            "only one YAML document per file",
            "remove the '---' line, or put the second document in its own file"
        );
        return doc;
    } catch (const YAML::DeepRecursion& e) {
        const auto [line, column] = positions.at(e.mark);
        diags.error(
            "E106",
            SourceLocation{file, line, column},
            "nesting too deep: more than " + std::to_string(limits.max_depth) +
                " levels of mappings and lists",
            "flows need only a few levels; check for a runaway '[' or '{'"
        );
        return doc;
    } catch (const YAML::ParserException& e) {
        const auto [line, column] = positions.at(e.mark);
        diags.error(
            "E100",
            SourceLocation{file, line, column},
            "invalid YAML: " + e.msg,
            syntax_hint(e.msg, tab_indented_up_to(text, line))
        );
        return doc;
    } catch (const std::bad_alloc&) {
        diags.error(
            "E108",
            SourceLocation{file, 0, 0},
            "file too large: out of memory while reading it",
            "split the flows into several files"
        );
        return doc;
    } catch (const std::exception& e) {
        diags.error(
            "E100",
            SourceLocation{file, 0, 0},
            std::string("invalid YAML: ") + e.what(),
            syntax_hint(e.what())
        );
        return doc;
    }
    if (diags.items().size() == before) {
        doc.root = builder.take_root();
        if (!doc.root) {
            Node empty;
            empty.line = 1;
            empty.column = 1;
            doc.root = std::move(empty);
        }
    }
    return doc;
}

}  // namespace civicflow::engine::yaml
