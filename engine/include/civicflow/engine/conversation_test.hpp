/// Conversation tests: scripted dialogs in YAML run against a FlowSet with mocked backends and
/// a fake clock. Used by `civicflow test` and by ctest.
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include <civicflow/engine/diagnostic.hpp>
#include <civicflow/engine/flow.hpp>
#include <civicflow/engine/loader.hpp>

namespace civicflow::engine {

/// The outcome of one conversation test.
struct ConversationResult {
    std::string file;
    std::string name;
    bool passed = false;
    std::vector<std::string> failures;  // "file:line:col: expected ..., got ..."
};

/// The outcome of a test run, with the (flow, state) pairs that were entered, for --coverage.
struct ConversationRun {
    std::vector<ConversationResult> results;
    std::set<std::pair<std::string, std::string>> visited;
    Diagnostics diagnostics;  // problems in the test files themselves (shape errors)
    int passed() const;
    int failed() const;
};

/// Parses and runs every test in `test_files` against `flows`.
ConversationRun run_conversation_tests(
    const FlowSet& flows, const std::vector<SourceFile>& test_files
);

/// (flow, state) pairs of `flows` that `run` never entered, sorted.
std::vector<std::pair<std::string, std::string>> uncovered_states(
    const FlowSet& flows, const ConversationRun& run
);

}  // namespace civicflow::engine
