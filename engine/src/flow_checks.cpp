// Graph and cross-file checks (E2xx, E402, E404, W1xx) and linking into a FlowSet.
#include "flow_checks.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <civicflow/engine/engine.hpp>
#include <civicflow/engine/text_normalize.hpp>

namespace civicflow::engine::detail {

namespace {

constexpr std::size_t kMaxMenuOptions = 10;  // WhatsApp list messages
constexpr std::size_t kMaxTitleLength = 24;  // WhatsApp list row titles, in characters
constexpr std::size_t kMaxNamesInHint = 10;

std::string quote(std::string_view s) {
    return "'" + std::string(s) + "'";
}

std::string join(const std::vector<std::string>& items, std::string_view separator = ", ") {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) {
            out += separator;
        }
        out += item;
    }
    return out;
}

// "'a'", "'a' and 'b'", "'a', 'b' and 'c'".
std::string join_and(const std::vector<std::string>& items) {
    if (items.size() <= 1) {
        return join(items);
    }
    return join(std::vector<std::string>(items.begin(), items.end() - 1)) + " and " + items.back();
}

// "a, b, c", at most kMaxNamesInHint names, then ", ...".
std::string join_some(const std::vector<std::string>& names) {
    const std::vector<std::string> shown(
        names.begin(),
        names.begin() + static_cast<std::ptrdiff_t>(std::min(names.size(), kMaxNamesInHint))
    );
    return join(shown) + (names.size() > kMaxNamesInHint ? ", ..." : "");
}

/// "did you mean 'x'?" or, with nothing close (or no search), the allowed names (at most ten).
std::string suggest(
    const std::string& word,
    const std::vector<std::string>& names,
    const std::string& label,
    bool search
) {
    const std::string near = search ? did_you_mean(word, names) : std::string();
    if (!near.empty()) {
        return "did you mean " + quote(near) + "?";
    }
    if (names.empty()) {
        return {};
    }
    return label + ": " + join_some(names);
}

/// Where `{{ slot ... }}` is in a template: (byte offset, length in code points).
std::optional<std::pair<std::size_t, int>> find_slot_read(
    std::string_view source, std::string_view slot
) {
    std::size_t from = 0;
    while (true) {
        const std::size_t open = source.find("{{", from);
        if (open == std::string_view::npos) {
            return std::nullopt;
        }
        std::size_t i = open + 2;
        while (i < source.size() && source[i] == ' ') {
            ++i;
        }
        const bool named = source.substr(i, slot.size()) == slot &&
                           (i + slot.size() == source.size() ||
                            !(std::isalnum(static_cast<unsigned char>(source[i + slot.size()])) ||
                              source[i + slot.size()] == '_'));
        const std::size_t close = source.find("}}", i);
        if (named && close != std::string_view::npos) {
            return std::pair<std::size_t, int>{
                open, static_cast<int>(utf8_length(source.substr(open, close + 2 - open)))};
        }
        from = open + 2;
    }
}

/// A fixed-size set of slot ids.
class SlotSet {
public:
    SlotSet() = default;

    explicit SlotSet(std::size_t size)
        : words_((size + 63) / 64, 0) {}

    void add(std::size_t i) { words_[i / 64] |= std::uint64_t{1} << (i % 64); }

    bool has(std::size_t i) const { return (words_[i / 64] >> (i % 64)) & 1U; }

    /// Adds `other`; true when something was new.
    bool merge(const SlotSet& other) {
        bool changed = false;
        for (std::size_t w = 0; w < words_.size(); ++w) {
            const std::uint64_t next = words_[w] | other.words_[w];
            changed = changed || next != words_[w];
            words_[w] = next;
        }
        return changed;
    }

private:
    std::vector<std::uint64_t> words_;
};

class Checker {
public:
    Checker(CheckInput& input, Diagnostics& diags)
        : in_(input)
        , diags_(diags) {}

    FlowSet run();

private:
    // --- helpline and names ---
    void choose_helpline();
    void index_flows();
    void resolve_entry();
    void apply_languages();

    // --- targets ---
    void resolve_all();
    void resolve_state_target(
        std::size_t fi, Target& target, const std::string& owner, const std::string& verb
    );
    std::optional<int> resolve_flow(const NameRef& ref, const std::string& message_prefix);
    void duplicate_ids();
    void menu_warnings();

    // --- graph ---
    std::size_t node(std::size_t fi, std::size_t si) const { return base_[fi] + si; }

    bool state_ok(std::size_t fi, std::size_t si) const {
        return !in_.flows[fi].info.states[si].broken;
    }

    void compute_can_end();
    void check_cycles();
    void check_chain_lengths(const std::vector<std::vector<std::size_t>>& edges);
    void check_unreachable();
    void check_slots();
    void check_translations();
    void warn_builtin_messages();

    std::string node_name(std::size_t n, bool qualified) const;

    /// did_you_mean costs one edit distance per candidate. A pathological directory with
    /// thousands of broken references against thousands of names would take minutes, so the
    /// search stops after a fixed amount of work; later hints only list names.
    bool may_search(std::size_t candidates) {
        constexpr std::size_t kBudget = 2'000'000;
        if (suggest_work_ + candidates > kBudget) {
            return false;
        }
        suggest_work_ += candidates;
        return true;
    }

    std::size_t suggest_work_ = 0;
    std::vector<std::vector<std::string>> state_ids_;  // per flow, built on the first E201

    CheckInput& in_;
    Diagnostics& diags_;
    Helpline helpline_;
    HelplineInfo helpline_info_;
    bool has_helpline_file_ = false;
    std::unordered_map<std::string, int> flow_index_;
    std::vector<std::string> flow_names_;
    std::vector<std::size_t> base_;  // first global node of each flow
    std::size_t node_count_ = 0;
    std::vector<bool> can_end_;  // the flow can reach `end` from its start without waiting
};

// ---------------------------------------------------------------------------------------------

void Checker::choose_helpline() {
    if (!in_.helplines.empty()) {
        has_helpline_file_ = true;
        helpline_ = in_.helplines.front().helpline;
        helpline_info_ = in_.helplines.front().info;
        for (std::size_t i = 1; i < in_.helplines.size(); ++i) {
            const auto& first = in_.helplines.front();
            const auto& extra = in_.helplines[i];
            diags_.error(
                "E203",
                extra.info.location,
                "second helpline file: helpline " + quote(first.helpline.name) +
                    " is already declared in " + first.helpline.file + ":" +
                    std::to_string(first.info.location.line),
                "a flow directory has one helpline file; merge them",
                static_cast<int>(utf8_length(extra.helpline.name))
            );
        }
    }
}

void Checker::index_flows() {
    for (std::size_t fi = 0; fi < in_.flows.size(); ++fi) {
        const Flow& flow = in_.flows[fi].flow;
        const auto [it, inserted] = flow_index_.emplace(flow.name, static_cast<int>(fi));
        if (!inserted) {
            const Flow& first = in_.flows[static_cast<std::size_t>(it->second)].flow;
            diags_.error(
                "E203",
                flow.location,
                "flow " + quote(flow.name) + " is defined twice; the first is in " + first.file +
                    ":" + std::to_string(first.location.line),
                "flow names are unique across files; rename one of them",
                static_cast<int>(utf8_length(flow.name))
            );
            continue;
        }
        flow_names_.push_back(flow.name);
    }
}

void Checker::resolve_entry() {
    if (has_helpline_file_) {
        if (helpline_.entry.empty()) {
            return;  // reported by the parser
        }
        const auto it = flow_index_.find(helpline_.entry);
        if (it != flow_index_.end()) {
            helpline_.entry_index = it->second;
        } else if (in_.names_complete) {
            diags_.error(
                "E202",
                helpline_info_.entry.location,
                "helpline " + quote(helpline_.name) + " starts in flow " + quote(helpline_.entry) +
                    ", which is not defined",
                suggest(helpline_.entry, flow_names_, "flows", may_search(flow_names_.size())),
                helpline_info_.entry.length
            );
        }
        return;
    }
    // No helpline file: the flow named `main`, else the only flow; built-in messages.
    helpline_.file.clear();
    apply_helpline_defaults(helpline_);
    if (in_.flows.empty()) {
        if (in_.names_complete) {
            diags_.error(
                "E103",
                SourceLocation{in_.directory, 0, 0},
                "no flows: no .yaml or .yml file here has the key 'flow'",
                "a flow file starts with 'flow: NAME'; check that the directory given is the flows "
                "directory"
            );
        }
        return;
    }
    if (const auto it = flow_index_.find("main"); it != flow_index_.end()) {
        helpline_.entry = "main";
        helpline_.entry_index = it->second;
    } else if (flow_names_.size() == 1) {
        helpline_.entry = flow_names_.front();
        helpline_.entry_index = flow_index_.at(helpline_.entry);
    } else if (in_.names_complete) {
        diags_.error(
            "E103",
            SourceLocation{in_.directory, 0, 0},
            "no helpline file and no flow named 'main'",
            "add a helpline.yaml with 'entry: FLOW', or name the first flow 'main'"
        );
    }
}

void Checker::apply_languages() {
    if (!has_helpline_file_) {
        // The union of the flows' languages; the first flow's first language is the default.
        for (const ParsedFlow& pf : in_.flows) {
            for (const std::string& lang : pf.flow.languages) {
                if (std::find(helpline_.languages.begin(), helpline_.languages.end(), lang) ==
                    helpline_.languages.end()) {
                    helpline_.languages.push_back(lang);
                }
            }
        }
        if (helpline_.languages.empty()) {
            helpline_.languages.emplace_back("en");
        }
        helpline_.default_language = helpline_.languages.front();
    }
    for (ParsedFlow& pf : in_.flows) {
        Flow& flow = pf.flow;
        if (flow.languages.empty()) {
            flow.languages = helpline_.languages;
        }
        if (!flow.languages.empty()) {
            flow.default_language = flow.languages.front();
        }
        for (std::size_t si = 0; si < flow.states.size(); ++si) {
            const auto& language = pf.info.states[si].language;
            if (language &&
                std::find(flow.languages.begin(), flow.languages.end(), language->name) ==
                    flow.languages.end()) {
                diags_.error(
                    "E109",
                    language->location,
                    "state " + quote(flow.states[si].id) + " switches to language " +
                        quote(language->name) + ", which is not a language of flow " +
                        quote(flow.name),
                    "languages of flow " + quote(flow.name) + ": " + join(flow.languages),
                    language->length
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

void Checker::resolve_state_target(
    std::size_t fi, Target& target, const std::string& owner, const std::string& verb
) {
    if (target.empty()) {
        return;
    }
    Flow& flow = in_.flows[fi].flow;
    target.flow = flow.name;
    target.flow_index = static_cast<int>(fi);
    const auto it = flow.state_index.find(target.state);
    if (it != flow.state_index.end()) {
        target.state_index = it->second;
        return;
    }
    state_ids_.resize(in_.flows.size());
    std::vector<std::string>& ids = state_ids_[fi];
    if (ids.empty()) {
        for (const State& st : flow.states) {
            ids.push_back(st.id);
        }
    }
    diags_.error(
        "E201",
        target.location,
        owner + " " + verb + " " + quote(target.state) + ", which is not a state of flow " +
            quote(flow.name),
        suggest(target.state, ids, "states of flow " + quote(flow.name), may_search(ids.size())),
        static_cast<int>(utf8_length(target.state))
    );
}

std::optional<int> Checker::resolve_flow(const NameRef& ref, const std::string& message_prefix) {
    const auto it = flow_index_.find(ref.name);
    if (it != flow_index_.end()) {
        return it->second;
    }
    if (in_.names_complete) {
        diags_.error(
            "E202",
            ref.location,
            message_prefix + " " + quote(ref.name) + ", which is not defined",
            suggest(ref.name, flow_names_, "flows", may_search(flow_names_.size())),
            ref.length
        );
    }
    return std::nullopt;
}

void Checker::resolve_all() {
    // Starts first: an `enter` option's target is the entered flow's start.
    for (std::size_t fi = 0; fi < in_.flows.size(); ++fi) {
        Flow& flow = in_.flows[fi].flow;
        const NameRef& start = in_.flows[fi].info.start;
        // No states at all: 'states' is missing or wrong, and says so itself.
        if (flow.start.empty() || flow.states.empty()) {
            continue;
        }
        const auto it = flow.state_index.find(flow.start);
        if (it != flow.state_index.end()) {
            flow.start_index = it->second;
            continue;
        }
        Target t;
        t.state = flow.start;
        t.location = start.location;
        resolve_state_target(fi, t, "flow " + quote(flow.name), "starts at");
    }
    for (std::size_t fi = 0; fi < in_.flows.size(); ++fi) {
        Flow& flow = in_.flows[fi].flow;
        FlowInfo& info = in_.flows[fi].info;
        for (std::size_t si = 0; si < flow.states.size(); ++si) {
            State& st = flow.states[si];
            const std::string owner = "state " + quote(st.id);
            for (MenuOption& option : st.menu) {
                if (!option.target.state.empty()) {
                    resolve_state_target(
                        fi, option.target, "option " + quote(option.id) + " of " + owner, "goes to"
                    );
                } else if (!option.target.flow.empty()) {
                    const NameRef ref{
                        option.target.flow,
                        option.target.location,
                        static_cast<int>(utf8_length(option.target.flow))};
                    if (auto sub = resolve_flow(
                            ref, "option " + quote(option.id) + " of " + owner + " enters flow"
                        )) {
                        const Flow& entered = in_.flows[static_cast<std::size_t>(*sub)].flow;
                        option.target.flow_index = *sub;
                        option.target.state = entered.start;
                        option.target.state_index = entered.start_index;
                    }
                }
            }
            for (Route& route : st.routes) {
                resolve_state_target(fi, route.target, owner, "goes to");
            }
            if (st.otherwise) {
                resolve_state_target(fi, st.otherwise->then, owner, "goes to");
            }
            if (st.ask) {
                resolve_state_target(fi, st.ask->then, owner, "goes to");
                if (st.ask->give_up.empty() && !flow.start.empty() && !info.states[si].broken) {
                    // on_give_up defaults to the flow's start.
                    st.ask->give_up.state = flow.start;
                    st.ask->give_up.location = st.location;
                    st.ask->give_up.flow = flow.name;
                    st.ask->give_up.flow_index = static_cast<int>(fi);
                    st.ask->give_up.state_index = flow.start_index;
                } else {
                    resolve_state_target(fi, st.ask->give_up, owner, "gives up to");
                }
            }
            if (st.call) {
                resolve_state_target(fi, st.call->on_ok, owner, "goes to");
                resolve_state_target(fi, st.call->on_not_found, owner, "goes to");
                resolve_state_target(fi, st.call->on_error, owner, "goes to");
            }
            resolve_state_target(fi, st.go, owner, "goes to");
            if (st.enter) {
                if (const auto& ref = info.states[si].enter_flow) {
                    if (auto sub = resolve_flow(*ref, owner + " enters flow")) {
                        st.enter->flow_index = *sub;
                    }
                }
                resolve_state_target(fi, st.enter->then, owner, "returns to");
            }
        }
        for (FaqEntry& entry : flow.faq) {
            resolve_state_target(fi, entry.target, "faq " + quote(entry.id), "goes to");
        }
    }
}

void Checker::duplicate_ids() {
    // Maps, not pairwise comparisons: a generated menu may have thousands of options.
    for (ParsedFlow& pf : in_.flows) {
        for (const State& st : pf.flow.states) {
            std::unordered_map<std::string_view, const MenuOption*> seen;
            for (const MenuOption& option : st.menu) {
                if (option.id.empty()) {
                    continue;
                }
                const auto [first, inserted] = seen.emplace(option.id, &option);
                if (!inserted) {
                    diags_.error(
                        "E203",
                        option.location,
                        "option id " + quote(option.id) + " is used twice in state " + quote(st.id),
                        "the first is on line " + std::to_string(first->second->location.line) +
                            "; option ids are unique within a menu",
                        static_cast<int>(utf8_length(option.id))
                    );
                }
            }
        }
        std::unordered_map<std::string_view, const FaqEntry*> seen;
        for (const FaqEntry& entry : pf.flow.faq) {
            if (entry.id.empty()) {
                continue;
            }
            const auto [first, inserted] = seen.emplace(entry.id, &entry);
            if (!inserted) {
                diags_.error(
                    "E203",
                    entry.location,
                    "faq id " + quote(entry.id) + " is used twice in flow " + quote(pf.flow.name),
                    "the first is on line " + std::to_string(first->second->location.line) +
                        "; faq ids are unique within a flow",
                    static_cast<int>(utf8_length(entry.id))
                );
            }
        }
    }
}

void Checker::menu_warnings() {
    for (ParsedFlow& pf : in_.flows) {
        for (std::size_t si = 0; si < pf.flow.states.size(); ++si) {
            const State& st = pf.flow.states[si];
            if (st.menu.size() > kMaxMenuOptions) {
                diags_.warning(
                    "W102",
                    pf.info.states[si].menu_location,
                    "menu of state " + quote(st.id) + " has " + std::to_string(st.menu.size()) +
                        " options; WhatsApp lists show at most 10",
                    "split it into two menus, or move rare options to a 'more' menu",
                    4
                );
            }
            for (const MenuOption& option : st.menu) {
                for (const auto& variant : option.title.variants()) {
                    const std::size_t length = utf8_length(variant.text.source());
                    if (length > kMaxTitleLength) {
                        diags_.warning(
                            "W103",
                            variant.location,
                            "title of option " + quote(option.id) + " in state " + quote(st.id) +
                                " has " + std::to_string(length) +
                                " characters; WhatsApp shows at most 24",
                            "shorten the title; put details in the menu text",
                            static_cast<int>(length)
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

std::string Checker::node_name(std::size_t n, bool qualified) const {
    const auto upper = std::upper_bound(base_.begin(), base_.end(), n);
    const auto fi = static_cast<std::size_t>(upper - base_.begin() - 1);
    const Flow& flow = in_.flows[fi].flow;
    const std::string& id = flow.states[n - base_[fi]].id;
    return qualified ? flow.name + ":" + id : id;
}

void Checker::compute_can_end() {
    // Fixed point: a flow can end without waiting when a path of non-waiting states leads from
    // its start to `end`; an `enter` passes through only when the entered flow can end.
    can_end_.assign(in_.flows.size(), false);
    bool changed = true;
    while (changed) {
        changed = false;
        for (std::size_t fi = 0; fi < in_.flows.size(); ++fi) {
            if (can_end_[fi]) {
                continue;
            }
            const Flow& flow = in_.flows[fi].flow;
            if (flow.start_index < 0) {
                continue;
            }
            std::vector<bool> seen(flow.states.size(), false);
            std::vector<int> todo{flow.start_index};
            bool ends = false;
            while (!todo.empty() && !ends) {
                const auto si = static_cast<std::size_t>(todo.back());
                todo.pop_back();
                if (seen[si] || !state_ok(fi, si)) {
                    continue;
                }
                seen[si] = true;
                const State& st = flow.states[si];
                auto push = [&](const Target& t) {
                    if (t.state_index >= 0) {
                        todo.push_back(t.state_index);
                    }
                };
                switch (st.kind) {
                    case StateKind::kEnd:
                        ends = true;
                        break;
                    case StateKind::kGoto:
                        push(st.go);
                        break;
                    case StateKind::kCall:
                        push(st.call->on_ok);
                        push(st.call->on_not_found);
                        push(st.call->on_error);
                        break;
                    case StateKind::kEnter:
                        if (st.enter->flow_index >= 0 &&
                            can_end_[static_cast<std::size_t>(st.enter->flow_index)]) {
                            if (st.enter->then.empty()) {
                                ends = true;
                            } else {
                                push(st.enter->then);
                            }
                        }
                        break;
                    default:
                        break;  // waiting states stop the path
                }
            }
            if (ends) {
                can_end_[fi] = true;
                changed = true;
            }
        }
    }
}

void Checker::check_cycles() {
    // Edges between states entered in one turn without the citizen's input.
    std::vector<std::vector<std::size_t>> edges(node_count_);
    for (std::size_t fi = 0; fi < in_.flows.size(); ++fi) {
        const Flow& flow = in_.flows[fi].flow;
        for (std::size_t si = 0; si < flow.states.size(); ++si) {
            if (!state_ok(fi, si)) {
                continue;
            }
            const State& st = flow.states[si];
            auto& out = edges[node(fi, si)];
            auto add = [&](const Target& t) {
                if (t.state_index >= 0 && t.flow_index >= 0) {
                    out.push_back(node(
                        static_cast<std::size_t>(t.flow_index),
                        static_cast<std::size_t>(t.state_index)
                    ));
                }
            };
            switch (st.kind) {
                case StateKind::kGoto:
                    add(st.go);
                    break;
                case StateKind::kCall:
                    add(st.call->on_ok);
                    add(st.call->on_not_found);
                    add(st.call->on_error);
                    break;
                case StateKind::kEnter: {
                    const int sub = st.enter->flow_index;
                    if (sub >= 0) {
                        const Flow& entered = in_.flows[static_cast<std::size_t>(sub)].flow;
                        if (entered.start_index >= 0) {
                            out.push_back(node(
                                static_cast<std::size_t>(sub),
                                static_cast<std::size_t>(entered.start_index)
                            ));
                        }
                        if (can_end_[static_cast<std::size_t>(sub)]) {
                            add(st.enter->then);
                        }
                    }
                    break;
                }
                default:
                    break;
            }
        }
    }
    // Tarjan's strongly connected components, iteratively (flows may have thousands of states).
    constexpr std::size_t kUnset = static_cast<std::size_t>(-1);
    std::vector<std::size_t> index(node_count_, kUnset);
    std::vector<std::size_t> low(node_count_, 0);
    std::vector<bool> on_stack(node_count_, false);
    std::vector<std::size_t> stack;
    std::vector<std::vector<std::size_t>> components;
    std::size_t counter = 0;
    for (std::size_t root = 0; root < node_count_; ++root) {
        if (index[root] != kUnset) {
            continue;
        }
        std::vector<std::pair<std::size_t, std::size_t>> call{{root, 0}};
        index[root] = low[root] = counter++;
        stack.push_back(root);
        on_stack[root] = true;
        while (!call.empty()) {
            auto& [v, next] = call.back();
            if (next < edges[v].size()) {
                const std::size_t w = edges[v][next++];
                if (index[w] == kUnset) {
                    index[w] = low[w] = counter++;
                    stack.push_back(w);
                    on_stack[w] = true;
                    call.emplace_back(w, 0);
                } else if (on_stack[w]) {
                    low[v] = std::min(low[v], index[w]);
                }
                continue;
            }
            if (low[v] == index[v]) {
                std::vector<std::size_t> component;
                std::size_t w = kUnset;
                do {
                    w = stack.back();
                    stack.pop_back();
                    on_stack[w] = false;
                    component.push_back(w);
                } while (w != v);
                const bool self_loop =
                    std::find(edges[v].begin(), edges[v].end(), v) != edges[v].end();
                if (component.size() > 1 || self_loop) {
                    components.push_back(std::move(component));
                }
            }
            const std::size_t finished = v;
            call.pop_back();
            if (!call.empty()) {
                low[call.back().first] = std::min(low[call.back().first], low[finished]);
            }
        }
    }
    if (components.empty()) {
        check_chain_lengths(edges);
    }
    for (auto& component : components) {
        std::sort(component.begin(), component.end());
        const std::size_t first = component.front();
        // The cycle through `first`: a shortest path back to it inside the component.
        std::unordered_map<std::size_t, std::size_t> parent;
        std::vector<std::size_t> queue{first};
        std::optional<std::size_t> last;
        for (std::size_t q = 0; q < queue.size() && !last; ++q) {
            for (std::size_t w : edges[queue[q]]) {
                if (!std::binary_search(component.begin(), component.end(), w)) {
                    continue;
                }
                if (w == first) {
                    last = queue[q];
                    break;
                }
                if (parent.emplace(w, queue[q]).second) {
                    queue.push_back(w);
                }
            }
        }
        std::vector<std::size_t> path;  // built backwards from the last step, then reversed
        path.push_back(first);
        for (std::size_t v = last.value_or(first); v != first; v = parent.at(v)) {
            path.push_back(v);
        }
        path.push_back(first);
        std::reverse(path.begin(), path.end());
        const auto flow_of = [&](std::size_t n) {
            return std::upper_bound(base_.begin(), base_.end(), n) - base_.begin();
        };
        const bool qualified = std::any_of(path.begin(), path.end(), [&](std::size_t n) {
            return flow_of(n) != flow_of(first);
        });
        // A generated cycle may run through thousands of states: name the first few.
        constexpr std::size_t kShown = 10;
        std::vector<std::string> names;
        for (std::size_t i = 0; i < path.size(); ++i) {
            if (i == kShown && path.size() > kShown + 2) {
                names.push_back("... (" + std::to_string(path.size() - 1) + " states)");
                i = path.size() - 1;
            }
            names.push_back(node_name(path[i], qualified));
        }
        const auto fi = static_cast<std::size_t>(flow_of(first) - 1);
        const State& st = in_.flows[fi].flow.states[first - base_[fi]];
        diags_.error(
            "E205",
            st.location,
            "state " + quote(st.id) +
                " is in a cycle that never waits for input: " + join(names, " -> "),
            "make one of these states wait for the citizen (menu, ask or match)",
            static_cast<int>(utf8_length(st.id))
        );
    }
}

void Checker::check_chain_lengths(const std::vector<std::vector<std::size_t>>& edges) {
    // Without cycles the states entered in one turn form a path of this graph; a path longer
    // than the engine's step cap would end every turn that takes it with R501. Longest path per
    // node by an iterative depth-first search, counted in states entered.
    const std::size_t limit = static_cast<std::size_t>(kMaxStepsPerTurn);
    std::vector<std::size_t> longest(node_count_, 0);
    std::vector<std::pair<std::size_t, std::size_t>> call;
    for (std::size_t root = 0; root < node_count_; ++root) {
        if (longest[root] != 0) {
            continue;
        }
        call.emplace_back(root, 0);
        while (!call.empty()) {
            auto& [v, next] = call.back();
            if (next < edges[v].size()) {
                const std::size_t w = edges[v][next++];
                if (longest[w] == 0) {
                    call.emplace_back(w, 0);
                }
                continue;
            }
            std::size_t best = 0;
            for (const std::size_t w : edges[v]) {
                best = std::max(best, longest[w]);
            }
            longest[v] = best + 1;
            call.pop_back();
        }
    }
    // One error per flow, at the state that starts its longest such run.
    for (std::size_t fi = 0; fi < in_.flows.size(); ++fi) {
        const Flow& flow = in_.flows[fi].flow;
        std::size_t worst = 0;
        std::size_t worst_state = 0;
        for (std::size_t si = 0; si < flow.states.size(); ++si) {
            if (longest[node(fi, si)] > worst) {
                worst = longest[node(fi, si)];
                worst_state = si;
            }
        }
        if (worst <= limit) {
            continue;
        }
        const State& st = flow.states[worst_state];
        diags_.error(
            "E206",
            st.location,
            "state " + quote(st.id) + " starts a run of " + std::to_string(worst) +
                " states entered without waiting for input; one turn enters at most " +
                std::to_string(limit),
            "let the citizen answer somewhere along the way (menu, ask or match), or join states",
            static_cast<int>(utf8_length(st.id))
        );
    }
}

void Checker::check_unreachable() {
    // In a file with errors, a state is often unreachable only because the state leading to it
    // is broken: the warning would be noise beside the real error.
    std::unordered_set<std::string> files_with_errors;
    for (const Diagnostic& d : diags_.items()) {
        if (d.severity == Severity::kError) {
            files_with_errors.insert(d.location.file);
        }
    }
    for (std::size_t fi = 0; fi < in_.flows.size(); ++fi) {
        const Flow& flow = in_.flows[fi].flow;
        if (flow.start_index < 0 || files_with_errors.count(flow.file) != 0) {
            continue;
        }
        std::vector<bool> seen(flow.states.size(), false);
        std::vector<int> todo{flow.start_index};
        for (const FaqEntry& entry : flow.faq) {
            todo.push_back(entry.target.state_index);
        }
        auto push = [&](const Target& t) {
            if (t.state_index >= 0 && t.flow_index == static_cast<int>(fi)) {
                todo.push_back(t.state_index);
            }
        };
        while (!todo.empty()) {
            const int current = todo.back();
            todo.pop_back();
            if (current < 0 || seen[static_cast<std::size_t>(current)]) {
                continue;
            }
            seen[static_cast<std::size_t>(current)] = true;
            const State& st = flow.states[static_cast<std::size_t>(current)];
            for (const MenuOption& option : st.menu) {
                push(option.target);
            }
            for (const Route& route : st.routes) {
                push(route.target);
            }
            if (st.otherwise) {
                push(st.otherwise->then);
            }
            if (st.ask) {
                push(st.ask->then);
                push(st.ask->give_up);
            }
            if (st.call) {
                push(st.call->on_ok);
                push(st.call->on_not_found);
                push(st.call->on_error);
            }
            push(st.go);
            if (st.enter) {
                push(st.enter->then);
            }
        }
        for (std::size_t si = 0; si < flow.states.size(); ++si) {
            if (!seen[si]) {
                const State& st = flow.states[si];
                diags_.warning(
                    "W101",
                    st.location,
                    "state " + quote(st.id) + " is never reached from the start of flow " +
                        quote(flow.name),
                    "lead to it from another state, or remove it",
                    static_cast<int>(utf8_length(st.id))
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

void Checker::check_slots() {
    // The universe of slot names.
    std::unordered_map<std::string, std::size_t> ids;
    std::vector<std::string> names;
    auto id_of = [&](const std::string& name) {
        const auto [it, inserted] = ids.emplace(name, names.size());
        if (inserted) {
            names.push_back(name);
        }
        return it->second;
    };
    for (const std::string& b : builtin_slots()) {
        id_of(b);
    }
    const std::size_t flows = in_.flows.size();
    // What each state sets on entry (`set`), and per edge kind, collected as names first.
    std::vector<std::vector<std::string>> own_names(flows);
    for (std::size_t fi = 0; fi < flows; ++fi) {
        const ParsedFlow& pf = in_.flows[fi];
        auto& own = own_names[fi];
        for (std::size_t si = 0; si < pf.flow.states.size(); ++si) {
            const State& st = pf.flow.states[si];
            for (const auto& [slot, tpl] : st.set) {
                own.push_back(slot);
            }
            if (st.ask && !st.ask->slot.empty()) {
                own.push_back(st.ask->slot);
                if (st.ask->validators.empty()) {
                    own.push_back(st.ask->slot + "_type");
                }
            }
            if (st.call) {
                for (const auto& [slot, pointer] : st.call->save) {
                    own.push_back(slot);
                }
            }
            for (const auto& captures : pf.info.states[si].route_captures) {
                own.insert(own.end(), captures.begin(), captures.end());
            }
        }
        for (const auto& captures : pf.info.faq_captures) {
            own.insert(own.end(), captures.begin(), captures.end());
        }
        for (const std::string& name : own) {
            id_of(name);
        }
    }
    const std::size_t universe = names.size();
    auto set_of = [&](const std::vector<std::string>& list) {
        SlotSet s(universe);
        for (const std::string& name : list) {
            s.add(id_of(name));
        }
        return s;
    };
    std::vector<SlotSet> own(flows);
    for (std::size_t fi = 0; fi < flows; ++fi) {
        own[fi] = set_of(own_names[fi]);
    }
    // Everything a flow and the flows it enters may set: what a caller has after it returns.
    std::vector<SlotSet> reach = own;
    for (bool changed = true; changed;) {
        changed = false;
        for (std::size_t fi = 0; fi < flows; ++fi) {
            for (const State& st : in_.flows[fi].flow.states) {
                std::vector<int> subs;
                if (st.enter && st.enter->flow_index >= 0) {
                    subs.push_back(st.enter->flow_index);
                }
                for (const MenuOption& option : st.menu) {
                    if (option.target.flow_index >= 0 &&
                        option.target.flow_index != static_cast<int>(fi)) {
                        subs.push_back(option.target.flow_index);
                    }
                }
                for (int sub : subs) {
                    if (reach[fi].merge(reach[static_cast<std::size_t>(sub)])) {
                        changed = true;
                    }
                }
            }
        }
    }

    SlotSet builtins = set_of(builtin_slots());
    SlotSet all = builtins;
    for (const SlotSet& o : own) {
        all.merge(o);
    }
    // The precise analysis keeps one slot set per state. A pathological directory (tens of
    // thousands of states and of slots) would need gigabytes; it gets the coarse check instead:
    // a slot that nothing anywhere sets.
    constexpr std::size_t kMaxSlotWords = std::size_t{1} << 22;  // 32 MB of sets
    const bool precise = node_count_ * ((universe + 63) / 64) <= kMaxSlotWords;
    std::vector<SlotSet> in(precise ? node_count_ : 0, SlotSet(universe));
    std::vector<bool> visited(node_count_, false);
    std::vector<std::size_t> work;
    auto flow_in = [&](std::size_t target_node, const SlotSet& slots) {
        const bool changed = in[target_node].merge(slots);
        if (changed || !visited[target_node]) {
            visited[target_node] = true;
            work.push_back(target_node);
        }
    };
    // Entry points: every flow's start with the built-ins; a flow entered as a sub-flow also
    // starts with its own slots (a citizen may come back to it), its callers' come by edges.
    std::vector<bool> entered(flows, false);
    for (const ParsedFlow& pf : in_.flows) {
        for (const State& st : pf.flow.states) {
            if (st.enter && st.enter->flow_index >= 0) {
                entered[static_cast<std::size_t>(st.enter->flow_index)] = true;
            }
            for (const MenuOption& option : st.menu) {
                if (option.target.flow_index >= 0 && option.target.flow != pf.flow.name) {
                    entered[static_cast<std::size_t>(option.target.flow_index)] = true;
                }
            }
        }
    }
    for (std::size_t fi = 0; fi < flows && precise; ++fi) {
        const Flow& flow = in_.flows[fi].flow;
        if (flow.start_index < 0) {
            continue;
        }
        SlotSet start = builtins;
        if (entered[fi]) {
            start.merge(own[fi]);
        }
        flow_in(node(fi, static_cast<std::size_t>(flow.start_index)), start);
    }
    auto locate = [&](std::size_t n) {
        const auto fi = static_cast<std::size_t>(
            std::upper_bound(base_.begin(), base_.end(), n) - base_.begin() - 1
        );
        return std::pair<std::size_t, std::size_t>{fi, n - base_[fi]};
    };
    auto base_of = [&](std::size_t n) {
        const auto [fi, si] = locate(n);
        const State& st = in_.flows[fi].flow.states[si];
        SlotSet b = in[n];
        for (const auto& [slot, tpl] : st.set) {
            b.add(id_of(slot));
        }
        return b;
    };
    while (!work.empty()) {
        const std::size_t n = work.back();
        work.pop_back();
        const auto [fi, si] = locate(n);
        if (!state_ok(fi, si)) {
            continue;
        }
        const ParsedFlow& pf = in_.flows[fi];
        const State& st = pf.flow.states[si];
        const SlotSet b = base_of(n);
        auto edge = [&](const Target& t, const SlotSet& slots) {
            if (t.state_index >= 0 && t.flow_index >= 0) {
                flow_in(
                    node(
                        static_cast<std::size_t>(t.flow_index),
                        static_cast<std::size_t>(t.state_index)
                    ),
                    slots
                );
            }
        };
        auto enter_flow = [&](int sub, const Target* back) {
            if (sub < 0) {
                return;
            }
            const Flow& entered_flow = in_.flows[static_cast<std::size_t>(sub)].flow;
            if (entered_flow.start_index >= 0) {
                flow_in(
                    node(
                        static_cast<std::size_t>(sub),
                        static_cast<std::size_t>(entered_flow.start_index)
                    ),
                    b
                );
            }
            if (back != nullptr) {
                SlotSet after = b;
                after.merge(reach[static_cast<std::size_t>(sub)]);
                edge(*back, after);
            }
        };
        for (const MenuOption& option : st.menu) {
            if (option.target.flow_index >= 0 && option.target.flow != pf.flow.name) {
                // The sub-flow returns to this menu.
                Target self;
                self.state = st.id;
                self.flow_index = static_cast<int>(fi);
                self.state_index = static_cast<int>(si);
                enter_flow(option.target.flow_index, &self);
            } else {
                edge(option.target, b);
            }
        }
        for (std::size_t r = 0; r < st.routes.size(); ++r) {
            SlotSet after = b;
            if (r < pf.info.states[si].route_captures.size()) {
                for (const std::string& name : pf.info.states[si].route_captures[r]) {
                    after.add(id_of(name));
                }
            }
            edge(st.routes[r].target, after);
        }
        if (st.otherwise) {
            edge(st.otherwise->then, b);
        }
        if (st.ask) {
            SlotSet after = b;
            if (!st.ask->slot.empty()) {
                after.add(id_of(st.ask->slot));
                if (st.ask->validators.empty()) {
                    after.add(id_of(st.ask->slot + "_type"));
                }
            }
            edge(st.ask->then, after);
            edge(st.ask->give_up, b);
        }
        if (st.call) {
            SlotSet after = b;
            for (const auto& [slot, pointer] : st.call->save) {
                after.add(id_of(slot));
            }
            edge(st.call->on_ok, after);
            edge(st.call->on_not_found, b);
            edge(st.call->on_error, b);
        }
        edge(st.go, b);
        if (st.enter) {
            enter_flow(st.enter->flow_index, st.enter->then.empty() ? nullptr : &st.enter->then);
        }
        if (st.waits()) {
            // An FAQ may answer in any waiting state and then lead elsewhere.
            for (std::size_t q = 0; q < pf.flow.faq.size(); ++q) {
                SlotSet after = b;
                if (q < pf.info.faq_captures.size()) {
                    for (const std::string& name : pf.info.faq_captures[q]) {
                        after.add(id_of(name));
                    }
                }
                edge(pf.flow.faq[q].target, after);
            }
        }
    }

    auto report = [&](const TemplateRead& read,
                      const SlotSet& available,
                      const std::string& message_tail) {
        std::vector<std::string> have;  // built only when a read is reported
        std::vector<std::string> reported;
        for (const std::string& slot : read.slots) {
            const auto it = ids.find(slot);
            if ((it != ids.end() && available.has(it->second)) ||
                std::find(reported.begin(), reported.end(), slot) != reported.end()) {
                continue;
            }
            reported.push_back(slot);
            std::string near;
            if (have.empty() && may_search(universe)) {
                for (std::size_t i = 0; i < universe; ++i) {
                    if (available.has(i)) {
                        have.push_back(names[i]);
                    }
                }
            }
            if (!have.empty() && may_search(have.size())) {
                near = did_you_mean(slot, have);
            }
            SourceLocation where = read.location;
            int length = read.length;
            if (const auto part = find_slot_read(read.source, slot)) {
                if (const auto at = yaml::position_in(read.segments, read.source, part->first)) {
                    std::tie(where.line, where.column) = *at;
                    length = part->second;
                }
            }
            diags_.error(
                "E402",
                where,
                read.owner + " reads slot " + quote(slot) + ", which " + message_tail,
                near.empty() ? "set it before (set, an ask's slot, a call's save), or "
                               "write {{ " +
                                   slot + " | default: \"...\" }}"
                             : "did you mean " + quote(near) + "?",
                length
            );
        }
    };
    SlotSet everywhere = builtins;
    for (std::size_t fi = 0; fi < flows; ++fi) {
        const ParsedFlow& pf = in_.flows[fi];
        SlotSet in_flow = builtins;
        in_flow.merge(own[fi]);
        for (std::size_t si = 0; si < pf.flow.states.size(); ++si) {
            const std::size_t n = node(fi, si);
            if (!precise) {
                for (const TemplateRead& read : pf.info.states[si].reads) {
                    report(read, all, "no flow sets");
                }
                continue;
            }
            if (!visited[n] || !state_ok(fi, si)) {
                continue;  // unreachable: W101 says so already
            }
            in_flow.merge(in[n]);
            const SlotSet b = base_of(n);
            for (const TemplateRead& read : pf.info.states[si].reads) {
                report(read, b, "no path from the start of flow " + quote(pf.flow.name) + " sets");
            }
        }
        for (const TemplateRead& read : pf.info.faq_reads) {
            report(read, in_flow, "no state of flow " + quote(pf.flow.name) + " sets");
        }
        everywhere.merge(own[fi]);
    }
    for (const TemplateRead& read : helpline_info_.reads) {
        report(read, everywhere, "no flow sets");
    }
}

void Checker::warn_builtin_messages() {
    // The built-in texts of the engine's own messages are English: a helpline in other
    // languages that leaves some out answers those citizens in English without saying so.
    std::vector<std::string> others;
    for (const std::string& lang : helpline_.languages) {
        if (lang != "en")
            others.push_back(quote(lang));
    }
    const std::vector<std::string>& left = helpline_info_.builtin_messages;
    if (others.empty() || left.empty())
        return;
    constexpr std::size_t kMaxListed = 4;
    std::string list;
    for (std::size_t i = 0; i < left.size() && i < kMaxListed; ++i)
        list += (i == 0 ? "" : ", ") + left[i];
    if (left.size() > kMaxListed)
        list += ", ...";
    diags_.warning(
        "W104",
        helpline_info_.location,
        std::to_string(left.size()) + " of the engine's messages (" + list +
            ") keep their built-in English texts, so citizens in " + join(others) +
            " get them in English",
        "give them in 'messages', with a text per language"
    );
}

void Checker::check_translations() {
    // A citizen's language is one of the helpline's; a text in another one reaches no one (a
    // flow's own `languages` only sets which translations E404 asks for: a citizen in a helpline
    // language the flow does not list still gets the flow's text in it when there is one).
    const std::unordered_set<std::string_view> helpline_languages(
        helpline_.languages.begin(), helpline_.languages.end()
    );
    const std::string helpline_list = join_some(helpline_.languages);
    constexpr std::size_t kMaxListed = 5;  // languages named in one message
    auto warn_unreachable_languages = [&](const TextUse& use,
                                          const std::unordered_set<std::string_view>& declared) {
        std::vector<std::string> extra;
        for (const std::string& lang : use.languages) {
            if (!lang.empty() && declared.count(lang) == 0 && helpline_languages.count(lang) == 0 &&
                extra.size() < kMaxListed) {
                extra.push_back(quote(lang));
            }
        }
        if (extra.empty())
            return;
        diags_.warning(
            "W106",
            use.location,
            use.what + " has a text in " + join_and(extra) + ", which " +
                (extra.size() == 1 ? "is not a language" : "are not languages") +
                " of the helpline (" + helpline_list + "): no citizen gets " +
                (extra.size() == 1 ? "it" : "them"),
            "add the language to the helpline's 'languages', or remove the text",
            use.length
        );
    };
    auto check = [&](const std::vector<TextUse>& uses,
                     const std::vector<std::string>& declared,
                     const std::string& owner) {
        const std::unordered_set<std::string_view> declared_set(declared.begin(), declared.end());
        const std::string shown_languages = join_some(declared);
        for (const TextUse& use : uses) {
            if (use.languages.size() == 1 && use.languages.front().empty()) {
                continue;  // one untranslated text serves every language
            }
            // Linear in the text's own size: a pathological list of thousands of languages
            // must not make every text cost thousands of look-ups.
            const std::unordered_set<std::string_view> present(
                use.languages.begin(), use.languages.end()
            );
            std::size_t covered = 0;
            for (const std::string& lang : use.languages) {
                covered += declared_set.count(lang);
            }
            if (covered == declared.size()) {
                warn_unreachable_languages(use, declared_set);
                continue;
            }
            std::vector<std::string> missing;
            for (const std::string& lang : declared) {
                if (present.count(lang) == 0) {
                    missing.push_back(quote(lang));
                    if (missing.size() == kMaxListed) {
                        break;
                    }
                }
            }
            const std::string list = join_and(missing);
            // A text in a language the owner does not have is most often the missing one
            // misspelt ('hin' for 'hi'): say so.
            std::string hint = "add a text for each language, or write one text for all languages";
            for (const std::string& lang : use.languages) {
                if (lang.empty() || declared_set.count(lang) != 0)
                    continue;
                const std::string near = did_you_mean(lang, declared);
                hint = quote(lang) + " is not a language of " + owner +
                       (near.empty() ? std::string() : ": did you mean " + quote(near) + "?");
                break;
            }
            diags_.error(
                "E404",
                use.location,
                use.what + " is missing the " + list + " translation" +
                    (missing.size() == 1 ? "" : "s") + " (" + owner + " declares " +
                    shown_languages + ")",
                hint,
                use.length
            );
        }
    };
    for (const ParsedFlow& pf : in_.flows) {
        check(pf.info.texts, pf.flow.languages, "flow " + quote(pf.flow.name));
    }
    if (has_helpline_file_) {
        check(helpline_info_.texts, helpline_.languages, "helpline " + quote(helpline_.name));
        warn_builtin_messages();
    }
}

FlowSet Checker::run() {
    choose_helpline();
    index_flows();
    resolve_entry();
    apply_languages();
    resolve_all();
    duplicate_ids();
    menu_warnings();
    for (const ParsedFlow& pf : in_.flows) {
        base_.push_back(node_count_);
        node_count_ += pf.flow.states.size();
    }
    compute_can_end();
    check_cycles();
    check_unreachable();
    check_slots();
    check_translations();

    FlowSet set;
    set.helpline = std::move(helpline_);
    set.flows.reserve(in_.flows.size());
    for (ParsedFlow& pf : in_.flows) {
        set.flows.push_back(std::move(pf.flow));
    }
    set.flow_index = std::move(flow_index_);
    return set;
}

}  // namespace

FlowSet check_and_link(CheckInput input, Diagnostics& diags) {
    Checker checker(input, diags);
    return checker.run();
}

}  // namespace civicflow::engine::detail
