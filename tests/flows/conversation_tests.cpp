// Runs the conversation tests of flows/tests/ (the same as `civicflow test flows --coverage`).
#include <algorithm>
#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include <civicflow/engine/conversation_test.hpp>
#include <civicflow/engine/loader.hpp>

using namespace civicflow::engine;

namespace {

std::vector<SourceFile> test_files(const std::filesystem::path& dir) {
    std::vector<SourceFile> out;
    std::vector<std::filesystem::path> paths;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (name.size() > 10 && name.substr(name.size() - 10) == ".test.yaml") {
            paths.push_back(entry.path());
        }
    }
    std::sort(paths.begin(), paths.end());
    for (const auto& p : paths) {
        auto file = read_source_file(p.string());
        REQUIRE_MESSAGE(file.has_value(), file.error().message);
        out.push_back(std::move(*file));
    }
    return out;
}

std::shared_ptr<const FlowSet> shipped_flows() {
    const auto files = read_flow_dir(std::string(CIVICFLOW_SOURCE_DIR) + "/flows");
    REQUIRE(files.has_value());
    const LoadResult loaded = load_flows(*files);
    REQUIRE(loaded.flows);
    return loaded.flows;
}

// Whether one of a conversation's failures contains `text`.
bool failure_has(const ConversationResult& result, const std::string& text) {
    return std::any_of(result.failures.begin(), result.failures.end(), [&](const std::string& f) {
        return f.find(text) != std::string::npos;
    });
}

// Loads `flows_dir`, runs every test of `tests_dir`, and checks that all pass, that there are at
// least `min_count` conversations, and that every state is entered.
void run_and_check(
    const std::string& flows_dir, const std::string& tests_dir, std::size_t min_count
) {
    const auto files = read_flow_dir(flows_dir);
    REQUIRE(files.has_value());
    const LoadResult loaded = load_flows(*files);
    REQUIRE_MESSAGE(loaded.flows, format_text(loaded.diagnostics, loaded.sources));
    const auto tests = test_files(tests_dir);
    const ConversationRun run = run_conversation_tests(*loaded.flows, tests);
    SourceCache sources;
    for (const auto& f : tests) {
        sources.put(f.path, f.contents);
    }
    CHECK_MESSAGE(run.diagnostics.empty(), format_text(run.diagnostics, sources));
    for (const auto& r : run.results) {
        std::string why;
        for (const auto& f : r.failures) {
            why += f + "\n";
        }
        CHECK_MESSAGE(r.passed, std::string(r.name + "\n" + why));
    }
    CHECK(run.results.size() >= min_count);
    const auto missing = uncovered_states(*loaded.flows, run);
    std::string list;
    for (const auto& [flow, state] : missing) {
        list += flow + "/" + state + "\n";
    }
    CHECK_MESSAGE(missing.empty(), std::string("states no test enters:\n" + list));
}

}  // namespace

TEST_SUITE("flows/conversations") {
    TEST_CASE("every conversation test of the shipped flows passes and every state is entered") {
        const std::string root = CIVICFLOW_SOURCE_DIR;
        run_and_check(root + "/flows", root + "/flows/tests", 60);
    }

    // A misspelt expectation would check nothing and pass: unknown keys fail the conversation
    // (with a suggestion), and so does a name used twice in one file.
    TEST_CASE("unknown keys and repeated names in a test file fail, with a suggestion") {
        const auto flows = shipped_flows();
        const SourceFile test{"typos.test.yaml", R"(conversations:
  - name: typo in a step
    steps:
      - send: "hi"
        replise: ["anything"]
  - name: typo in a step
    stepz: []
    steps:
      - send: "hi"
  - name: typo in a reply
    steps:
      - send: "menu"
        replies:
          - { txt: "x" }
          - { text: "y" }
)"};
        const ConversationRun run = run_conversation_tests(*flows, {test});
        REQUIRE(run.results.size() == 3);
        CHECK(run.passed() == 0);
        auto has = [&](std::size_t i, const std::string& text) {
            return failure_has(run.results[i], text);
        };
        CHECK(
            has(0,
                "typos.test.yaml:5:9: conversation 'typo in a step' step 1: unknown key "
                "\"replise\" (did you mean \"replies\"?)")
        );
        CHECK(
            has(1,
                "typos.test.yaml:6:11: conversation 'typo in a step': a conversation of this name "
                "is already in this file")
        );
        CHECK(has(1, "unknown key \"stepz\" (did you mean \"steps\"?)"));
        CHECK(has(2, "unknown key \"txt\" (did you mean \"text\"?)"));
    }

    // Steps that would check nothing, or fail without saying why, are errors of the test.
    TEST_CASE("a step with two inputs, a tap on a button never shown, or an unknown value fails") {
        const auto flows = shipped_flows();
        const SourceFile test{"strict.test.yaml", R"(conversations:
  - name: two inputs
    steps:
      - send: "2"
        choose: birth_certificate
  - name: advance and a message
    steps:
      - advance: 1m
        send: "x"
        state: nowhere
  - name: a button never shown
    steps:
      - send: "hi"
      - choose: pasport
  - name: an unknown waiting value
    steps:
      - send: "hi"
        waiting: question
  - name: an unknown effect
    steps:
      - send: "hi"
        effects: [handof]
  - name: a tap on a button shown earlier is fine
    steps:
      - send: "hi"
      - send: "3"
      - choose: passport
        state: ask_ref
)"};
        const ConversationRun run = run_conversation_tests(*flows, {test});
        REQUIRE(run.results.size() == 6);
        auto has = [&](std::size_t i, const std::string& text) {
            return failure_has(run.results[i], text);
        };
        CHECK(has(0, "step 1: a step has one input: send, choose, media, location or advance"));
        CHECK(has(1, "step 1: a step has one input: send, choose, media, location or advance"));
        CHECK(
            has(2,
                "strict.test.yaml:14:17: conversation 'a button never shown' step 2: no menu of "
                "this conversation offered \"pasport\" (did you mean \"passport\"?); offered: "
                "passport, birth_certificate, status, grievance")
        );
        CHECK(has(3, "unknown waiting \"question\" (one of nothing, menu, answer, text,"));
        CHECK(has(4, "unknown effect \"handof\" (did you mean \"handoff\"?)"));
        CHECK(run.results[5].passed);
        CHECK(run.passed() == 1);
    }

    TEST_CASE("every validator fails, gives up and succeeds as its conversation tests say") {
        const std::string root = CIVICFLOW_SOURCE_DIR;
        run_and_check(root + "/tests/flows/validators", root + "/tests/flows/validators/tests", 14);
    }
}
