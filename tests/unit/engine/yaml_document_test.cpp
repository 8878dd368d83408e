#include <string>

#include <doctest/doctest.h>

#include <civicflow/engine/yaml_document.hpp>

using civicflow::engine::Diagnostics;
using civicflow::engine::format_text;
using civicflow::engine::SourceCache;
namespace yaml = civicflow::engine::yaml;

namespace {

/// Parses and returns the diagnostics as text, for assertions on the full output.
std::string errors_of(const std::string& text, const yaml::Limits& limits = {}) {
    Diagnostics diags;
    const auto doc = yaml::parse("f.yaml", text, diags, limits);
    CHECK(doc.root.has_value() == diags.empty());
    SourceCache sources;
    sources.put("f.yaml", text);
    return format_text(diags, sources, false);
}

std::string repeat(std::string_view piece, int times) {
    std::string out;
    out.reserve(piece.size() * static_cast<std::size_t>(times));
    for (int i = 0; i < times; ++i) {
        out += piece;
    }
    return out;
}

/// The billion-laughs document: each level repeats the previous one ten times.
std::string alias_bomb(int levels) {
    std::string text = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
    for (int i = 1; i <= levels; ++i) {
        const std::string prev = "*a" + std::to_string(i - 1);
        text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev;
        for (int j = 1; j < 10; ++j) {
            text += ", " + prev;
        }
        text += "]\n";
    }
    return text;
}

}  // namespace

TEST_SUITE("engine/yaml_document") {
    // A flow saved as Windows-1252 or UTF-16 would load with garbled texts and send invalid
    // UTF-8 to citizens: refused, at the first byte that is not UTF-8.
    TEST_CASE("a file that is not UTF-8 is refused at its first bad byte") {
        Diagnostics diags;
        const std::string text = "flow: main\ntitle: \"Fees \xE2\x80\x94 caf\x96\"\n";
        const auto doc = yaml::parse("f.yaml", text, diags, {});
        CHECK_FALSE(doc.root);
        REQUIRE(diags.items().size() == 1);
        const auto& d = diags.items()[0];
        CHECK(d.code == "E100");
        CHECK(d.location.line == 2);
        CHECK(d.location.column == 19);  // after 18 characters, the dash one of them
        CHECK(
            d.message ==
            "the file is not UTF-8: byte 0x96 cannot start or continue a character here"
        );
        Diagnostics utf16;
        CHECK_FALSE(yaml::parse(
                        "g.yaml",
                        std::string(
                            "\xFF\xFE"
                            "f\0l\0",
                            6
                        ),
                        utf16,
                        {}
        )
                        .root);
        REQUIRE(utf16.items().size() == 1);
        CHECK(utf16.items()[0].location.line == 1);
        CHECK(utf16.items()[0].location.column == 1);
        CHECK(
            utf16.items()[0].message ==
            "the file is UTF-16 (it starts with a UTF-16 byte-order mark), not UTF-8"
        );
    }

    // YAML allows no control character but tab and line breaks; a NUL (a file saved as UTF-16
    // without a byte-order mark has one beside every letter) or an escape would reach citizens.
    TEST_CASE("a control character in the file is E100 at its place") {
        CHECK(
            errors_of(std::string("flow: main\ntitle: F\0e\0e\0s\n", 26)) ==
            "f.yaml:2:9: error[E100]: the file holds a control character (byte 0x00): it may "
            "be saved as UTF-16, not UTF-8\n"
            "    2 | title: F\xEF\xBF\xBD"
            "e\xEF\xBF\xBD"
            "e\xEF\xBF\xBD"
            "s\n"
            "      |         ^\n"
            "  hint: save the file with the UTF-8 encoding (in most editors: Save as, Encoding: "
            "UTF-8)\n"
        );
        CHECK(
            errors_of("say: \"caf\xC3\xA9 \x1B[31mred\"\n") ==
            "f.yaml:1:12: error[E100]: the file holds a control character (byte 0x1B)\n"
            "    1 | say: \"caf\xC3\xA9 \xEF\xBF\xBD[31mred\"\n"
            "      |            ^\n"
            "  hint: delete the character (an editor may show it as a box or not at all)\n"
        );
        // Tabs, line feeds and carriage returns are not control characters here.
        CHECK(errors_of("a: \"x\ty\"\r\nb: 2\r\n").empty());
    }

    TEST_CASE("a plain scalar cut short by ' #word' is marked, a '# note' comment is not") {
        Diagnostics diags;
        const auto doc = yaml::parse(
            "f.yaml",
            "a: Call helpline #1 or 1967\nb: Office hours   # a note\nc: \"quoted #1\"\nd: "
            "x#y\ne: \u0928\u092e #\u0938\n",
            diags,
            {}
        );
        REQUIRE(doc.root);
        CHECK(doc.root->find("a")->scalar == "Call helpline");
        CHECK(doc.root->find("a")->comment_column == 18);
        CHECK(doc.root->find("b")->comment_column == 0);
        CHECK(doc.root->find("c")->comment_column == 0);
        CHECK(doc.root->find("d")->comment_column == 0);  // no space before '#': text
        CHECK(doc.root->find("e")->comment_column == 7);  // columns count characters
    }

    TEST_CASE("a syntax error after a tab-indented line hints at the tab") {
        const std::string out = errors_of("states:\n  a:\n\tsay: hi\n  b: 1\n");
        CHECK(out.find("error[E100]") != std::string::npos);
        CHECK(
            out.find("hint: indent with spaces only: a line at or above this one is indented "
                     "with a tab") != std::string::npos
        );
        // A tab after the indentation (inside a text) is not one.
        CHECK(errors_of("a: [1, 2\nb: \"x\ty\"\n").find("close the '['") != std::string::npos);
    }

    TEST_CASE("a mapping keeps keys in order with 1-based positions") {
        Diagnostics diags;
        const auto doc = yaml::parse("f.yaml", "a: 1\nb:\n  - x\n  - \"y\"\n", diags);
        REQUIRE(diags.empty());
        REQUIRE(doc.root);
        const yaml::Node& root = *doc.root;
        CHECK(root.is_map());
        CHECK(root.line == 1);
        CHECK(root.column == 1);
        REQUIRE(root.entries.size() == 2);
        CHECK(root.entries[0].first.scalar == "a");
        CHECK(root.entries[0].second.scalar == "1");
        CHECK(root.entries[0].second.column == 4);
        const yaml::Node* b = root.find("b");
        REQUIRE(b != nullptr);
        CHECK(b->is_sequence());
        REQUIRE(b->items.size() == 2);
        CHECK(b->items[0].line == 3);
        CHECK(b->items[0].column == 5);
        CHECK_FALSE(b->items[0].quoted);
        CHECK(b->items[1].quoted);
        CHECK(root.find("c") == nullptr);
    }

    TEST_CASE("quoted and block scalars are marked quoted, plain ones are not") {
        Diagnostics diags;
        const auto doc = yaml::parse(
            "f.yaml", "a: yes\nb: 'yes'\nc: \"yes\"\nd: |\n  yes\ne: !!str yes\n", diags
        );
        REQUIRE(doc.root);
        CHECK_FALSE(doc.root->find("a")->quoted);
        CHECK(doc.root->find("b")->quoted);
        CHECK(doc.root->find("c")->quoted);
        CHECK(doc.root->find("d")->quoted);
        CHECK(doc.root->find("e")->quoted);
    }

    TEST_CASE("columns count characters, not bytes") {
        Diagnostics diags;
        const auto doc = yaml::parse("f.yaml", "शुल्क: [फीस, x]\n", diags);
        REQUIRE(doc.root);
        const yaml::Node& list = doc.root->entries[0].second;
        CHECK(list.column == 8);
        CHECK(list.items[1].column == 14);
    }

    TEST_CASE("duplicate keys are kept for the checker") {
        Diagnostics diags;
        const auto doc = yaml::parse("f.yaml", "a: 1\na: 2\n", diags);
        REQUIRE(doc.root);
        REQUIRE(doc.root->entries.size() == 2);
        CHECK(doc.root->entries[1].first.line == 2);
        CHECK(doc.root->find("a")->scalar == "1");
    }

    TEST_CASE("an empty value is located at its key") {
        Diagnostics diags;
        const auto doc = yaml::parse("f.yaml", "a:\nb: 1\n", diags);
        REQUIRE(doc.root);
        const yaml::Node* a = doc.root->find("a");
        CHECK(a->is_null());
        CHECK(a->line == 1);
        CHECK(a->kind_name() == "nothing");
    }

    TEST_CASE("an empty file is an empty document") {
        Diagnostics diags;
        const auto doc = yaml::parse("f.yaml", "# only a comment\n", diags);
        REQUIRE(doc.root);
        CHECK(doc.root->is_null());
        CHECK(diags.empty());
    }

    TEST_CASE("aliases are expanded as copies located at the alias") {
        Diagnostics diags;
        const auto doc = yaml::parse("f.yaml", "base: &b { x: 1 }\ncopy: *b\n", diags);
        REQUIRE(doc.root);
        const yaml::Node* copy = doc.root->find("copy");
        REQUIRE(copy->is_map());
        CHECK(copy->find("x")->scalar == "1");
        CHECK(copy->line == 2);
        CHECK(copy->column == 7);
    }

    TEST_CASE("a syntax error is E100 with yaml-cpp's message at its mark") {
        CHECK(
            errors_of("a: [1, 2\nb: 3\n") ==
            "f.yaml:2:2: error[E100]: invalid YAML: end of sequence flow not found\n"
            "    2 | b: 3\n"
            "      |  ^\n"
            "  hint: close the '[' opened on this line or above with ']', or quote a text "
            "that holds ',', '[' or ']'\n"
        );
    }

    TEST_CASE("an unknown alias is E100") {
        CHECK(
            errors_of("a: *nope\n") ==
            "f.yaml:1:4: error[E100]: invalid YAML: the referenced anchor is not defined\n"
            "    1 | a: *nope\n"
            "      |    ^\n"
            "  hint: define the anchor (&name) before its alias (*name), or quote a text that "
            "starts with '*' or '&'\n"
        );
    }

    TEST_CASE("a second document is E100") {
        CHECK(
            errors_of("a: 1\n---\nb: 2\n") ==
            "f.yaml:2:1: error[E100]: only one YAML document per file\n"
            "    2 | ---\n"
            "      | ^\n"
            "  hint: remove the '---' line, or put the second document in its own file\n"
        );
    }

    TEST_CASE("an alias inside its own anchor is an alias cycle") {
        CHECK(
            errors_of("a: &x [1, *x]\n") ==
            "f.yaml:1:11: error[E107]: alias '*x' refers to a node that contains it (alias "
            "cycle)\n"
            "    1 | a: &x [1, *x]\n"
            "      |           ^\n"
            "  hint: an alias may only repeat a node that is already complete\n"
        );
    }

    TEST_CASE("the billion laughs bomb stops at the node budget") {
        const std::string out = errors_of(alias_bomb(9));
        // a4 alone is 111,111 nodes; keeping it for later aliases crosses the budget.
        CHECK(
            out ==
            "f.yaml:5:5: error[E107]: alias expansion too large: the document would have "
            "more than 200000 nodes\n"
            "    5 | a4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]\n"
            "      |     ^\n"
            "  hint: repeat fewer nodes through aliases\n"
        );
    }

    TEST_CASE("a smaller budget catches a smaller bomb") {
        yaml::Limits limits;
        limits.max_nodes = 50;
        CHECK(
            errors_of(alias_bomb(1), limits) ==
            "f.yaml:2:20: error[E107]: alias expansion too large: the document would have "
            "more than 50 nodes\n"
            "    2 | a1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n"
            "      |                    ^\n"
            "  hint: repeat fewer nodes through aliases\n"
        );
    }

    TEST_CASE("aliases cannot copy more text than the budget") {
        // A 1 MB text repeated by 3,000 aliases took 3 GB of memory: few nodes, much text.
        const std::string text =
            "a: &a \"" + std::string(1'000'000, 'x') + "\"\nb: [" + repeat("*a, ", 2999) + "*a]\n";
        Diagnostics diags;
        const auto doc = yaml::parse("f.yaml", text, diags);
        CHECK_FALSE(doc.root);
        REQUIRE(diags.items().size() == 1);
        CHECK(diags.items()[0].code == "E107");
        CHECK(
            diags.items()[0].message ==
            "alias expansion too large: anchors and aliases would copy more than 16777216 bytes "
            "of text"
        );
        CHECK(diags.items()[0].location.line == 2);
        // Within the budget, aliases of text work as before.
        yaml::Limits limits;
        // Each copy (the anchor's stored one, then one per alias): the 10 bytes of text and
        // the one segment saying where it was written.
        const std::size_t copy = 10 + sizeof(yaml::TextSegment);
        limits.max_alias_bytes = 4 * copy;
        CHECK(errors_of("a: &a \"0123456789\"\nb: [*a, *a, *a]\n", limits).empty());
        CHECK(
            errors_of("a: &a \"0123456789\"\nb: [*a, *a, *a, *a]\n", limits) ==
            "f.yaml:2:17: error[E107]: alias expansion too large: anchors and aliases would "
            "copy more than " +
                std::to_string(limits.max_alias_bytes) +
                " bytes of text\n"
                "    2 | b: [*a, *a, *a, *a]\n"
                "      |                 ^\n"
                "  hint: repeat less text through aliases\n"
        );
    }

    TEST_CASE("nested anchors count the text each of them stores") {
        // Without an alias, each anchor of a list keeps a copy of all the text inside it.
        yaml::Limits limits;
        const std::size_t copy = 10 + sizeof(yaml::TextSegment);
        limits.max_alias_bytes = 3 * copy;
        CHECK(errors_of("a: &a [&b \"0123456789\"]\n", limits).empty());  // b, then a: 2
        Diagnostics diags;
        const auto doc =
            yaml::parse("f.yaml", "a: &a [&b [&c [&d \"0123456789\"]]]\n", diags, limits);
        CHECK_FALSE(doc.root);
        REQUIRE(diags.items().size() == 1);
        CHECK(diags.items()[0].code == "E107");
    }

    TEST_CASE("aliases cannot build nesting deeper than the limit") {
        yaml::Limits limits;
        limits.max_depth = 3;
        const std::string text = "a: &a [[1]]\nb: [*a]\n";
        Diagnostics diags;
        CHECK(yaml::parse("f.yaml", text, diags, limits).root == std::nullopt);
        REQUIRE(diags.items().size() == 1);
        CHECK(diags.items()[0].code == "E106");
        CHECK(diags.items()[0].location.line == 2);
    }

    TEST_CASE("nesting deeper than the limit is E106 at the first level too deep") {
        CHECK(
            errors_of(repeat("[", 70) + repeat("]", 70) + "\n") ==
            "f.yaml:1:65: error[E106]: nesting too deep: more than 64 levels of mappings and "
            "lists\n"
            "    1 | " +
                repeat("[", 70) + repeat("]", 70) +
                "\n"
                "      | " +
                repeat(" ", 64) +
                "^\n"
                "  hint: flows need only a few levels; check for a runaway '[' or '{'\n"
        );
    }

    TEST_CASE("10,000 levels of flow nesting are refused without crashing") {
        for (const char* open : {"[", "{a: "}) {
            const std::string close = std::string(open) == "[" ? "]" : "}";
            Diagnostics diags;
            const auto doc =
                yaml::parse("f.yaml", repeat(open, 10000) + "1" + repeat(close, 10000), diags);
            CHECK_FALSE(doc.root);
            REQUIRE(diags.items().size() == 1);
            CHECK(diags.items()[0].code == "E106");
        }
    }

    TEST_CASE("10,000 levels of block nesting are refused without crashing") {
        Diagnostics diags;
        const auto doc = yaml::parse("f.yaml", repeat("- ", 10000) + "x\n", diags);
        CHECK_FALSE(doc.root);
        REQUIRE(diags.items().size() == 1);
        CHECK(diags.items()[0].code == "E106");
        CHECK(diags.items()[0].location.column == 129);

        std::string mapping;
        for (int i = 0; i < 2000; ++i) {
            mapping += repeat(" ", i) + "k:\n";
        }
        Diagnostics map_diags;
        CHECK_FALSE(yaml::parse("f.yaml", mapping, map_diags).root);
        REQUIRE(map_diags.items().size() == 1);
        CHECK(map_diags.items()[0].code == "E106");
        CHECK(map_diags.items()[0].location.line == 65);
    }

    TEST_CASE("a file over the byte limit is refused before parsing") {
        // 50 MB of valid YAML: parsing it would be slow and large; the size check is instant.
        const std::string big = repeat("key: value\n", 50 * 1024 * 1024 / 11);
        CHECK(
            errors_of(big) ==
            "f.yaml: error[E108]: file too large: more than 4194304 bytes\n"
            "  hint: split the flows into several files\n"
        );
    }

    TEST_CASE("a document with more nodes than the budget is E108") {
        yaml::Limits limits;
        limits.max_nodes = 10;
        CHECK(
            errors_of("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\n", limits) ==
            "f.yaml:1:29: error[E108]: document too large: more than 10 nodes\n"
            "    1 | [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\n"
            "      |                             ^\n"
            "  hint: split the flows into several files\n"
        );
    }

    TEST_CASE("kind names read well in messages") {
        yaml::Node n;
        CHECK(n.kind_name() == "nothing");
        n.kind = yaml::Kind::kScalar;
        CHECK(n.kind_name() == "a text value");
        n.kind = yaml::Kind::kSequence;
        CHECK(n.kind_name() == "a list");
        n.kind = yaml::Kind::kMap;
        CHECK(n.kind_name() == "a mapping");
    }

    TEST_CASE("a 3 MB single-line list stops at the node budget without quadratic work") {
        std::string text = "[";
        for (int i = 0; i < 1500000; ++i) {
            text += "1,";
        }
        text += "1]\n";
        Diagnostics diags;
        CHECK_FALSE(yaml::parse("f.yaml", text, diags).root);
        REQUIRE(diags.items().size() == 1);
        CHECK(diags.items()[0].code == "E108");
        CHECK(diags.items()[0].location.column == 400000);
    }

    // Template diagnostics point inside texts: each part of a scalar's text maps back to where
    // it was written, through quotes, escapes, folded lines and block indentation.
    TEST_CASE("a scalar's text maps back to where each part of it was written") {
        struct Case {
            const char* yaml;
            int line;
            int column;
        };

        // Each text holds "{{ x }}"; the position is that of its first brace.
        const Case cases[] = {
            {"a: plain {{ x }}\n", 1, 10},
            {"a: \"Tab\\there {{ x }}\"\n", 1, 15},
            {"a: 'it''s {{ x }}'\n", 1, 11},
            {"a: \"\u0928\u092E\\u0938\u094D\u0924\u0947 {{ x }}\"\n", 1, 17},
            {"a: \"\\u00e9t\\u00e9 {{ x }}\"\n", 1, 19},
            {"a: one\n  two {{ x }}\n", 2, 7},
            {"a: \"one   \n\n   two {{ x }}\"\n", 3, 8},
            {"a: \"one \\\n   two {{ x }}\"\n", 2, 8},
            {"a: |\n  one\n  two {{ x }}\n", 3, 7},
            {"a: |-\n\n    one\n      two {{ x }}\n", 4, 11},
            {"a: >\n  one\n  two {{ x }}\n", 3, 7},
            {"a: &t \"\\t {{ x }}\"\n", 1, 11},
            {"a: \"ab\n  \\tc {{ x }}\"\n", 2, 7},
            {"a: !!str 'it''s {{ x }}'\n", 1, 17},
            {"a: &t |\n  one {{ x }}\n", 2, 7},
            {"\xEF\xBB\xBF"
             "a: \"\\t {{ x }}\"\n",
             1,
             8},
        };
        for (const Case& c : cases) {
            CAPTURE(c.yaml);
            Diagnostics diags;
            const auto doc = yaml::parse("f.yaml", c.yaml, diags);
            REQUIRE(doc.root);
            const yaml::Node* a = doc.root->find("a");
            REQUIRE(a != nullptr);
            const std::size_t brace = a->scalar.find("{{");
            REQUIRE(brace != std::string::npos);
            const auto at = yaml::position_in(a->segments, a->scalar, brace);
            REQUIRE(at);
            CHECK(at->first == c.line);
            CHECK(at->second == c.column);
            // The start of the text is where it was written too.
            const auto start = yaml::position_in(a->segments, a->scalar, 0);
            REQUIRE(start);
            CHECK(start->first >= 1);
        }
    }

    TEST_CASE("a byte order mark does not shift the columns of the first line") {
        Diagnostics diags;
        const auto doc = yaml::parse("f.yaml", "\xEF\xBB\xBFkey: value\n", diags);
        REQUIRE(doc.root);
        CHECK(doc.root->entries.at(0).first.column == 1);
        CHECK(doc.root->entries.at(0).second.column == 6);
    }
}
