// Private: graph and cross-file checks over parsed flows, and linking them into a FlowSet.
#pragma once

#include <string>
#include <vector>

#include <civicflow/engine/diagnostic.hpp>
#include <civicflow/engine/flow.hpp>

#include "flow_parser.hpp"

namespace civicflow::engine::detail {

struct CheckInput {
    std::vector<ParsedFlow> flows;          // in file order
    std::vector<ParsedHelpline> helplines;  // more than one is E203
    // False when some flow file's name could not be read: an "undefined flow" may then be the
    // broken file's, so E202 (and the entry rules) are not reported to avoid false alarms.
    bool names_complete = true;
    std::string directory;  // where the synthetic "no helpline file" diagnostic points
};

/// Runs E201-E205, E402, E404, W101-W103 (see docs/flow-errors.md), resolves every Target,
/// Enter::flow_index, Flow::start_index and Helpline::entry_index, and returns the linked set.
/// The set is only meaningful when `diags` holds no errors.
FlowSet check_and_link(CheckInput input, Diagnostics& diags);

}  // namespace civicflow::engine::detail
