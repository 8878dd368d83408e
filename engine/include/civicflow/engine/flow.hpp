/// The flow model: what a YAML flow file means once loaded and checked. Immutable after load.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <civicflow/engine/diagnostic.hpp>
#include <civicflow/engine/matcher.hpp>
#include <civicflow/engine/template.hpp>
#include <civicflow/engine/validator.hpp>

namespace civicflow::engine {

/// Where a step leads: a state of the same flow ("fees") or of another flow ("status.ask_ref"
/// is a state id; "flow:status" enters another flow at its start). Resolved at load time.
///   goto: fees
struct Target {
    std::string state;     // state id within `flow`
    std::string flow;      // flow name; empty until resolved (the owning flow)
    int state_index = -1;  // resolved index into Flow::states
    int flow_index = -1;   // resolved index into FlowSet::flows
    SourceLocation location;

    bool empty() const { return state.empty(); }
};

/// A menu option, matched by its number ("1", "१"), its id, or the words of its title.
///   menu:
///     - { id: fees, title: { en: "Fees", hi: "शुल्क" }, goto: fees }
struct MenuOption {
    std::string id;
    LocalizedText title;
    Target target;
    SourceLocation location;
    /// normalize()d title of every language (titles without slots), filled at load time so a
    /// menu choice normalizes nothing but the message. A templated title is matched as rendered.
    std::vector<std::string> match_titles;
};

/// A media reply.
///   media: { url: "https://example.gov.in/forms/birth.pdf", caption: { en: "Form", hi: "फ़ॉर्म" } }
struct Media {
    Template url;
    LocalizedText caption;
};

/// Free text routed from a state.
///   match:
///     - { keywords: [lost, stolen], goto: lost_passport }
struct Route {
    MatchRule rule;
    Target target;
};

/// What happens when a menu or free-text state does not understand the message.
///   otherwise: { say: "Please pick a number from the menu.", retry: 2, then: help }
struct Otherwise {
    LocalizedText say;
    int retry = 2;  // re-prompts before `then` is taken
    Target then;    // empty: keep re-prompting
};

/// Fills a slot from the citizen's answer.
///   ask: { en: "Child's date of birth (DD-MM-YYYY)?", hi: "..." }
///   slot: dob
///   validate: { date: { not_future: true }, error: { en: "...", hi: "..." } }
///   attempts: 3          # wrong answers allowed before on_give_up
///   then: place          # where a valid answer leads
///   on_give_up: help
struct Ask {
    LocalizedText prompt;
    std::string slot;
    std::vector<Validator> validators;
    int attempts = 3;
    Target then;
    Target give_up;
    bool optional = false;  // `optional: true`: the skip words of the helpline leave the slot empty
};

/// A declarative backend call; the server performs it, the engine routes on its outcome.
///   call:
///     backend: status           # declared in the server config
///     method: GET               # GET or POST
///     path: "/applications/{{ ref | url }}"
///     body: { name: "{{ child_name }}", dob: "{{ dob }}" }   # POST only; a JSON object
///     save: { stage: /stage, updated: /updated_at }          # slot: JSON pointer into the reply
///   on: { ok: show_status, not_found: unknown_ref, error: backend_down }
struct Call {
    std::string backend;
    std::string method = "GET";
    Template path;
    std::vector<std::pair<std::string, Template>> body;
    std::vector<std::pair<std::string, std::string>> save;  // slot, JSON pointer
    Target on_ok;
    Target on_not_found;  // empty: not_found follows on_error
    Target on_error;
};

/// Enters another flow as a sub-flow; when it reaches `end`, the citizen returns to `then`.
///   enter: grievance
///   then: menu
struct Enter {
    std::string flow;
    int flow_index = -1;
    Target then;  // empty: the sub-flow's end ends the caller too
};

/// What a state does after its optional `say`/`media`/`set`/`language`.
enum class StateKind { kMenu, kAsk, kCall, kGoto, kEnter, kEnd, kFreeText };

/// A state. Its id is human-readable ("status.ask_ref" is just an id with a dot).
///   renew_info:
///     say: { en: "...", hi: "..." }
///     goto: menu
struct State {
    std::string id;
    SourceLocation location;
    StateKind kind = StateKind::kEnd;
    LocalizedText say;
    std::optional<Media> media;
    std::vector<std::pair<std::string, Template>> set;  // set: { category: "water" }
    std::string language;                               // language: hi   (switches the session)
    LocalizedText help;                                 // help: shown by the help command here
    // kind-specific
    LocalizedText menu_text;       // the menu's own text (defaults to `say`)
    std::vector<MenuOption> menu;  // kMenu
    std::optional<Ask> ask;        // kAsk
    std::optional<Call> call;      // kCall
    Target go;                     // kGoto
    std::optional<Enter> enter;    // kEnter
    std::vector<Route> routes;     // kMenu and kFreeText: free-text routes
    std::shared_ptr<const TextMatcher> route_matcher;
    std::optional<Otherwise> otherwise;

    bool waits() const {
        return kind == StateKind::kMenu || kind == StateKind::kAsk || kind == StateKind::kFreeText;
    }
};

/// A flow-wide question answered from any state of the flow, then back to where the citizen was.
///   faq:
///     - id: office_hours
///       match: { keywords: [timing, hours, समय], patterns: ['(?i)when .* open'] }
///       answer: { en: "...", hi: "..." }
struct FaqEntry {
    std::string id;
    MatchRule rule;
    LocalizedText answer;
    SourceLocation location;
    Target target;  // goto: some_state   (empty: back to where the citizen was)
};

/// One flow file.
///   version: 1
///   flow: passport
///   title: { en: "Passport services", hi: "पासपोर्ट सेवाएं" }
///   languages: [en, hi]      # the first is the default
///   idle_timeout: 30m        # s, m, h, d
///   start: menu
///   states: { ... }
///   faq: [ ... ]
///   synonyms: { en: { fee: [fees, charges] } }
struct Flow {
    std::string name;
    std::string file;
    SourceLocation location;
    LocalizedText title;
    std::vector<std::string> languages;
    std::string default_language;
    std::int64_t idle_timeout_ms = 30LL * 60 * 1000;
    std::string start;
    int start_index = -1;
    std::vector<State> states;
    std::unordered_map<std::string, int> state_index;
    std::vector<FaqEntry> faq;
    std::shared_ptr<const TextMatcher> faq_matcher;
    Synonyms synonyms;

    const State* find_state(const std::string& id) const;
};

/// The global commands; each pre-empts any state when the whole message is one of its words.
/// kSkip is not global: its words answer an `optional: true` ask with "no answer".
enum class Command { kMenu, kHelp, kBack, kLanguage, kStop, kStart, kAgent, kErase, kSkip };

/// Helpline-wide settings, from the file whose top key is `helpline:` (one per directory).
///   version: 1
///   helpline: passport-seva
///   entry: main                 # the flow a new citizen starts in
///   languages: [en, hi]
///   utc_offset: "+05:30"        # the local date for date validators
///   commands:
///     menu: { en: [menu, home], hi: [मेनू] }
///     stop: { en: [stop, unsubscribe], hi: [बंद] }
///   messages:
///     fallback: { en: "Sorry, I did not understand.", hi: "..." }
struct Helpline {
    std::string name;
    std::string file;
    std::string entry;
    int entry_index = -1;
    std::vector<std::string> languages;
    std::string default_language;
    int utc_offset_minutes = 330;
    // (command, lang, normalized word)
    std::vector<std::pair<Command, std::pair<std::string, std::string>>> command_words;
    // message key -> text: fallback, expired, resume, restart, stopped, started, agent, help,
    // language_prompt, wait, ended, skip_words, erase_confirm, erased, erase_cancelled, error
    std::vector<std::pair<std::string, LocalizedText>> messages;
    std::vector<std::pair<std::string, std::string>>
        language_labels;  // language_names: { en: English, hi: हिन्दी }

    const LocalizedText* message(std::string_view key) const;
};

/// Every flow of a directory plus the helpline settings. Immutable; shared between threads as
/// std::shared_ptr<const FlowSet>; a reload builds a new one and swaps it.
struct FlowSet {
    Helpline helpline;
    std::vector<Flow> flows;
    std::unordered_map<std::string, int> flow_index;
    std::string version;  // content hash of the sources
    std::size_t state_count() const;

    const Flow* find_flow(const std::string& name) const;
};

}  // namespace civicflow::engine
