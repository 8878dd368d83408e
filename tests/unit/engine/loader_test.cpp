#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <civicflow/engine/loader.hpp>

using civicflow::engine::Command;
using civicflow::engine::Flow;
using civicflow::engine::FlowSet;
using civicflow::engine::format_text;
using civicflow::engine::load_flows;
using civicflow::engine::LoadResult;
using civicflow::engine::Slots;
using civicflow::engine::SourceFile;
using civicflow::engine::State;
using civicflow::engine::StateKind;

namespace {

LoadResult load(const std::vector<SourceFile>& files) {
    return load_flows(files);
}

std::string report(const LoadResult& r) {
    return format_text(r.diagnostics, r.sources);
}

const std::string kHelpline = R"(version: 1
helpline: test-line
entry: main
languages: [en, hi]
language_names: { en: English, hi: हिन्दी }
utc_offset: "+05:45"
commands:
  menu: { en: [menu, "Main Menu"], hi: [मेनू] }
  skip: [skip, "no thanks"]
messages:
  fallback: { en: "Sorry?", hi: "क्षमा करें?" }
)";

// Uses every action, a sub-flow entered from a state and from a menu option, an FAQ with a
// goto and a named capture, a call with save, validators, and translations.
const std::string kMain = R"(version: 1
flow: main
title: { en: "Main", hi: "मुख्य" }
idle_timeout: 2h
start: menu
synonyms:
  en: { fee: [fees, charges] }
states:
  menu:
    say: { en: "Choose:", hi: "चुनें:" }
    menu:
      - { id: status, title: { en: "Status", hi: "स्थिति" }, goto: ask_ref }
      - { id: complain, title: { en: "Complaint", hi: "शिकायत" }, enter: grievance }
      - { id: bye, title: "Bye", goto: bye }
    match:
      - { patterns: ['(?P<ref>[A-Z]{2}\d{4})'], goto: lookup }
    otherwise: { say: "Pick a number.", retry: 1, then: bye }
  ask_ref:
    ask: { en: "File number?", hi: "फ़ाइल संख्या?" }
    slot: ref
    validate:
      - { pattern: '^[A-Z]{2}\d{4}$', error: "Two letters and four digits." }
    attempts: 2
    then: lookup
  lookup:
    call:
      backend: status
      method: POST
      path: "/applications/{{ ref | url }}"
      body: { name: "{{ profile_name }}" }
      save: { stage: /stage }
    on: { ok: show, not_found: menu, error: menu }
  show:
    set: { shown: "yes" }
    say: "File {{ ref }}: {{ stage }} ({{ shown }})."
    goto: complain
  complain:
    enter: grievance
    then: menu
  bye:
    say: "Bye {{ nobody | default: \"friend\" }}."
    end: true
faq:
  - id: hours
    match: { keywords: [hours, timing] }
    answer: "Open 9-5. Your file: {{ ref | default: \"none\" }}, stage {{ stage }}."
    goto: menu
)";

const std::string kGrievance = R"(version: 1
flow: grievance
title: { en: "Grievance", hi: "शिकायत" }
start: ask_text
states:
  ask_text:
    ask: { en: "Describe it, {{ ref }}:", hi: "बताइए, {{ ref }}:" }
    slot: complaint
    optional: true
    validate: [ { date: { not_future: true, min: 01-01-2000, max: today } }, { integer: { min: 1, max: 9 } }, { one_of: [a, b] }, { mobile: true }, { pin: true } ]
    on_give_up: done
    then: done
  done:
    say: { en: "Noted: {{ complaint }}", hi: "दर्ज: {{ complaint }}" }
    end: true
)";

const State& state_of(const Flow& flow, const std::string& id) {
    const State* st = flow.find_state(id);
    REQUIRE(st != nullptr);
    return *st;
}

}  // namespace

TEST_SUITE("engine/loader") {
    TEST_CASE("a valid directory loads with no diagnostics and every target resolved") {
        const auto r = load(
            {{"d/helpline.yaml", kHelpline},
             {"d/main.yaml", kMain},
             {"d/grievance.yaml", kGrievance}}
        );
        // No error; the only warning is W104: the helpline gives one engine message of 27.
        REQUIRE(r.diagnostics.items().size() == 1);
        CHECK(r.diagnostics.items()[0].code == "W104");
        REQUIRE(r.flows);
        const FlowSet& set = *r.flows;
        CHECK(set.flows.size() == 2);
        CHECK(set.state_count() == 8);
        CHECK(set.find_flow("nope") == nullptr);
        CHECK(set.helpline.entry_index == set.flow_index.at("main"));
        CHECK(set.helpline.languages == std::vector<std::string>{"en", "hi"});
        CHECK(set.helpline.default_language == "en");
        CHECK(set.helpline.utc_offset_minutes == 345);
        CHECK(set.helpline.language_labels.size() == 2);

        const Flow& main = *set.find_flow("main");
        const Flow& grievance = *set.find_flow("grievance");
        CHECK(main.idle_timeout_ms == 2 * 3600 * 1000);
        CHECK(main.start_index == main.state_index.at("menu"));
        CHECK(main.languages == std::vector<std::string>{"en", "hi"});
        CHECK(grievance.default_language == "en");

        const State& menu = state_of(main, "menu");
        CHECK(menu.kind == StateKind::kMenu);
        REQUIRE(menu.menu.size() == 3);
        CHECK(menu.menu[0].target.state_index == main.state_index.at("ask_ref"));
        CHECK(menu.menu[0].target.flow == "main");
        // An `enter` option targets the sub-flow's start.
        CHECK(menu.menu[1].target.flow == "grievance");
        CHECK(menu.menu[1].target.flow_index == set.flow_index.at("grievance"));
        CHECK(menu.menu[1].target.state == "ask_text");
        CHECK(menu.menu[1].target.state_index == grievance.start_index);
        CHECK(menu.route_matcher != nullptr);
        CHECK(menu.routes.size() == 1);
        REQUIRE(menu.otherwise);
        CHECK(menu.otherwise->retry == 1);
        CHECK(menu.otherwise->then.state_index == main.state_index.at("bye"));

        const State& ask = state_of(main, "ask_ref");
        REQUIRE(ask.ask);
        CHECK(ask.ask->attempts == 2);
        CHECK(ask.ask->validators.size() == 1);
        // on_give_up defaults to the flow's start.
        CHECK(ask.ask->give_up.state == "menu");
        CHECK(ask.ask->give_up.state_index == main.start_index);

        const State& lookup = state_of(main, "lookup");
        REQUIRE(lookup.call);
        CHECK(lookup.call->method == "POST");
        CHECK(lookup.call->path.render(Slots{{"ref", "A B"}}) == "/applications/A%20B");
        CHECK(
            lookup.call->save ==
            std::vector<std::pair<std::string, std::string>>{{"stage", "/stage"}}
        );
        CHECK(lookup.call->on_not_found.state_index == main.start_index);

        const State& complain = state_of(main, "complain");
        REQUIRE(complain.enter);
        CHECK(complain.enter->flow_index == set.flow_index.at("grievance"));
        CHECK(complain.enter->then.state_index == main.start_index);

        REQUIRE(main.faq.size() == 1);
        CHECK(main.faq_matcher != nullptr);
        CHECK(main.faq[0].target.state_index == main.start_index);

        const State& ask_text = state_of(grievance, "ask_text");
        CHECK(ask_text.ask->optional);
        CHECK(ask_text.ask->validators.size() == 5);
        CHECK(ask_text.ask->give_up.state == "done");
        CHECK(ask_text.ask->prompt.render("hi", "en", Slots{{"ref", "X"}}) == "बताइए, X:");
    }

    TEST_CASE("helpline commands are normalized and unset ones get the English defaults") {
        const auto r = load(
            {{"d/helpline.yaml", kHelpline},
             {"d/main.yaml", kMain},
             {"d/grievance.yaml", kGrievance}}
        );
        REQUIRE(r.flows);
        const auto& words = r.flows->helpline.command_words;
        auto has = [&](Command c, const std::string& lang, const std::string& word) {
            return std::find(
                       words.begin(),
                       words.end(),
                       std::pair<Command, std::pair<std::string, std::string>>{c, {lang, word}}
                   ) != words.end();
        };
        CHECK(has(Command::kMenu, "en", "main menu"));
        CHECK(has(Command::kMenu, "hi", "मेनू"));
        CHECK_FALSE(has(Command::kMenu, "", "home"));  // the helpline defined menu words
        CHECK(has(Command::kSkip, "", "no thanks"));
        CHECK(has(Command::kStop, "", "unsubscribe"));
        CHECK(has(Command::kErase, "", "delete my data"));
        const auto* fallback = r.flows->helpline.message("fallback");
        REQUIRE(fallback != nullptr);
        CHECK(fallback->render("hi", "en", {}) == "क्षमा करें?");
        const auto* expired = r.flows->helpline.message("expired");
        REQUIRE(expired != nullptr);
        CHECK(
            expired->render("en", "en", Slots{{"flow_title", "Passport"}}) ==
            "Welcome back! You were in the middle of Passport."
        );
        CHECK(r.flows->helpline.message("nope") == nullptr);
    }

    TEST_CASE("without a helpline file the flow named main is the entry") {
        const std::string other = R"(version: 1
flow: other
title: "Other"
languages: [hi, en]
start: a
states:
  a: { say: "A", end: true }
)";
        std::string main = other;
        main.replace(main.find("flow: other"), 11, "flow: main");
        main.replace(main.find("languages: [hi, en]"), 19, "languages: [en, ta]");
        const auto r = load({{"d/main.yaml", main}, {"d/other.yaml", other}});
        CHECK(report(r) == "");
        REQUIRE(r.flows);
        CHECK(r.flows->helpline.entry == "main");
        CHECK(r.flows->helpline.languages == std::vector<std::string>{"en", "ta", "hi"});
        CHECK(r.flows->helpline.message("help") != nullptr);
        CHECK(
            r.flows->helpline.command_words.size() == 15
        );  // the built-in words (docs, section 10)

        const auto single = load({{"d/other.yaml", other}});
        REQUIRE(single.flows);
        CHECK(single.flows->helpline.entry == "other");
        CHECK(single.flows->helpline.default_language == "hi");
    }

    TEST_CASE("all problems of all files are reported in one run") {
        const auto r = load(
            {{"d/a.yaml",
              "version: 1\nflow: a\ntitle: A\nstart: s\nstates:\n  s: { say: 1, end: yes }\n"},
             {"d/b.yaml", "version: 1\nflow: b\ntitle: B\nstart: s\nstates:\n  s: { goto: t }\n"},
             {"d/c.yaml", "flow: [\n"}}
        );
        CHECK_FALSE(r.flows);
        CHECK(
            report(r) ==
            "d/a.yaml:6:21: error[E109]: 'end' of state 's' must be true or false, found 'yes'\n"
            "    6 |   s: { say: 1, end: yes }\n"
            "      |                     ^~~\n"
            "d/b.yaml:6:14: error[E201]: state 's' goes to 't', which is not a state of flow 'b'\n"
            "    6 |   s: { goto: t }\n"
            "      |              ^\n"
            "  hint: states of flow 'b': s\n"
            "d/c.yaml:2:1: error[E100]: invalid YAML: end of sequence flow not found\n"
            "  hint: close the '[' opened on this line or above with ']', or quote a text that "
            "holds ',', '[' or ']'\n"
            "d/a.yaml: 1 error, 0 warnings\n"
            "d/b.yaml: 1 error, 0 warnings\n"
            "d/c.yaml: 1 error, 0 warnings\n"
        );
    }

    TEST_CASE("a missing translation beside a misspelt language code suggests the code") {
        const auto r = load(
            {{"main.yaml",
              "version: 1\nflow: main\ntitle: M\nlanguages: [en, hi]\nstart: s\nstates:\n  s: { "
              "say: { en: Hello, hin: Namaste }, end: true }\n"}}
        );
        bool found = false;
        for (const auto& d : r.diagnostics.items()) {
            if (d.code == "E404" && d.message.rfind("'say' of state 's'", 0) == 0) {
                found = true;
                CHECK(d.hint == "'hin' is not a language of flow 'main': did you mean 'hi'?");
            }
        }
        CHECK(found);
    }

    TEST_CASE("a text in a language nobody declared is W106, once, and not beside E404") {
        auto codes = [](const LoadResult& r, const std::string& code) {
            std::vector<std::string> messages;
            for (const auto& d : r.diagnostics.items()) {
                if (d.code == code)
                    messages.push_back(d.message + " | " + d.hint);
            }
            return messages;
        };
        const std::string helpline =
            "version: 1\nhelpline: h\nentry: main\nlanguages: [en, hi]\nmessages:\n"
            "  fallback: { en: Sorry, hi: क्षमा, mr: माफ, ta: மன்னிக்கவும் }\n";
        const auto r = load(
            {{"helpline.yaml", helpline},
             {"main.yaml",
              "version: 1\nflow: main\ntitle: M\nstart: s\nstates:\n"
              "  s: { say: { en: Hello, hi: नमस्ते, mr: नमस्कार }, then: t }\n"
              "  t: { say: { en: Bye, mr: येतो }, end: true }\n"}}
        );
        const auto w106 = codes(r, "W106");
        REQUIRE(w106.size() == 2);  // in file order: helpline.yaml, then main.yaml
        CHECK(
            w106[0] ==
            "message 'fallback' has a text in 'mr' and 'ta', which are not languages of the "
            "helpline (en, hi): no citizen gets them | add the language to the helpline's "
            "'languages', or remove the text"
        );
        CHECK(
            w106[1] ==
            "'say' of state 's' has a text in 'mr', which is not a language of the helpline (en, "
            "hi): no citizen gets it | add the language to the helpline's 'languages', or remove "
            "the text"
        );
        // State t lacks 'hi': E404 (its hint names 'mr'), no W106 as well.
        const auto e404 = codes(r, "E404");
        REQUIRE(e404.size() == 1);
        CHECK(e404[0].find("'say' of state 't' is missing the 'hi' translation") == 0);
        CHECK(e404[0].find("'mr' is not a language of flow 'main'") != std::string::npos);
    }

    TEST_CASE("a flow listing fewer languages than the helpline may still give texts in others") {
        // A citizen in Hindi gets the 'hi' text of a flow that lists only English: no W106.
        const auto r = load(
            {{"helpline.yaml",
              "version: 1\nhelpline: h\nentry: main\nlanguages: [en, hi]\nmessages:\n"
              "  fallback: { en: Sorry, hi: क्षमा }\n"},
             {"main.yaml",
              "version: 1\nflow: main\ntitle: M\nlanguages: [en]\nstart: s\nstates:\n"
              "  s: { say: { en: Hello, hi: नमस्ते }, end: true }\n"}}
        );
        for (const auto& d : r.diagnostics.items())
            CHECK_MESSAGE(d.code != "W106", d.message);
    }

    TEST_CASE("a text holding a control character through an escape is refused") {
        const auto r = load(
            {{"main.yaml",
              "version: 1\nflow: main\ntitle: M\nstart: s\nstates:\n  s: { say: \"Fee\\0s\", end: "
              "true }\n"}}
        );
        REQUIRE(r.diagnostics.items().size() == 1);
        CHECK(r.diagnostics.items()[0].code == "E109");
        CHECK(
            r.diagnostics.items()[0].message ==
            "'say' of state 's' holds a control character (0x00), which citizens' phones do not "
            "show"
        );
    }

    TEST_CASE("a conversation test among the flows is named as such") {
        const auto r = load(
            {{"flows/main.test.yaml", "conversations:\n  - name: x\n    steps: []\n"},
             {"flows/main.yaml",
              "version: 1\nflow: main\ntitle: M\nstart: s\nstates:\n  s: { say: hi, end: true }\n"}}
        );
        REQUIRE(r.diagnostics.items().size() == 1);
        CHECK(r.diagnostics.items()[0].code == "E103");
        CHECK(
            r.diagnostics.items()[0].hint ==
            "this is a conversation test: keep test files in a folder of their own (flows/tests/) "
            "and run them with 'civicflow test'"
        );
    }

    // One mistake, one error: a follow-on error would point away from the fix.
    TEST_CASE("a mistake is reported once, without follow-on errors") {
        const auto codes = [](const std::vector<SourceFile>& files) {
            std::vector<std::string> out;
            const LoadResult r = load(files);
            for (const auto& d : r.diagnostics.items())
                out.push_back(d.code);
            return out;
        };
        const std::string head = "version: 1\nflow: main\ntitle: M\nstart: s\n";
        using Codes = std::vector<std::string>;
        // A misspelt required key: its E102 "did you mean", not also E103 "missing".
        CHECK(
            codes({{"main.yaml", head + "states:\n  s:\n    ask: Name?\n    slot: n\n    thn: s\n"}}
            ) == Codes{"E102"}
        );
        CHECK(
            codes({{"main.yaml", head + "stats:\n  s: { say: hi, end: true }\n"}}) == Codes{"E102"}
        );
        // An ask with 'goto' for 'then': E110 (its hint names 'then'), not also E103.
        CHECK(
            codes(
                {{"main.yaml", head + "states:\n  s:\n    ask: Name?\n    slot: n\n    goto: s\n"}}
            ) == Codes{"E110"}
        );
        // Keywords of the wrong kind: E101, not also E302 "no keywords".
        CHECK(
            codes(
                {{"main.yaml",
                  head + "states:\n  s: { say: hi, end: true }\nfaq:\n  - id: fee\n    match: { "
                         "keywords: fee }\n    answer: Fees.\n"}}
            ) == Codes{"E101"}
        );
        // ...but an empty list is still E302.
        CHECK(
            codes(
                {{"main.yaml",
                  head + "states:\n  s: { say: hi, end: true }\nfaq:\n  - id: fee\n    match: { "
                         "keywords: [] }\n    answer: Fees.\n"}}
            ) == Codes{"E302"}
        );
        // 'languages' as a text: E101, not also an E109 per language name.
        CHECK(
            codes(
                {{"helpline.yaml",
                  "version: 1\nhelpline: h\nentry: main\nlanguages: en, hi\nlanguage_names: { "
                  "en: English, hi: Hindi }\n"},
                 {"main.yaml", head + "states:\n  s: { say: hi, end: true }\n"}}
            ) == Codes{"E101"}
        );
        // 'then' after a 'say': E111 says to write 'goto'.
        const auto r = load({{"main.yaml", head + "states:\n  s: { say: hi, then: s }\n"}});
        REQUIRE(r.diagnostics.items().size() == 1);
        CHECK(r.diagnostics.items()[0].code == "E111");
        CHECK(r.diagnostics.items()[0].hint.find("write 'goto: STATE'") != std::string::npos);
    }

    TEST_CASE("a date validator whose min is after its max is refused, as an integer's is") {
        const auto r = load({{"d/main.yaml", R"(version: 1
flow: main
title: Dates
start: q
states:
  q:
    ask: "Date?"
    slot: d
    validate: { date: { min: 01-01-2030, max: 01-01-2020 } }
    then: q
)"}});
        CHECK_FALSE(r.flows);
        CHECK(
            report(r).find("d/main.yaml:9:23: error[E109]: 'min' is after 'max' in 'date' of") !=
            std::string::npos
        );
        CHECK(report(r).find("hint: no date could pass: swap them") != std::string::npos);
    }

    TEST_CASE("an undefined flow is not reported while another file hides its flow name") {
        const std::string main =
            "version: 1\nflow: main\ntitle: M\nstart: s\nstates:\n  s: { enter: sub }\n";
        const auto hidden = load({{"d/main.yaml", main}, {"d/sub.yaml", "flow: [sub\n"}});
        CHECK(report(hidden).find("E202") == std::string::npos);
        CHECK(report(hidden).find("E100") != std::string::npos);
        const auto missing = load({{"d/main.yaml", main}});
        CHECK(
            report(missing) ==
            "d/main.yaml:6:15: error[E202]: state 's' enters flow 'sub', which is not defined\n"
            "    6 |   s: { enter: sub }\n"
            "      |               ^~~\n"
            "  hint: flows: main\n"
            "d/main.yaml: 1 error, 0 warnings\n"
        );
    }

    TEST_CASE("slot reads follow the paths from the start, into sub-flows and FAQ answers") {
        const std::string main = R"(version: 1
flow: main
title: M
start: ask
states:
  ask:
    ask: "Name?"
    slot: name
    then: go
  go:
    say: "Hi {{ name }} {{ later }}"
    enter: sub
    then: after
  after:
    say: "{{ sub_slot }} {{ name }}"
    goto: ask
  late:
    set: { later: "x" }
    goto: ask
faq:
  - { id: q, match: { keywords: [help] }, answer: "{{ name }} {{ ghost }}" }
)";
        const std::string sub = R"(version: 1
flow: sub
title: S
start: s1
states:
  s1:
    say: "{{ name }} {{ sub_slot }} {{ lang }} {{ flow_title }} {{ profile_name }}"
    ask: "Value?"
    slot: sub_slot
    then: s2
  s2:
    end: true
)";
        const auto r = load({{"d/main.yaml", main}, {"d/sub.yaml", sub}});
        // 'later' is only set in an unreachable state; 'ghost' nowhere. The sub-flow may read
        // its caller's 'name' and its own 'sub_slot'; the caller may read 'sub_slot' after it.
        CHECK(
            report(r) ==
            "d/main.yaml:11:25: error[E402]: state 'go' reads slot 'later', which no path from "
            "the start of flow 'main' sets\n"
            "   11 |     say: \"Hi {{ name }} {{ later }}\"\n"
            "      |                         ^~~~~~~~~~~\n"
            "  hint: set it before (set, an ask's slot, a call's save), or write {{ later | "
            "default: \"...\" }}\n"
            "d/main.yaml:17:3: warning[W101]: state 'late' is never reached from the start of "
            "flow 'main'\n"
            "   17 |   late:\n"
            "      |   ^~~~\n"
            "  hint: lead to it from another state, or remove it\n"
            "d/main.yaml:21:63: error[E402]: faq 'q' reads slot 'ghost', which no state of flow "
            "'main' sets\n"
            "   21 |   - { id: q, match: { keywords: [help] }, answer: \"{{ name }} {{ ghost }}\" "
            "}\n"
            "      |                                                               ^~~~~~~~~~~\n"
            "  hint: set it before (set, an ask's slot, a call's save), or write {{ ghost | "
            "default: \"...\" }}\n"
            "d/main.yaml: 2 errors, 1 warning\n"
        );
    }

    TEST_CASE("a cycle through a sub-flow that ends at once is reported once") {
        const auto r = load(
            {{"d/main.yaml",
              "version: 1\nflow: main\ntitle: M\nstart: a\nstates:\n"
              "  a: { enter: sub, then: b }\n  b: { goto: a }\n"},
             {"d/sub.yaml",
              "version: 1\nflow: sub\ntitle: S\nstart: x\nstates:\n"
              "  x: { goto: y }\n  y: { end: true }\n"}}
        );
        CHECK(
            report(r) ==
            "d/main.yaml:6:3: error[E205]: state 'a' is in a cycle that never waits for input: "
            "a -> b -> a\n"
            "    6 |   a: { enter: sub, then: b }\n"
            "      |   ^\n"
            "  hint: make one of these states wait for the citizen (menu, ask or match)\n"
            "d/main.yaml: 1 error, 0 warnings\n"
        );
        // A sub-flow that waits breaks the cycle.
        const auto waits = load(
            {{"d/main.yaml",
              "version: 1\nflow: main\ntitle: M\nstart: a\nstates:\n"
              "  a: { enter: sub, then: b }\n  b: { goto: a }\n"},
             {"d/sub.yaml",
              "version: 1\nflow: sub\ntitle: S\nstart: x\nstates:\n"
              "  x: { ask: Q, slot: q, then: y }\n  y: { end: true }\n"}}
        );
        CHECK(report(waits) == "");
    }

    TEST_CASE("helpline files are checked for translations, slots and duplicates") {
        const std::string helpline =
            "version: 1\nhelpline: h\nentry: main\nlanguages: [en, hi]\n"
            "messages:\n  fallback: { en: \"Sorry {{ nme }}\" }\n  wait: \"One moment.\"\n";
        const std::string main =
            "version: 1\nflow: main\ntitle: M\nstart: a\nstates:\n  a: { ask: Q, slot: name, then: "
            "b }\n"
            "  b: { end: true }\n";
        const auto r =
            load({{"d/a.yaml", helpline}, {"d/b.yaml", helpline}, {"d/main.yaml", main}});
        CHECK(
            report(r) ==
            "d/a.yaml:2:11: warning[W104]: 25 of the engine's messages (help, expired, resume, "
            "restart, ...) keep their built-in English texts, so citizens in 'hi' get them in "
            "English\n"
            "    2 | helpline: h\n"
            "      |           ^\n"
            "  hint: give them in 'messages', with a text per language\n"
            "d/a.yaml:6:13: error[E404]: message 'fallback' is missing the 'hi' translation "
            "(helpline 'h' declares en, hi)\n"
            "    6 |   fallback: { en: \"Sorry {{ nme }}\" }\n"
            "      |             ^\n"
            "  hint: add a text for each language, or write one text for all languages\n"
            "d/a.yaml:6:26: error[E402]: message 'fallback' reads slot 'nme', which no flow sets\n"
            "    6 |   fallback: { en: \"Sorry {{ nme }}\" }\n"
            "      |                          ^~~~~~~~~\n"
            "  hint: did you mean 'name'?\n"
            "d/b.yaml:2:11: error[E203]: second helpline file: helpline 'h' is already declared "
            "in d/a.yaml:2\n"
            "    2 | helpline: h\n"
            "      |           ^\n"
            "  hint: a flow directory has one helpline file; merge them\n"
            "d/a.yaml: 2 errors, 1 warning\n"
            "d/b.yaml: 1 error, 0 warnings\n"
        );
    }

    TEST_CASE("template mistakes point inside escaped texts and block scalars") {
        const auto r = load({{"d/main.yaml", R"(version: 1
flow: main
title: M
start: a
states:
  a:
    say: "Tab\there {{ nme }}"
    goto: b
  b:
    say: |
      Line one
      Hello {{ name | shout }} and {{ nme2 }}
    end: true
)"}});
        CHECK(
            report(r) ==
            "d/main.yaml:7:21: error[E402]: state 'a' reads slot 'nme', which no path from the "
            "start of flow 'main' sets\n"
            "    7 |     say: \"Tab\\there {{ nme }}\"\n"
            "      |                     ^~~~~~~~~\n"
            "  hint: set it before (set, an ask's slot, a call's save), or write {{ nme | "
            "default: \"...\" }}\n"
            "d/main.yaml:12:23: error[E403]: unknown filter 'shout' in template\n"
            "   12 |       Hello {{ name | shout }} and {{ nme2 }}\n"
            "      |                       ^~~~~\n"
            "  hint: filters are url, upper, lower, date, default\n"
            "d/main.yaml: 2 errors, 0 warnings\n"
        );
    }

    TEST_CASE("the version is a stable content hash") {
        const std::vector<SourceFile> files{
            {"d/main.yaml",
             "version: 1\nflow: main\ntitle: M\nstart: a\nstates:\n  a: { end: true }\n"}};
        const auto a = load(files);
        const auto b = load(files);
        REQUIRE(a.flows);
        CHECK(a.flows->version.size() == 16);
        CHECK(a.flows->version == b.flows->version);
        auto changed = files;
        changed[0].contents += "# edited\n";
        CHECK(load(changed).flows->version != a.flows->version);
    }

    TEST_CASE("reading a directory takes yaml files sorted by name") {
        const auto dir = std::filesystem::temp_directory_path() / "civicflow_loader_test_dir";
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir / "sub.yaml");
        std::ofstream(dir / "b.yml") << "b";
        std::ofstream(dir / "a.yaml") << "a";
        std::ofstream(dir / "notes.txt") << "x";
        const auto files = civicflow::engine::read_flow_dir(dir.string());
        REQUIRE(files);
        REQUIRE(files->size() == 2);
        CHECK((*files)[0].path == dir.string() + "/a.yaml");
        CHECK((*files)[0].contents == "a");
        CHECK((*files)[1].path == dir.string() + "/b.yml");
        std::filesystem::remove_all(dir);
        const auto missing = civicflow::engine::read_flow_dir(dir.string());
        REQUIRE_FALSE(missing);
        CHECK(missing.error().code == "flow_dir_unreadable");
    }

    TEST_CASE("a 50 MB file is read only up to the limit and refused as too large") {
        const auto path = std::filesystem::temp_directory_path() / "civicflow_loader_big.yaml";
        {
            std::ofstream out(path, std::ios::binary);
            const std::string line(1023, 'x');
            for (int i = 0; i < 50 * 1024; ++i) {
                out << line << '\n';
            }
        }
        const auto file = civicflow::engine::read_source_file(path.string());
        std::filesystem::remove(path);
        REQUIRE(file);
        CHECK(file->contents.size() == 4U * 1024U * 1024U + 1U);
        const auto r = load({{"big.yaml", file->contents}});
        CHECK(
            report(r) ==
            "big.yaml: error[E108]: file too large: more than 4194304 bytes\n"
            "  hint: split the flows into several files\n"
            "big.yaml: 1 error, 0 warnings\n"
        );
        CHECK_FALSE(civicflow::engine::read_source_file("/nonexistent/x.yaml"));
    }

    TEST_CASE("200 flow files load well under a second") {
        std::vector<SourceFile> files;
        for (int i = 0; i < 200; ++i) {
            const std::string name = "f" + std::to_string(i);
            std::string text = "version: 1\nflow: " + (i == 0 ? std::string("main") : name) +
                               "\ntitle: { en: \"Flow " + name +
                               "\" }\nstart: menu\nstates:\n"
                               "  menu:\n    say: \"Choose:\"\n    menu:\n";
            for (int o = 0; o < 8; ++o) {
                text += "      - { id: o" + std::to_string(o) + ", title: \"Option " +
                        std::to_string(o) + "\", goto: s" + std::to_string(o) + " }\n";
            }
            text +=
                "    match:\n      - { keywords: [fee, cost], patterns: ['(?i)tatkal'], goto: s0 "
                "}\n";
            for (int o = 0; o < 8; ++o) {
                text += "  s" + std::to_string(o) +
                        ":\n    ask: \"Value {{ profile_name }}?\"\n"
                        "    slot: v" +
                        std::to_string(o) +
                        "\n    validate: { integer: { min: 1 } }\n"
                        "    then: show" +
                        std::to_string(o) + "\n  show" + std::to_string(o) +
                        ":\n    say: \"Got {{ v" + std::to_string(o) + " }}\"\n    goto: menu\n";
            }
            text += "faq:\n  - { id: hours, match: { keywords: [hours] }, answer: \"9-5\" }\n";
            files.push_back({"d/" + name + ".yaml", text});
        }
        // Load time is measured by bench/engine (engine_bench), never asserted here.
        const auto r = load(files);
        CHECK(report(r) == "");
        CHECK(r.flows->state_count() == 200 * 17);
    }

    TEST_CASE("thousands of broken references are all reported") {
        std::string text = "version: 1\nflow: main\ntitle: T\nstart: s0\nstates:\n";
        for (int i = 0; i < 20000; ++i) {
            text += "  s" + std::to_string(i) + ": { goto: t" + std::to_string(i) + " }\n";
        }
        const auto r = load({{"d/main.yaml", text}});
        CHECK(r.diagnostics.error_count() == 20000);
        CHECK(r.diagnostics.items().front().hint == "did you mean 's0'?");
    }
}
