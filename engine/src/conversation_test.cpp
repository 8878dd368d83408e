// Runs conversation tests (format: docs/flow-authoring.md, "Conversation tests"). Each step is
// one engine turn with a fake clock; backend calls are answered from the conversation's mocks
// at once and the resumed turn's replies are appended, as the server does.
#include <algorithm>
#include <charconv>
#include <optional>
#include <sstream>
#include <string_view>

#include <civicflow/engine/conversation_test.hpp>
#include <civicflow/engine/diagnostic.hpp>
#include <civicflow/engine/duration.hpp>
#include <civicflow/engine/engine.hpp>
#include <civicflow/engine/mock_backend.hpp>
#include <civicflow/engine/yaml_document.hpp>

#include "json_util.hpp"

namespace civicflow::engine {

namespace {

using yaml::Node;

// 2026-01-15T10:00:00+05:30
constexpr Timestamp kDefaultStart = 1768451400000;

std::int64_t days_from_civil(int y, int m, int d) {
    y -= m <= 2 ? 1 : 0;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = y - era * 400;
    const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return static_cast<std::int64_t>(era) * 146097 + doe - 719468;
}

int read_int(std::string_view text, std::size_t pos, std::size_t len, bool& ok) {
    int value = 0;
    if (pos + len > text.size()) {
        ok = false;
        return 0;
    }
    auto [ptr, ec] = std::from_chars(text.data() + pos, text.data() + pos + len, value);
    if (ec != std::errc() || ptr != text.data() + pos + len) {
        ok = false;
    }
    return value;
}

// YYYY-MM-DDTHH:MM:SS(Z|+HH:MM|-HH:MM)
std::optional<Timestamp> parse_time(std::string_view text) {
    bool ok = text.size() >= 19 && text[4] == '-' && text[7] == '-' && text[10] == 'T' &&
              text[13] == ':' && text[16] == ':';
    const int y = read_int(text, 0, 4, ok);
    const int mo = read_int(text, 5, 2, ok);
    const int d = read_int(text, 8, 2, ok);
    const int h = read_int(text, 11, 2, ok);
    const int mi = read_int(text, 14, 2, ok);
    const int sec = read_int(text, 17, 2, ok);
    int offset = 0;
    if (ok && text.size() > 19) {
        const std::string_view zone = text.substr(19);
        if (zone == "Z") {
            offset = 0;
        } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
            offset = read_int(zone, 1, 2, ok) * 60 + read_int(zone, 4, 2, ok);
            if (zone[0] == '-') {
                offset = -offset;
            }
        } else {
            ok = false;
        }
    }
    if (!ok || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59) {
        return std::nullopt;
    }
    const std::int64_t seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
                                 static_cast<std::int64_t>(offset) * 60;
    return seconds * 1000;
}

std::string quote(std::string_view text) {
    return "\"" + std::string(text) + "\"";
}

std::string describe(const Reply& r) {
    switch (r.kind) {
        case Reply::Kind::kText:
            return "text " + quote(r.text);
        case Reply::Kind::kMenu: {
            std::string out = "menu " + quote(r.text) + " [";
            for (std::size_t i = 0; i < r.options.size(); ++i) {
                out += (i ? ", " : "") + quote(r.options[i].title);
            }
            return out + "]";
        }
        case Reply::Kind::kMedia:
            return "media " + quote(r.url);
    }
    return {};
}

std::string_view effect_name(Effect::Kind kind) {
    switch (kind) {
        case Effect::Kind::kBackendCall:
            return "call";
        case Effect::Kind::kHandoff:
            return "handoff";
        case Effect::Kind::kOptOut:
            return "opt_out";
        case Effect::Kind::kOptIn:
            return "opt_in";
        case Effect::Kind::kErase:
            return "erase";
    }
    return "call";
}

class Runner {
public:
    Runner(const FlowSet& flows, ConversationRun& run)
        : flows_(flows)
        , run_(run) {}

    void run_file(const SourceFile& file);

private:
    void shape_error(const Node& at, std::string message) {
        run_.diagnostics.error(
            "E101", SourceLocation{file_, at.line, at.column}, std::move(message)
        );
    }

    std::string where(const Node& at) const {
        return file_ + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) + ": ";
    }

    // The conversation being run is always the last result.
    ConversationResult& cur() { return run_.results.back(); }

    void run_conversation(const Node& conv);
    bool run_step(const Node& step, int number);

    // `step` 0: the conversation itself (its name, its keys), not one of its steps.
    void fail(const Node& at, int step, const std::string& what) {
        cur().failures.push_back(
            where(at) + "conversation '" + cur().name + "'" +
            (step > 0 ? " step " + std::to_string(step) : std::string()) + ": " + what
        );
    }

    // A list expectation whose items must come from `allowed` (a misspelt one could never
    // match, and would fail with a message that does not say why). Returns whether all did.
    bool known_values(
        const Node& node, const std::vector<std::string>& allowed, const char* what, int step
    ) {
        bool ok = true;
        for (const std::string& v : string_list(node)) {
            if (std::find(allowed.begin(), allowed.end(), v) != allowed.end())
                continue;
            const std::string near = did_you_mean(v, allowed);
            std::string list;
            for (const auto& a : allowed)
                list += (list.empty() ? "" : ", ") + a;
            fail(
                node,
                step,
                "unknown " + std::string(what) + " " + quote(v) +
                    (near.empty() ? " (one of " + list + ")"
                                  : " (did you mean " + quote(near) + "?)")
            );
            ok = false;
        }
        return ok;
    }

    // Reports every key of `map` not in `allowed` ("did you mean" when one is close): a
    // misspelt expectation (`replise:`) would otherwise check nothing and pass. Returns
    // whether all keys were known.
    bool known_keys(const Node& map, const std::vector<std::string>& allowed, int step) {
        bool ok = true;
        for (const auto& [key, value] : map.entries) {
            if (std::find(allowed.begin(), allowed.end(), key.scalar) != allowed.end())
                continue;
            const std::string near = did_you_mean(key.scalar, allowed);
            fail(
                key,
                step,
                "unknown key " + quote(key.scalar) +
                    (near.empty() ? "" : " (did you mean " + quote(near) + "?)")
            );
            ok = false;
        }
        return ok;
    }

    std::vector<std::string> string_list(const Node& node) {
        std::vector<std::string> out;
        if (node.is_scalar()) {
            out.push_back(node.scalar);
        }
        for (const auto& item : node.items) {
            out.push_back(item.scalar);
        }
        return out;
    }

    void check_replies(const Node& expected, const std::vector<Reply>& got, int step);

    const FlowSet& flows_;
    ConversationRun& run_;
    std::string file_;
    MockBackend mocks_;
    Session session_;
    Timestamp now_ = kDefaultStart;
    std::string lang_;
    std::string profile_name_;
    std::vector<std::string> offered_;  // the ids of every menu option shown so far
};

void Runner::run_file(const SourceFile& file) {
    file_ = file.path;
    Diagnostics parse_diags;
    const yaml::Document doc = yaml::parse(file.path, file.contents, parse_diags);
    run_.diagnostics.append(parse_diags);
    if (!doc.root) {
        return;
    }
    const Node& root = *doc.root;
    const Node* convs = root.is_map() ? root.find("conversations") : nullptr;
    if (convs == nullptr || !convs->is_sequence()) {
        shape_error(root, "a test file needs 'conversations:', a list of conversations");
        return;
    }
    for (const auto& conv : convs->items) {
        run_conversation(conv);
    }
}

void Runner::run_conversation(const Node& conv) {
    if (!conv.is_map()) {
        shape_error(conv, "a conversation must be a mapping with 'name' and 'steps'");
        return;
    }
    const Node* name = conv.find("name");
    const Node* steps = conv.find("steps");
    if (name == nullptr || !name->is_scalar() || steps == nullptr || !steps->is_sequence()) {
        shape_error(conv, "a conversation needs 'name' (text) and 'steps' (a list)");
        return;
    }
    run_.results.push_back(ConversationResult{file_, name->scalar, false, {}});
    for (const ConversationResult& r : run_.results) {
        if (&r != &run_.results.back() && r.file == file_ && r.name == name->scalar) {
            fail(*name, 0, "a conversation of this name is already in this file");
            break;
        }
    }
    known_keys(conv, {"name", "steps", "lang", "profile_name", "start_time", "backend"}, 0);
    session_ = Session{};
    now_ = kDefaultStart;
    offered_.clear();
    lang_.clear();
    profile_name_.clear();
    mocks_ = MockBackend{};
    if (const Node* n = conv.find("lang")) {
        lang_ = n->scalar;
    }
    if (const Node* n = conv.find("profile_name")) {
        profile_name_ = n->scalar;
    }
    if (const Node* n = conv.find("start_time")) {
        if (auto t = parse_time(n->scalar)) {
            now_ = *t;
        } else {
            fail(*n, 0, "start_time " + quote(n->scalar) + " is not YYYY-MM-DDTHH:MM:SS+HH:MM");
        }
    }
    if (const Node* backend = conv.find("backend")) {
        mocks_ = MockBackend::from_yaml(*backend, file_, run_.diagnostics);
    }
    int number = 0;
    for (const auto& step : steps->items) {
        ++number;
        if (!run_step(step, number)) {
            break;  // later steps depend on this one; one failure per cause is enough
        }
    }
    cur().passed = cur().failures.empty();
}

void Runner::check_replies(const Node& expected, const std::vector<Reply>& got, int step) {
    if (!expected.is_sequence()) {
        fail(expected, step, "'replies' must be a list");
        return;
    }
    if (expected.items.size() != got.size()) {
        std::string list;
        for (const auto& r : got) {
            list += "\n      " + describe(r);
        }
        fail(
            expected,
            step,
            "expected " + std::to_string(expected.items.size()) + " replies, got " +
                std::to_string(got.size()) + ":" + list
        );
        return;
    }
    for (std::size_t i = 0; i < got.size(); ++i) {
        const Node& e = expected.items[i];
        const Reply& r = got[i];
        const std::string which = "reply " + std::to_string(i + 1);
        if (e.is_scalar()) {
            if (r.kind == Reply::Kind::kMedia || r.text != e.scalar) {
                fail(
                    e, step, which + ": expected text " + quote(e.scalar) + ", got " + describe(r)
                );
            }
            continue;
        }
        if (!e.is_map()) {
            fail(e, step, which + ": expected a text or a mapping");
            continue;
        }
        known_keys(e, {"text", "contains", "menu", "media", "caption"}, step);
        if (const Node* v = e.find("text"); v && r.text != v->scalar) {
            fail(*v, step, which + ": expected text " + quote(v->scalar) + ", got " + describe(r));
        }
        if (const Node* v = e.find("contains");
            v && (r.kind == Reply::Kind::kMedia || r.text.find(v->scalar) == std::string::npos)) {
            fail(
                *v,
                step,
                which + ": expected text containing " + quote(v->scalar) + ", got " + describe(r)
            );
        }
        if (const Node* v = e.find("menu")) {
            std::vector<std::string> titles;
            for (const auto& o : r.options) {
                titles.push_back(o.title);
            }
            if (r.kind != Reply::Kind::kMenu || titles != string_list(*v)) {
                fail(
                    *v, step, which + ": expected a menu with the given options, got " + describe(r)
                );
            }
        }
        if (const Node* v = e.find("media");
            v && (r.kind != Reply::Kind::kMedia || r.url != v->scalar)) {
            fail(*v, step, which + ": expected media " + quote(v->scalar) + ", got " + describe(r));
        }
        if (const Node* v = e.find("caption"); v && r.caption != v->scalar) {
            fail(
                *v,
                step,
                which + ": expected caption " + quote(v->scalar) + ", got " + quote(r.caption)
            );
        }
    }
}

bool Runner::run_step(const Node& step, int number) {
    if (!step.is_map()) {
        fail(step, number, "a step must be a mapping");
        return false;
    }
    if (!known_keys(
            step,
            {"advance",
             "send",
             "choose",
             "media",
             "location",
             "replies",
             "reply_contains",
             "no_reply",
             "state",
             "flow",
             "waiting",
             "lang",
             "slots",
             "effects",
             "calls"},
            number
        )) {
        return false;
    }
    int inputs = 0;
    for (const char* key : {"send", "choose", "media", "location", "advance"})
        inputs += step.find(key) != nullptr ? 1 : 0;
    if (inputs > 1) {
        fail(step, number, "a step has one input: send, choose, media, location or advance");
        return false;
    }
    if (const Node* adv = step.find("advance")) {
        if (auto ms = parse_duration_ms(adv->scalar)) {
            now_ += *ms;
            return true;
        }
        fail(*adv, number, "advance " + quote(adv->scalar) + " is not a duration like 30m");
        return false;
    }
    if (const Node* v = step.find("waiting")) {
        std::vector<std::string> names;
        for (const Waiting w :
             {Waiting::kNothing,
              Waiting::kMenu,
              Waiting::kAnswer,
              Waiting::kText,
              Waiting::kCallResult,
              Waiting::kResume,
              Waiting::kLanguage,
              Waiting::kEraseConfirm}) {
            names.emplace_back(to_string(w));
        }
        if (!known_values(*v, names, "waiting", number))
            return false;
    }
    if (const Node* v = step.find("effects")) {
        if (!known_values(*v, {"call", "handoff", "opt_out", "opt_in", "erase"}, "effect", number))
            return false;
    }
    Input input;
    if (const Node* v = step.find("send")) {
        input = Input::text_input(v->scalar);
    } else if (const Node* c = step.find("choose")) {
        // A tap on a button the conversation never showed is a mistake of the test (a typo of
        // an id): the engine would take it as not understood, and the test could still pass.
        if (std::find(offered_.begin(), offered_.end(), c->scalar) == offered_.end()) {
            std::string list;
            for (const auto& id : offered_)
                list += (list.empty() ? "" : ", ") + id;
            const std::string near = did_you_mean(c->scalar, offered_);
            fail(
                *c,
                number,
                "no menu of this conversation offered " + quote(c->scalar) +
                    (near.empty() ? "" : " (did you mean " + quote(near) + "?)") +
                    (list.empty() ? "; none was shown yet" : "; offered: " + list)
            );
            return false;
        }
        input = Input::choice(c->scalar);
    } else if (const Node* m = step.find("media")) {
        if (!known_keys(*m, {"id", "mime_type", "caption"}, number))
            return false;
        input.kind = Input::Kind::kMedia;
        if (const Node* x = m->find("id"))
            input.media.id = x->scalar;
        if (const Node* x = m->find("mime_type"))
            input.media.mime_type = x->scalar;
        if (const Node* x = m->find("caption"))
            input.media.caption = x->scalar;
    } else if (const Node* l = step.find("location")) {
        input.kind = Input::Kind::kLocation;
        input.text = l->scalar;
    } else {
        fail(step, number, "a step needs one of send, choose, media, location or advance");
        return false;
    }
    input.lang = lang_;
    input.profile_name = profile_name_;

    TurnTrace trace;
    Turn t = turn(flows_, session_, input, now_, &trace);
    std::vector<Reply> replies = std::move(t.replies);
    std::vector<Effect> effects = t.effects;
    std::vector<std::string> calls;
    // Answer backend calls from the mocks, as the server would, until none is pending.
    for (int guard = 0; guard < 16; ++guard) {
        const auto call_it = std::find_if(t.effects.begin(), t.effects.end(), [](const Effect& e) {
            return e.kind == Effect::Kind::kBackendCall;
        });
        if (call_it == t.effects.end()) {
            break;
        }
        const BackendCall call = call_it->call;
        calls.push_back(call.method + " " + call.backend + " " + call.path);
        const MockBackend::Entry* mock = mocks_.find(call);
        if (mock == nullptr) {
            fail(step, number, "no mock for " + call.method + " " + call.backend + " " + call.path);
            return false;
        }
        if (!MockBackend::body_matches(*mock, call)) {
            cur().failures.push_back(
                mock->location.file + ":" + std::to_string(mock->location.line) + ":" +
                std::to_string(mock->location.column) + ": conversation '" + cur().name +
                "' step " + std::to_string(number) + ": call body " + call.body +
                " does not contain " + mock->expect_body
            );
        }
        CallResult result = MockBackend::answer(*mock, call);
        t = turn(flows_, t.session, Input::call_result(std::move(result)), now_, &trace);
        replies.insert(replies.end(), t.replies.begin(), t.replies.end());
        effects.insert(effects.end(), t.effects.begin(), t.effects.end());
    }
    session_ = t.session;
    for (const auto& entered : trace.entered) {
        run_.visited.insert(entered);
    }
    for (const Reply& r : replies) {
        for (const MenuItem& o : r.options) {
            if (std::find(offered_.begin(), offered_.end(), o.id) == offered_.end())
                offered_.push_back(o.id);
        }
    }

    const std::size_t failures_before = cur().failures.size();
    if (const Node* v = step.find("replies")) {
        check_replies(*v, replies, number);
    }
    if (const Node* v = step.find("reply_contains")) {
        const bool found = std::any_of(replies.begin(), replies.end(), [&](const Reply& r) {
            return r.text.find(v->scalar) != std::string::npos ||
                   r.caption.find(v->scalar) != std::string::npos;
        });
        if (!found) {
            std::string list;
            for (const auto& r : replies) {
                list += "\n      " + describe(r);
            }
            fail(*v, number, "expected a reply containing " + quote(v->scalar) + ", got:" + list);
        }
    }
    if (const Node* v = step.find("no_reply"); v && v->scalar == "true" && !replies.empty()) {
        fail(*v, number, "expected no reply, got " + describe(replies.front()));
    }
    if (const Node* v = step.find("state"); v && session_.state != v->scalar) {
        fail(*v, number, "expected state " + quote(v->scalar) + ", got " + quote(session_.state));
    }
    if (const Node* v = step.find("flow"); v && session_.flow != v->scalar) {
        fail(*v, number, "expected flow " + quote(v->scalar) + ", got " + quote(session_.flow));
    }
    if (const Node* v = step.find("waiting"); v && to_string(session_.waiting) != v->scalar) {
        fail(
            *v,
            number,
            "expected waiting " + quote(v->scalar) + ", got " + quote(to_string(session_.waiting))
        );
    }
    if (const Node* v = step.find("lang"); v && session_.lang != v->scalar) {
        fail(*v, number, "expected lang " + quote(v->scalar) + ", got " + quote(session_.lang));
    }
    if (const Node* v = step.find("slots")) {
        for (const auto& [key, value] : v->entries) {
            const auto it = session_.slots.find(key.scalar);
            if (value.is_null()) {
                if (it != session_.slots.end()) {
                    fail(
                        value,
                        number,
                        "expected slot '" + key.scalar + "' unset, got " + quote(it->second)
                    );
                }
            } else if (it == session_.slots.end()) {
                fail(
                    value,
                    number,
                    "expected slot '" + key.scalar + "' = " + quote(value.scalar) +
                        ", but it is not set"
                );
            } else if (it->second != value.scalar) {
                fail(
                    value,
                    number,
                    "expected slot '" + key.scalar + "' = " + quote(value.scalar) + ", got " +
                        quote(it->second)
                );
            }
        }
    }
    if (const Node* v = step.find("effects")) {
        std::vector<std::string> got;
        for (const auto& e : effects) {
            got.emplace_back(effect_name(e.kind));
        }
        if (got != string_list(*v)) {
            std::string list;
            for (const auto& g : got) {
                list += (list.empty() ? "" : ", ") + g;
            }
            fail(*v, number, "expected effects as listed, got [" + list + "]");
        }
    }
    if (const Node* v = step.find("calls"); v && calls != string_list(*v)) {
        std::string list;
        for (const auto& c : calls) {
            list += (list.empty() ? "" : ", ") + quote(c);
        }
        fail(*v, number, "expected calls as listed, got [" + list + "]");
    }
    return cur().failures.size() == failures_before;
}

}  // namespace

int ConversationRun::passed() const {
    return static_cast<int>(std::count_if(results.begin(), results.end(), [](const auto& r) {
        return r.passed;
    }));
}

int ConversationRun::failed() const {
    return static_cast<int>(results.size()) - passed();
}

ConversationRun run_conversation_tests(
    const FlowSet& flows, const std::vector<SourceFile>& test_files
) {
    ConversationRun run;
    Runner runner(flows, run);
    for (const auto& file : test_files) {
        runner.run_file(file);
    }
    return run;
}

std::vector<std::pair<std::string, std::string>> uncovered_states(
    const FlowSet& flows, const ConversationRun& run
) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& flow : flows.flows) {
        for (const auto& st : flow.states) {
            if (run.visited.count({flow.name, st.id}) == 0) {
                out.emplace_back(flow.name, st.id);
            }
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace civicflow::engine
