// Private: yaml::Node trees -> Flow / Helpline with shape checks (E101-E111, E301, E302, and
// the template checks of Template::parse). Also records what the graph checks need and the model
// does not keep: where values were written, which slots each text reads, which languages each
// text has.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <civicflow/engine/diagnostic.hpp>
#include <civicflow/engine/flow.hpp>
#include <civicflow/engine/yaml_document.hpp>

namespace civicflow::engine::detail {

/// Slots one template reads without a `default` filter, and where the template is written.
struct TemplateRead {
    std::string owner;  // "state 'show'", "faq 'hours'", "message 'expired'"
    std::vector<std::string> slots;
    SourceLocation location;
    int length = 1;
    std::string source;                       // the template text
    std::vector<yaml::TextSegment> segments;  // where it was written (empty: unknown)
};

/// One citizen-visible text and the languages it is written in ("" = one text for all).
struct TextUse {
    std::string what;  // "'say' of state 'menu'"
    std::vector<std::string> languages;
    SourceLocation location;
    int length = 1;
};

/// A name written in a file (a flow name, a state id), with its place, for graph messages.
struct NameRef {
    std::string name;
    SourceLocation location;
    int length = 1;
};

/// Per-state facts for the graph checks, parallel to Flow::states.
struct StateInfo {
    bool broken = false;                // the state failed its shape checks: graph checks skip it
    std::optional<NameRef> enter_flow;  // `enter: FLOW`
    std::optional<NameRef> language;    // `language: hi`
    std::vector<TemplateRead> reads;    // everything rendered while in the state
    std::vector<std::vector<std::string>> route_captures;  // named captures, per route
    SourceLocation menu_location;                          // the `menu` list, for W102
};

struct FlowInfo {
    NameRef start;
    bool has_languages = false;  // `languages:` given (else the helpline's apply)
    std::vector<StateInfo> states;
    std::vector<TextUse> texts;
    std::vector<TemplateRead> faq_reads;
    std::vector<std::vector<std::string>> faq_captures;  // per FaqEntry
};

struct ParsedFlow {
    Flow flow;
    FlowInfo info;
};

struct HelplineInfo {
    SourceLocation location;  // the `helpline:` name
    NameRef entry;
    // The engine messages the file leaves out: they keep their built-in English texts.
    std::vector<std::string> builtin_messages;
    std::vector<TextUse> texts;
    std::vector<TemplateRead> reads;
};

struct ParsedHelpline {
    Helpline helpline;
    HelplineInfo info;
};

/// What one file turned out to be. A flow file whose name could not be read sets
/// `unnamed_flow`, so cross-file checks know the set of flow names is incomplete.
struct ParsedFile {
    std::optional<ParsedFlow> flow;
    std::optional<ParsedHelpline> helpline;
    bool unnamed_flow = false;
};

/// Reads one parsed YAML file as a flow file or the helpline file. Every problem found goes to
/// `diags`; what could be read is returned even then, so later checks still run.
ParsedFile parse_file(const yaml::Node& root, const std::string& file, Diagnostics& diags);

/// Fills every command and message the helpline does not define with the built-in English
/// defaults (LANGUAGE.md, "Helpline file").
void apply_helpline_defaults(Helpline& helpline);

/// Name formats of LANGUAGE.md ("Common value forms").
bool is_valid_language_code(std::string_view code);
bool is_valid_state_id(std::string_view id);
bool is_valid_name(std::string_view name);  // flow and slot names

/// Built-in variables every template may read: profile_name, flow_title, lang.
const std::vector<std::string>& builtin_slots();

}  // namespace civicflow::engine::detail
