#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <civicflow/engine/text_normalize.hpp>
#include <civicflow/server/whatsapp/outbound.hpp>

using namespace civicflow;
using engine::MenuItem;
using engine::Reply;
using server::whatsapp::normalize_citizen;
using server::whatsapp::render_mark_read;
using server::whatsapp::render_replies;
using server::whatsapp::render_template;
using server::whatsapp::RenderOptions;
using server::whatsapp::split_text;

namespace {

constexpr const char* kTo = "16505551234";
constexpr const char* kHead =
    R"({"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234",)";

Reply text_reply(std::string text) {
    return Reply{Reply::Kind::kText, std::move(text), {}, {}, {}};
}

Reply menu(std::string text, std::vector<MenuItem> options) {
    return Reply{Reply::Kind::kMenu, std::move(text), std::move(options), {}, {}};
}

Reply media(std::string url, std::string caption) {
    return Reply{Reply::Kind::kMedia, {}, {}, std::move(url), std::move(caption)};
}

std::string repeat(std::string_view unit, std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) {
        s += unit;
    }
    return s;
}

bool is_split_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// The split property: each part is non-empty, at most `max` code points and valid UTF-8 when
// the text is; the text is the parts in order, separated only by (non-empty) runs of white
// space at soft splits, or by nothing at hard splits.
void check_split(const std::string& text, std::size_t max) {
    const std::vector<std::string> parts = split_text(text, max);
    std::size_t pos = 0;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        CAPTURE(i);
        const std::string& part = parts[i];
        REQUIRE_FALSE(part.empty());
        CHECK(engine::utf8_length(part) <= max);
        if (engine::is_valid_utf8(text)) {
            CHECK(engine::is_valid_utf8(part));
        }
        if (i > 0) {
            while (pos < text.size() && is_split_space(text[pos]) &&
                   text.compare(pos, part.size(), part) != 0) {
                ++pos;
            }
        }
        REQUIRE(text.compare(pos, part.size(), part) == 0);
        pos += part.size();
    }
    // Only white space may follow the last part (a trailing run dropped at a split).
    while (pos < text.size() && is_split_space(text[pos])) {
        ++pos;
    }
    CHECK(pos == text.size());
    if (!text.empty()) {
        CHECK_FALSE(parts.empty());
    }
}

rapidjson::Document parse(const std::string& json) {
    rapidjson::Document doc;
    doc.Parse(json.data(), json.size());
    REQUIRE_FALSE(doc.HasParseError());
    return doc;
}

}  // namespace

TEST_SUITE("server/whatsapp/outbound") {
    TEST_CASE("a text reply is one text message with the raw UTF-8 and unescaped slashes") {
        const auto out = render_replies({text_reply("आपका आवेदन 12/2024 को \"स्वीकृत\" हुआ")}, kTo);
        REQUIRE(out.size() == 1);
        CHECK(
            out[0] == std::string(kHead) +
                          R"("type":"text","text":{"body":"आपका आवेदन 12/2024 को \"स्वीकृत\" हुआ"}})"
        );
    }

    TEST_CASE("a business-scoped user id is addressed by recipient, a phone number by to") {
        auto out = render_replies({text_reply("hi")}, "US.13491208655302741918");
        REQUIRE(out.size() == 1);
        CHECK(
            out[0] ==
            R"({"messaging_product":"whatsapp","recipient_type":"individual","recipient":"US.13491208655302741918","type":"text","text":{"body":"hi"}})"
        );
        out = render_replies({text_reply("hi")}, "+919812345678");
        REQUIRE(out.size() == 1);
        CHECK(out[0].find(R"("to":"+919812345678")") != std::string::npos);
    }

    TEST_CASE("an empty text sends nothing and replies keep their order") {
        const auto out =
            render_replies({text_reply(""), text_reply("one"), text_reply("two")}, kTo);
        REQUIRE(out.size() == 2);
        CHECK(out[0].find(R"("body":"one")") != std::string::npos);
        CHECK(out[1].find(R"("body":"two")") != std::string::npos);
    }

    TEST_CASE("text is split at 4096 code points on a word boundary") {
        // 4090 characters, a space, then a 10-character word: the word goes to a second part.
        const std::string first = repeat("a", 4090);
        const std::string text = first + " " + repeat("b", 10);
        const auto parts = split_text(text);
        REQUIRE(parts.size() == 2);
        CHECK(parts[0] == first);
        CHECK(parts[1] == repeat("b", 10));

        const auto out = render_replies({text_reply(text)}, kTo);
        REQUIRE(out.size() == 2);
        CHECK(parse(out[0])["text"]["body"].GetString() == first);

        CHECK(split_text(repeat("x", 4096)).size() == 1);  // exactly the limit: one part
        CHECK(split_text("").empty());
    }

    TEST_CASE("Devanagari text is split between words and never inside a code point") {
        const std::string word = "प्रमाणपत्र";  // 10 code points, 30 bytes
        std::string text;
        for (int i = 0; i < 500; ++i) {
            text += word + " ";
        }
        text += "अंत";
        REQUIRE(engine::utf8_length(text) > 4096);
        const auto parts = split_text(text);
        REQUIRE(parts.size() == 2);
        // 372 words and their spaces fill 4091 code points; the 373rd word would not fit.
        CHECK(parts[0] == repeat(word + " ", 371) + word);
        CHECK(engine::utf8_length(parts[0]) == 4091);
        CHECK(parts[1].substr(0, word.size()) == word);
        check_split(text, 4096);
    }

    TEST_CASE("a word longer than the limit is cut hard, not before a combining mark") {
        // "कि" is KA + vowel sign I: a split between them would orphan the sign.
        const std::string text = repeat("कि", 3000);  // 6000 code points, no space
        const auto parts = split_text(text);
        REQUIRE(parts.size() == 2);
        CHECK(engine::utf8_length(parts[0]) == 4096);
        CHECK(parts[0] + parts[1] == text);
        CHECK(parts[1].substr(0, 3) == "क");  // the next part starts at a consonant

        // Odd limit: the 7th code point is a vowel sign, so the cut moves back by one.
        const auto small = split_text(repeat("कि", 5), 7);
        REQUIRE(small.size() == 2);
        CHECK(small[0] == repeat("कि", 3));
        CHECK(small[1] == repeat("कि", 2));

        // A conjunct: KA + VIRAMA + SSA; no split right after the virama.
        const auto conjunct = split_text("कक्षकक्ष", 3);
        CHECK(conjunct == std::vector<std::string>{"क", "क्ष", "क", "क्ष"});
    }

    TEST_CASE("a line break in the second half of the window is preferred to a later space") {
        const std::string text = repeat("a", 30) + "\n" + repeat("b", 10) + " " + repeat("c", 20);
        const auto parts = split_text(text, 50);
        REQUIRE(parts.size() == 2);
        CHECK(parts[0] == repeat("a", 30));
        CHECK(parts[1] == repeat("b", 10) + " " + repeat("c", 20));

        // Too early a line break (first half): the last space wins.
        const std::string early = repeat("a", 10) + "\n" + repeat("b", 30) + " " + repeat("c", 20);
        const auto parts2 = split_text(early, 50);
        REQUIRE(parts2.size() == 2);
        CHECK(parts2[0] == repeat("a", 10) + "\n" + repeat("b", 30));
    }

    TEST_CASE("splitting loses no character (property over generated texts)") {
        // Deterministic: a fixed seed and a fixed vocabulary of ASCII, Devanagari and emoji
        // words, runs of mixed white space and the odd over-long word.
        std::mt19937 rng(20240601);
        const std::vector<std::string> words = {
            "a",
            "passport",
            "राशन",
            "कार्ड",
            "प्रमाणपत्र",
            "🙏",
            "👨‍👩‍👧",
            "ok",
            "12/2024",
            "स्थिति",
            "x",
            "नमस्ते",
            "application",
            "क्ष",
        };
        const std::vector<std::string> spaces = {" ", "  ", "\n", "\n\n", "\t", " \n "};
        for (int round = 0; round < 60; ++round) {
            std::string text;
            const int n = std::uniform_int_distribution<int>(0, 400)(rng);
            if (round % 7 == 0) {
                text += "  ";  // leading white space is kept in the first part
            }
            for (int i = 0; i < n; ++i) {
                const int pick = std::uniform_int_distribution<int>(0, 99)(rng);
                if (pick == 0) {
                    text += repeat("z", 90);  // a word longer than small limits
                } else {
                    text += words[static_cast<std::size_t>(pick) % words.size()];
                }
                text += spaces[static_cast<std::size_t>(pick) % spaces.size()];
            }
            for (const std::size_t max : {std::size_t{7}, std::size_t{33}, std::size_t{500}}) {
                CAPTURE(round);
                CAPTURE(max);
                check_split(text, max);
            }
        }
        check_split(repeat("👍 ", 5000), 4096);
    }

    TEST_CASE("three short options become reply buttons with the menu text as body") {
        const auto out = render_replies(
            {menu(
                "What do you need?",
                {{"renew", "Renew passport"}, {"status", "Track status"}, {"agent", "Talk to us"}}
            )},
            kTo
        );
        REQUIRE(out.size() == 1);
        CHECK(
            out[0] ==
            std::string(kHead) +
                R"("type":"interactive","interactive":{"type":"button","body":{"text":"What do you need?"},"action":{"buttons":[{"type":"reply","reply":{"id":"renew","title":"Renew passport"}},{"type":"reply","reply":{"id":"status","title":"Track status"}},{"type":"reply","reply":{"id":"agent","title":"Talk to us"}}]}}})"
        );
    }

    TEST_CASE("a title over 20 characters turns buttons into a list that keeps the full wording") {
        const auto out = render_replies(
            {menu(
                "Choose a service",
                {{"lost", "Report a lost ration card"},  // 25 characters
                 {"new", "New card"}}
            )},
            kTo
        );
        REQUIRE(out.size() == 1);
        CHECK(
            out[0] ==
            std::string(kHead) +
                R"("type":"interactive","interactive":{"type":"list","body":{"text":"Choose a service\n\n1. Report a lost ration card\n2. New card"},"action":{"button":"Choose","sections":[{"rows":[{"id":"lost","title":"Report a lost ration…","description":"Report a lost ration card"},{"id":"new","title":"New card"}]}]}}})"
        );
    }

    TEST_CASE("a 21-to-24-character title fits a list row uncut") {
        const auto out = render_replies(
            {menu("Pick", {{"a", "Twenty-one characters"}, {"b", "B"}})}, kTo, RenderOptions{}
        );
        REQUIRE(out.size() == 1);
        const auto doc = parse(out[0]);
        const auto& rows = doc["interactive"]["action"]["sections"][0]["rows"];
        CHECK(std::string(rows[0]["title"].GetString()) == "Twenty-one characters");
        CHECK_FALSE(rows[0].HasMember("description"));
        CHECK(std::string(doc["interactive"]["body"]["text"].GetString()) == "Pick");
    }

    TEST_CASE("over ten options: ten rows, and the body numbers every option") {
        std::vector<MenuItem> options;
        std::string numbered;
        for (int i = 1; i <= 12; ++i) {
            options.push_back({"district_" + std::to_string(i), "District " + std::to_string(i)});
            numbered += (i > 1 ? "\n" : "") + std::to_string(i) + ". District " + std::to_string(i);
        }
        const auto out = render_replies({menu("Your district?", options)}, kTo);
        REQUIRE(out.size() == 1);
        const auto doc = parse(out[0]);
        CHECK(
            std::string(doc["interactive"]["body"]["text"].GetString()) ==
            "Your district?\n\n" + numbered
        );
        const auto& rows = doc["interactive"]["action"]["sections"][0]["rows"];
        REQUIRE(rows.Size() == 10);
        for (rapidjson::SizeType i = 0; i < rows.Size(); ++i) {
            CHECK(std::string(rows[i]["id"].GetString()) == "district_" + std::to_string(i + 1));
        }
    }

    TEST_CASE("four options or duplicate titles make a list even when titles are short") {
        auto out = render_replies(
            {menu("Q", {{"a", "A"}, {"b", "B"}, {"c", "C"}, {"d", "D"}}),
             menu("Q", {{"x", "Same"}, {"y", "Same"}})},
            kTo
        );
        REQUIRE(out.size() == 2);
        CHECK(std::string(parse(out[0])["interactive"]["type"].GetString()) == "list");
        CHECK(std::string(parse(out[1])["interactive"]["type"].GetString()) == "list");
        CHECK(std::string(parse(out[0])["interactive"]["body"]["text"].GetString()) == "Q");
    }

    TEST_CASE("long titles are cut in rows while ids stay intact") {
        const std::string long_id = "option-id-with-a-long-name-" + repeat("x", 60);
        const std::string title = repeat("word ", 20);  // 100 characters, ends in a space
        const auto out = render_replies({menu("Q", {{long_id, title}})}, kTo);
        REQUIRE(out.size() == 1);
        const auto doc = parse(out[0]);
        const auto& row = doc["interactive"]["action"]["sections"][0]["rows"][0];
        CHECK(std::string(row["id"].GetString()) == long_id);
        CHECK(std::string(row["title"].GetString()) == "word word word word…");
        CHECK(std::string(row["description"].GetString()) == repeat("word ", 13) + "word…");
        CHECK(engine::utf8_length(row["description"].GetString()) <= 72);
        CHECK(std::string(doc["interactive"]["body"]["text"].GetString()) == "Q\n\n1. " + title);
    }

    TEST_CASE("a Devanagari title is cut between syllables, not before a vowel sign") {
        const std::string title = repeat("कि", 15);  // 30 code points, no space
        const auto out = render_replies({menu("Q", {{"k", title}})}, kTo);
        REQUIRE(out.size() == 1);
        const auto doc = parse(out[0]);
        const auto& row = doc["interactive"]["action"]["sections"][0]["rows"][0];
        // 23 code points would end on KA with its vowel sign cut off: 22 and the ellipsis.
        CHECK(std::string(row["title"].GetString()) == repeat("कि", 11) + "…");
        CHECK(std::string(row["description"].GetString()) == title);
    }

    TEST_CASE("a menu body over 1024 characters goes first as text") {
        const std::string long_text = repeat("नियम ", 300);  // 1500 code points
        const auto out = render_replies(
            {menu(long_text, {{"yes", "Yes"}, {"no", "No"}})},
            kTo,
            RenderOptions{"चुनें", "कृपया एक विकल्प चुनें।"}
        );
        REQUIRE(out.size() == 2);
        CHECK(std::string(parse(out[0])["type"].GetString()) == "text");
        CHECK(std::string(parse(out[0])["text"]["body"].GetString()) == long_text);
        const auto doc = parse(out[1]);
        CHECK(std::string(doc["interactive"]["type"].GetString()) == "button");
        CHECK(std::string(doc["interactive"]["body"]["text"].GetString()) == "कृपया एक विकल्प चुनें।");
    }

    TEST_CASE("the list button text is localizable and cut to 20 characters") {
        const std::vector<MenuItem> options = {{"a", "A"}, {"b", "B"}, {"c", "C"}, {"d", "D"}};
        auto out = render_replies({menu("Q", options)}, kTo, RenderOptions{"चुनें", "?"});
        CHECK(std::string(parse(out[0])["interactive"]["action"]["button"].GetString()) == "चुनें");
        out = render_replies(
            {menu("Q", options)}, kTo, RenderOptions{"Choose one of these options", "?"}
        );
        CHECK(
            std::string(parse(out[0])["interactive"]["action"]["button"].GetString()) ==
            "Choose one of these…"
        );
    }

    TEST_CASE("an empty menu text shows the prompt; a menu without options is text") {
        auto out = render_replies({menu("", {{"a", "A"}})}, kTo);
        REQUIRE(out.size() == 1);
        CHECK(
            std::string(parse(out[0])["interactive"]["body"]["text"].GetString()) ==
            "Please choose an option."
        );
        out = render_replies({menu("Nothing to choose", {})}, kTo);
        REQUIRE(out.size() == 1);
        CHECK(
            out[0] == std::string(kHead) + R"("type":"text","text":{"body":"Nothing to choose"}})"
        );
    }

    TEST_CASE("media goes by link: images by extension, everything else as a document") {
        const auto out = render_replies(
            {media("https://cdn.example.gov.in/forms/map.PNG?v=2#top", "Office map"),
             media("https://cdn.example.gov.in/forms/form-12.pdf", ""),
             media("https://cdn.example.gov.in/download?id=7", "Form")},
            kTo
        );
        REQUIRE(out.size() == 3);
        CHECK(
            out[0] ==
            std::string(kHead) +
                R"("type":"image","image":{"link":"https://cdn.example.gov.in/forms/map.PNG?v=2#top","caption":"Office map"}})"
        );
        CHECK(
            out[1] ==
            std::string(kHead) +
                R"("type":"document","document":{"link":"https://cdn.example.gov.in/forms/form-12.pdf","filename":"form-12.pdf"}})"
        );
        CHECK(
            out[2] ==
            std::string(kHead) +
                R"("type":"document","document":{"link":"https://cdn.example.gov.in/download?id=7","caption":"Form","filename":"download"}})"
        );
    }

    TEST_CASE("a caption over 1024 characters follows the media as text") {
        const std::string caption = repeat("c", 1100);
        const auto out = render_replies({media("https://x.example/a.jpg", caption)}, kTo);
        REQUIRE(out.size() == 2);
        CHECK(
            out[0] ==
            std::string(kHead) + R"("type":"image","image":{"link":"https://x.example/a.jpg"}})"
        );
        CHECK(std::string(parse(out[1])["text"]["body"].GetString()) == caption);
    }

    TEST_CASE("templates carry their body parameters in order") {
        CHECK(
            render_template(kTo, "application_update", "hi", {"राम", "APP-2024/17"}) ==
            std::string(kHead) +
                R"("type":"template","template":{"name":"application_update","language":{"code":"hi"},"components":[{"type":"body","parameters":[{"type":"text","text":"राम"},{"type":"text","text":"APP-2024/17"}]}]}})"
        );
        CHECK(
            render_template("US.1", "hello", "en_US", {}) ==
            R"({"messaging_product":"whatsapp","recipient_type":"individual","recipient":"US.1","type":"template","template":{"name":"hello","language":{"code":"en_US"}}})"
        );
    }

    TEST_CASE("mark-as-read carries the typing indicator") {
        CHECK(
            render_mark_read("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=") ==
            R"({"messaging_product":"whatsapp","status":"read","message_id":"wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=","typing_indicator":{"type":"text"}})"
        );
    }

    TEST_CASE("a citizen id is normalized to the form webhooks carry, or refused") {
        CHECK(normalize_citizen("919800000001") == "919800000001");
        CHECK(normalize_citizen("+919800000001") == "919800000001");
        CHECK(normalize_citizen("US.13491208655302741918") == "US.13491208655302741918");
        for (const char* odd :
             {"",
              "+",
              "++91",
              " 919800000001",
              "919800000001 ",
              "91 98000 00001",
              "91980-0000001",
              "+US.1",
              "91\n98",
              "wa:1:2"}) {
            CAPTURE(odd);
            CHECK_FALSE(normalize_citizen(odd));
        }
    }
}
