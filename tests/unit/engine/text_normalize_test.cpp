#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <civicflow/engine/text_normalize.hpp>

using civicflow::engine::ascii_digits;
using civicflow::engine::edit_distance;
using civicflow::engine::is_valid_utf8;
using civicflow::engine::normalize;
using civicflow::engine::split_words;
using civicflow::engine::to_lower;
using civicflow::engine::to_upper;
using civicflow::engine::utf8_length;

namespace {

/// UTF-8 of one code point, so tests can name digits by their code points.
std::string utf8(char32_t cp) {
    std::string out;
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    return out;
}

/// The ten digits of the block whose zero is `zero`.
std::string digits_from(char32_t zero) {
    std::string out;
    for (char32_t d = 0; d < 10; ++d) {
        out += utf8(zero + d);
    }
    return out;
}

}  // namespace

TEST_SUITE("engine/text_normalize") {
    TEST_CASE("ascii_digits reads the digits of every indian script and full-width digits") {
        struct Block {
            const char* script;
            char32_t zero;
        };

        const std::vector<Block> blocks = {
            {"Devanagari", 0x0966},
            {"Bengali", 0x09E6},
            {"Gurmukhi", 0x0A66},
            {"Gujarati", 0x0AE6},
            {"Odia", 0x0B66},
            {"Tamil", 0x0BE6},
            {"Telugu", 0x0C66},
            {"Kannada", 0x0CE6},
            {"Malayalam", 0x0D66},
            {"full-width", 0xFF10},
        };
        for (const Block& block : blocks) {
            CAPTURE(block.script);
            CHECK(ascii_digits(digits_from(block.zero)) == "0123456789");
            CHECK(normalize(digits_from(block.zero)) == "0123456789");
        }
    }

    TEST_CASE("ascii_digits keeps letters, signs next to the digits and invalid bytes") {
        // Code points just outside the digit ranges are letters or signs and must survive.
        const std::string around = utf8(0x0965) + utf8(0x0970) + utf8(0x0BF0) + utf8(0xFF1A);
        CHECK(ascii_digits(around) == around);
        CHECK(ascii_digits("पिन ११०००१ है") == "पिन 110001 है");
        CHECK(ascii_digits("abc 123") == "abc 123");
        const std::string invalid = std::string("a\xFF") + "\xE0\xA5";  // truncated digit
        CHECK(ascii_digits(invalid) == invalid);
        CHECK(ascii_digits("") == "");
    }

    TEST_CASE("normalize folds case, drops punctuation and trims") {
        CHECK(normalize("  What's the FEE?? ") == "what s the fee");
        CHECK(normalize("Hello,\tWORLD!\n") == "hello world");
        CHECK(normalize("a--b__c...d") == "a b c d");
        CHECK(normalize("!!!") == "");
        CHECK(normalize("") == "");
        CHECK(normalize("Tatkal   fee") == "tatkal fee");
    }

    TEST_CASE("normalize folds latin-1, latin extended-a, greek and cyrillic letters") {
        CHECK(normalize("ÉCOLE Ça") == "école ça");
        CHECK(normalize("ÀÖØÞ") == "àöøþ");
        CHECK(normalize("ŁÓDŹ ŠKODA Ÿ") == "łódź škoda ÿ");
        CHECK(normalize("ΩΜΕΓΑ Άλφα") == "ωμεγα άλφα");
        CHECK(normalize("ΟΔΟΣ οδος") == "οδοσ οδοσ");  // final sigma folds to sigma
        CHECK(normalize("ЖУРНАЛ Ёлка ЇЖАК") == "журнал ёлка їжак");
        CHECK(normalize("×÷") == "×÷");  // signs in the Latin-1 letter range are not letters
    }

    TEST_CASE("normalize leaves hindi text as it is except digits and danda") {
        CHECK(normalize("पासपोर्ट का शुल्क कितना है?") == "पासपोर्ट का शुल्क कितना है");
        CHECK(normalize("नमस्ते। आपका स्वागत है॥") == "नमस्ते आपका स्वागत है");
        CHECK(normalize("फ़ीस ५००") == "फ़ीस 500");
        CHECK(normalize("தமிழ் ௧௨") == "தமிழ் 12");
    }

    // Keyboards type a nukta letter either as one code point or as the letter and its nukta:
    // both spellings of a word must match.
    TEST_CASE("normalize writes letters with a nukta as the letter and its nukta") {
        const std::string decomposed = "\u091B\u094B\u0921\u093C\u0947\u0902";  // छोड़ें
        const std::string composed = "\u091B\u094B\u095C\u0947\u0902";
        CHECK(normalize(composed) == decomposed);
        CHECK(normalize(decomposed) == decomposed);
        CHECK(normalize("\u095B") == "\u091C\u093C");  // ज़
        CHECK(normalize("\u0929") == "\u0928\u093C");  // ऩ
        CHECK(normalize("\u09DF") == "\u09AF\u09BC");  // Bengali য়
        CHECK(normalize("\u0A36") == "\u0A38\u0A3C");  // Gurmukhi ਸ਼
        CHECK(normalize("\u0B5C") == "\u0B21\u0B3C");  // Oriya ଡ଼
        CHECK(normalize("\u0915") == "\u0915");        // क stays
    }

    TEST_CASE("normalize reads a keycap emoji as its digit") {
        CHECK(normalize("3\uFE0F\u20E3") == "3");
        CHECK(normalize("option 2\u20E3") == "option 2");
    }

    TEST_CASE("normalize turns general punctuation into spaces and drops zero-width characters") {
        CHECK(normalize("fee\u2014cost") == "fee cost");     // em dash
        CHECK(normalize("\u201cquoted\u201d") == "quoted");  // curly quotes
        CHECK(normalize("wait\u2026") == "wait");            // ellipsis
        CHECK(normalize("a\u00A0b\u2003c") == "a b c");      // no-break and em spaces
        CHECK(normalize("\uFEFFstart") == "start");          // byte-order mark
        CHECK(normalize("zero\u200Bwidth") == "zerowidth");  // ZWSP
        CHECK(normalize("क्\u200Dष") == "क्ष");                // ZWJ
        CHECK(normalize("क्\u200Cष") == "क्ष");                // ZWNJ
        CHECK(normalize("¿Qué? «sí»") == "qué sí");
    }

    TEST_CASE("normalize drops invalid utf-8 bytes") {
        CHECK(
            normalize("fe\xFF"
                      "e") == "fee"
        );
        CHECK(
            normalize("\xC0\xAF"
                      "abc") == "abc"
        );                                           // overlong '/'
        CHECK(normalize("x\xED\xA0\x80y") == "xy");  // surrogate
        CHECK(normalize("ab\xE0\xA5") == "ab");      // truncated
    }

    TEST_CASE("split_words splits at spaces and skips empty words") {
        CHECK(
            split_words("what s the fee") ==
            std::vector<std::string_view>{"what", "s", "the", "fee"}
        );
        CHECK(split_words("  two  spaces ") == std::vector<std::string_view>{"two", "spaces"});
        CHECK(split_words("").empty());
    }

    TEST_CASE("utf8_length counts code points and each invalid byte as one") {
        CHECK(utf8_length("") == 0);
        CHECK(utf8_length("abc") == 3);
        CHECK(utf8_length("शुल्क") == 5);
        CHECK(utf8_length("Ж😀") == 2);
        CHECK(utf8_length("a\xFF\xFE") == 3);
    }

    TEST_CASE("is_valid_utf8 refuses overlongs, surrogates, truncation and values past u+10ffff") {
        CHECK(is_valid_utf8(""));
        CHECK(is_valid_utf8("plain"));
        CHECK(is_valid_utf8("नमस्ते Ω 😀"));
        CHECK(is_valid_utf8(utf8(0x10FFFF)));
        CHECK_FALSE(is_valid_utf8("\xC0\x80"));          // overlong NUL
        CHECK_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // overlong 3-byte
        CHECK_FALSE(is_valid_utf8("\xF0\x80\x80\xAF"));  // overlong 4-byte
        CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));      // U+D800
        CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // U+110000
        CHECK_FALSE(is_valid_utf8("\xE0\xA5"));          // truncated
        CHECK_FALSE(is_valid_utf8("\x80"));              // stray continuation
        CHECK_FALSE(is_valid_utf8("\xF8\x88\x80\x80\x80"));
    }

    TEST_CASE("to_lower and to_upper map the supported scripts both ways") {
        CHECK(to_lower("ÉCOLE ΩΜΕΓΑ ЖУК Łódź") == "école ωμεγα жук łódź");
        CHECK(to_upper("école ωμεγα жук łódź ÿ") == "ÉCOLE ΩΜΕΓΑ ЖУК ŁÓDŹ Ÿ");
        CHECK(to_upper("οδος") == "ΟΔΟΣ");
        CHECK(to_upper("नमस्ते ß") == "नमस्ते ß");
        CHECK(to_lower("ς") == "ς");  // lower case keeps the final sigma; only matching folds it
    }

    TEST_CASE("edit_distance counts substitutions, insertions, deletions and transpositions") {
        CHECK(edit_distance("passport", "passport", 1) == 0);
        CHECK(edit_distance("passport", "pasport", 1) == 1);
        CHECK(edit_distance("passport", "passsport", 1) == 1);
        CHECK(edit_distance("passport", "passpord", 1) == 1);
        CHECK(edit_distance("passport", "psasport", 1) == 1);
        CHECK(edit_distance("kitten", "sitting", 5) == 3);
        CHECK(edit_distance("", "abc", 5) == 3);
        CHECK(edit_distance("abc", "", 5) == 3);
        CHECK(edit_distance("ca", "abc", 5) == 3);  // optimal string alignment, not full Damerau
    }

    TEST_CASE("edit_distance works on code points, not bytes") {
        CHECK(edit_distance("शुल्क", "शुल्", 2) == 1);
        CHECK(edit_distance("Жук", "Жак", 2) == 1);
        CHECK(edit_distance("éa", "ae", 2) == 2);
        CHECK(edit_distance("éa", "aé", 2) == 1);
    }

    TEST_CASE("edit_distance stops at the limit") {
        CHECK(edit_distance("passport", "pasprot", 1) == 2);
        CHECK(edit_distance("abcdef", "uvwxyz", 2) == 3);
        CHECK(edit_distance("a", "abcdefgh", 1) == 2);  // the length difference alone
        CHECK(edit_distance("abcdef", "uvwxyz", 10) == 6);
    }

    TEST_CASE("edit_distance handles words longer than its stack buffers") {
        const std::string a(100, 'a');
        std::string b = a;
        b[50] = 'b';
        CHECK(edit_distance(a, b, 1) == 1);
        CHECK(edit_distance(a, std::string(100, 'b'), 3) == 4);
        CHECK(edit_distance(a + "xy", a + "yx", 1) == 1);
    }
}
