#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <civicflow/engine/engine.hpp>
#include <civicflow/engine/loader.hpp>

using namespace civicflow::engine;

namespace {

constexpr Timestamp kNow = 1768451400000;  // 2026-01-15T10:00:00+05:30
constexpr Timestamp kMinute = 60 * 1000;

const char* const kHelpline = R"(version: 1
helpline: test-helpline
entry: main
languages: [en, hi]
language_names: { en: English, hi: हिन्दी }
commands:
  menu: { en: [menu], hi: [मेनू] }
  help: { en: [help], hi: [मदद] }
  back: { en: [back], hi: [पीछे] }
  language: { en: [language], hi: [भाषा] }
  stop: { en: [stop], hi: [बंद] }
  start: { en: [start], hi: [शुरू] }
  agent: { en: [agent], hi: [अधिकारी] }
  erase: { en: [delete my data], hi: [मेरा डेटा हटाएं] }
  skip: { en: [skip], hi: [छोड़ें] }
messages:
  fallback: { en: "Sorry, I did not understand.", hi: "क्षमा करें, समझ नहीं आया।" }
  help: { en: "Send MENU to start again.", hi: "फिर से शुरू करने के लिए मेनू भेजें।" }
  expired: { en: "Welcome back to {{ flow_title }}.", hi: "{{ flow_title }} में आपका फिर से स्वागत है।" }
  resume: { en: "Continue", hi: "जारी रखें" }
  restart: { en: "Start over", hi: "फिर से शुरू करें" }
  stopped: { en: "You will get no more messages.", hi: "आपको और संदेश नहीं मिलेंगे।" }
  started: { en: "Welcome back.", hi: "फिर से स्वागत है।" }
  agent: { en: "An officer will reply.", hi: "एक अधिकारी उत्तर देंगे।" }
  language_prompt: { en: "Choose your language:", hi: "अपनी भाषा चुनें:" }
  wait: { en: "Please wait.", hi: "कृपया प्रतीक्षा करें।" }
  ended: { en: "Thank you.", hi: "धन्यवाद।" }
  error: { en: "Something went wrong.", hi: "कुछ गलत हो गया।" }
  erase_confirm: { en: "Delete everything?", hi: "सब कुछ हटाएं?" }
  erase_yes: { en: "Yes, delete", hi: "हाँ, हटाएं" }
  erase_no: { en: "No, keep it", hi: "नहीं, रहने दें" }
  erased: { en: "Your data was deleted.", hi: "आपका डेटा हटा दिया गया।" }
  erase_cancelled: { en: "Nothing was deleted.", hi: "कुछ नहीं हटाया गया।" }
)";

const char* const kMain = R"(version: 1
flow: main
title: { en: "Main menu", hi: "मुख्य मेनू" }
start: menu
states:
  menu:
    say: { en: "Welcome. Choose:", hi: "स्वागत है। चुनें:" }
    menu:
      - { id: status, title: { en: "Application status", hi: "आवेदन की स्थिति" }, goto: ask_ref }
      - { id: form, title: { en: "Birth certificate", hi: "जन्म प्रमाण पत्र" }, enter: form }
    otherwise: { say: { en: "Pick 1 or 2.", hi: "1 या 2 चुनें।" }, retry: 1, then: help }
  help:
    say: { en: "Call 1800-000-000.", hi: "1800-000-000 पर कॉल करें।" }
    goto: menu
  ask_ref:
    ask: { en: "Your reference?", hi: "आपका संदर्भ?" }
    slot: ref
    validate: { pattern: '^[A-Z]{2}\d{4}$', error: { en: "Like AB1234.", hi: "AB1234 जैसा।" } }
    attempts: 2
    then: lookup
    on_give_up: help
  lookup:
    call:
      backend: status
      method: GET
      path: "/applications/{{ ref | url }}"
      save: { stage: /stage }
    on: { ok: show, not_found: unknown, error: down }
  show:
    say: { en: "{{ ref }}: {{ stage }}", hi: "{{ ref }}: {{ stage }}" }
    goto: menu
  unknown:
    say: { en: "No such reference.", hi: "ऐसा कोई संदर्भ नहीं।" }
    goto: menu
  down:
    say: { en: "Service down.", hi: "सेवा बंद है।" }
    goto: menu
faq:
  - id: hours
    match: { keywords: { en: [timings, hours], hi: [समय] } }
    answer: { en: "Open 9 to 5.", hi: "9 से 5 बजे तक खुला।" }
)";

const char* const kForm = R"(version: 1
flow: form
title: { en: "Birth certificate", hi: "जन्म प्रमाण पत्र" }
idle_timeout: 30m
start: ask_dob
states:
  ask_dob:
    ask: { en: "Date of birth (DD-MM-YYYY)?", hi: "जन्म तिथि (DD-MM-YYYY)?" }
    slot: dob
    validate: { date: { not_future: true }, error: { en: "Not a valid date.", hi: "सही तारीख नहीं।" } }
    then: ask_photo
  ask_photo:
    ask: { en: "Send a photo or SKIP.", hi: "फोटो भेजें या छोड़ें लिखें।" }
    slot: photo
    optional: true
    then: done
  done:
    say: { en: "Recorded {{ dob }}.", hi: "{{ dob }} दर्ज किया।" }
    end: true
)";

std::shared_ptr<const FlowSet> load() {
    LoadResult r =
        load_flows({{"helpline.yaml", kHelpline}, {"main.yaml", kMain}, {"form.yaml", kForm}});
    if (!r.flows) {
        FAIL(format_text(r.diagnostics, r.sources));
    }
    return r.flows;
}

struct Chat {
    std::shared_ptr<const FlowSet> flows = load();
    Session session;
    Timestamp now = kNow;
    Turn last;

    Turn& send(const std::string& text) { return run(Input::text_input(text)); }

    Turn& choose(const std::string& id) { return run(Input::choice(id)); }

    Turn& run(const Input& input) {
        last = turn(*flows, session, input, now);
        session = last.session;
        return last;
    }

    std::string text(std::size_t i) const {
        REQUIRE(i < last.replies.size());
        return last.replies[i].text;
    }
};

}  // namespace

TEST_SUITE("engine/engine") {
    // Flows changed between two messages of a citizen (a restart with edited flows): a
    // session waiting for what its state no longer asks starts over (R502) instead of reading
    // the state as what it was.
    TEST_CASE("a session waiting for what its state no longer asks is restarted") {
        const struct {
            const char* state;
            Waiting waiting;
        } cases[] = {
            {"menu", Waiting::kAnswer},      // a question that became a menu
            {"ask_ref", Waiting::kMenu},     // a menu that became a question
            {"ask_ref", Waiting::kText},     // free text that became a question
            {"menu", Waiting::kCallResult},  // a call that became a menu
            {"", Waiting::kMenu},            // no state at all (a damaged session)
        };

        for (const auto& k : cases) {
            CAPTURE(k.state);
            CAPTURE(to_string(k.waiting));
            Chat c;
            c.session.flow = *k.state != '\0' ? "main" : "";
            c.session.state = k.state;
            c.session.waiting = k.waiting;
            c.session.pending_call = k.waiting == Waiting::kCallResult ? "main/lookup/1" : "";
            c.session.last_active = kNow;
            c.send("05-08-2024");
            REQUIRE_FALSE(c.last.events.empty());
            CHECK(c.last.events[0].code == "R502");
            CHECK(c.session.flow == "main");
            CHECK(c.session.state == "menu");
            CHECK(c.session.waiting == Waiting::kMenu);
            REQUIRE_FALSE(c.last.replies.empty());
            CHECK(c.last.replies.back().kind == Reply::Kind::kMenu);
        }
    }

    TEST_CASE("a first message starts the entry flow with its menu in the default language") {
        Chat c;
        c.send("hello");
        REQUIRE(c.last.replies.size() == 1);
        const Reply& menu = c.last.replies[0];
        CHECK(menu.kind == Reply::Kind::kMenu);
        CHECK(menu.text == "Welcome. Choose:");
        REQUIRE(menu.options.size() == 2);
        CHECK(menu.options[0].id == "status");
        CHECK(menu.options[0].title == "Application status");
        CHECK(c.session.flow == "main");
        CHECK(c.session.state == "menu");
        CHECK(c.session.waiting == Waiting::kMenu);
        CHECK(c.session.lang == "en");
        CHECK(c.session.created_at == kNow);
    }

    TEST_CASE("a language hint of a new citizen picks the language") {
        Chat c;
        Input in = Input::text_input("नमस्ते");
        in.lang = "hi";
        c.run(in);
        CHECK(c.text(0) == "स्वागत है। चुनें:");
        CHECK(c.last.replies[0].options[1].title == "जन्म प्रमाण पत्र");
    }

    TEST_CASE("a language hint matches in any case and with a region") {
        for (const char* hint : {"hi", "HI", "hi-IN", "hi_in", "Hi-Deva-IN"}) {
            CAPTURE(hint);
            Chat c;
            Input in = Input::text_input("नमस्ते");
            in.lang = hint;
            c.run(in);
            CHECK(c.session.lang == "hi");
        }
        for (const char* hint : {"hin", "h", "ta-IN", "-hi"}) {
            CAPTURE(hint);
            Chat c;
            Input in = Input::text_input("hello");
            in.lang = hint;
            c.run(in);
            CHECK(c.session.lang == "en");
        }
    }

    TEST_CASE("an entry flow named by the input starts a new conversation there") {
        Chat c;
        Input in = Input::text_input("hello");
        in.entry_flow = "form";
        c.run(in);
        CHECK(c.session.flow == "form");
        CHECK(c.session.state == "ask_dob");
        CHECK(c.text(0) == "Date of birth (DD-MM-YYYY)?");
        // An unknown flow id falls back to the helpline's entry.
        Chat d;
        Input other = Input::text_input("hello");
        other.entry_flow = "no_such_flow";
        d.run(other);
        CHECK(d.session.flow == "main");
    }

    TEST_CASE("menu options are chosen by number, Indian digits, id, title or a typo in a title") {
        // "स्थिती": one vowel sign of the Hindi title word "स्थिति" mistyped.
        for (const char* pick :
             {"1", "१", "১", "status", "Application status", "aplication", "स्थिती"}) {
            Chat c;
            c.send("hi");
            c.send(pick);
            CHECK_MESSAGE(c.session.state == "ask_ref", pick);
            CHECK(c.text(0) == "Your reference?");
        }
        Chat c;
        c.send("hi");
        c.choose("status");
        CHECK(c.session.state == "ask_ref");
    }

    TEST_CASE("a message that is no option gets the otherwise text, then its then branch") {
        Chat c;
        c.send("hi");
        c.send("7");
        REQUIRE(c.last.replies.size() == 2);
        CHECK(c.text(0) == "Pick 1 or 2.");
        CHECK(c.last.replies[1].kind == Reply::Kind::kMenu);
        CHECK(c.session.attempts == 1);
        c.send("blah");
        CHECK(c.text(0) == "Call 1800-000-000.");
        CHECK(c.session.state == "menu");
        CHECK(c.session.attempts == 0);
    }

    TEST_CASE("a failed validation re-asks with the error and gives up after the attempts") {
        Chat c;
        c.send("hi");
        c.send("1");
        c.send("nope");
        REQUIRE(c.last.replies.size() == 2);
        CHECK(c.text(0) == "Like AB1234.");
        CHECK(c.text(1) == "Your reference?");
        c.send("still nope");
        CHECK(c.text(0) == "Call 1800-000-000.");
        CHECK(c.session.state == "menu");
    }

    TEST_CASE("a call step ends the turn with an effect and routes on the result") {
        Chat c;
        c.send("hi");
        c.send("1");
        c.send("AB1234");
        REQUIRE(c.last.effects.size() == 1);
        const Effect& e = c.last.effects[0];
        CHECK(e.kind == Effect::Kind::kBackendCall);
        CHECK(e.call.backend == "status");
        CHECK(e.call.method == "GET");
        CHECK(e.call.path == "/applications/AB1234");
        CHECK(e.call.id == "main/lookup/1");
        CHECK(c.session.waiting == Waiting::kCallResult);
        CHECK(c.session.pending_call == "main/lookup/1");

        SUBCASE("ok saves JSON pointers into slots") {
            c.run(Input::call_result(
                {"main/lookup/1", CallResult::Outcome::kResponse, 200, R"({"stage":"Printed"})"}
            ));
            CHECK(c.text(0) == "AB1234: Printed");
            CHECK(c.session.slots.at("stage") == "Printed");
            CHECK(c.session.state == "menu");
        }
        SUBCASE("404 follows not_found") {
            c.run(Input::call_result({"main/lookup/1", CallResult::Outcome::kResponse, 404, "{}"}));
            CHECK(c.text(0) == "No such reference.");
        }
        SUBCASE("a timeout follows error") {
            c.run(Input::call_result({"main/lookup/1", CallResult::Outcome::kTimeout, 0, ""}));
            CHECK(c.text(0) == "Service down.");
        }
        SUBCASE("a 500 follows error") {
            c.run(Input::call_result({"main/lookup/1", CallResult::Outcome::kResponse, 500, "{}"}));
            CHECK(c.text(0) == "Service down.");
        }
        SUBCASE("a body that is not JSON follows error with event R403") {
            c.run(
                Input::call_result({"main/lookup/1", CallResult::Outcome::kResponse, 200, "<html>"})
            );
            CHECK(c.text(0) == "Service down.");
            REQUIRE(c.last.events.size() == 1);
            CHECK(c.last.events[0].code == "R403");
        }
        SUBCASE("JSON nested past 128 levels follows error, without exhausting the stack") {
            const std::string deep = R"({"stage":"Printed","x":)" + std::string(200'000, '[') +
                                     std::string(200'000, ']') + "}";
            c.run(Input::call_result({"main/lookup/1", CallResult::Outcome::kResponse, 200, deep}));
            CHECK(c.text(0) == "Service down.");
            REQUIRE(c.last.events.size() == 1);
            CHECK(c.last.events[0].code == "R403");
        }
        SUBCASE("JSON nested 128 levels deep is read") {
            const std::string nested =
                R"({"stage":"Printed","x":)" + std::string(127, '[') + std::string(127, ']') + "}";
            c.run(Input::call_result({"main/lookup/1", CallResult::Outcome::kResponse, 200, nested})
            );
            CHECK(c.text(0) == "AB1234: Printed");
        }
        SUBCASE("a missing pointer is event R402 and the slot stays unset") {
            c.run(Input::call_result({"main/lookup/1", CallResult::Outcome::kResponse, 200, "{}"}));
            CHECK(c.text(0) == "AB1234: ");
            CHECK(c.last.events.size() == 2);
            CHECK(c.last.events[0].code == "R402");
            CHECK(c.last.events[1].code == "R401");
        }
        SUBCASE("a result for another call is ignored") {
            c.run(Input::call_result({"main/lookup/9", CallResult::Outcome::kResponse, 200, "{}"}));
            CHECK(c.last.replies.empty());
            CHECK(c.session.waiting == Waiting::kCallResult);
            REQUIRE(c.last.events.size() == 1);
            CHECK(c.last.events[0].code == "R504");
        }
        SUBCASE("a message while the call is pending is told to wait") {
            c.send("hello?");
            CHECK(c.text(0) == "Please wait.");
            CHECK(c.session.waiting == Waiting::kCallResult);
        }
    }

    TEST_CASE("slot values are URL-encoded in call paths") {
        // The pattern validator keeps the path safe here; the url filter is what protects it.
        Chat c;
        c.send("hi");
        c.send("1");
        c.send("AB1234");
        CHECK(c.last.effects[0].call.path == "/applications/AB1234");
    }

    TEST_CASE("a sub-flow returns to the menu that entered it") {
        Chat c;
        c.send("hi");
        c.send("2");
        CHECK(c.session.flow == "form");
        CHECK(c.text(0) == "Date of birth (DD-MM-YYYY)?");
        REQUIRE(c.session.stack.size() == 1);
        c.send("05-08-2024");
        CHECK(c.session.slots.at("dob") == "05-08-2024");
        c.send("skip");
        REQUIRE(c.last.replies.size() == 2);
        CHECK(c.text(0) == "Recorded 05-08-2024.");
        CHECK(c.last.replies[1].kind == Reply::Kind::kMenu);
        CHECK(c.session.flow == "main");
        CHECK(c.session.stack.empty());
    }

    TEST_CASE("dates in the future and in Indian digits are judged by the calendar") {
        Chat c;
        c.send("hi");
        c.send("2");
        c.send("01-01-2027");  // after kNow
        CHECK(c.text(0) == "Not a valid date.");
        c.send("३१-१२-२०२५");
        CHECK(c.session.slots.at("dob") == "31-12-2025");
    }

    TEST_CASE("a photo fills an optional ask that takes any answer") {
        Chat c;
        c.send("hi");
        c.send("2");
        c.send("05-08-2024");
        Input photo;
        photo.kind = Input::Kind::kMedia;
        photo.media = {"media-77", "image/jpeg", "pothole"};
        c.run(photo);
        CHECK(c.text(0) == "Recorded 05-08-2024.");
        CHECK(c.session.slots.at("photo") == "media-77");
        CHECK(c.session.slots.at("photo_type") == "image/jpeg");
    }

    TEST_CASE("a stale menu button during a question is not taken as the answer") {
        Chat c;
        c.send("hi");
        c.send("2");
        c.choose("status");
        REQUIRE(c.last.replies.size() == 2);
        CHECK(c.text(0) == "Sorry, I did not understand.");
        CHECK(c.text(1) == "Date of birth (DD-MM-YYYY)?");
        CHECK(c.session.slots.count("dob") == 0);
        CHECK(c.session.attempts == 0);
    }

    TEST_CASE("an FAQ question inside a form is answered and the question asked again") {
        Chat c;
        c.send("hi");
        c.send("1");
        c.send("what are the timings");
        REQUIRE(c.last.replies.size() == 2);
        CHECK(c.text(0) == "Open 9 to 5.");
        CHECK(c.text(1) == "Your reference?");
        CHECK(c.session.attempts == 0);
    }

    TEST_CASE("after the idle timeout the citizen may resume or start over") {
        Chat c;
        c.send("hi");
        c.send("2");
        c.now += 31 * kMinute;
        c.send("05-08-2024");
        REQUIRE(c.last.replies.size() == 1);
        CHECK(c.text(0) == "Welcome back to Birth certificate.");
        CHECK(c.last.replies[0].options.size() == 2);
        CHECK(c.session.waiting == Waiting::kResume);
        CHECK(c.session.slots.count("dob") == 0);

        SUBCASE("resume asks the same question again") {
            c.send("1");
            CHECK(c.text(0) == "Date of birth (DD-MM-YYYY)?");
            CHECK(c.session.waiting == Waiting::kAnswer);
        }
        SUBCASE("start over goes back to the entry menu") {
            c.choose("restart");
            CHECK(c.text(0) == "Welcome. Choose:");
            CHECK(c.session.flow == "main");
        }
    }

    // Stop, delete my data or agent from a citizen who was away must not wait behind the
    // resume question: a command is acted on at once.
    TEST_CASE("a command after the idle timeout is acted on, not met with the resume question") {
        Chat c;
        c.send("hi");
        c.send("2");
        c.now += 31 * kMinute;
        c.send("STOP");
        CHECK(c.text(0) == "You will get no more messages.");
        REQUIRE(c.last.effects.size() == 1);
        CHECK(c.last.effects[0].kind == Effect::Kind::kOptOut);
        CHECK(c.session.opted_out);
    }

    TEST_CASE("stop silences the citizen until start") {
        Chat c;
        c.send("hi");
        c.send("STOP");
        CHECK(c.text(0) == "You will get no more messages.");
        REQUIRE(c.last.effects.size() == 1);
        CHECK(c.last.effects[0].kind == Effect::Kind::kOptOut);
        CHECK(c.session.opted_out);
        c.send("1");
        CHECK(c.last.replies.empty());
        c.send("start");
        CHECK(c.text(0) == "Welcome back.");
        CHECK(c.last.effects[0].kind == Effect::Kind::kOptIn);
        CHECK_FALSE(c.session.opted_out);
        CHECK(c.last.replies[1].text == "Welcome. Choose:");
    }

    TEST_CASE("command words work in any helpline language") {
        Chat c;
        c.send("hi");
        c.send("1");
        c.send("मेनू");
        CHECK(c.text(0) == "Welcome. Choose:");
        CHECK(c.session.state == "menu");
    }

    TEST_CASE("agent asks for a hand-off without moving the citizen") {
        Chat c;
        c.send("hi");
        c.send("1");
        c.send("agent");
        CHECK(c.text(0) == "An officer will reply.");
        REQUIRE(c.last.effects.size() == 1);
        CHECK(c.last.effects[0].kind == Effect::Kind::kHandoff);
        CHECK(c.last.effects[0].reason == "main/ask_ref");
        CHECK(c.session.state == "ask_ref");
    }

    TEST_CASE("back returns to the previous waiting state") {
        Chat c;
        c.send("hi");
        c.send("1");
        c.send("back");
        CHECK(c.session.state == "menu");
        CHECK(c.text(0) == "Welcome. Choose:");
        c.send("back");
        CHECK(c.text(0) == "There is nothing to go back to.");
    }

    TEST_CASE("language switches the session and repeats the current question") {
        Chat c;
        c.send("hi");
        c.send("1");
        c.send("language");
        CHECK(c.text(0) == "Choose your language:");
        CHECK(c.session.waiting == Waiting::kLanguage);
        c.send("2");
        CHECK(c.session.lang == "hi");
        CHECK(c.text(0) == "आपका संदर्भ?");
        CHECK(c.session.waiting == Waiting::kAnswer);
    }

    TEST_CASE("help shows the help text and repeats the prompt") {
        Chat c;
        c.send("hi");
        c.send("1");
        c.send("help");
        CHECK(c.text(0) == "Send MENU to start again.");
        CHECK(c.text(1) == "Your reference?");
    }

    TEST_CASE("erase asks for confirmation and emits an erase effect") {
        Chat c;
        c.send("hi");
        c.send("2");
        c.send("05-08-2024");
        c.send("delete my data");
        CHECK(c.text(0) == "Delete everything?");
        CHECK(c.session.waiting == Waiting::kEraseConfirm);
        SUBCASE("yes") {
            c.send("1");
            CHECK(c.text(0) == "Your data was deleted.");
            REQUIRE(c.last.effects.size() == 1);
            CHECK(c.last.effects[0].kind == Effect::Kind::kErase);
            CHECK(c.session.slots.empty());
            CHECK(c.session.flow.empty());
        }
        SUBCASE("no") {
            c.choose("no");
            CHECK(c.text(0) == "Nothing was deleted.");
            CHECK(c.text(1) == "Send a photo or SKIP.");
            CHECK(c.session.slots.at("dob") == "05-08-2024");
        }
    }

    TEST_CASE("the same inputs give the same turn") {
        auto flows = load();
        Session s;
        const Turn a = turn(*flows, s, Input::text_input("hi"), kNow);
        const Turn b = turn(*flows, s, Input::text_input("hi"), kNow);
        CHECK(a.replies == b.replies);
        CHECK(a.session == b.session);
    }

    TEST_CASE("a session in a state that no longer exists starts over with event R502") {
        Chat c;
        c.session.flow = "main";
        c.session.state = "gone";
        c.session.waiting = Waiting::kMenu;
        c.session.last_active = kNow;
        c.send("1");
        CHECK(c.last.events.at(0).code == "R502");
        CHECK(c.session.state == "menu");
    }

    TEST_CASE("the step cap stops a runaway turn with event R501") {
        // The checker refuses goto cycles (E205), so build one by hand.
        auto flows = std::make_shared<FlowSet>(*load());
        Flow& main = flows->flows[static_cast<std::size_t>(flows->flow_index.at("main"))];
        State& help = main.states[static_cast<std::size_t>(main.state_index.at("help"))];
        help.go.state_index = help.go.state_index >= 0 ? main.state_index.at("help") : -1;
        Session s;
        Turn t = turn(*flows, s, Input::text_input("hi"), kNow);
        t = turn(*flows, t.session, Input::text_input("x"), kNow);
        t = turn(*flows, t.session, Input::text_input("y"), kNow);
        REQUIRE_FALSE(t.events.empty());
        CHECK(t.events.back().code == "R501");
        CHECK(t.replies.back().text == "Something went wrong.");
        CHECK(t.session.flow.empty());
    }
}

namespace {

const char* const kChoiceMain = R"(version: 1
flow: main
title: "Main"
languages: [en]
start: menu
states:
  menu:
    say: "Choose:"
    menu:
      - { id: birth, title: "Birth certificate", enter: births }
      - { id: status, title: "Application status", enter: passports }
  after:
    say: "Done."
    goto: menu
)";

const char* const kBirths = R"(version: 1
flow: births
title: "Births"
languages: [en]
start: ask
states:
  ask:
    ask: "Child's name?"
    slot: name
    then: bye
  bye:
    say: "Bye."
    end: true
faq:
  - id: docs
    match: { keywords: [documents] }
    answer: "Birth documents: hospital slip."
)";

const char* const kPassports = R"(version: 1
flow: passports
title: "Passports"
languages: [en]
start: ask
states:
  ask:
    ask: "File number?"
    slot: file
    then: bye
  bye:
    say: "Bye."
    end: true
faq:
  - id: renewal_docs
    match: { keywords: [documents, renewal] }
    answer: "Renewal documents: old passport."
)";

std::shared_ptr<const FlowSet> load_choice_set() {
    LoadResult r = load_flows(
        {{"main.yaml", kChoiceMain}, {"births.yaml", kBirths}, {"passports.yaml", kPassports}}
    );
    if (!r.flows) {
        FAIL(format_text(r.diagnostics, r.sources));
    }
    return r.flows;
}

}  // namespace

TEST_SUITE("engine/engine") {
    TEST_CASE("one shared title word picks an option only in a short message") {
        const auto flows = load_choice_set();
        const Session at_menu = turn(*flows, Session{}, Input::text_input("hi"), kNow).session;
        CHECK(
            turn(*flows, at_menu, Input::text_input("certificate"), kNow).session.flow == "births"
        );
        CHECK(
            turn(*flows, at_menu, Input::text_input("birth certificate please"), kNow)
                .session.flow == "births"
        );
        const Turn t =
            turn(*flows, at_menu, Input::text_input("police clearance certificate"), kNow);
        CHECK(t.session.flow == "main");
        CHECK(t.replies.at(0).text == "Sorry, I did not understand that.");
    }

    TEST_CASE("a question from another flow gets that flow's best-scoring answer") {
        const auto flows = load_choice_set();
        const Session at_menu = turn(*flows, Session{}, Input::text_input("hi"), kNow).session;
        const Turn t = turn(*flows, at_menu, Input::text_input("renewal documents"), kNow);
        REQUIRE(t.replies.size() == 2);
        CHECK(t.replies[0].text == "Renewal documents: old passport.");
        CHECK(t.replies[1].text == "Choose:");
        CHECK(t.session.state == "menu");
    }
}

namespace {

// A desk whose entry state waits for typed text (say + match, no menu), with an FAQ.
const char* const kDesk = R"(version: 1
flow: main
title: { en: "Complaints", hi: "शिकायतें" }
start: what
states:
  what:
    say: { en: "Tell us the problem in a few words.", hi: "समस्या कुछ शब्दों में बताएं।" }
    match:
      - keywords: [water, पानी]
        goto: water
    otherwise:
      say: { en: "Please say water.", hi: "कृपया पानी लिखें।" }
      retry: 3
      then: water
  water:
    say: { en: "Water complaint noted.", hi: "पानी की शिकायत दर्ज हुई।" }
    end: true
faq:
  - id: hours
    match: { keywords: { en: [hours], hi: [समय] } }
    answer: { en: "Open 9 to 5.", hi: "9 से 5 बजे तक खुला।" }
)";

struct DeskChat : Chat {
    DeskChat() {
        LoadResult r = load_flows({{"helpline.yaml", kHelpline}, {"main.yaml", kDesk}});
        if (!r.flows) {
            FAIL(format_text(r.diagnostics, r.sources));
        }
        flows = r.flows;
    }

    std::vector<std::string> texts() const {
        std::vector<std::string> out;
        for (const Reply& r : last.replies)
            out.push_back(r.text);
        return out;
    }
};

using Texts = std::vector<std::string>;

}  // namespace

TEST_SUITE("engine/engine") {
    // A free-text state's question is its `say`: whatever answers the citizen without leaving
    // the state (an FAQ, help, back, a wrong answer, a language change) asks it again, as a
    // menu is shown again.
    TEST_CASE("a free-text state asks its question again after an answer that stays in it") {
        DeskChat c;
        c.send("hello");
        CHECK(c.texts() == Texts{"Tell us the problem in a few words."});
        CHECK(c.session.waiting == Waiting::kText);
        c.send("what are your hours");
        CHECK(c.texts() == Texts{"Open 9 to 5.", "Tell us the problem in a few words."});
        c.send("help");
        CHECK(
            c.texts() == Texts{"Send MENU to start again.", "Tell us the problem in a few words."}
        );
        c.send("something else");
        CHECK(c.texts() == Texts{"Please say water.", "Tell us the problem in a few words."});
        c.send("language");
        REQUIRE(c.last.replies.size() == 1);
        CHECK(c.last.replies[0].kind == Reply::Kind::kMenu);
        c.send("2");
        CHECK(c.texts() == Texts{"समस्या कुछ शब्दों में बताएं।"});
        CHECK(c.session.waiting == Waiting::kText);
        c.send("पानी");
        CHECK(c.texts() == Texts{"पानी की शिकायत दर्ज हुई।"});
    }

    // Its routes are not tried: a free-text question's routes often take any text, and would
    // take the greeting for the answer.
    TEST_CASE("a first message is tried against a free-text entry state's FAQ, not its routes") {
        DeskChat c;
        c.send("water problem in my street");
        CHECK(c.texts() == Texts{"Tell us the problem in a few words."});
        CHECK(c.session.state == "what");
        c.send("water problem in my street");
        CHECK(c.texts() == Texts{"Water complaint noted."});
        DeskChat d;
        d.send("hours?");
        CHECK(
            d.texts() ==
            Texts{
                "Tell us the problem in a few words.",
                "Open 9 to 5.",
                "Tell us the problem in a few words."}
        );
        // A greeting only starts the conversation: no "not understood" on top of the welcome.
        DeskChat e;
        e.send("namaste");
        CHECK(e.texts() == Texts{"Tell us the problem in a few words."});
        CHECK(e.session.attempts == 0);
    }
}
