/// Drawing a flow: Mermaid stateDiagram-v2 or Graphviz DOT.
#pragma once

#include <string>

#include <civicflow/engine/flow.hpp>

namespace civicflow::engine {

enum class GraphFormat { kMermaid, kDot };

/// Renders `flow` (its states and every transition, labelled by menu option or call outcome).
std::string render_graph(const Flow& flow, GraphFormat format);

}  // namespace civicflow::engine
