#include <string>

#include <doctest/doctest.h>

#include <civicflow/engine/diagnostic.hpp>

using civicflow::engine::Diagnostics;
using civicflow::engine::did_you_mean;
using civicflow::engine::format_json;
using civicflow::engine::format_text;
using civicflow::engine::Severity;
using civicflow::engine::SourceCache;
using civicflow::engine::SourceLocation;

TEST_SUITE("engine/diagnostic") {
    TEST_CASE("text output has the gcc line, a snippet with a marker, the hint and a summary") {
        SourceCache sources;
        sources.put(
            "flows/passport.yaml",
            "version: 1\nflow: passport\nstates:\n  renew_info:\n    say: hi\n    nxt: menu\n"
        );
        Diagnostics diags;
        diags.error(
            "E102",
            {"flows/passport.yaml", 6, 5},
            "unknown key 'nxt' in state 'renew_info'",
            "did you mean 'next'?",
            3
        );
        diags.warning(
            "W101",
            {"flows/passport.yaml", 4, 3},
            "state 'renew_info' is never reached from the start of flow 'passport'",
            {},
            10
        );
        CHECK(
            format_text(diags, sources) ==
            "flows/passport.yaml:6:5: error[E102]: unknown key 'nxt' in state 'renew_info'\n"
            "    6 |     nxt: menu\n"
            "      |     ^~~\n"
            "  hint: did you mean 'next'?\n"
            "flows/passport.yaml:4:3: warning[W101]: state 'renew_info' is never reached from "
            "the start of flow 'passport'\n"
            "    4 |   renew_info:\n"
            "      |   ^~~~~~~~~~\n"
            "flows/passport.yaml: 1 error, 1 warning\n"
        );
    }

    TEST_CASE("the marker lines up under non-ASCII text and stops at the end of the line") {
        SourceCache sources;
        sources.put("a.yaml", "x: { hi: \"नमस्ते\", en: 1 }\n");
        Diagnostics diags;
        diags.error("E109", {"a.yaml", 1, 19}, "bad", {}, 2);
        diags.error("E109", {"a.yaml", 1, 10}, "long", {}, 40);
        // Columns count code points: the caret sits under "en" after six Devanagari ones.
        CHECK(
            format_text(diags, sources, false) ==
            "a.yaml:1:19: error[E109]: bad\n"
            "    1 | x: { hi: \"नमस्ते\", en: 1 }\n"
            "      |                   ^~\n"
            "a.yaml:1:10: error[E109]: long\n"
            "    1 | x: { hi: \"नमस्ते\", en: 1 }\n"
            "      |          ^~~~~~~~~~~~~~~~~\n"
        );
    }

    // A file saved as UTF-16 has a NUL after every ASCII character: printed as a C string the
    // report stopped at the first one, hiding every later error and the summary.
    TEST_CASE("control characters of a file are shown as U+FFFD, the report whole") {
        SourceCache sources;
        sources.put("u16.yaml", std::string("v\0e\0r\0\x1b[2J: 1\n", 14));
        Diagnostics diags;
        diags.error("E100", {"u16.yaml", 1, 7}, "bad \x01key", "a hint", 1);
        diags.error("E102", {"zz.yaml", 2, 1}, "unknown key 'gotoo'", {}, 5);
        CHECK(
            format_text(diags, sources) ==
            "u16.yaml:1:7: error[E100]: bad \xEF\xBF\xBDkey\n"
            "    1 | v\xEF\xBF\xBD"
            "e\xEF\xBF\xBD"
            "r\xEF\xBF\xBD\xEF\xBF\xBD[2J: 1\n"
            "      |       ^\n"
            "  hint: a hint\n"
            "zz.yaml:2:1: error[E102]: unknown key 'gotoo'\n"
            "u16.yaml: 1 error, 0 warnings\n"
            "zz.yaml: 1 error, 0 warnings\n"
        );
    }

    TEST_CASE("a very long line is shown as a window around the column") {
        std::string line;
        for (int i = 0; i < 1000; ++i) {
            line += static_cast<char>('a' + i % 26);
        }
        SourceCache sources;
        sources.put("a.yaml", line + "\n");
        Diagnostics diags;
        diags.error("E100", {"a.yaml", 1, 501}, "here", {}, 3);
        diags.error("E100", {"a.yaml", 1, 2}, "start", {}, 1);
        // Columns 421-620 are shown after "...": column 501 is the 81st shown, after 3 dots.
        CHECK(
            format_text(diags, sources, false) ==
            "a.yaml:1:501: error[E100]: here\n"
            "    1 | ..." +
                line.substr(420, 200) +
                "...\n"
                "      | " +
                std::string(83, ' ') +
                "^~~\n"
                "a.yaml:1:2: error[E100]: start\n"
                "    1 | " +
                line.substr(0, 200) +
                "...\n"
                "      |  ^\n"
        );
    }

    TEST_CASE("file-level diagnostics have no line, column or snippet") {
        SourceCache sources;
        Diagnostics diags;
        diags.error(
            "E108",
            {"big.yaml", 0, 0},
            "file too large: more than 4194304 bytes",
            "split the flows into several files"
        );
        diags.error("E103", {"flows", 0, 0}, "no helpline file and no flow named 'main'");
        CHECK(
            format_text(diags, sources) ==
            "big.yaml: error[E108]: file too large: more than 4194304 bytes\n"
            "  hint: split the flows into several files\n"
            "flows: error[E103]: no helpline file and no flow named 'main'\n"
            "big.yaml: 1 error, 0 warnings\n"
            "flows: 1 error, 0 warnings\n"
        );
    }

    TEST_CASE("sorting orders by file, line, column and code, keeping ties stable") {
        Diagnostics diags;
        diags.error("E201", {"b.yaml", 1, 1}, "first b");
        diags.error("E102", {"a.yaml", 9, 1}, "a line 9");
        diags.error("E102", {"a.yaml", 2, 5}, "a line 2 col 5");
        diags.error("E101", {"a.yaml", 2, 5}, "a line 2 col 5 E101");
        diags.error("E101", {"a.yaml", 2, 5}, "a line 2 col 5 E101 again");
        diags.sort();
        std::vector<std::string> messages;
        for (const auto& d : diags.items()) {
            messages.push_back(d.message);
        }
        CHECK(
            messages ==
            std::vector<std::string>{
                "a line 2 col 5 E101",
                "a line 2 col 5 E101 again",
                "a line 2 col 5",
                "a line 9",
                "first b"}
        );
    }

    TEST_CASE("counts and has_errors tell errors from warnings") {
        Diagnostics diags;
        CHECK(diags.empty());
        CHECK_FALSE(diags.has_errors());
        diags.warning("W102", {}, "w");
        CHECK_FALSE(diags.has_errors());
        Diagnostics other;
        other.error("E101", {}, "e");
        diags.append(other);
        CHECK(diags.has_errors());
        CHECK(diags.error_count() == 1);
        CHECK(diags.warning_count() == 1);
        CHECK(diags.items()[1].severity == Severity::kError);
        CHECK(diags.items()[1].length == 1);
    }

    TEST_CASE("json output is an array with every field escaped") {
        Diagnostics diags;
        diags.error(
            "E102", {"dir/\"q\".yaml", 3, 7}, "unknown key 'a\\b'\nnext\ttab", "did you mean \"x\"?"
        );
        diags.warning("W103", {"f.yaml", 1, 1}, std::string("bad byte \xFF and \x01 ok नमस्ते"));
        CHECK(
            format_json(diags) ==
            "[\n"
            "  {\"file\": \"dir/\\\"q\\\".yaml\", \"line\": 3, \"column\": 7, \"severity\": "
            "\"error\", \"code\": \"E102\", \"message\": \"unknown key 'a\\\\b'\\nnext\\ttab\", "
            "\"hint\": \"did you mean \\\"x\\\"?\"},\n"
            "  {\"file\": \"f.yaml\", \"line\": 1, \"column\": 1, \"severity\": \"warning\", "
            "\"code\": \"W103\", \"message\": \"bad byte \xEF\xBF\xBD and \\u0001 ok नमस्ते\", "
            "\"hint\": \"\"}\n"
            "]\n"
        );
        CHECK(format_json(Diagnostics{}) == "[]\n");
    }

    TEST_CASE("source lines are looked up by file and 1-based number") {
        SourceCache sources;
        sources.put("a.yaml", "one\r\ntwo\nthree");
        sources.put("b.yaml", "other");
        CHECK(sources.line("a.yaml", 1) == "one");
        CHECK(sources.line("a.yaml", 3) == "three");
        CHECK(sources.line("a.yaml", 4).empty());
        CHECK(sources.line("a.yaml", 0).empty());
        CHECK(sources.line("c.yaml", 1).empty());
        sources.put("a.yaml", "replaced");
        CHECK(sources.line("a.yaml", 1) == "replaced");
    }

    TEST_CASE("did you mean suggests the nearest candidate within two edits") {
        const std::vector<std::string> keys{"say", "goto", "then", "menu", "match", "otherwise"};
        CHECK(did_you_mean("gotoo", keys) == "goto");
        CHECK(did_you_mean("mneu", keys) == "menu");
        CHECK(did_you_mean("otherwse", keys) == "otherwise");
        CHECK(did_you_mean("thn", keys) == "then");
        CHECK(did_you_mean("validate", keys).empty());
        CHECK(did_you_mean("x", {"id"}).empty());
        CHECK(did_you_mean("fees", {"feez", "fee"}) == "feez");
        CHECK(did_you_mean("anything", {}).empty());
    }
}
