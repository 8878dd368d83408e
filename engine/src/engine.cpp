// The turn loop. One TurnRunner per turn: it copies the session, applies the input, enters
// states until one waits (or a call is emitted), and returns replies, session and effects.
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <span>
#include <string_view>

#include <civicflow/engine/engine.hpp>
#include <civicflow/engine/text_normalize.hpp>

#include "json_util.hpp"

namespace civicflow::engine {

namespace {

constexpr std::size_t kMaxHistory = 8;
constexpr std::size_t kMaxStack = 8;

// Names a citizen may type for a language besides the helpline's label and the code: the
// English name and common native spellings of India's languages.
std::vector<std::string_view> other_language_names(std::string_view code) {
    struct Names {
        std::string_view code;
        std::vector<std::string_view> names;
    };

    static const std::vector<Names> kNames{
        {"en", {"english", "angrezi", "अंग्रेज़ी", "अंग्रेजी"}},
        {"hi", {"hindi", "हिंदी", "हिन्दी"}},
        {"bn", {"bengali", "bangla", "বাংলা"}},
        {"ta", {"tamil", "தமிழ்"}},
        {"te", {"telugu", "తెలుగు"}},
        {"mr", {"marathi", "मराठी"}},
        {"gu", {"gujarati", "ગુજરાતી"}},
        {"kn", {"kannada", "ಕನ್ನಡ"}},
        {"ml", {"malayalam", "മലയാളം"}},
        {"pa", {"punjabi", "ਪੰਜਾਬੀ"}},
        {"or", {"odia", "oriya", "ଓଡ଼ିଆ"}},
        {"as", {"assamese", "অসমীয়া"}},
        {"ur", {"urdu", "اردو"}},
    };
    for (const Names& n : kNames) {
        if (n.code == code)
            return n.names;
    }
    return {};
}

std::string_view validator_key(Validator::Kind kind) {
    switch (kind) {
        case Validator::Kind::kPattern:
            return "invalid_pattern";
        case Validator::Kind::kDate:
            return "invalid_date";
        case Validator::Kind::kInteger:
            return "invalid_integer";
        case Validator::Kind::kOneOf:
            return "invalid_one_of";
        case Validator::Kind::kMobile:
            return "invalid_mobile";
        case Validator::Kind::kPin:
            return "invalid_pin";
        case Validator::Kind::kMedia:
            return "invalid_media";
    }
    return "invalid_pattern";
}

// What a session at `state` waits for once the state has run.
Waiting waiting_for(const State& state) {
    switch (state.kind) {
        case StateKind::kMenu:
            return Waiting::kMenu;
        case StateKind::kAsk:
            return Waiting::kAnswer;
        case StateKind::kFreeText:
            return Waiting::kText;
        case StateKind::kCall:
            return Waiting::kCallResult;
        default:
            return Waiting::kNothing;
    }
}

// A choice among options: by number (Indian digits too), id, whole title, or title words.
struct Choice {
    std::string_view id;
    std::span<const std::string> titles;  // normalized, every language
};

// Option ids are lowercase ASCII; normalize() turns their '_' and '-' into spaces.
bool id_matches(std::string_view id, std::string_view normalized) {
    if (id.size() != normalized.size()) {
        return false;
    }
    for (std::size_t i = 0; i < id.size(); ++i) {
        const char c = id[i] == '_' || id[i] == '-' ? ' ' : id[i];
        if (c != normalized[i]) {
            return false;
        }
    }
    return true;
}

struct Word {
    std::string_view text;
    std::size_t length = 0;     // code points
    std::size_t non_ascii = 0;  // code points outside ASCII

    Word() = default;

    explicit Word(std::string_view w)
        : text(w) {
        for (const char c : w) {
            const auto b = static_cast<unsigned char>(c);
            length += (b & 0xC0U) != 0x80U ? 1 : 0;  // not a continuation byte
            non_ascii += b >= 0xC0U ? 1 : 0;         // the lead byte of a multi-byte one
        }
    }
};

bool word_close(const Word& a, const Word& b) {
    if (a.text == b.text) {
        return true;
    }
    // One typo is tolerated in words of five letters or more; lengths that differ by two or
    // more cannot be one edit apart. Nor can words whose counts of non-ASCII code points
    // differ by two or more (an edit changes that count by one at most): an English word
    // against a Hindi title word is decided here, without decoding either.
    if (a.length < 5 || b.length < 5 || a.length > b.length + 1 || b.length > a.length + 1 ||
        a.non_ascii > b.non_ascii + 1 || b.non_ascii > a.non_ascii + 1) {
        return false;
    }
    return edit_distance(a.text, b.text, 1) <= 1;
}

// Calls f(word) for each space-separated word of normalized text, without allocating.
template <typename F>
void for_each_word(std::string_view text, F&& f) {
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && text[i] == ' ') {
            ++i;
        }
        std::size_t j = i;
        while (j < text.size() && text[j] != ' ') {
            ++j;
        }
        if (j > i && !f(text.substr(i, j - i))) {
            return;
        }
        i = j;
    }
}

int pick_choice(std::span<const Choice> choices, std::string_view normalized) {
    if (normalized.empty()) {
        return -1;
    }
    // "2", "2.", "२", "option 2" all pick the second; normalize() already mapped digits.
    std::string_view digits = normalized;
    if (digits.size() > 7 && digits.substr(0, 7) == "option ") {
        digits.remove_prefix(7);
    }
    int number = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
    if (ec == std::errc() && ptr == digits.data() + digits.size()) {
        if (number >= 1 && static_cast<std::size_t>(number) <= choices.size()) {
            return number - 1;
        }
        return -1;
    }
    for (std::size_t i = 0; i < choices.size(); ++i) {
        if (id_matches(choices[i].id, normalized)) {
            return static_cast<int>(i);
        }
        for (const auto& title : choices[i].titles) {
            if (title == normalized) {
                return static_cast<int>(i);
            }
        }
    }
    // Title words: the option whose title shares the most words with the message wins; a tie
    // is no choice (the message then goes to routes and FAQ).
    std::array<Word, 24> words{};
    std::size_t word_count = 0;
    for_each_word(normalized, [&](std::string_view w) {
        if (word_count == words.size()) {
            return false;  // a long message is not a menu choice by title words
        }
        words[word_count++] = Word{w};
        return true;
    });
    // A title counts only when the message names all of its words, or when the message is one
    // or two words long: "police clearance certificate" must not pick "Birth certificate" on
    // "certificate" alone (that message is for routes and FAQ), but "certificate" may.
    const bool short_message = word_count <= 2;
    int best = -1;
    int best_score = 0;
    bool tie = false;
    for (std::size_t i = 0; i < choices.size(); ++i) {
        int score = 0;
        for (const auto& title : choices[i].titles) {
            int title_score = 0;
            int title_words = 0;
            for_each_word(title, [&](std::string_view tw) {
                const Word title_word{tw};
                if (title_word.length < 3) {
                    return true;  // "of", "a", "में": too common to decide
                }
                ++title_words;
                for (std::size_t k = 0; k < word_count; ++k) {
                    if (word_close(words[k], title_word)) {
                        ++title_score;
                        return true;
                    }
                }
                // In a longer message every title word must be there: stop at the first miss.
                return short_message;
            });
            if (title_score > 0 && (short_message || title_score == title_words)) {
                score = std::max(score, title_score);
            }
        }
        if (score > best_score) {
            best = static_cast<int>(i);
            best_score = score;
            tie = false;
        } else if (score == best_score && score > 0) {
            tie = true;
        }
    }
    return tie ? -1 : best;
}

// The menus the engine shows itself: option ids with the helpline message keys of their titles.
using SystemOptions = std::span<const std::pair<std::string_view, std::string_view>>;
constexpr std::array<std::pair<std::string_view, std::string_view>, 2> kResumeOptions{
    {{"resume", "resume"}, {"restart", "restart"}}};
constexpr std::array<std::pair<std::string_view, std::string_view>, 2> kEraseOptions{
    {{"yes", "erase_yes"}, {"no", "erase_no"}}};

class TurnRunner {
public:
    TurnRunner(
        const FlowSet& flows,
        const Session& session,
        const Input& input,
        Timestamp now,
        TurnTrace* trace
    )
        : fs_(flows)
        , in_(input)
        , now_(now)
        , trace_(trace) {
        out_.session = session;
    }

    Turn run();

private:
    Session& s() { return out_.session; }

    const std::string& default_lang() const;
    void event(std::string code, std::string message, const SourceLocation& loc);
    std::string render(const LocalizedText& text);
    void reply_text(const LocalizedText& text);
    void reply_message(std::string_view key);
    void reply_menu(std::string text, std::vector<MenuItem> options);
    const LocalizedText* message(std::string_view key) const;

    void set_builtins();
    std::array<std::pair<std::string_view, std::string_view>, 3> overlay() const;

    // The flow and state the session is in, looked up once per change rather than per use.
    const Flow* current_flow() const { return flow_; }

    void locate();
    // The flow a new conversation starts in: the channel's (Input::entry_flow), else the
    // helpline's entry.
    const Flow* entry_flow() const;
    // Whether what the session waits for is what its state asks (after locate()).
    bool waiting_fits_state() const;

    const State* current_state() const;
    bool restore_position();
    void reset_conversation(bool keep_lang);
    void start_entry();
    void go(const Flow* flow, int state_index);
    void go_target(const Flow& flow, const Target& target);
    void prompt(const Flow& flow, const State& state);
    void push_history();

    std::optional<Command> command_of(std::string_view normalized) const;
    void handle_command(Command command);
    void handle_call_result();
    void handle_menu(const Flow& flow, const State& state, std::string_view norm);
    void handle_answer(const Flow& flow, const State& state, std::string_view norm);
    void handle_free_text(const Flow& flow, const State& state, std::string_view norm);
    bool try_routes(const Flow& flow, const State& state, std::string_view norm);
    bool try_faq(const Flow& flow, std::string_view norm);
    void not_understood(const Flow& flow, const State& state);
    void handle_resume(std::string_view norm);
    void handle_language_choice(std::string_view norm);
    void handle_erase_confirm(std::string_view norm);
    void show_language_menu();
    std::string message_text(std::string_view key);
    void reply_system_menu(std::string_view text_key, SystemOptions options);
    int system_choice(SystemOptions options, std::string_view norm);
    std::vector<std::pair<std::string, std::string>> language_options() const;

    const FlowSet& fs_;
    const Input& in_;
    Timestamp now_;
    TurnTrace* trace_;
    Turn out_;
    std::string title_;  // the current flow's title in the session language
    const Flow* flow_ = nullptr;
    const State* state_ = nullptr;
    int steps_ = 0;
    bool aborted_ = false;
};

const std::string& TurnRunner::default_lang() const {
    if (const Flow* flow = current_flow(); flow != nullptr && !flow->default_language.empty()) {
        return flow->default_language;
    }
    return fs_.helpline.default_language;
}

void TurnRunner::event(std::string code, std::string message, const SourceLocation& loc) {
    out_.events.push_back(Event{std::move(code), std::move(message), loc});
}

std::string TurnRunner::render(const LocalizedText& text) {
    const Template* tpl = text.pick(s().lang, default_lang());
    if (tpl == nullptr) {
        return {};
    }
    std::vector<std::string> missing;
    std::string result = tpl->render(s().slots, overlay(), &missing);
    for (const auto& name : missing) {
        SourceLocation loc;
        for (const auto& v : text.variants()) {
            if (&v.text == tpl) {
                loc = v.location;
            }
        }
        event("R401", "template reads slot '" + name + "', which is not set", loc);
    }
    return result;
}

const LocalizedText* TurnRunner::message(std::string_view key) const {
    return fs_.helpline.message(key);
}

void TurnRunner::reply_text(const LocalizedText& text) {
    std::string rendered = render(text);
    if (!rendered.empty()) {
        out_.replies.push_back(Reply{Reply::Kind::kText, std::move(rendered), {}, {}, {}});
    }
}

void TurnRunner::reply_message(std::string_view key) {
    if (const LocalizedText* text = message(key)) {
        reply_text(*text);
    }
}

void TurnRunner::reply_menu(std::string text, std::vector<MenuItem> options) {
    out_.replies.push_back(Reply{Reply::Kind::kMenu, std::move(text), std::move(options), {}, {}});
}

// Built-in template variables (lang, profile_name, flow_title) are never copied into the
// session: templates read them through an overlay. The flow title is rendered once per flow or
// language change.
void TurnRunner::set_builtins() {
    title_.clear();
    if (const Flow* flow = current_flow()) {
        if (const Template* t = flow->title.pick(s().lang, flow->default_language)) {
            title_ = t->render(s().slots);
        }
    }
}

std::array<std::pair<std::string_view, std::string_view>, 3> TurnRunner::overlay() const {
    return {
        {{"lang", out_.session.lang}, {"profile_name", in_.profile_name}, {"flow_title", title_}}};
}

const State* TurnRunner::current_state() const {
    return state_;
}

bool TurnRunner::waiting_fits_state() const {
    switch (out_.session.waiting) {
        case Waiting::kMenu:
        case Waiting::kAnswer:
        case Waiting::kText:
        case Waiting::kCallResult:
            return state_ != nullptr && waiting_for(*state_) == out_.session.waiting;
        default:
            // Nothing, or a system menu (resume, language, erase) that re-prompts the state
            // through its kind when done.
            return true;
    }
}

void TurnRunner::locate() {
    flow_ = fs_.find_flow(out_.session.flow);
    state_ = flow_ == nullptr ? nullptr : flow_->find_state(out_.session.state);
}

void TurnRunner::reset_conversation(bool keep_lang) {
    Session fresh;
    if (keep_lang) {
        fresh.lang = s().lang;
    }
    fresh.opted_out = s().opted_out;
    fresh.created_at = s().created_at;
    fresh.call_seq = s().call_seq;
    fresh.flowset_version = fs_.version;
    out_.session = std::move(fresh);
    flow_ = nullptr;
    state_ = nullptr;
}

const Flow* TurnRunner::entry_flow() const {
    const Flow* entry = in_.entry_flow.empty() ? nullptr : fs_.find_flow(in_.entry_flow);
    if (entry == nullptr && fs_.helpline.entry_index >= 0 &&
        static_cast<std::size_t>(fs_.helpline.entry_index) < fs_.flows.size()) {
        entry = &fs_.flows[static_cast<std::size_t>(fs_.helpline.entry_index)];
    }
    return entry;
}

void TurnRunner::start_entry() {
    reset_conversation(true);
    const Flow* entry = entry_flow();
    if (entry == nullptr) {
        return;
    }
    set_builtins();
    go(entry, entry->start_index);
}

void TurnRunner::push_history() {
    auto& history = s().history;
    if (!history.empty() && history.back().flow == s().flow && history.back().state == s().state) {
        return;
    }
    history.push_back(Frame{s().flow, s().state});
    if (history.size() > kMaxHistory) {
        history.erase(history.begin());
    }
}

void TurnRunner::go_target(const Flow& flow, const Target& target) {
    if (target.empty()) {
        go(&flow, flow.start_index);
        return;
    }
    const Flow* dest = &flow;
    if (target.flow_index >= 0 && static_cast<std::size_t>(target.flow_index) < fs_.flows.size()) {
        dest = &fs_.flows[static_cast<std::size_t>(target.flow_index)];
    }
    int index = target.state_index;
    if (index < 0) {
        const auto it = dest->state_index.find(target.state);
        index = it == dest->state_index.end() ? dest->start_index : it->second;
    }
    go(dest, index);
}

void TurnRunner::go(const Flow* flow, int state_index) {
    s().attempts = 0;
    while (flow != nullptr && state_index >= 0 &&
           static_cast<std::size_t>(state_index) < flow->states.size()) {
        if (++steps_ > kMaxStepsPerTurn) {
            event(
                "R501",
                "more than " + std::to_string(kMaxStepsPerTurn) +
                    " states entered in one turn; the conversation was restarted",
                flow->states[static_cast<std::size_t>(state_index)].location
            );
            aborted_ = true;
            reply_message("error");
            reset_conversation(true);
            return;
        }
        const State& st = flow->states[static_cast<std::size_t>(state_index)];
        if (trace_ != nullptr) {
            trace_->entered.emplace_back(flow->name, st.id);
        }
        const bool flow_changed = flow_ != flow;
        s().flow = flow->name;
        s().state = st.id;
        flow_ = flow;
        state_ = &st;
        if (flow_changed) {
            set_builtins();
        }
        for (const auto& [slot, tpl] : st.set) {
            s().slots[slot] = tpl.render(s().slots, overlay());
        }
        if (!st.language.empty()) {
            s().lang = st.language;
            set_builtins();
        }
        if (st.kind != StateKind::kMenu) {
            reply_text(st.say);
        }
        if (st.media) {
            Reply media{
                Reply::Kind::kMedia,
                {},
                {},
                st.media->url.render(s().slots, overlay()),
                render(st.media->caption)};
            out_.replies.push_back(std::move(media));
        }
        switch (st.kind) {
            case StateKind::kMenu:
            case StateKind::kAsk:
            case StateKind::kFreeText:
                if (st.kind != StateKind::kFreeText)  // its question, `say`, is out already
                    prompt(*flow, st);
                s().waiting = waiting_for(st);
                push_history();
                return;
            case StateKind::kCall: {
                const Call& call = *st.call;
                ++s().call_seq;
                BackendCall bc;
                bc.id = flow->name + "/" + st.id + "/" + std::to_string(s().call_seq);
                bc.backend = call.backend;
                bc.method = call.method;
                std::vector<std::string> missing;
                bc.path = call.path.render(s().slots, overlay(), &missing);
                if (!call.body.empty()) {
                    std::vector<std::pair<std::string, std::string>> members;
                    members.reserve(call.body.size());
                    for (const auto& [field, tpl] : call.body) {
                        members.emplace_back(field, tpl.render(s().slots, overlay(), &missing));
                    }
                    bc.body = json_object(members);
                }
                for (const auto& name : missing) {
                    event("R401", "call reads slot '" + name + "', which is not set", st.location);
                }
                s().pending_call = bc.id;
                s().waiting = Waiting::kCallResult;
                Effect effect;
                effect.kind = Effect::Kind::kBackendCall;
                effect.call = std::move(bc);
                out_.effects.push_back(std::move(effect));
                return;
            }
            case StateKind::kGoto:
                state_index = st.go.state_index;
                continue;
            case StateKind::kEnter: {
                const Enter& enter = *st.enter;
                if (s().stack.size() >= kMaxStack) {
                    event(
                        "R503",
                        "sub-flows nested more than " + std::to_string(kMaxStack) +
                            " deep; the conversation was restarted",
                        st.location
                    );
                    aborted_ = true;
                    reply_message("error");
                    reset_conversation(true);
                    return;
                }
                s().stack.push_back(Frame{flow->name, enter.then.state});
                flow = &fs_.flows[static_cast<std::size_t>(enter.flow_index)];
                state_index = flow->start_index;
                continue;
            }
            case StateKind::kEnd: {
                // Return to the innermost caller that has somewhere to go; callers without a
                // `then` end together with their sub-flow.
                bool resumed = false;
                while (!s().stack.empty()) {
                    Frame frame = s().stack.back();
                    s().stack.pop_back();
                    if (frame.state.empty()) {
                        continue;
                    }
                    const Flow* caller = fs_.find_flow(frame.flow);
                    if (caller == nullptr) {
                        continue;
                    }
                    const auto it = caller->state_index.find(frame.state);
                    if (it == caller->state_index.end()) {
                        continue;
                    }
                    flow = caller;
                    state_index = it->second;
                    resumed = true;
                    break;
                }
                if (resumed) {
                    continue;
                }
                reset_conversation(true);
                return;
            }
        }
    }
}

void TurnRunner::prompt(const Flow& flow, const State& st) {
    (void)flow;
    switch (st.kind) {
        case StateKind::kMenu: {
            std::vector<MenuItem> items;
            items.reserve(st.menu.size());
            for (const auto& option : st.menu) {
                items.push_back(MenuItem{option.id, render(option.title)});
            }
            reply_menu(render(st.say), std::move(items));
            return;
        }
        case StateKind::kAsk:
            reply_text(st.ask->prompt);
            return;
        case StateKind::kFreeText:
            // A state that waits for typed text asks its question in `say`.
            reply_text(st.say);
            return;
        default:
            return;
    }
}

std::optional<Command> TurnRunner::command_of(std::string_view normalized) const {
    if (normalized.empty()) {
        return std::nullopt;
    }
    // Words of the citizen's language win; words of any helpline language are accepted too.
    std::optional<Command> any;
    for (const auto& [command, entry] : fs_.helpline.command_words) {
        if (entry.second == normalized) {
            if (entry.first == out_.session.lang || entry.first.empty()) {
                return command;
            }
            if (!any) {
                any = command;
            }
        }
    }
    return any;
}

std::string TurnRunner::message_text(std::string_view key) {
    const LocalizedText* text = message(key);
    return text != nullptr ? render(*text) : std::string();
}

void TurnRunner::reply_system_menu(std::string_view text_key, SystemOptions options) {
    std::vector<MenuItem> items;
    items.reserve(options.size());
    for (const auto& [id, key] : options) {
        items.push_back(MenuItem{std::string(id), message_text(key)});
    }
    reply_menu(message_text(text_key), std::move(items));
}

// Choosing among `choices` (id and normalized titles) by a menu reply id or by text.
int choose(const Input& in, std::span<const Choice> choices, std::string_view norm) {
    if (in.kind == Input::Kind::kChoice) {
        for (std::size_t i = 0; i < choices.size(); ++i) {
            if (choices[i].id == in.choice_id) {
                return static_cast<int>(i);
            }
        }
        return -1;
    }
    return pick_choice(choices, norm);
}

int TurnRunner::system_choice(SystemOptions options, std::string_view norm) {
    std::vector<std::vector<std::string>> titles(options.size());
    std::vector<Choice> choices;
    choices.reserve(options.size());
    for (std::size_t i = 0; i < options.size(); ++i) {
        // Every language's title counts: a citizen may answer in either script.
        if (const LocalizedText* text = message(options[i].second)) {
            for (const auto& v : text->variants()) {
                titles[i].push_back(normalize(v.text.render(s().slots, overlay())));
            }
        }
        choices.push_back(Choice{options[i].first, titles[i]});
    }
    return choose(in_, choices, norm);
}

// (code, label) of every helpline language; the label defaults to the code.
std::vector<std::pair<std::string, std::string>> TurnRunner::language_options() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& code : fs_.helpline.languages) {
        std::string label = code;
        for (const auto& [c, l] : fs_.helpline.language_labels) {
            if (c == code) {
                label = l;
            }
        }
        out.emplace_back(code, std::move(label));
    }
    return out;
}

void TurnRunner::show_language_menu() {
    std::vector<MenuItem> items;
    for (auto& [code, label] : language_options()) {
        items.push_back(MenuItem{code, label});
    }
    reply_menu(message_text("language_prompt"), std::move(items));
    s().waiting = Waiting::kLanguage;
}

bool TurnRunner::restore_position() {
    const Flow* flow = current_flow();
    const State* st = current_state();
    if (flow == nullptr || st == nullptr || !st->waits()) {
        return false;
    }
    prompt(*flow, *st);
    s().waiting = waiting_for(*st);
    return true;
}

void TurnRunner::handle_command(Command command) {
    switch (command) {
        case Command::kSkip:
            return;  // only meaningful inside an optional ask; never dispatched here
        case Command::kMenu:
            start_entry();
            return;
        case Command::kStart:
            if (s().opted_out) {
                s().opted_out = false;
                out_.effects.push_back(Effect{Effect::Kind::kOptIn, {}, {}});
                reply_message("started");
            }
            start_entry();
            return;
        case Command::kStop:
            s().opted_out = true;
            out_.effects.push_back(Effect{Effect::Kind::kOptOut, {}, {}});
            reply_message("stopped");
            return;
        case Command::kAgent: {
            Effect effect{Effect::Kind::kHandoff, {}, {}};
            effect.reason = s().flow.empty() ? std::string() : s().flow + "/" + s().state;
            out_.effects.push_back(std::move(effect));
            reply_message("agent");
            return;
        }
        case Command::kHelp: {
            const State* st = current_state();
            if (st != nullptr && !st->help.empty()) {
                reply_text(st->help);
            } else {
                reply_message("help");
            }
            if (s().waiting == Waiting::kNothing || !restore_position()) {
                if (s().flow.empty()) {
                    start_entry();
                }
            }
            return;
        }
        case Command::kLanguage:
            show_language_menu();
            return;
        case Command::kErase: {
            reply_system_menu("erase_confirm", kEraseOptions);
            s().waiting = Waiting::kEraseConfirm;
            return;
        }
        case Command::kBack: {
            auto& history = s().history;
            // The top of the history is where the citizen is now; the one below is "back".
            if (!history.empty() && history.back().flow == s().flow &&
                history.back().state == s().state) {
                history.pop_back();
            }
            while (!history.empty()) {
                Frame target = history.back();
                history.pop_back();
                const Flow* flow = fs_.find_flow(target.flow);
                if (flow == nullptr) {
                    continue;
                }
                const auto it = flow->state_index.find(target.state);
                if (it == flow->state_index.end()) {
                    continue;
                }
                const bool on_stack =
                    std::any_of(s().stack.begin(), s().stack.end(), [&](const Frame& f) {
                        return f.flow == target.flow;
                    });
                const Flow* entry = entry_flow();
                if (target.flow != s().flow && !on_stack &&
                    (entry == nullptr || entry->name != target.flow)) {
                    // Back into a sub-flow that has ended: its return frame went with it, so
                    // it returns where the citizen is now (without one, its end would end the
                    // whole conversation and the citizen would get no answer).
                    if (s().stack.size() < kMaxStack)
                        s().stack.push_back(Frame{s().flow, s().state});
                    s().pending_call.clear();
                    go(flow, it->second);
                    return;
                }
                // Leaving a sub-flow backwards drops its return frame.
                while (!s().stack.empty() && target.flow != s().flow &&
                       s().stack.back().flow != s().flow) {
                    s().stack.pop_back();
                }
                if (target.flow != s().flow && !s().stack.empty() &&
                    s().stack.back().flow == target.flow) {
                    s().stack.pop_back();
                }
                s().pending_call.clear();
                go(flow, it->second);
                return;
            }
            reply_message("nothing_back");
            if (!restore_position()) {
                start_entry();
            }
            return;
        }
    }
}

void TurnRunner::handle_call_result() {
    const CallResult& result = in_.call;
    if (s().waiting != Waiting::kCallResult || result.call_id != s().pending_call) {
        event(
            "R504",
            "result of call '" + result.call_id + "' arrived, but the session waits for '" +
                s().pending_call + "'; it was ignored",
            {}
        );
        return;
    }
    const Flow* flow = current_flow();
    const State* st = current_state();
    if (flow == nullptr || st == nullptr || st->kind != StateKind::kCall) {
        event("R502", "the state that made call '" + result.call_id + "' no longer exists", {});
        reply_message("error");
        start_entry();
        return;
    }
    s().pending_call.clear();
    s().waiting = Waiting::kNothing;
    const Call& call = *st->call;
    const Target* next = &call.on_error;
    if (result.outcome == CallResult::Outcome::kResponse) {
        if (result.status >= 200 && result.status < 300) {
            next = &call.on_ok;
            if (!call.save.empty()) {
                JsonDocument doc;
                if (!doc.parse(result.body)) {
                    event(
                        "R403",
                        "backend '" + call.backend + "' answered call '" + result.call_id +
                            "' with a body that is not JSON (or nests deeper than " +
                            std::to_string(kMaxJsonDepth) + " levels); following on.error",
                        st->location
                    );
                    next = &call.on_error;
                } else {
                    for (const auto& [slot, pointer] : call.save) {
                        if (auto value = doc.text_at(pointer)) {
                            s().slots[slot] = std::move(*value);
                        } else {
                            s().slots.erase(slot);
                            event(
                                "R402",
                                "backend '" + call.backend + "' result has nothing at '" + pointer +
                                    "' for slot '" + slot + "'",
                                st->location
                            );
                        }
                    }
                }
            }
        } else if (result.status == 404 && !call.on_not_found.empty()) {
            next = &call.on_not_found;
        }
    }
    go_target(*flow, *next);
}

bool TurnRunner::try_routes(const Flow& flow, const State& st, std::string_view norm) {
    if (!st.route_matcher || in_.kind != Input::Kind::kText) {
        return false;
    }
    const auto match = st.route_matcher->match(in_.text, norm, s().lang);
    if (!match) {
        return false;
    }
    for (const auto& [name, value] : match->captures) {
        s().slots[name] = value;
    }
    go_target(flow, st.routes[static_cast<std::size_t>(match->rule)].target);
    return true;
}

bool TurnRunner::try_faq(const Flow& flow, std::string_view norm) {
    if (in_.kind != Input::Kind::kText) {
        return false;
    }
    // The current flow's FAQ first; then the best-scoring entry of every other flow, so a
    // citizen at the main menu who asks about passport fees is answered directly.
    const Flow* source = nullptr;
    std::optional<MatchResult> best;
    if (flow.faq_matcher) {
        best = flow.faq_matcher->match(in_.text, norm, s().lang);
        if (best) {
            source = &flow;
        }
    }
    if (!best) {
        for (const auto& other : fs_.flows) {
            if (&other == &flow || !other.faq_matcher) {
                continue;
            }
            auto match = other.faq_matcher->match(in_.text, norm, s().lang);
            if (match && (!best || match->score > best->score)) {
                best = std::move(match);
                source = &other;
            }
        }
    }
    if (!best) {
        return false;
    }
    const FaqEntry& entry = source->faq[static_cast<std::size_t>(best->rule)];
    for (const auto& [name, value] : best->captures) {
        s().slots[name] = value;
    }
    reply_text(entry.answer);
    ++s().faq_returns;
    // An entry of this flow may lead on (`goto`). Another flow's entry is answered in place: its
    // `goto` belongs to that flow and would move the citizen out of theirs without a way back.
    if (source == &flow && !entry.target.empty()) {
        go_target(flow, entry.target);
        return true;
    }
    if (const State* st = current_state()) {
        prompt(flow, *st);
    }
    return true;
}

void TurnRunner::not_understood(const Flow& flow, const State& st) {
    ++s().attempts;
    if (st.otherwise) {
        const Otherwise& o = *st.otherwise;
        if (!o.then.empty() && s().attempts > o.retry) {
            go_target(flow, o.then);
            return;
        }
        if (!o.say.empty()) {
            reply_text(o.say);
        } else {
            reply_message("fallback");
        }
    } else {
        reply_message("fallback");
    }
    const int attempts = s().attempts;
    prompt(flow, st);
    s().attempts = attempts;
}

void TurnRunner::handle_menu(const Flow& flow, const State& st, std::string_view norm) {
    int picked = -1;
    if (in_.kind == Input::Kind::kChoice) {
        for (std::size_t i = 0; i < st.menu.size(); ++i) {
            if (st.menu[i].id == in_.choice_id) {
                picked = static_cast<int>(i);
            }
        }
    } else if (in_.kind == Input::Kind::kText) {
        // Titles were normalized at load time; only templated titles are rendered here.
        std::vector<std::vector<std::string>> rendered;
        std::vector<Choice> choices;
        choices.reserve(st.menu.size());
        for (const auto& option : st.menu) {
            if (option.match_titles.size() == option.title.variants().size()) {
                choices.push_back(Choice{option.id, option.match_titles});
                continue;
            }
            auto& titles = rendered.emplace_back();
            for (const auto& v : option.title.variants()) {
                titles.push_back(normalize(v.text.render(s().slots, overlay())));
            }
            choices.push_back(Choice{option.id, {}});
        }
        // Spans into `rendered` are taken once it no longer grows.
        std::size_t next = 0;
        for (std::size_t i = 0; i < st.menu.size(); ++i) {
            if (st.menu[i].match_titles.size() != st.menu[i].title.variants().size()) {
                choices[i].titles = rendered[next++];
            }
        }
        picked = pick_choice(choices, norm);
    }
    if (picked >= 0) {
        const MenuOption& option = st.menu[static_cast<std::size_t>(picked)];
        const Target& target = option.target;
        if (target.flow_index >= 0 && target.flow != flow.name) {
            // `enter: FLOW` option: the sub-flow returns to this menu when it ends.
            if (s().stack.size() >= kMaxStack) {
                event(
                    "R503",
                    "sub-flows nested too deep; the conversation was restarted",
                    option.location
                );
                reply_message("error");
                start_entry();
                return;
            }
            s().stack.push_back(Frame{flow.name, st.id});
            const Flow& sub = fs_.flows[static_cast<std::size_t>(target.flow_index)];
            go(&sub, sub.start_index);
            return;
        }
        go_target(flow, target);
        return;
    }
    if (try_routes(flow, st, norm) || try_faq(flow, norm)) {
        return;
    }
    not_understood(flow, st);
}

void TurnRunner::handle_free_text(const Flow& flow, const State& st, std::string_view norm) {
    if (try_routes(flow, st, norm) || try_faq(flow, norm)) {
        return;
    }
    not_understood(flow, st);
}

void TurnRunner::handle_answer(const Flow& flow, const State& st, std::string_view norm) {
    const Ask& ask = *st.ask;
    // Media and locations fill asks that take any answer (a grievance photo, a location).
    if (in_.kind == Input::Kind::kMedia || in_.kind == Input::Kind::kLocation) {
        const bool wants_media =
            std::all_of(ask.validators.begin(), ask.validators.end(), [](const Validator& v) {
                return v.kind == Validator::Kind::kMedia;
            });
        // Media fills asks that take any answer or that ask for media; a location fills asks
        // that take any answer.
        if (ask.validators.empty() || (wants_media && in_.kind == Input::Kind::kMedia)) {
            if (in_.kind == Input::Kind::kMedia) {
                s().slots[ask.slot] = in_.media.id;
                s().slots[ask.slot + "_type"] = in_.media.mime_type;
            } else {
                s().slots[ask.slot] = in_.text;
                s().slots[ask.slot + "_type"] = "location";
            }
            go_target(flow, ask.then);
            return;
        }
        if (wants_media && !ask.validators.empty()) {
            // A location where a photo or document is asked for: the media validator says
            // what to send (its own error, else invalid_media), not "send text".
            const Validator& v = ask.validators.front();
            if (!v.error.empty())
                reply_text(v.error);
            else
                reply_message(validator_key(v.kind));
        } else {
            reply_message("send_text");
        }
        prompt(flow, st);
        return;
    }
    if (ask.optional && in_.kind == Input::Kind::kText) {
        for (const auto& [command, entry] : fs_.helpline.command_words) {
            if (command == Command::kSkip && entry.second == norm) {
                s().slots.erase(ask.slot);
                go_target(flow, ask.then);
                return;
            }
        }
    }
    if (in_.kind == Input::Kind::kChoice) {
        // A menu button tapped while a question is open (an old message's button) is not an
        // answer: say so and ask again, without counting it as a wrong answer.
        reply_message("fallback");
        prompt(flow, st);
        return;
    }
    std::string answer = in_.text;
    const Date today = date_of(now_, fs_.helpline.utc_offset_minutes);
    const Validator* failed = nullptr;
    std::optional<std::string> value;
    if (ask.validators.empty()) {
        if (norm.empty() && normalize(answer).empty()) {
            value.reset();
        } else {
            // Trim surrounding white space; keep the citizen's own wording otherwise.
            const auto first = answer.find_first_not_of(" \t\r\n");
            const auto last = answer.find_last_not_of(" \t\r\n");
            value = answer.substr(first, last - first + 1);
        }
    } else {
        for (const auto& validator : ask.validators) {
            value = validator.check(answer, today);
            if (!value) {
                failed = &validator;
                break;
            }
            answer = *value;
        }
    }
    if (value) {
        s().slots[ask.slot] = std::move(*value);
        go_target(flow, ask.then);
        return;
    }
    // A question instead of an answer: answer it and ask again, without counting an attempt.
    if (try_faq(flow, norm)) {
        return;
    }
    ++s().attempts;
    if (s().attempts >= ask.attempts) {
        go_target(flow, ask.give_up);
        return;
    }
    if (failed != nullptr && !failed->error.empty()) {
        reply_text(failed->error);
    } else {
        reply_message(failed != nullptr ? validator_key(failed->kind) : "empty_answer");
    }
    const int attempts = s().attempts;
    prompt(flow, st);
    s().attempts = attempts;
}

void TurnRunner::handle_resume(std::string_view norm) {
    const int picked = system_choice(kResumeOptions, norm);
    if (picked == 0 && restore_position()) {
        return;
    }
    if (picked == 1 || picked == 0) {
        start_entry();
        return;
    }
    // Anything else: ask again.
    reply_system_menu("expired", kResumeOptions);
}

void TurnRunner::handle_language_choice(std::string_view norm) {
    const auto options = language_options();
    std::vector<std::vector<std::string>> titles;
    std::vector<Choice> choices;
    for (const auto& [code, label] : options) {
        titles.push_back({normalize(label), normalize(code)});
        // Citizens also type a language by its English name or a common spelling.
        for (const std::string_view name : other_language_names(code))
            titles.back().push_back(normalize(name));
    }
    for (std::size_t i = 0; i < options.size(); ++i) {
        choices.push_back(Choice{options[i].first, titles[i]});
    }
    const int picked = choose(in_, choices, norm);
    if (picked < 0) {
        show_language_menu();
        return;
    }
    s().lang = options[static_cast<std::size_t>(picked)].first;
    set_builtins();
    if (!restore_position()) {
        start_entry();
    }
}

void TurnRunner::handle_erase_confirm(std::string_view norm) {
    const int picked = system_choice(kEraseOptions, norm);
    if (picked == 0) {
        out_.effects.push_back(Effect{Effect::Kind::kErase, {}, {}});
        reply_message("erased");
        const std::string lang = s().lang;
        out_.session = Session{};
        flow_ = nullptr;
        state_ = nullptr;
        out_.session.lang = lang;
        out_.session.flowset_version = fs_.version;
        return;
    }
    reply_message("erase_cancelled");
    if (!restore_position()) {
        start_entry();
    }
}

Turn TurnRunner::run() {
    Session& session = s();
    if (session.created_at == 0) {
        session.created_at = now_;
    }
    if (session.lang.empty() ||
        std::find(fs_.helpline.languages.begin(), fs_.helpline.languages.end(), session.lang) ==
            fs_.helpline.languages.end()) {
        const std::string hinted = helpline_language(fs_.helpline.languages, in_.lang);
        session.lang = hinted.empty() ? fs_.helpline.default_language : hinted;
    }
    // A session whose flow or state vanished (the server restarted with changed flows)
    // starts over; so does one waiting for something its state no longer asks (a question
    // that became a menu, a call that became a question): acting on it would read the state
    // as what it was.
    locate();
    if (!session.flow.empty() && current_state() == nullptr) {
        event(
            "R502",
            "session was in '" + session.flow + "/" + session.state +
                "', which the loaded flows no longer have; it was restarted",
            {}
        );
        reset_conversation(true);
    } else if (!waiting_fits_state()) {
        event(
            "R502",
            "session waited for " + std::string(to_string(session.waiting)) + " in '" +
                session.flow + "/" + session.state +
                "', which the loaded flows no longer ask there; it was restarted",
            {}
        );
        reset_conversation(true);
    }
    s().flowset_version = fs_.version;
    set_builtins();

    const std::string norm = in_.kind == Input::Kind::kText ? normalize(in_.text) : std::string();
    std::optional<Command> command;
    if (in_.kind == Input::Kind::kText) {
        command = command_of(norm);
    }

    if (s().opted_out) {
        if (command == Command::kStart) {
            handle_command(Command::kStart);
        }
    } else if (in_.kind == Input::Kind::kCallResult) {
        handle_call_result();
    } else if (command && command != Command::kSkip) {
        // A command is what the citizen asks for, even after being away (stop, delete my
        // data, agent must never wait behind the resume question).
        handle_command(*command);
    } else if (const Flow* flow = current_flow();
               flow != nullptr &&
               (s().waiting == Waiting::kMenu || s().waiting == Waiting::kAnswer ||
                s().waiting == Waiting::kText) &&
               now_ - s().last_active > flow->idle_timeout_ms) {
        // Away too long: offer to resume or start over; this message is not acted on.
        reply_system_menu("expired", kResumeOptions);
        s().waiting = Waiting::kResume;
    } else {
        const Flow* cur = current_flow();
        const State* st = current_state();
        switch (s().waiting) {
            case Waiting::kNothing: {
                start_entry();
                // A first message that already says what the citizen wants is acted on: at a
                // menu through its routes and the FAQ; at a free-text question through the FAQ
                // only, since such a question's routes often take any text ("describe the
                // problem") and would take the greeting for the answer.
                const Flow* entry = current_flow();
                const State* first = current_state();
                if (!aborted_ && in_.kind == Input::Kind::kText && entry != nullptr &&
                    first != nullptr) {
                    if (s().waiting == Waiting::kMenu) {
                        if (!try_routes(*entry, *first, norm)) {
                            try_faq(*entry, norm);
                        }
                    } else if (s().waiting == Waiting::kText) {
                        try_faq(*entry, norm);
                    }
                }
                break;
            }
            case Waiting::kMenu:
                handle_menu(*cur, *st, norm);
                break;
            case Waiting::kAnswer:
                handle_answer(*cur, *st, norm);
                break;
            case Waiting::kText:
                handle_free_text(*cur, *st, norm);
                break;
            case Waiting::kCallResult:
                reply_message("wait");
                break;
            case Waiting::kResume:
                handle_resume(norm);
                break;
            case Waiting::kLanguage:
                handle_language_choice(norm);
                break;
            case Waiting::kEraseConfirm:
                handle_erase_confirm(norm);
                break;
        }
    }
    s().last_active = now_;
    return std::move(out_);
}

}  // namespace

std::string helpline_language(const std::vector<std::string>& languages, std::string_view hint) {
    const auto same = [](std::string_view a, std::string_view b) {
        return a.size() == b.size() &&
               std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                   return std::tolower(static_cast<unsigned char>(x)) ==
                          std::tolower(static_cast<unsigned char>(y));
               });
    };
    if (hint.empty())
        return {};
    for (const std::string& l : languages) {
        if (same(l, hint))
            return l;
    }
    const std::string_view primary = hint.substr(0, hint.find_first_of("-_"));
    for (const std::string& l : languages) {
        if (same(l, primary))
            return l;
    }
    return {};
}

Input Input::text_input(std::string text) {
    Input input;
    input.kind = Kind::kText;
    input.text = std::move(text);
    return input;
}

Input Input::choice(std::string id) {
    Input input;
    input.kind = Kind::kChoice;
    input.choice_id = std::move(id);
    return input;
}

Input Input::call_result(CallResult result) {
    Input input;
    input.kind = Kind::kCallResult;
    input.call = std::move(result);
    return input;
}

Turn turn(const FlowSet& flows, const Session& session, const Input& input, Timestamp now) {
    return TurnRunner(flows, session, input, now, nullptr).run();
}

Turn turn(
    const FlowSet& flows,
    const Session& session,
    const Input& input,
    Timestamp now,
    TurnTrace* trace
) {
    return TurnRunner(flows, session, input, now, trace).run();
}

}  // namespace civicflow::engine
