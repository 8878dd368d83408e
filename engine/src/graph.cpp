// Flow diagrams. Mermaid state ids cannot contain dots or dashes, so states get generated ids
// (s0, s1, ...) and their real ids become labels.
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include <civicflow/engine/graph.hpp>

namespace civicflow::engine {

namespace {

struct Edge {
    int from = -1;
    int to = -1;  // -1: the end of the flow
    std::string label;
    std::string external;  // a sub-flow entered
};

std::string first_text(const LocalizedText& text) {
    if (text.empty()) {
        return {};
    }
    return text.variants().front().text.source();
}

void add_target(std::vector<Edge>& edges, int from, const Target& target, std::string label) {
    if (!target.empty() && target.state_index >= 0) {
        edges.push_back(Edge{from, target.state_index, std::move(label), {}});
    }
}

std::vector<Edge> edges_of(const Flow& flow) {
    std::vector<Edge> edges;
    for (std::size_t i = 0; i < flow.states.size(); ++i) {
        const State& st = flow.states[i];
        const int from = static_cast<int>(i);
        for (const auto& option : st.menu) {
            std::string label =
                std::to_string(&option - st.menu.data() + 1) + ". " + first_text(option.title);
            if (option.target.flow_index >= 0 && option.target.flow != flow.name) {
                edges.push_back(Edge{from, -2, label, option.target.flow});
            } else {
                add_target(edges, from, option.target, label);
            }
        }
        for (const auto& route : st.routes) {
            add_target(edges, from, route.target, "text match");
        }
        if (st.otherwise && !st.otherwise->then.empty()) {
            add_target(edges, from, st.otherwise->then, "not understood");
        }
        switch (st.kind) {
            case StateKind::kAsk:
                add_target(edges, from, st.ask->then, "valid " + st.ask->slot);
                if (!st.ask->give_up.empty()) {
                    add_target(edges, from, st.ask->give_up, "gave up");
                } else {
                    edges.push_back(Edge{from, flow.start_index, "gave up", {}});
                }
                break;
            case StateKind::kCall:
                add_target(edges, from, st.call->on_ok, "ok");
                add_target(edges, from, st.call->on_not_found, "not found");
                add_target(edges, from, st.call->on_error, "error");
                break;
            case StateKind::kGoto:
                add_target(edges, from, st.go, "");
                break;
            case StateKind::kEnter:
                edges.push_back(Edge{from, -2, "enter", st.enter->flow});
                add_target(edges, from, st.enter->then, "returns");
                break;
            case StateKind::kEnd:
                edges.push_back(Edge{from, -1, "", {}});
                break;
            default:
                break;
        }
    }
    return edges;
}

std::string escape(std::string_view text, bool dot) {
    std::string out;
    for (const char c : text) {
        if (c == '"') {
            out += dot ? "\\\"" : "#quot;";
        } else if (c == '\n') {
            out += ' ';
        } else if (!dot && (c == ':' || c == ';')) {
            out += c == ':' ? "#58;" : "#59;";
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

std::string render_graph(const Flow& flow, GraphFormat format) {
    const auto edges = edges_of(flow);
    std::ostringstream out;
    if (format == GraphFormat::kMermaid) {
        out << "stateDiagram-v2\n";
        out << "    %% flow " << flow.name << " (" << flow.file << ")\n";
        for (std::size_t i = 0; i < flow.states.size(); ++i) {
            out << "    state \"" << escape(flow.states[i].id, false) << "\" as s" << i << "\n";
        }
        out << "    [*] --> s" << flow.start_index << "\n";
        for (const auto& e : edges) {
            out << "    s" << e.from << " --> ";
            if (e.to == -1) {
                out << "[*]";
            } else if (e.to == -2) {
                out << "flow_" << e.external;
            } else {
                out << "s" << e.to;
            }
            std::string label = e.to == -2 && e.label == "enter" ? "enter " + e.external : e.label;
            if (!label.empty()) {
                out << " : " << escape(label, false);
            }
            out << "\n";
        }
        return out.str();
    }
    out << "digraph \"" << escape(flow.name, true) << "\" {\n";
    out << "    rankdir=LR;\n    node [shape=box, style=rounded];\n";
    out << "    __start [shape=point];\n    __end [shape=doublecircle, label=\"\"];\n";
    for (std::size_t i = 0; i < flow.states.size(); ++i) {
        out << "    s" << i << " [label=\"" << escape(flow.states[i].id, true) << "\"];\n";
    }
    out << "    __start -> s" << flow.start_index << ";\n";
    for (const auto& e : edges) {
        out << "    s" << e.from << " -> ";
        if (e.to == -1) {
            out << "__end";
        } else if (e.to == -2) {
            out << "\"flow:" << escape(e.external, true) << "\"";
        } else {
            out << "s" << e.to;
        }
        if (!e.label.empty()) {
            out << " [label=\"" << escape(e.label, true) << "\"]";
        }
        out << ";\n";
    }
    out << "}\n";
    return out.str();
}

}  // namespace civicflow::engine
