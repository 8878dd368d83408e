#include <doctest/doctest.h>

#include <civicflow/engine/graph.hpp>
#include <civicflow/engine/loader.hpp>

using namespace civicflow::engine;

namespace {

const char* const kFlow = R"(version: 1
flow: main
title: "Main"
languages: [en]
start: menu
states:
  menu:
    say: "Choose:"
    menu:
      - { id: a, title: "Status", goto: ask }
      - { id: b, title: "Bye", goto: bye }
  ask:
    ask: "Reference?"
    slot: ref
    then: lookup
  lookup:
    call: { backend: status, method: GET, path: "/x/{{ ref }}" }
    on: { ok: bye, error: menu }
  bye:
    say: "Bye"
    end: true
)";

}  // namespace

TEST_SUITE("engine/graph") {
    TEST_CASE("a flow renders as a Mermaid state diagram with labelled transitions") {
        const LoadResult r = load_flows({{"main.yaml", kFlow}});
        REQUIRE_MESSAGE(r.flows, format_text(r.diagnostics, r.sources));
        CHECK(
            render_graph(r.flows->flows[0], GraphFormat::kMermaid) ==
            "stateDiagram-v2\n"
            "    %% flow main (main.yaml)\n"
            "    state \"menu\" as s0\n"
            "    state \"ask\" as s1\n"
            "    state \"lookup\" as s2\n"
            "    state \"bye\" as s3\n"
            "    [*] --> s0\n"
            "    s0 --> s1 : 1. Status\n"
            "    s0 --> s3 : 2. Bye\n"
            "    s1 --> s2 : valid ref\n"
            "    s1 --> s0 : gave up\n"
            "    s2 --> s3 : ok\n"
            "    s2 --> s0 : error\n"
            "    s3 --> [*]\n"
        );
    }

    TEST_CASE("a flow renders as Graphviz DOT") {
        const LoadResult r = load_flows({{"main.yaml", kFlow}});
        REQUIRE(r.flows);
        const std::string dot = render_graph(r.flows->flows[0], GraphFormat::kDot);
        CHECK(dot.rfind("digraph \"main\" {\n", 0) == 0);
        CHECK(dot.find("    s0 -> s1 [label=\"1. Status\"];\n") != std::string::npos);
        CHECK(dot.find("    s3 -> __end;\n") != std::string::npos);
        CHECK(dot.substr(dot.size() - 2) == "}\n");
    }
}
